// Shadow CUB DeviceRadixSort::SortPairs: CUB's documented contract (stable LSD
// radix sort on key bits [begin_bit, end_bit); size query when temp == nullptr).
#pragma once
#include <cuda_runtime.h>
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>
namespace cub {
inline long gSortCalls = 0;
struct DeviceRadixSort {
  template <class N> static size_t required(N n) { return 4096 + size_t(n) * 8; }
  template <typename K, typename V, typename N>
  static cudaError_t SortPairs(void *temp, size_t &bytes, const K *kin, K *kout, const V *vin, V *vout, N n,
                               int beginBit = 0, int endBit = sizeof(K) * 8, cudaStream_t stream = 0) {
    static_assert(std::is_integral<K>::value, "integral keys only in the shadow");
    if (temp == nullptr) { bytes = required(n); return cudaSuccess; }
    ++gSortCalls;
    if (bytes < required(n)) { fprintf(stderr, "cub shadow: temp %zu < %zu\n", bytes, required(n)); return cudaErrorInvalidValue; }
    if (!simIsDevicePtr(temp, bytes)) { fprintf(stderr, "cub shadow: temp not device memory\n"); std::abort(); }
    if (reinterpret_cast<uintptr_t>(temp) % 256) { fprintf(stderr, "cub shadow: temp misaligned\n"); std::abort(); }
    if (beginBit < 0 || endBit > int(sizeof(K) * 8) || beginBit >= endBit) return cudaErrorInvalidValue;
    // The sort runs in stream order.
    return simEnqueueWork(stream, [=] {
      using U = std::make_unsigned_t<K>;
      auto twiddle = [](K k) { U u = U(k); if (std::is_signed<K>::value) u ^= U(U(1) << (sizeof(K) * 8 - 1)); return u; };
      const U mask = (endBit - beginBit) >= int(sizeof(K) * 8) ? U(~U(0)) : U((U(1) << (endBit - beginBit)) - 1);
      std::vector<std::pair<K, V>> p(static_cast<size_t>(n));
      for (size_t i = 0; i < size_t(n); ++i) p[i] = {kin[i], vin[i]};
      std::stable_sort(p.begin(), p.end(), [&](const auto &a, const auto &b) {
        return U((twiddle(a.first) >> beginBit) & mask) < U((twiddle(b.first) >> beginBit) & mask);
      });
      std::memset(temp, 0xA5, bytes); // the real sort scribbles over its temp storage
      for (size_t i = 0; i < size_t(n); ++i) { kout[i] = p[i].first; vout[i] = p[i].second; }
    });
  }
};
} // namespace cub
