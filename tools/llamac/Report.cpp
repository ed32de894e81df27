//===- Report.cpp - llamac compile --report -------------------------------===//
//
// Bytes moved per collective, with n ranks in the group and S the bytes of
// the whole (unsplit) tensor:
//   all_reduce     tensor S, a rank sends 2 (n - 1) / n * S (ring)
//   all_gather     tensor S = output, a rank sends (n - 1) / n * S
//   reduce_scatter tensor S = input,  a rank sends (n - 1) / n * S
//   all_slice      no communication
//
//===----------------------------------------------------------------------===//
#include "Report.h"

#include "dialects/lrt/LrtDialect.h"
#include "passes/PassUtils.h"

#include "llvm/Support/Format.h"

#include <map>

using namespace mlir;
using namespace llamac;

static int64_t bytesOf(Type type) { return llm::typeBytes(type); }

RankMemory llamac::rankMemory(func::FuncOp func) {
  RankMemory m;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto role = func.getArgAttrOfType<StringAttr>(i, llm::kRoleAttr);
    int64_t bytes = bytesOf(func.getArgument(i).getType());
    if (role && role.getValue() == "param")
      m.params += bytes;
    else if (role &&
             (role.getValue() == "adam_m" || role.getValue() == "adam_v"))
      m.moments += bytes;
  }
  func.walk([&](lrt::KernelOp k) {
    if (k.getKernel() == "adamw")
      m.grads += bytesOf(k.getInputs()[1].getType());
  });
  if (auto a = func->getAttrOfType<IntegerAttr>(lrt::kArenaBytesAttr))
    m.arena = a.getInt();
  return m;
}

static std::string human(int64_t bytes) {
  char buf[32];
  if (bytes < 1024)
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else if (bytes < (1 << 20))
    std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  else if (bytes < (int64_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / 1048576.0);
  else
    std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / 1073741824.0);
  return buf;
}

static std::string shapeOf(Type type) {
  auto t = cast<RankedTensorType>(type);
  std::string s;
  for (int64_t d : t.getShape())
    s += (s.empty() ? "" : "x") + std::to_string(d);
  if (s.empty())
    s = "scalar";
  std::string elt;
  llvm::raw_string_ostream os(elt);
  os << t.getElementType();
  return s + " " + elt;
}

CostSummary llamac::summarizeCosts(func::FuncOp func, double modelFlops) {
  CostSummary summary;
  summary.modelFlops = modelFlops;
  func.walk([&](llm::CostModelOpInterface op) {
    CostSummary::Entry &e =
        summary.byOp[op->getName().stripDialect().str()];
    ++e.count;
    e.flops += op.estimateFlops();
    e.bytes += op.estimateBytes();
  });
  return summary;
}

