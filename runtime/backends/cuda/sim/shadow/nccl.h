// Shadow NCCL over MPI, for the simulator's runs under mpirun: one process
// per simulated GPU, as with NCCL. A communicator is an MPI communicator
// (ncclCommInitRank splits MPI_COMM_WORLD by the unique id, ncclCommSplit
// splits by color and key). Operations are stream work (cuda_runtime.h):
// when its stream reaches one, it is posted as a nonblocking MPI call, and
// the stream waits for its completion while other streams go on. A
// communicator's operations are posted in the order they were issued,
// whatever their streams (NCCL's rule that every rank issues them in the
// same order). Sends and receives between ncclGroupStart and ncclGroupEnd
// are posted together. 16-bit reductions convert to f32, reduce, and round
// once.
#pragma once
#include <cuda_runtime.h>
#include <mpi.h>

typedef enum { ncclSuccess = 0, ncclUnhandledCudaError = 1, ncclSystemError = 2, ncclInternalError = 3,
               ncclInvalidArgument = 4, ncclInvalidUsage = 5, ncclRemoteError = 6 } ncclResult_t;
typedef enum { ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclUint32 = 3, ncclInt64 = 4, ncclUint64 = 5,
               ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 } ncclDataType_t;
#define ncclFloat ncclFloat32
#define ncclHalf ncclFloat16
#define ncclDouble ncclFloat64
typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;
#define NCCL_UNIQUE_ID_BYTES 128
typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;
#define NCCL_SPLIT_NOCOLOR -1
typedef struct { int blocking; } ncclConfig_t;
struct ncclComm { MPI_Comm mpi; int rank, size; SimOrder order; };
typedef struct ncclComm *ncclComm_t;

inline const char *ncclGetErrorString(ncclResult_t r) {
  switch (r) {
  case ncclSuccess: return "no error";
  case ncclSystemError: return "unhandled system error (MPI, in the simulator)";
  case ncclInvalidArgument: return "invalid argument";
  case ncclInvalidUsage: return "invalid usage";
  default: return "NCCL error";
  }
}
inline ncclResult_t ncclGetVersion(int *v) { *v = 22809; return ncclSuccess; }
/// MPI is the simulator's transport: a program that did not start it (a
/// launch without mpirun's communicator, NcclComm) gets it here.
inline bool simNcclMpi() {
  int up = 0, down = 0;
  MPI_Initialized(&up);
  MPI_Finalized(&down);
  if (down) return false;
  if (!up) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return false;
    std::atexit([] { int f = 0; MPI_Finalized(&f); if (!f) MPI_Finalize(); });
  }
  return true;
}
/// With NCCL_COMM_ID (host:port) set, every rank's id is the same, as NCCL's.
inline ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
  if (!simNcclMpi()) return ncclSystemError;
  std::memset(id, 0, sizeof *id);
  if (const char *env = std::getenv("NCCL_COMM_ID"))
    std::snprintf(id->internal, sizeof id->internal, "sim-nccl-env-%s", env);
  else
    std::snprintf(id->internal, sizeof id->internal, "sim-nccl-%ld", long(std::random_device{}() & 0x7fffffff));
  return ncclSuccess;
}
inline ncclResult_t simNcclWrap(MPI_Comm c, ncclComm_t *out) {
  auto *comm = new ncclComm{c, 0, 0, {}};
  MPI_Comm_rank(c, &comm->rank);
  MPI_Comm_size(c, &comm->size);
  *out = comm;
  return ncclSuccess;
}
/// Every rank of MPI_COMM_WORLD calls it (the simulator's bootstrap).
inline ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank) {
  if (!simNcclMpi()) return ncclSystemError;
  unsigned h = 2166136261u;
  for (char ch : id.internal) h = (h ^ unsigned(char(ch))) * 16777619u;
  MPI_Comm c;
  if (MPI_Comm_split(MPI_COMM_WORLD, int(h & 0x3fffffff), rank, &c) != MPI_SUCCESS) return ncclSystemError;
  ncclComm_t comm = nullptr;
  simNcclWrap(c, &comm);
  if (comm->size != nranks || comm->rank != rank) {
    std::fprintf(stderr, "sim nccl: ncclCommInitRank: rank %d of %d, but MPI has %d of %d with this id\n", rank, nranks,
                 comm->rank, comm->size);
    return ncclInvalidArgument;
  }
  *out = comm;
  return ncclSuccess;
}
inline ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t *out, ncclConfig_t *) {
  MPI_Comm c;
  if (MPI_Comm_split(comm->mpi, color == NCCL_SPLIT_NOCOLOR ? MPI_UNDEFINED : color, key, &c) != MPI_SUCCESS)
    return ncclSystemError;
  if (c == MPI_COMM_NULL) { *out = nullptr; return ncclSuccess; }
  return simNcclWrap(c, out);
}
inline ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  simDrain(nullptr);
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Comm_free(&comm->mpi);
  delete comm;
  return ncclSuccess;
}

