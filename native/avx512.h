// What the fused AVX-512 kernels share (cross-entropy.cc, batch-norm-relu.cc): the target attribute, tail
// masks and the two ways of splitting rows over libtorch's threads. Include only inside an x86-64 GCC build
// (PANSEG_FUSED_*); the kernels run only where FusedKernels() is true (runtime.cc checks F, BW and VL).
#pragma once
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

// GCC 12's AVX-512 headers fill unused lanes from a self-initialized _mm512_undefined_ps() and then warn about it.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define PANSEG_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

namespace panseg {

// The lanes of a 16-float chunk that hold one of `left` remaining values.
inline __mmask16 Tail(int64_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1); }

// Rows in kRowBlocks fixed blocks, f(block, firstRow, endRow) in parallel: sums taken per block and added
// in block order do not depend on the thread count.
constexpr int64_t kRowBlocks = 64;
template <typename F>
void ForRowBlocks(int64_t rows, F f) {
  const int64_t per = (rows + kRowBlocks - 1) / kRowBlocks;
  at::parallel_for(0, kRowBlocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) f(b, std::min(rows, b * per), std::min(rows, b * per + per));
  });
}

// Rows split as libtorch likes, f(firstRow, endRow), for row-wise work without sums.
template <typename F>
void ForRows(int64_t rows, F f) {
  at::parallel_for(0, rows, 256, [&](int64_t r0, int64_t r1) { f(r0, r1); });
}

}  // namespace panseg