void llamac::printReport(func::FuncOp func, const std::string &model,
                         const std::array<int64_t, 3> &grid,
                         const CostSummary &costs, raw_ostream &os) {
  static const char *kAxis[] = {"pp", "dp", "tp"};
  int64_t ranks = grid[0] * grid[1] * grid[2];
  os << "report: " << model << " on dp=" << grid[1] << " tp=" << grid[2]
     << " pp=" << grid[0] << " (" << ranks
     << (ranks == 1 ? " rank" : " ranks")
     << "; every rank runs the same program)\n";

  // 1. Memory of one rank.
  auto [params, grads, moments, arena] = rankMemory(func);
  os << "per rank:\n";
  os << llvm::format("  %-18s %12s\n", "parameters", human(params).c_str());
  os << llvm::format("  %-18s %12s   (the AdamW inputs, in the arena)\n",
                     "gradients", human(grads).c_str());
  os << llvm::format("  %-18s %12s   (AdamW exp_avg + exp_avg_sq)\n",
                     "optimizer state", human(moments).c_str());
  os << llvm::format("  %-18s %12s   (activations, gradients, temporaries)\n",
                     "activation arena", human(arena).c_str());

  // 2. Compute of one step (CostModelOpInterface), largest first.
  int64_t flops = 0, moved = 0;
  std::vector<std::pair<std::string, CostSummary::Entry>> ops(
      costs.byOp.begin(), costs.byOp.end());
  llvm::stable_sort(ops, [](const auto &a, const auto &b) {
    return a.second.flops > b.second.flops;
  });
  os << "compute per step (op cost estimates, this rank):\n";
  os << llvm::format("  %-30s %6s %18s %14s\n", "op", "count", "flops",
                     "bytes moved");
  for (auto &[name, e] : ops) {
    os << llvm::format("  %-30s %6lld %18lld %14lld\n", name.c_str(),
                       static_cast<long long>(e.count),
                       static_cast<long long>(e.flops),
                       static_cast<long long>(e.bytes));
    flops += e.flops;
    moved += e.bytes;
  }
  os << llvm::format("  total %.4g GFLOP, %s moved; model FLOPs (6N + "
                     "12LHQT per token) %.4g GFLOP\n",
                     flops / 1e9, human(moved).c_str(),
                     costs.modelFlops / 1e9);

  // 3. Collectives of one step, in program order.
  os << "collectives per step (program order; bytes = whole tensor, sent = "
        "bytes one rank sends, ring algorithms):\n";
  os << llvm::format("  %3s  %-18s %-10s %-16s %12s %12s  %s\n", "#", "kind",
                     "group", "tensor", "bytes", "sent", "before");
  int count = 0;
  int64_t totalBytes = 0, totalSent = 0;
  // Program positions: bucket starts and waits are reported against the
  // first optimizer instruction (where the backward pass has ended).
  DenseMap<Operation *, int64_t> position;
  int64_t instrs = 0, optimizerAt = -1;
  func.walk([&](lrt::KernelOp k) {
    position[k] = instrs++;
    StringRef kind = k.getKernel();
    if (optimizerAt < 0 && (kind == "lr_schedule" || kind == "adamw" ||
                            kind == "global_norm" || kind == "sum_squares"))
      optimizerAt = position[k];
  });
  struct Bucket {
    int64_t start = 0, wait = 0, bytes = 0, grads = 0;
  };
  std::map<int64_t, Bucket> buckets;
  func.walk([&](lrt::KernelOp k) {
    StringRef kind = k.getKernel();
    if (kind == "bucket_all_reduce_wait") {
      buckets[k.getParams().getAs<IntegerAttr>("bucket").getInt()].wait =
          position[k];
      return;
    }
    if (kind != "all_reduce" && kind != "all_gather" &&
        kind != "reduce_scatter" && kind != "all_slice" &&
        kind != "bucket_all_reduce_start")
      return;
    auto axes = k.getParams().getAs<DenseI64ArrayAttr>("grid_axes");
    int64_t n = 1;
    std::string group;
    for (int64_t a : axes.asArrayRef()) {
      n *= grid[a];
      group += (group.empty() ? "" : "+") + std::string(kAxis[a]);
    }
    group += "(" + std::to_string(n) + ")";
    std::string label = kind.str();
    if (auto r = k.getParams().getAs<StringAttr>("reduction"))
      label += " " + r.getValue().str();
    Type whole = kind == "all_gather" ? k.getOutputs()[0].getType()
                                      : k.getInputs()[0].getType();
    int64_t bytes = bytesOf(whole);
    std::string tensor = shapeOf(whole);
    if (kind == "bucket_all_reduce_start") {
      int64_t id = k.getParams().getAs<IntegerAttr>("bucket").getInt();
      Bucket &b = buckets[id];
      b.start = position[k];
      b.grads = static_cast<int64_t>(k.getInputs().size());
      b.bytes = 0;
      for (Value v : k.getInputs())
        b.bytes += bytesOf(v.getType());
      bytes = b.bytes;
      label = "bucket " + std::to_string(id) + " sum";
      tensor = std::to_string(b.grads) + " grads";
    }
    int64_t sent = 0;
    if (kind == "all_reduce" || kind == "bucket_all_reduce_start")
      sent = 2 * (n - 1) * bytes / n;
    else if (kind != "all_slice")
      sent = (n - 1) * bytes / n;
    std::string at;
    if (auto name = dyn_cast<NameLoc>(k.getLoc()))
      at = name.getName().str();
    os << llvm::format("  %3d  %-18s %-10s %-16s %12lld %12lld  %s\n",
                       ++count, label.c_str(), group.c_str(),
                       tensor.c_str(), static_cast<long long>(bytes),
                       static_cast<long long>(sent), at.c_str());
    totalBytes += bytes;
    totalSent += sent;
  });
  if (!buckets.empty()) {
    os << "gradient buckets (data parallel; start right after their last "
          "gradient, asynchronous until their wait; optimizer from instr "
       << optimizerAt << " of " << instrs << "):\n";
    for (auto &[id, b] : buckets)
      os << llvm::format("  bucket %-3lld %4lld grads %12lld bytes  start at "
                         "instr %5lld  wait at instr %5lld  overlaps %lld "
                         "instrs\n",
                         static_cast<long long>(id),
                         static_cast<long long>(b.grads),
                         static_cast<long long>(b.bytes),
                         static_cast<long long>(b.start),
                         static_cast<long long>(b.wait),
                         static_cast<long long>(b.wait - b.start - 1));
  }
  os << "total per step: " << count << " collectives, "
     << human(totalBytes) << " of tensors (" << totalBytes << " bytes), "
     << human(totalSent) << " sent per rank (" << totalSent << " bytes)\n";
}