inline size_t simNcclBytes(ncclDataType_t t) {
  switch (t) {
  case ncclInt8: case ncclUint8: return 1;
  case ncclFloat16: case ncclBfloat16: return 2;
  case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
  default: return 8;
  }
}
inline ncclResult_t simNcclCheck(const void *p, size_t count, ncclDataType_t t, const char *what) {
  simCheckDev(p, count * simNcclBytes(t), what);
  return ncclSuccess;
}
/// An operation in flight: its request and buffers.
struct SimNcclOp {
  MPI_Request req = MPI_REQUEST_NULL;
  std::vector<unsigned char> in, out;
  std::function<void()> finish; ///< After completion (the 16-bit rounding).
};
inline ncclResult_t simNcclEnqueue(ncclComm_t comm, cudaStream_t s, std::shared_ptr<SimNcclOp> op,
                                   std::function<void(SimNcclOp &)> post) {
  SimItem it;
  it.work = [op, post] { post(*op); };
  it.poll = [op] {
    int done = 0;
    MPI_Test(&op->req, &done, MPI_STATUS_IGNORE);
    if (done && op->finish) op->finish();
    return done != 0;
  };
  it.order = &comm->order;
  return simEnqueue(s, std::move(it)) == cudaSuccess ? ncclSuccess : ncclUnhandledCudaError;
}
/// Reduces `count` elements of every rank's `send` into `recv` (all of them
/// when `scatter` is 0, else the rank's block of `scatter` elements).
inline ncclResult_t simNcclReduce(const void *send, void *recv, size_t count, size_t scatter, ncclDataType_t t,
                                  ncclRedOp_t op, ncclComm_t comm, cudaStream_t s) {
  const bool half = t == ncclFloat16 || t == ncclBfloat16;
  if (!half && t != ncclFloat32 && t != ncclFloat64 && t != ncclInt32 && t != ncclInt64) {
    std::fprintf(stderr, "sim nccl: reduction of dtype %d is not simulated\n", int(t));
    std::abort();
  }
  const MPI_Datatype mt = t == ncclFloat64 ? MPI_DOUBLE : t == ncclInt32 ? MPI_INT : t == ncclInt64 ? MPI_LONG_LONG
                        : MPI_FLOAT;
  const MPI_Op mo = op == ncclMax ? MPI_MAX : op == ncclMin ? MPI_MIN : op == ncclProd ? MPI_PROD : MPI_SUM;
  const size_t e = half ? 4 : simNcclBytes(t), n = scatter ? scatter : count;
  auto state = std::make_shared<SimNcclOp>();
  state->finish = [state = state.get(), recv, n, e, half, t, op, mt, comm] {
    unsigned char *out = state->out.data();
    if (op == ncclAvg)
      for (size_t i = 0; i < n; ++i) {
        if (mt == MPI_DOUBLE) reinterpret_cast<double *>(out)[i] /= comm->size;
        else reinterpret_cast<float *>(out)[i] /= float(comm->size);
      }
    if (!half) { std::memcpy(recv, out, n * e); return; }
    for (size_t i = 0; i < n; ++i) {
      float f;
      std::memcpy(&f, out + 4 * i, 4);
      if (t == ncclBfloat16) static_cast<__nv_bfloat16 *>(recv)[i] = __float2bfloat16_rn(f);
      else static_cast<__half *>(recv)[i] = __float2half_rn(f);
    }
  };
  return simNcclEnqueue(comm, s, state, [=](SimNcclOp &o) {
    o.in.resize(count * e);
    o.out.resize(n * e);
    if (half)
      for (size_t i = 0; i < count; ++i) {
        const float f = t == ncclBfloat16 ? __bfloat162float(static_cast<const __nv_bfloat16 *>(send)[i])
                                          : __half2float(static_cast<const __half *>(send)[i]);
        std::memcpy(o.in.data() + 4 * i, &f, 4);
      }
    else
      std::memcpy(o.in.data(), send, count * e);
    if (scatter) MPI_Ireduce_scatter_block(o.in.data(), o.out.data(), int(scatter), mt, mo, comm->mpi, &o.req);
    else MPI_Iallreduce(o.in.data(), o.out.data(), int(count), mt, mo, comm->mpi, &o.req);
  });
}
inline ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t t, ncclRedOp_t op,
                                  ncclComm_t comm, cudaStream_t s) {
  if (!comm) return ncclInvalidArgument;
  simNcclCheck(send, count, t, "ncclAllReduce send");
  simNcclCheck(recv, count, t, "ncclAllReduce recv");
  return simNcclReduce(send, recv, count, 0, t, op, comm, s);
}
inline ncclResult_t ncclReduceScatter(const void *send, void *recv, size_t recvcount, ncclDataType_t t,
                                      ncclRedOp_t op, ncclComm_t comm, cudaStream_t s) {
  if (!comm) return ncclInvalidArgument;
  simNcclCheck(send, recvcount * comm->size, t, "ncclReduceScatter send");
  simNcclCheck(recv, recvcount, t, "ncclReduceScatter recv");
  return simNcclReduce(send, recv, recvcount * comm->size, recvcount, t, op, comm, s);
}
inline ncclResult_t ncclAllGather(const void *send, void *recv, size_t sendcount, ncclDataType_t t, ncclComm_t comm,
                                  cudaStream_t s) {
  if (!comm) return ncclInvalidArgument;
  simNcclCheck(send, sendcount, t, "ncclAllGather send");
  simNcclCheck(recv, sendcount * comm->size, t, "ncclAllGather recv");
  const size_t b = sendcount * simNcclBytes(t);
  auto state = std::make_shared<SimNcclOp>();
  state->finish = [state = state.get(), recv, b, comm] { std::memcpy(recv, state->out.data(), b * comm->size); };
  return simNcclEnqueue(comm, s, state, [=](SimNcclOp &o) {
    o.in.assign(static_cast<const unsigned char *>(send), static_cast<const unsigned char *>(send) + b);
    o.out.resize(b * comm->size);
    MPI_Iallgather(o.in.data(), int(b), MPI_BYTE, o.out.data(), int(b), MPI_BYTE, comm->mpi, &o.req);
  });
}

