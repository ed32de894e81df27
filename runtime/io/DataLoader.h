//===- DataLoader.h - Deterministic batches from a token stream -*- C++ -*-===//
//
// The data order of DESIGN.md A3, exactly. With global batch B and sequence
// length T, let N = (count - 1) / T be the number of whole sequences (each
// needs T + 1 tokens). Sequence i (0 <= i < B) of step s starts at token
//
//     start(s, i) = ((s * B + i) mod N) * T
//
// and covers tokens [start, start + T] (T + 1 tokens): the inputs are the
// first T, the targets the last T (inputs shifted by one). Data-parallel rank
// r of dp owns sequences [r * B/dp, (r + 1) * B/dp) of the step, and its
// microbatch k (of mb sequences) is the k-th consecutive slice of those:
// sequences r * B/dp + k * mb + j for j in [0, mb).
//
// So concatenating every rank's microbatches in (rank, micro) order gives the
// global batch, whatever dp and mb are: a run is reproducible across layouts,
// and a resume at step s needs nothing but s.
//
// The loader keeps a pointer to the stream, which must outlive it. fillBatch
// is const and may be called from several threads.
//
// NOTE: there is no shuffling; the A3 order is the identity order.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_IO_DATALOADER_H
#define LLAMAC_RUNTIME_IO_DATALOADER_H

#include "io/TokenFile.h"

#include <cstdint>
#include <string>

namespace llamac {
namespace io {

class DataLoader {
public:
  /// Checks B >= 1, T >= 1, that the stream holds at least one whole
  /// sequence (T + 1 tokens) and that its ids fit int32.
  bool init(const TokenStream &stream, int64_t globalBatch, int64_t seqLen,
            std::string &error);

  int64_t globalBatch() const { return globalBatch_; }
  int64_t seqLen() const { return seqLen_; }
  /// N = (count - 1) / T.
  int64_t numSequences() const { return numSequences_; }

  /// The first token (stream index) of sequence `i` of step `step`:
  /// ((step * B + i) mod N) * T, computed without overflow.
  /// Preconditions: init() succeeded, step >= 0, 0 <= i < B.
  uint64_t sequenceStart(int64_t step, int64_t i) const;

  /// Writes microbatch `microIndex` (of `microBatch` sequences) of
  /// data-parallel rank `dpRank` of `dp` at step `step`: microBatch * T input
  /// ids to `inputs` and microBatch * T target ids to `targets`, row-major
  /// [sequence][position]. Checks B % dp == 0, (B / dp) % microBatch == 0 and
  /// that every index is in range.
  bool fillBatch(int64_t step, int64_t dpRank, int64_t dp, int64_t microIndex,
                 int64_t microBatch, int32_t *inputs, int32_t *targets,
                 std::string &error) const;

private:
  const TokenStream *stream_ = nullptr;
  int64_t globalBatch_ = 0;
  int64_t seqLen_ = 0;
  int64_t numSequences_ = 0;
};

} // namespace io
} // namespace llamac

#endif // LLAMAC_RUNTIME_IO_DATALOADER_H
