//===- DataLoader.cpp - Deterministic batches from a token stream ---------===//

#include "io/DataLoader.h"

#include <cstdint>

namespace llamac {
namespace io {

bool DataLoader::init(const TokenStream &stream, int64_t globalBatch,
                      int64_t seqLen, std::string &error) {
  stream_ = nullptr;
  numSequences_ = 0;
  if (globalBatch < 1) {
    error = "global batch size " + std::to_string(globalBatch) +
            " is invalid: expected >= 1";
    return false;
  }
  if (seqLen < 1) {
    error = "sequence length " + std::to_string(seqLen) +
            " is invalid: expected >= 1";
    return false;
  }
  if (stream.vocabSize() > (uint64_t(1) << 31)) {
    error = "token stream vocab_size " + std::to_string(stream.vocabSize()) +
            " does not fit int32 token ids: expected <= 2147483648";
    return false;
  }
  const uint64_t T = static_cast<uint64_t>(seqLen);
  const uint64_t count = stream.count();
  uint64_t numSequences = count == 0 ? 0 : (count - 1) / T;
  if (numSequences == 0) {
    std::string where =
        stream.numFiles() == 1
            ? stream.file(0).path()
            : std::to_string(stream.numFiles()) + " token files";
    error = where + ": holds " + std::to_string(count) +
            " tokens, too few for one sequence of length " +
            std::to_string(seqLen) + ": expected at least " +
            std::to_string(T + 1) + " tokens (T + 1)";
    return false;
  }
  if (numSequences > static_cast<uint64_t>(INT64_MAX)) {
    error = "token stream of " + std::to_string(count) +
            " tokens is too long: expected at most 2^63 sequences";
    return false;
  }
  stream_ = &stream;
  globalBatch_ = globalBatch;
  seqLen_ = seqLen;
  numSequences_ = static_cast<int64_t>(numSequences);
  return true;
}

uint64_t DataLoader::sequenceStart(int64_t step, int64_t i) const {
  // (step * B + i) mod N without overflow for any step.
  using u128 = unsigned __int128;
  const u128 n = static_cast<u128>(numSequences_);
  u128 index = (static_cast<u128>(step) * static_cast<u128>(globalBatch_) +
                static_cast<u128>(i)) %
               n;
  return static_cast<uint64_t>(index) * static_cast<uint64_t>(seqLen_);
}

bool DataLoader::fillBatch(int64_t step, int64_t dpRank, int64_t dp,
                           int64_t microIndex, int64_t microBatch,
                           int32_t *inputs, int32_t *targets,
                           std::string &error) const {
  if (!stream_) {
    error = "data loader is not initialized";
    return false;
  }
  const int64_t B = globalBatch_;
  if (step < 0) {
    error = "step " + std::to_string(step) + " is invalid: expected >= 0";
    return false;
  }
  if (dp < 1) {
    error = "data-parallel size " + std::to_string(dp) +
            " is invalid: expected >= 1";
    return false;
  }
  if (B % dp != 0) {
    error = "data-parallel size " + std::to_string(dp) +
            " does not divide global batch size " + std::to_string(B);
    return false;
  }
  if (dpRank < 0 || dpRank >= dp) {
    error = "data-parallel rank " + std::to_string(dpRank) +
            " is out of range: expected 0 <= rank < " + std::to_string(dp);
    return false;
  }
  const int64_t perRank = B / dp;
  if (microBatch < 1) {
    error = "micro batch size " + std::to_string(microBatch) +
            " is invalid: expected >= 1";
    return false;
  }
  if (perRank % microBatch != 0) {
    error = "micro batch size " + std::to_string(microBatch) +
            " does not divide the per-rank batch " + std::to_string(perRank) +
            " (global batch " + std::to_string(B) + " / data-parallel size " +
            std::to_string(dp) + ")";
    return false;
  }
  const int64_t numMicro = perRank / microBatch;
  if (microIndex < 0 || microIndex >= numMicro) {
    error = "micro batch index " + std::to_string(microIndex) +
            " is out of range: expected 0 <= index < " +
            std::to_string(numMicro) + " (per-rank batch " +
            std::to_string(perRank) + " / micro batch size " +
            std::to_string(microBatch) + ")";
    return false;
  }
  if (!inputs || !targets) {
    error = "fillBatch needs non-null inputs and targets buffers";
    return false;
  }

  const uint64_t T = static_cast<uint64_t>(seqLen_);
  const int64_t first = dpRank * perRank + microIndex * microBatch;
  for (int64_t j = 0; j < microBatch; ++j) {
    uint64_t start = sequenceStart(step, first + j);
    // start + T + 1 <= N * T + 1 <= count by the definition of N.
    stream_->copyTo(start, T, inputs + j * seqLen_);
    stream_->copyTo(start + 1, T, targets + j * seqLen_);
  }
  return true;
}

} // namespace io
} // namespace llamac