inline ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t t, int root,
                                  ncclComm_t comm, cudaStream_t s) {
  if (!comm || root < 0 || root >= comm->size) return ncclInvalidArgument;
  const size_t b = count * simNcclBytes(t);
  if (comm->rank == root) simCheckDev(send, b, "ncclBroadcast send");
  simCheckDev(recv, b, "ncclBroadcast recv");
  auto state = std::make_shared<SimNcclOp>();
  state->finish = [state = state.get(), recv, b] { std::memcpy(recv, state->out.data(), b); };
  return simNcclEnqueue(comm, s, state, [=](SimNcclOp &o) {
    o.out.resize(b);
    if (comm->rank == root) std::memcpy(o.out.data(), send, b);
    MPI_Ibcast(o.out.data(), int(b), MPI_BYTE, root, comm->mpi, &o.req);
  });
}
inline ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  MPI_Abort(comm->mpi, 1);
  return ncclSuccess;
}

// Point-to-point, alone or grouped (then posted together).
struct SimP2p { bool send; void *buf; size_t bytes; int peer; ncclComm_t comm; cudaStream_t stream; };
inline int gSimNcclGroupDepth = 0;
inline std::vector<SimP2p> &simNcclPending() { static std::vector<SimP2p> v; return v; }
/// One stream item that posts `ops` (on one communicator) and completes with all of them.
inline ncclResult_t simNcclPostP2p(std::vector<SimP2p> ops) {
  ncclComm_t comm = ops.front().comm;
  for (const SimP2p &o : ops)
    if (o.stream != ops.front().stream || o.comm != comm) {
      std::fprintf(stderr, "sim nccl: a group over several streams or communicators is not simulated\n");
      std::abort();
    }
  auto reqs = std::make_shared<std::vector<MPI_Request>>(ops.size(), MPI_REQUEST_NULL);
  SimItem it;
  it.work = [ops, reqs] {
    for (size_t i = 0; i < ops.size(); ++i) {
      const SimP2p &o = ops[i];
      if (o.send) MPI_Isend(o.buf, int(o.bytes), MPI_BYTE, o.peer, 7401, o.comm->mpi, &(*reqs)[i]);
      else MPI_Irecv(o.buf, int(o.bytes), MPI_BYTE, o.peer, 7401, o.comm->mpi, &(*reqs)[i]);
    }
  };
  it.poll = [reqs] {
    int done = 0;
    MPI_Testall(int(reqs->size()), reqs->data(), &done, MPI_STATUSES_IGNORE);
    return done != 0;
  };
  it.order = &comm->order;
  return simEnqueue(ops.front().stream, std::move(it)) == cudaSuccess ? ncclSuccess : ncclUnhandledCudaError;
}
inline ncclResult_t simNcclP2p(SimP2p op) {
  if (!op.comm || op.peer < 0 || op.peer >= op.comm->size || op.peer == op.comm->rank) return ncclInvalidArgument;
  simCheckDev(op.buf, op.bytes, op.send ? "ncclSend" : "ncclRecv");
  if (gSimNcclGroupDepth > 0) { simNcclPending().push_back(op); return ncclSuccess; }
  return simNcclPostP2p({op});
}
inline ncclResult_t ncclSend(const void *buf, size_t count, ncclDataType_t t, int peer, ncclComm_t comm, cudaStream_t s) {
  return simNcclP2p({true, const_cast<void *>(buf), count * simNcclBytes(t), peer, comm, s});
}
inline ncclResult_t ncclRecv(void *buf, size_t count, ncclDataType_t t, int peer, ncclComm_t comm, cudaStream_t s) {
  return simNcclP2p({false, buf, count * simNcclBytes(t), peer, comm, s});
}
inline ncclResult_t ncclGroupStart() { ++gSimNcclGroupDepth; return ncclSuccess; }
inline ncclResult_t ncclGroupEnd() {
  if (gSimNcclGroupDepth == 0) return ncclInvalidUsage;
  if (--gSimNcclGroupDepth > 0) return ncclSuccess;
  std::vector<SimP2p> ops;
  ops.swap(simNcclPending());
  return ops.empty() ? ncclSuccess : simNcclPostP2p(std::move(ops));
}
