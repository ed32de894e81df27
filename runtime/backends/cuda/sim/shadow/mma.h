// Fake WMMA: every lane holds the whole 16x16 tile (logical row-major).
#pragma once
#include <cstdint>
#include <cassert>
namespace nvcuda { namespace wmma {
struct row_major {}; struct col_major {};
struct matrix_a {}; struct matrix_b {}; struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class L = void> struct fragment { float v[256]; };
inline float f(float x) { return x; }
inline float f(__nv_bfloat16 x) { return __bfloat162float(x); }
inline float f(__half x) { return __half2float(x); }
template <class U, class T, class L>
void fill_fragment(fragment<U, 16, 16, 16, T, L> &a, float x) { for (auto &e : a.v) e = x; }
template <class T> void checkPtr(const T *p, unsigned ld) {
  assert(reinterpret_cast<uintptr_t>(p) % 32 == 0 && "wmma pointer not 256-bit aligned");
  assert(ld % (16 / sizeof(T)) == 0 && "wmma ldm");
  assert(inSmem(p, sizeof(T)) && inSmem(p + 15 * ld + 15, sizeof(T)) && "wmma tile outside smem");
}
template <class T> void load_matrix_sync(fragment<matrix_a, 16, 16, 16, T, row_major> &a, const T *p, unsigned ld) {
  checkPtr(p, ld); for (int r = 0; r < 16; ++r) for (int c = 0; c < 16; ++c) a.v[r * 16 + c] = f(p[r * ld + c]);
}
template <class T> void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, row_major> &a, const T *p, unsigned ld) {
  checkPtr(p, ld); for (int k = 0; k < 16; ++k) for (int n = 0; n < 16; ++n) a.v[k * 16 + n] = f(p[k * ld + n]);
}
template <class T> void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, col_major> &a, const T *p, unsigned ld) {
  checkPtr(p, ld); for (int k = 0; k < 16; ++k) for (int n = 0; n < 16; ++n) a.v[k * 16 + n] = f(p[n * ld + k]);
}
template <class T, class LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, T, row_major> &a,
              const fragment<matrix_b, 16, 16, 16, T, LB> &b, const fragment<accumulator, 16, 16, 16, float> &c) {
  float t[256];
  for (int m = 0; m < 16; ++m) for (int n = 0; n < 16; ++n) {
    float s = c.v[m * 16 + n];
    for (int k = 0; k < 16; ++k) s += a.v[m * 16 + k] * b.v[k * 16 + n];
    t[m * 16 + n] = s;
  }
  for (int i = 0; i < 256; ++i) d.v[i] = t[i];
}
inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &a, unsigned ld, layout_t l) {
  assert(l == mem_row_major); checkPtr(p, ld);
  if ((threadIdx.x & 31) == 0) // one writer: the real store is collective
    for (int r = 0; r < 16; ++r) for (int c = 0; c < 16; ++c) p[r * ld + c] = a.v[r * 16 + c];
}
}} // namespace nvcuda::wmma
