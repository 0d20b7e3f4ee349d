// The two sweeps every penalty is built from.
//
// elementwise_sweep: one pass over one to three views (weights, output, per-element steps).
// grouped_sweep: per group, pass 1 accumulates sum(u^2), sum|u| and the zero count of a
// pre-transformed value u = pre(x); a per-group decision turns them into a factor; pass 2
// writes out = apply(x, factor). Groups that are one contiguous run are finished while hot
// (norms of 4 or 8 groups interleaved, then their writes; a value sweep beyond the caches takes the
// interleaved groups from 8 stripes of its block, so they are 8 long memory streams); other
// groupings use one accumulation pass and one writing pass, each thread walking its share of the
// groups in memory order (runs that cross groups, like a matrix's rows for its column groups,
// eight per lane at a time), except column groups of matrices with few rows, done in L2-sized
// column tiles (pass 1, decisions and pass 2 per tile).
//
// Determinism: work is cut into a fixed number of blocks that does not depend on the thread
// count; per-block partial results are combined in block order. Squared norms use 8 lanes keyed
// by the element's position inside its group (lane = position mod 8), combined in a fixed tree,
// so a group's norm is bit-identical for any thread count, any adapter, and any layout that
// visits each group's elements in the same relative order (e.g. row- vs column-major matrices).
// u*u is added with one explicit rounding rule (add_square) in every code path for the same
// reason. Elementwise double sums (lane_sum) use 32 lanes keyed by position in the block.
//
// Speed (docs/benchmarks.md): every hot loop is written so GCC and clang vectorize it at -O3
// without -ffast-math: lane loops stay loops (SPARSEREG_LANE_LOOP), lane arrays are not indexed
// at run time inside a vector main loop (so they stay in registers), zero counts are 32-bit per
// lane, unit strides are compile-time constants (with_unit_strides), and |x| is std::fabs.
// Where that is not enough -- the 32 double lanes of the l1 value and prox statistics stay in
// memory as plain loops, every block loading and storing them -- contiguous float runs on AVX
// targets use vector-extension forms (abs_lanes_f32; 16 floats per vector with AVX-512) with the
// same lanes, so the same bits; with FMA they widen each float to double by placing its bits
// (vec::even_bits) instead of a conversion instruction, exactly.
#pragma once

#include <algorithm>  // std::min, std::max
#include <cmath>      // std::sqrt, std::isnan, std::fabs, std::fma
#include <cstddef>    // std::size_t, std::ptrdiff_t
#include <cstdint>    // std::uint32_t, std::uintptr_t
#include <cstring>    // std::memcpy
#if defined(__AVX__)
#include <immintrin.h>  // _mm256_cvtps_pd, _mm512_maskz_cvtps_pd (vec::widen_low / widen_high)
#endif
#include <limits>     // std::numeric_limits
#include <string>     // std::to_string
#include <type_traits>  // std::integral_constant, std::is_same_v
#include <vector>     // std::vector (workspace of strided groupings only)

#include "../groups.hpp"
#include "../view.hpp"
#include "plan.hpp"

/// Tensors with fewer elements than this are processed by the calling thread alone: below it a
/// parallel region's start-up and the threads sharing cache lines of small workspaces cost more
/// than the second core gains (measured: the input-channel prox of a 64x32x5x5 conv weight took
/// 42 us on 2 threads, 27 us on 1). Results do not depend on it (thread-count independence), so
/// the tests that compare thread counts define it to 0 to exercise the parallel paths on small data.
#ifndef SPARSEREG_PARALLEL_MIN_ELEMENTS
#define SPARSEREG_PARALLEL_MIN_ELEMENTS 65536
#endif

/// Tensors of at least this many bytes are beyond the last-level cache of most machines: there the
/// contiguous-group sweeps prefetch the next batch of groups while they read the current one
/// (accumulate_runs). Below it the prefetches cost more than they gain (data already in L2/L3).
/// Set it to about your L3 size; it changes speed only, never results.
#ifndef SPARSEREG_PREFETCH_MIN_BYTES
#define SPARSEREG_PREFETCH_MIN_BYTES (std::size_t(32) << 20)
#endif

#if defined(_OPENMP)
#include <omp.h>
// Every use has a `const bool parallel` in scope (worth_parallel of the tensor's size).
#define SPARSEREG_PRAGMA_OMP_FOR _Pragma("omp parallel for schedule(static) if(parallel)")
#else
#define SPARSEREG_PRAGMA_OMP_FOR
#endif

namespace sparsereg {
namespace detail {

/// n >= Min, written so that a threshold of 0 (what the tests define) is no unsigned comparison
/// with 0, which -Wtype-limits rejects.
template <std::size_t Min>
inline constexpr bool at_least(std::size_t n) noexcept {
  if constexpr (Min == 0) {
    return true;
  } else {
    return n >= Min;
  }
}

/// Whether a sweep over n elements may use more than one thread (SPARSEREG_PARALLEL_MIN_ELEMENTS).
inline constexpr bool worth_parallel(std::size_t n) noexcept { return at_least<SPARSEREG_PARALLEL_MIN_ELEMENTS>(n); }

/// Whether a tensor of this many bytes is beyond the caches (SPARSEREG_PREFETCH_MIN_BYTES).
inline constexpr bool worth_prefetch(std::size_t bytes) noexcept {
  return at_least<SPARSEREG_PREFETCH_MIN_BYTES>(bytes);
}

inline constexpr std::size_t lanes = 8;
inline constexpr std::size_t max_blocks = 256;

template <class T>
struct lane_sums {
  T sq[lanes] = {};
  T ab[lanes] = {};
  std::size_t zeros = 0;
};

template <class T>
inline T combine_lanes(const T* l) noexcept {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// The 8-lane loops below are kept as loops for GCC: unrolled, GCC vectorizes the loop around
// them instead, as 8 in-order ("fold-left") reductions of scalar adds (measured 3 GB/s instead of
// 15-39 GB/s on one core). As a loop, each lane loop becomes one SIMD operation per lane group.
#if defined(__GNUC__) && !defined(__clang__)
#define SPARSEREG_LANE_LOOP _Pragma("GCC unroll 1")
#define SPARSEREG_UNROLL_BATCH _Pragma("GCC unroll 8")
#define SPARSEREG_UNROLL_BLOCKS _Pragma("GCC unroll 32")
#else
#define SPARSEREG_LANE_LOOP
#define SPARSEREG_UNROLL_BATCH
#define SPARSEREG_UNROLL_BLOCKS
#endif

// accumulate_runs is kept out of line: inlined into a sweep, GCC keeps its M x 16 accumulators
// on the stack and each add then waits for a store-to-load forward (measured 25 GB/s instead of
// 65 GB/s on L2-resident data).
#if defined(__GNUC__)
#define SPARSEREG_NOINLINE __attribute__((noinline))
#else
#define SPARSEREG_NOINLINE
#endif

// decide_group is inlined into every loop over groups: called out of line (GCC's choice once
// grouped_sweep grew), the decisions of the trainer's fc1 (3,136 column groups of 80 elements)
// took 1.4x as long and its group-lasso value 1.4x as long in all.
#if defined(__GNUC__)
#define SPARSEREG_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define SPARSEREG_ALWAYS_INLINE inline
#endif

/// A read prefetch into L2 (no effect on results; a no-op where the compiler has no builtin). The
/// address is an integer: it may lie past the end of the tensor, where a prefetch is dropped.
inline void prefetch_l2(std::uintptr_t address) noexcept {
#if defined(__GNUC__)
  __builtin_prefetch(reinterpret_cast<const void*>(address), 0, 2);
#else
  (void)address;
#endif
}

/// Lanes of the elementwise double sums (lane_sum): element i of a run goes to lane i mod 32.
/// 32 lanes are 8 independent 4-wide vector chains, enough to hide the add latency at the rate
/// two loads per cycle feed them; a chain per 8 lanes would cap a value sweep at ~25 GB/s.
inline constexpr std::size_t sum_lanes = 32;

/// The end of lane_sum from its lanes t after `done` elements: the tail f(done..n) into lanes
/// 0, 1, ..., then the fixed pairwise tree.
template <class F>
inline double finish_lanes(double* t, std::size_t done, std::size_t n, F&& f) {
  for (std::size_t j = 0, i = done; i < n; ++i, ++j) t[j] += f(i);
  for (std::size_t w = sum_lanes / 2; w > 0; w /= 2)
    for (std::size_t j = 0; j < w; ++j) t[j] += t[j + w];
  return t[0];
}

/// sum_{i<n} f(i) in double, element i going to lane i mod sum_lanes, lanes combined in a fixed
/// pairwise tree; f may also write (it is called once per i, in increasing order).
template <class F>
inline double lane_sum(std::size_t n, F&& f) {
  double a[sum_lanes] = {};
  std::size_t i = 0;
  for (; i + sum_lanes <= n; i += sum_lanes) {
    SPARSEREG_LANE_LOOP
    for (std::size_t j = 0; j < sum_lanes; ++j) a[j] += f(i + j);
  }
  // The tail indexes lanes at run time, which would keep `a` in memory for the main loop too.
  double t[sum_lanes];
  for (std::size_t j = 0; j < sum_lanes; ++j) t[j] = a[j];
  return finish_lanes(t, i, n, f);
}

/// The prox form of lane_sum: v_i = f(i) for i < n (f writes the output), returns
/// sum_i g(v_i) in the lanes and tree of lane_sum (so the same double) and the count of v_i == 0,
/// counted per lane in 32 bits (a size_t count per element does not vectorize well).
template <class T, class F, class G>
inline double lane_sum_zeros(std::size_t n, F&& f, G&& g, std::size_t& zeros) {
  double a[sum_lanes] = {};
  std::size_t i = 0;
  constexpr std::size_t flush = std::size_t(1) << 24;  // blocks per 32-bit count
  while (i + sum_lanes <= n) {
    std::uint32_t zc[sum_lanes] = {};
    for (std::size_t b = 0; b < flush && i + sum_lanes <= n; ++b, i += sum_lanes) {
      T v[sum_lanes];
      SPARSEREG_LANE_LOOP
      for (std::size_t j = 0; j < sum_lanes; ++j) v[j] = f(i + j);
      SPARSEREG_LANE_LOOP
      for (std::size_t j = 0; j < sum_lanes; ++j) {
        a[j] += g(v[j]);
        zc[j] += (v[j] == T(0));
      }
    }
    for (std::size_t j = 0; j < sum_lanes; ++j) zeros += zc[j];
  }
  double t[sum_lanes];
  for (std::size_t j = 0; j < sum_lanes; ++j) t[j] = a[j];
  return finish_lanes(t, i, n, [&](std::size_t k) {
    const T v = f(k);
    zeros += (v == T(0));
    return g(v);
  });
}

#if defined(__AVX__) && defined(__GNUC__)
// Float vectors as GCC / clang vector extensions: 16 floats per register where the target has
// AVX-512 (F and DQ), else 8. Used where the plain loops keep their lane arrays in memory
// (lane_sum_zeros: 32 double lanes, 32 counts and the 32 values of a block do not fit the 16 AVX
// registers, and every block then loads and stores them all).
#define SPARSEREG_VECTOR_LANES 1
namespace vec {
#if defined(__AVX512F__) && defined(__AVX512DQ__)
inline constexpr std::size_t width = 16;
#else
inline constexpr std::size_t width = 8;
#endif
using fv = float __attribute__((vector_size(4 * width)));       ///< `width` floats
using iv = std::int32_t __attribute__((vector_size(4 * width)));  ///< comparison masks of fv
using dv = double __attribute__((vector_size(4 * width)));       ///< width / 2 doubles

/// Unaligned loads and stores go through a may_alias vector type of alignment 4, as
/// _mm256_loadu_ps / _mm256_storeu_ps do: one vmovups each. (A memcpy through a local vector is
/// the same in principle, but GCC 12 turned the four-vector form of it into 16-byte stack stores
/// and 32-byte reloads in bench/ceilings.hpp, a failed store forward per vector.)
using fv_unaligned = float __attribute__((vector_size(4 * width), aligned(4), may_alias));
inline fv load(const float* p) noexcept { return *reinterpret_cast<const fv_unaligned*>(p); }
inline void store(float* p, fv v) noexcept { *reinterpret_cast<fv_unaligned*>(p) = v; }
/// |v| lane by lane: the sign bit cleared, as std::fabs.
inline fv abs(fv v) noexcept { return (fv)((iv)v & 0x7fffffff); }
/// m ? a : b lane by lane, m from a comparison (all bits set or none).
inline fv select(iv m, fv a, fv b) noexcept { return (fv)(((iv)a & m) | ((iv)b & ~m)); }
/// s + a * a lane by lane for vectors of 8 floats: one fused multiply-add (one rounding, as the
/// scalar add_square) where the target has FMA. A template, so that a build whose fv has 16 lanes
/// never sees the 8-lane intrinsic: clang checks the casts of a non-template statement even in
/// a discarded `if constexpr` branch (and rejected every header with -march=native on AVX-512).
template <class V>
inline V add_square8(V s, V a) noexcept {
  static_assert(sizeof(V) == 32, "vectors of 8 floats");
#if (defined(__FP_FAST_FMAF) && defined(__FP_FAST_FMA)) || defined(__FMA__)
  return (V)_mm256_fmadd_ps((__m256)a, (__m256)a, (__m256)s);
#else
  return s + a * a;
#endif
}
/// The low and the high half widened to double: one vcvtps2pd each (GCC 12 lowers
/// __builtin_convertvector to narrower conversions and inserts).
#if defined(__AVX512F__) && defined(__AVX512DQ__)
// (Halves by __builtin_shufflevector, widened by the zero-masked form of vcvtps2pd with a full
// mask: _mm512_cvtps_pd and _mm512_castps512_ps256 trip GCC 12's -Wmaybe-uninitialized inside its
// own headers, and GCC 12 lowers __builtin_convertvector to two 256-bit conversions.)
using f8 = float __attribute__((vector_size(32)));
inline dv widen8(f8 h) noexcept { return (dv)_mm512_maskz_cvtps_pd(static_cast<__mmask8>(0xff), (__m256)h); }
inline dv widen_low(fv v) noexcept { return widen8(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7)); }
inline dv widen_high(fv v) noexcept { return widen8(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15)); }
/// The inverse: two vectors of doubles rounded to float (vcvtpd2ps, to nearest as a cast) and joined.
inline fv narrow(dv lo, dv hi) noexcept {
  const f8 a = (f8)_mm512_maskz_cvtpd_ps(static_cast<__mmask8>(0xff), (__m512d)lo);
  const f8 b = (f8)_mm512_maskz_cvtpd_ps(static_cast<__mmask8>(0xff), (__m512d)hi);
  return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
#else
inline dv widen_low(fv v) noexcept { return (dv)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)v)); }
inline dv widen_high(fv v) noexcept { return (dv)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)v, 1)); }
using f4 = float __attribute__((vector_size(16)));
inline fv narrow(dv lo, dv hi) noexcept {
  const f4 a = (f4)_mm256_cvtpd_ps((__m256d)lo), b = (f4)_mm256_cvtpd_ps((__m256d)hi);
  return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7);
}
#endif
#if defined(__FMA__)
// Exact widening without a conversion instruction (abs_lanes_f32). A float's bits with a clear
// sign, shifted left by 29 inside a 64-bit lane, are the bits of a double that is the float's value
// times 2^-896: the 8-bit exponent e lands in the low bits of the double's 11-bit field, which
// reads it as e - 1023 instead of e - 127, and the 23 mantissa bits become the top of the 52; zero
// stays zero and a subnormal float becomes a subnormal double of the same scale. An FMA by 2^896
// then adds the exact value: fma(d, 2^896, a) rounds d * 2^896 + a once, as a + double(f) does,
// so the same bits as a conversion and an add. Infinities and NaNs (e = 255) come out finite
// (about 2^128) and must be caught by the caller. Shifts and masks run on more ports than
// vcvtps2pd, which is what bounds the conversion form (docs/benchmarks.md).
#define SPARSEREG_BITS_WIDEN 1
using uq = std::uint64_t __attribute__((vector_size(4 * width)));  ///< width / 2 64-bit lanes
using uv = std::uint32_t __attribute__((vector_size(4 * width)));  ///< width 32-bit lanes
inline constexpr double bits_scale = 0x1p896;
/// The even elements 0, 2, .. of m and the odd ones 1, 3, .., each as 2^-896 times its value; m
/// holds magnitudes (clear sign bits).
#if defined(__AVX512F__) && defined(__AVX512DQ__)
inline dv even_bits(fv m) noexcept { return (dv)(((uq)m & 0x7fffffffu) << 29); }
inline dv odd_bits(fv m) noexcept { return (dv)(((uq)m >> 3) & (std::uint64_t(0x7fffffff) << 29)); }
/// a + b * c with one rounding (vfmadd).
inline dv fma(dv b, dv c, dv a) noexcept { return (dv)_mm512_fmadd_pd((__m512d)b, (__m512d)c, (__m512d)a); }
#else
// Shifts alone, no mask constants (the clear sign bit lets them): AVX2 has 16 registers, and a
// prox's loop (8 accumulators, the scale, its own constants and the zero count) spilled
// accumulators to the stack with two more constants (docs/benchmarks.md, twenty-ninth session).
inline dv even_bits(fv m) noexcept { return (dv)(((uq)m << 32) >> 3); }
inline dv odd_bits(fv m) noexcept { return (dv)(((uq)m >> 32) << 29); }
inline dv fma(dv b, dv c, dv a) noexcept { return (dv)_mm256_fmadd_pd((__m256d)b, (__m256d)c, (__m256d)a); }
#endif
#endif
}  // namespace vec
#endif

/// How far ahead of the element being read the separable loops prefetch, where they do.
inline constexpr std::size_t prefetch_ahead_bytes = 4096;

/// Whether abs_lanes_f32 prefetches at all (speed only, never results). By default it does, except
/// on an AMD processor with AVX-512 (read once at run time, whatever the build's vector width):
/// from DRAM, one thread, the l1 value read 20.2-22.6 GB/s with the prefetch and 18.7-19.6 without
/// on a Zen 3 core (AVX2), 22.3-22.4 with and 15.5-16.5 without on an Intel Xeon (family 6 model
/// 207) in both its AVX-512 and AVX2 builds, but 19.8-22.4 with it and 24.6-25.5 without on a Zen
/// 4 core (AVX-512 build; docs/benchmarks.md, "twenty-ninth", "thirty-second" and "thirty-third
/// session"). -DSPARSEREG_LANE_PREFETCH=0 or 1 decides at compile time instead.
inline bool lane_prefetch() noexcept {
#if defined(SPARSEREG_LANE_PREFETCH)
  return SPARSEREG_LANE_PREFETCH != 0;
#elif defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  static const bool on = [] {
    __builtin_cpu_init();
    return !(__builtin_cpu_is("amd") && __builtin_cpu_supports("avx512f"));
  }();
  return on;
#else
  return true;
#endif
}

/// Calls body(lo, hi) over [0, n) of a run x with stride Sx: in one piece, or, when the run is
/// contiguous (Sx the compile-time unit stride) and `ahead` (a tensor beyond the caches,
/// worth_prefetch) and lane_prefetch() say so, in blocks of 1 KiB, each first prefetching the 16
/// cache lines prefetch_ahead_bytes further on, as abs_lanes_f32 does. For the separable loops
/// that keep no lanes (the l1 prox without statistics, the hard threshold's prox). Speed only:
/// body sees every element once, in order, so the results are those of body(0, n).
template <class T, class Sx, class Body>
inline void in_prefetched_blocks(const T* x, Sx, std::size_t n, bool ahead, Body&& body) {
  if constexpr (std::is_same_v<Sx, std::integral_constant<std::ptrdiff_t, 1>>) {
    if (ahead && lane_prefetch()) {
      constexpr std::size_t bytes = 1024, block = bytes / sizeof(T);
      for (std::size_t lo = 0; lo < n; lo += block) {
        const auto at = reinterpret_cast<std::uintptr_t>(x + lo) + prefetch_ahead_bytes;
        for (std::size_t b = 0; b < bytes; b += 64) prefetch_l2(at + b);
        body(lo, n - lo < block ? n : lo + block);
      }
      return;
    }
  }
  body(std::size_t(0), n);
}

#if defined(SPARSEREG_VECTOR_LANES)
/// The 32 lanes of lane_sum for sum_i |v_i| with mag(i, zc) giving |v_i|..|v_{i+w-1}| as vec::fv
/// (w = vec::width). A prox's mag also writes v_i.. and counts their zeros by subtracting 1 from
/// the lanes of zc (a vec::iv) where v is zero; the counts are added into `zeros`. Blocks of 32
/// elements while they last, the lanes held in registers (8 of 4 doubles, or 4 of 8 with
/// AVX-512: lane j is element j of each block either way). Returns the number of elements done
/// (a multiple of 32); the lanes go to t[0..32), for the caller's tail and tree.
/// again(i): |v_i|..|v_{i+w-1}| once more, without side effects (a prox reads back what it
/// wrote); called only when a lane reached 2^128, to tell an infinity or a NaN among the elements
/// from finite magnitudes that large (see below). ahead: non-null for tensors beyond the caches
/// (worth_prefetch); each block then prefetches the two cache lines ahead_distance floats past
/// its own from ahead + i, where lane_prefetch() (below) is true. Squares: the lanes sum v_i^2
/// instead (the squared l2 value and prox; mag may still give |v_i|), each element widened by a
/// conversion and squared in double, and lane j is then element j mod (w / 2) of accumulator
/// j / (w / 2).
inline constexpr std::size_t ahead_distance = prefetch_ahead_bytes / sizeof(float);
template <bool Squares = false, class Mag, class Again>
inline std::size_t abs_lanes_f32(std::size_t n, Mag mag, double* t, std::size_t& zeros, Again again,
                                 const float* ahead) {
  static_assert(sum_lanes == 32 && sum_lanes % vec::width == 0, "32 lanes are whole float vectors");
  constexpr std::size_t parts = sum_lanes / vec::width;  // float vectors per block: 4 or 2
  vec::dv a0 = {}, a1 = {}, a2 = {}, a3 = {}, a4 = {}, a5 = {}, a6 = {}, a7 = {};  // a4-a7: 8-wide only
  std::size_t i = 0;
  constexpr std::size_t flush = std::size_t(1) << 24;  // blocks per 32-bit count
  if (ahead != nullptr && !lane_prefetch()) ahead = nullptr;
#if defined(SPARSEREG_BITS_WIDEN)
  // Each float vector's even elements go to one accumulator and its odd ones to the next (the
  // lanes are renumbered below). Inf and NaN are caught afterwards, from the lanes (see there).
  // AVX-512: each placed value is scaled back by an FMA into the accumulator. AVX2 (16 registers)
  // adds the placed values themselves, 2^-896 times the true ones, and scales the sums once at the
  // end: a power of two scales exactly, and the roundings are the same, since every placed value
  // and partial sum is a multiple of 2^-1045 (a float's quantum 2^-149, placed), so the sums that
  // fall among double subnormals (below 2^-1022, where the scaled sums would still have 53 bits)
  // are exact in both forms. That frees the scale's register (see even_bits).
  vec::dv scale = vec::dv{} + vec::bits_scale;
  __asm__("" : "+x"(scale));  // hides the constant: else the compiler may split the FMA again
  constexpr bool scale_each = vec::width == 16;
#endif
  while (i + sum_lanes <= n) {
    vec::iv zc = {};
    const auto part = [&](std::size_t at, vec::dv& lo, vec::dv& hi) {
      const vec::fv m = mag(at, zc);
      if constexpr (Squares) {
        const vec::dv l = vec::widen_low(m), h = vec::widen_high(m);
        lo += l * l;
        hi += h * h;
        return;
      }
#if defined(SPARSEREG_BITS_WIDEN)
      if constexpr (scale_each) {
        lo = vec::fma(vec::even_bits(m), scale, lo);
        hi = vec::fma(vec::odd_bits(m), scale, hi);
      } else {
        lo += vec::even_bits(m);
        hi += vec::odd_bits(m);
      }
#else
      lo += vec::widen_low(m);
      hi += vec::widen_high(m);
#endif
    };
    for (std::size_t b = 0; b < flush && i + sum_lanes <= n; ++b, i += sum_lanes) {
      if (ahead != nullptr) {
        const auto line = reinterpret_cast<std::uintptr_t>(ahead + i + ahead_distance);
        prefetch_l2(line);
        prefetch_l2(line + 64);
      }
      // Named accumulators, written out rather than looped, so that they stay registers.
      part(i, a0, a1);
      part(i + vec::width, a2, a3);
      if constexpr (parts == 4) {
        part(i + 2 * vec::width, a4, a5);
        part(i + 3 * vec::width, a6, a7);
      }
    }
    for (std::size_t j = 0; j < vec::width; ++j) zeros += static_cast<std::uint32_t>(zc[j]);
  }
  const vec::dv a[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
  constexpr std::size_t half = vec::width / 2;  // doubles per accumulator
  if constexpr (Squares) {
    for (std::size_t j = 0; j < sum_lanes; ++j) t[j] = a[j / half][j % half];
    return i;
  }
#if defined(SPARSEREG_BITS_WIDEN)
  // Lane j is element k = j mod width of float vector j / width: accumulator 2 (j / width) + k mod 2.
  bool large = false;
  for (std::size_t j = 0; j < sum_lanes; ++j) {
    const std::size_t k = j % vec::width;
    t[j] = a[2 * (j / vec::width) + k % 2][k / 2] * (scale_each ? 1.0 : vec::bits_scale);
    large |= !(t[j] < 0x1p128);
  }
  // An infinity (exponent bits 255) comes out of the bit placement as exactly 2^128, a NaN as
  // more, and the lane that holds it only adds magnitudes >= 0 to it: so a lane below 2^128 (as
  // all are, unless finite elements near FLT_MAX add up there) proves its elements finite, and
  // only otherwise are the magnitudes read again for their largest bits. (The loop used to keep
  // those bits itself: one more register than AVX2's 16 hold, and GCC 12 then kept an
  // accumulator on the stack, a store-to-load forward per block: l1 value 29 instead of 50 GB/s
  // on a Zen 3 core, docs/benchmarks.md.) A sum of magnitudes with an infinity is inf, with a NaN
  // a NaN (whose sign and payload the sums do not specify); the tail and tree keep it.
  if (large) {
    vec::uv top = {};
    for (std::size_t at = 0; at < i; at += vec::width) {
      const vec::uv m = (vec::uv)again(at);
      top = top > m ? top : m;
    }
    std::uint32_t largest = 0;
    for (std::size_t j = 0; j < vec::width; ++j) largest = std::max(largest, static_cast<std::uint32_t>(top[j]));
    constexpr std::uint32_t inf_bits = 0x7f800000;
    if (largest >= inf_bits)
      t[0] = largest == inf_bits ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  }
#else
  (void)again;
  for (std::size_t j = 0; j < sum_lanes; ++j) t[j] = a[j / half][j % half];
#endif
  return i;
}
#endif

#if defined(SPARSEREG_VECTOR_LANES)
/// sum_i |v_i| and the count of v_i == 0 over outputs a float prox writes itself: out(at) computes,
/// stores and returns v_at..v_{at+w-1} as a vec::fv (w = vec::width), scalar(i) computes and stores
/// v_i alone (the tail); y is where out stores them, ahead what abs_lanes_f32 prefetches from
/// (nullptr: nothing). The lanes of abs_lanes_f32, the tail and tree of finish_lanes, so the
/// double and the count of lane_sum_zeros with g = |.| (Squares: g = square in double).
template <bool Squares = false, class Out, class Scalar>
inline double written_abs_lane_sum_zeros(std::size_t n, Out out, Scalar scalar, std::size_t& zeros, const float* y,
                                         const float* ahead) {
  double t[sum_lanes];
  const std::size_t done = abs_lanes_f32<Squares>(
      n,
      [out](std::size_t at, vec::iv& zc) {  // by value, as `out` captures: see abs_lane_sum_zeros
        const vec::fv v = out(at);
        zc -= (v == vec::fv{});  // a true lane is -1
        return vec::abs(v);
      },
      t, zeros, [y](std::size_t at) { return vec::abs(vec::load(y + at)); }, ahead);
  return finish_lanes(t, done, n, [&](std::size_t i) {
    const float v = scalar(i);
    zeros += (v == 0.0f);
    return Squares ? static_cast<double>(v) * static_cast<double>(v) : static_cast<double>(std::fabs(v));
  });
}
#endif

/// y_i = op(x_i) for i < n (unit strides when Sx and Sy are std::integral_constant 1), returning
/// sum_i |y_i| and counting y_i == 0: lane_sum_zeros with g = |.|, so the same lanes, tree, double
/// and count. op is called on single elements and, for contiguous float runs on AVX targets, on
/// vec::fv (vec::width consecutive elements); both forms must give the same bits. There the 32
/// lanes are vector accumulators that stay in registers (abs_lanes_f32), and `ahead` (a tensor
/// beyond the caches, worth_prefetch) makes them prefetch x. Squares: sum_i y_i^2 instead
/// (g = square in double), the squared l2 prox's statistics.
template <bool Squares = false, class T, class Sx, class Sy, class Op>
inline double abs_lane_sum_zeros(const T* x, Sx sx, T* y, Sy sy, std::size_t n, Op op, std::size_t& zeros,
                                 bool ahead = false) {
  const auto scalar = [&](std::size_t i) {
    const auto k = static_cast<std::ptrdiff_t>(i);
    const T v = op(x[k * sx]);
    y[k * sy] = v;
    return v;
  };
  const auto g = [](T v) {
    return Squares ? static_cast<double>(v) * static_cast<double>(v) : static_cast<double>(std::fabs(v));
  };
#if defined(SPARSEREG_VECTOR_LANES)
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  if constexpr (std::is_same_v<T, float> && std::is_same_v<Sx, unit> && std::is_same_v<Sy, unit>) {
    // Captured by value: the store may alias anything (vec::store, as the intrinsics), so whatever
    // the loop reaches through a reference (x, y, op's threshold) is loaded again after every
    // store; copies of them stay in registers.
    const auto out = [x, y, op](std::size_t at) {
      const vec::fv v = op(vec::load(x + at));
      vec::store(y + at, v);
      return v;
    };
    return written_abs_lane_sum_zeros<Squares>(n, out, scalar, zeros, y, ahead ? x : nullptr);
  } else
#endif
  {
    (void)ahead;
    return lane_sum_zeros<T>(n, scalar, g, zeros);
  }
}

/// sum_i |x_i| in lane_sum's lanes and tree (the l1 value); the vector form for contiguous float
/// runs on AVX targets, as abs_lane_sum_zeros (`ahead` and Squares likewise: sum_i x_i^2 in
/// double, the squared l2 value).
template <bool Squares = false, class T, class Sx>
inline double abs_lane_sum(const T* x, Sx sx, std::size_t n, bool ahead = false) {
  const auto g = [&](std::size_t i) {
    const T v = x[static_cast<std::ptrdiff_t>(i) * sx];
    return Squares ? static_cast<double>(v) * static_cast<double>(v) : static_cast<double>(std::fabs(v));
  };
#if defined(SPARSEREG_VECTOR_LANES)
  if constexpr (std::is_same_v<T, float> && std::is_same_v<Sx, std::integral_constant<std::ptrdiff_t, 1>>) {
    double t[sum_lanes];
    std::size_t unused = 0;
    const auto magnitudes = [x](std::size_t at) { return vec::abs(vec::load(x + at)); };
    const std::size_t done = abs_lanes_f32<Squares>(
        n, [&](std::size_t at, vec::iv&) { return magnitudes(at); }, t, unused, magnitudes, ahead ? x : nullptr);
    return finish_lanes(t, done, n, g);
  } else
#endif
  {
    (void)ahead;
    return lane_sum(n, g);
  }
}

/// The number of x_i == 0 (either sign) for i < n, counted in 32 bits per chunk of 2^31 elements:
/// with unit strides that loop vectorizes (a size_t count per element widens every comparison).
template <class T, class Sx>
inline std::size_t count_zeros(const T* x, Sx sx, std::size_t n) {
  constexpr std::size_t chunk = std::size_t(1) << 31;
  std::size_t zeros = 0;
  for (std::size_t lo = 0; lo < n; lo += chunk) {
    const std::size_t m = std::min(chunk, n - lo);
    const T* p = x + static_cast<std::ptrdiff_t>(lo) * sx;
    std::uint32_t c = 0;
    for (std::size_t i = 0; i < m; ++i) c += (p[static_cast<std::ptrdiff_t>(i) * sx] == T(0));
    zeros += c;
  }
  return zeros;
}

/// Calls f(a, b) with both strides as std::integral_constant<std::ptrdiff_t, 1> when both are 1,
/// so the loops of contiguous runs see unit strides at compile time and vectorize; else f(a, b).
template <class F>
inline decltype(auto) with_unit_strides(std::ptrdiff_t a, std::ptrdiff_t b, F&& f) {
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  if (a == 1 && b == 1) return f(unit{}, unit{});
  return f(a, b);
}

/// with_unit_strides for three strides (weights, output, per-element steps).
template <class F>
inline decltype(auto) with_unit_strides(std::ptrdiff_t a, std::ptrdiff_t b, std::ptrdiff_t c, F&& f) {
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  if (a == 1 && b == 1 && c == 1) return f(unit{}, unit{}, unit{});
  return f(a, b, c);
}

/// Soft threshold written for SIMD: the same value as soft_threshold(x, t) for t > 0 (for t = 0
/// the caller uses the identity, which soft_threshold also is), but |x| as std::fabs, a bit
/// operation, where soft_threshold's (x < 0 ? -x : x) keeps -0.0 and so compiles to a blend chain
/// that GCC merges into the accumulations (measured 3-4 GB/s instead of 12-15).
template <class T>
inline T soft_threshold_positive(T x, T t) noexcept {
  T a = std::fabs(x) - t;
  a = a < T(0) ? T(0) : a;  // NaN is kept
  return x < T(0) ? -a : a;
}

/// |soft_threshold_positive(x, t)| = max(|x| - t, 0), NaN kept: the same bits as std::fabs of it,
/// computed without the sign (what the norms of a soft-thresholded group need).
template <class T>
inline T soft_threshold_magnitude(T x, T t) noexcept {
  const T a = std::fabs(x) - t;
  return a < T(0) ? T(0) : a;  // NaN is kept
}

/// soft_threshold_magnitude(., t) and soft_threshold_positive(., t) (t > 0) as types of their own,
/// for the sparse group lasso's prox: the norm pass over contiguous groups (accumulate_runs) and
/// the write pass over contiguous runs (scale_run) recognize them and take AVX-512 forms.
template <class T>
struct soft_magnitude {
  T t;
  T operator()(T v) const noexcept { return soft_threshold_magnitude(v, t); }
};
template <class T>
struct soft_threshold_op {
  T t;
  T operator()(T v) const noexcept { return soft_threshold_positive(v, t); }
};

#if defined(SPARSEREG_VECTOR_LANES)
/// soft_threshold_positive on a float vector, a threshold per lane: the same operations lane by
/// lane, so the same bits.
inline vec::fv soft_threshold_positive(vec::fv x, vec::fv t) noexcept {
  const vec::fv zero = {};
  vec::fv a = vec::abs(x) - t;
  a = vec::select(a < zero, zero, a);  // NaN is kept
  return vec::select(x < zero, -a, a);
}
/// The same with one threshold for every lane.
inline vec::fv soft_threshold_positive(vec::fv x, float t) noexcept {
  return soft_threshold_positive(x, vec::fv{} + t);
}
/// pre(x_i) lane by lane for a float vector: pre's own vector form where it has one (a generic
/// lambda, soft_magnitude<float>), else pre on each lane (which GCC folds for the identity).
template <class Pre>
inline vec::fv pre_lanes(const Pre& pre, vec::fv v) noexcept {
  if constexpr (std::is_same_v<Pre, soft_magnitude<float>>) {
    const vec::fv a = vec::abs(v) - (vec::fv{} + pre.t);
    return vec::select(a < vec::fv{}, vec::fv{}, a);  // soft_threshold_magnitude: NaN is kept
  } else if constexpr (std::is_invocable_r_v<vec::fv, const Pre&, vec::fv>) {
    return pre(v);
  } else {
    vec::fv u;
    for (std::size_t j = 0; j < vec::width; ++j) u[j] = pre(v[j]);
    return u;
  }
}
#endif

/// abs_lane_sum_zeros with op = soft_threshold_positive(., t), t > 0 (the l1 prox): the same
/// outputs, double and count on every path. Contiguous float runs on AVX-512 and AVX2 targets have
/// a form of their own with fewer instructions. On AVX-512 every float vector operation goes to one
/// of two ports, and the generic form (threshold, then |y| and y == 0 from the output) needed 19 of
/// them per 16 elements. Here |y| is the clamped magnitude itself, one comparison of |x| - t with 0
/// both clamps and marks the zeros, the sign is one masked xor and the count one masked
/// subtraction: 14 (in L1/L2 one thread went from 0.25 to 0.18 ns per element, within 10% of a loop
/// that writes the soft threshold alone). Bits: |x| - t is never -0 (|x| is never -0), so clamping
/// exactly where it is <= 0 writes the +0 the generic form writes; a NaN compares false and is kept
/// with the positive sign |x| gave it, which is |y|; y takes x's sign only where x < 0, as
/// soft_threshold_positive does. AVX2 (Zen 3) took the generic form until the thirtieth session:
/// the same steps with masks in registers made the l1 prox 12-25% faster in cache there
/// (docs/benchmarks.md).
template <class T, class Sx, class Sy>
inline double soft_threshold_lane_sum_zeros(const T* x, Sx sx, T* y, Sy sy, std::size_t n, T t, std::size_t& zeros,
                                            bool ahead = false) {
  const auto op = [t](auto v) { return soft_threshold_positive(v, t); };
#if defined(SPARSEREG_VECTOR_LANES) && ((defined(__AVX512F__) && defined(__AVX512DQ__)) || defined(__AVX2__))
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  if constexpr (std::is_same_v<T, float> && std::is_same_v<Sx, unit> && std::is_same_v<Sy, unit>) {
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    static_assert(vec::width == 16, "AVX-512: 16 floats per vector");
    const __m512 tv = _mm512_set1_ps(t);
    const __m512 zero = _mm512_setzero_ps();
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
    const __m512i sign = _mm512_set1_epi32(~0x7fffffff);
    const __m512i minus_one = _mm512_set1_epi32(-1);
    const auto soft = [&](std::size_t at, vec::iv& zc) {
      const __m512 v = _mm512_loadu_ps(x + at);
      const __m512 m = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), magnitude)), tv);
      const __mmask16 dead = _mm512_cmp_ps_mask(m, zero, _CMP_LE_OQ);  // y is zero here
      const __m512 a = _mm512_mask_mov_ps(m, dead, zero);                // |y|
      const __mmask16 negative = _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ);
      const __m512i a_bits = _mm512_castps_si512(a);
      _mm512_storeu_si512(y + at, _mm512_mask_xor_epi32(a_bits, negative, a_bits, sign));
      zc = (vec::iv)_mm512_mask_sub_epi32((__m512i)zc, dead, (__m512i)zc, minus_one);
      return (vec::fv)a;
    };
#else
    // AVX2: the same steps with comparison masks in registers (and-not clamps, and + xor sets the
    // sign, the mask itself counts). Captured by value: the store may alias what a reference reaches.
    static_assert(vec::width == 8, "AVX2: 8 floats per vector");
    const __m256 tv = _mm256_set1_ps(t), zero = _mm256_setzero_ps();
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(~0x7fffffff));
    const auto soft = [x, y, tv, zero, magnitude, sign](std::size_t at, vec::iv& zc) {
      const __m256 v = _mm256_loadu_ps(x + at);
      const __m256 m = _mm256_sub_ps(_mm256_and_ps(v, magnitude), tv);
      const __m256 dead = _mm256_cmp_ps(m, zero, _CMP_LE_OQ);  // y is zero here
      const __m256 a = _mm256_andnot_ps(dead, m);              // |y|
      _mm256_storeu_ps(y + at, _mm256_xor_ps(a, _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ), sign)));
      zc -= (vec::iv)dead;  // a true lane is -1
      return (vec::fv)a;
    };
#endif
    double lanes[sum_lanes];
    const std::size_t done = abs_lanes_f32(
        n, soft, lanes, zeros, [y](std::size_t at) { return vec::abs(vec::load(y + at)); }, ahead ? x : nullptr);
    return finish_lanes(lanes, done, n, [&](std::size_t i) {
      const T v = op(x[i]);
      y[i] = v;
      zeros += (v == T(0));
      return static_cast<double>(std::fabs(v));
    });
  } else
#endif
  {
    return abs_lane_sum_zeros(x, sx, y, sy, n, op, zeros, ahead);
  }
}

/// The l1 prox with per-element steps: y_i = t_i == 0 ? x_i : soft_threshold_positive(x_i, t_i),
/// t_i = T(double(s_i) * lambda) (the threshold the scalar-step prox rounds, so equal steps give its
/// bits), returning sum_i |y_i| in lane_sum's lanes and tree and counting y_i == 0. Contiguous float
/// runs on AVX targets go through vector lanes: the steps widened to double, multiplied and rounded
/// back as a cast does, the same selects lane by lane. Bound by its conversions (6 per 16 elements
/// plus the shuffles that feed them): the whole call on 64K L2-resident floats went from 0.54 to
/// 0.50 ns per element (Zen 4, AVX-512) against the generic loop.
template <class T, class Sx, class Sy, class Ss>
inline double steps_soft_threshold_lane_sum_zeros(const T* x, Sx sx, T* y, Sy sy, const T* s, Ss ss, std::size_t n,
                                                  double lambda, std::size_t& zeros) {
  const auto scalar = [&](std::size_t i) {
    const auto k = static_cast<std::ptrdiff_t>(i);
    const T v = x[k * sx];
    const T t = static_cast<T>(static_cast<double>(s[k * ss]) * lambda);
    const T out = t == T(0) ? v : soft_threshold_positive(v, t);
    y[k * sy] = out;
    return out;
  };
  const auto g = [](T v) { return static_cast<double>(std::fabs(v)); };
#if defined(SPARSEREG_VECTOR_LANES)
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  if constexpr (std::is_same_v<T, float> && std::is_same_v<Sx, unit> && std::is_same_v<Sy, unit> &&
                std::is_same_v<Ss, unit>) {
    const auto out = [&](std::size_t at) {
      const vec::fv steps = vec::load(s + at);
      const vec::fv t = vec::narrow(vec::widen_low(steps) * lambda, vec::widen_high(steps) * lambda);
      const vec::fv v = vec::load(x + at);
      const vec::fv y_at = vec::select(t == vec::fv{}, v, soft_threshold_positive(v, t));
      vec::store(y + at, y_at);
      return y_at;
    };
    return written_abs_lane_sum_zeros(n, out, scalar, zeros, y, nullptr);
  } else
#endif
  {
    return lane_sum_zeros<T>(n, scalar, g, zeros);
  }
}

/// acc + u*u with one rounding where the target has FMA and two where it has not, the same in
/// every code path: left to -ffp-contract, the compiler fuses some paths (say the vectorized
/// one) and not others, and a group's norm would then depend on the layout that chose the path.
template <class T>
inline T add_square(T acc, T u) noexcept {
#if (defined(__FP_FAST_FMAF) && defined(__FP_FAST_FMA)) || defined(__FMA__)
  return std::fma(u, u, acc);
#else
  return acc + u * u;
#endif
}

/// Accumulates u = pre(x[k*stride]) for k < n into lanes, element k going to lane (first + k) mod 8.
template <class T, class Pre>
inline void accumulate_run(const T* x, std::ptrdiff_t stride, std::size_t n, std::size_t first, Pre pre,
                           lane_sums<T>& acc) noexcept {
  std::size_t k = 0;
  std::size_t lane = first & (lanes - 1);
  std::size_t zeros = 0;
  for (; k < n && lane != 0; ++k, lane = (lane + 1) & (lanes - 1)) {
    const T u = pre(x[static_cast<std::ptrdiff_t>(k) * stride]);
    acc.sq[lane] = add_square(acc.sq[lane], u);
    acc.ab[lane] += std::fabs(u);
    zeros += (u == T(0));
  }
  T sq[lanes], ab[lanes];
  for (std::size_t j = 0; j < lanes; ++j) {
    sq[j] = acc.sq[j];
    ab[j] = acc.ab[j];
  }
  // Whole blocks of 8: pre into u (vectorizes as a plain map), then one vector update per lane
  // array. Zero counts per lane in 32 bits, flushed every 2^24 blocks so they cannot overflow.
  auto blocks = [&](auto s, std::size_t count) {
    const T* p = x + static_cast<std::ptrdiff_t>(k) * s;
    std::uint32_t zc[lanes] = {};
    for (std::size_t b = 0; b < count; ++b, p += static_cast<std::ptrdiff_t>(lanes) * s) {
      T u[lanes];
      SPARSEREG_LANE_LOOP
      for (std::size_t j = 0; j < lanes; ++j) u[j] = pre(p[static_cast<std::ptrdiff_t>(j) * s]);
      SPARSEREG_LANE_LOOP
      for (std::size_t j = 0; j < lanes; ++j) {
        sq[j] = add_square(sq[j], u[j]);
        ab[j] += std::fabs(u[j]);
        zc[j] += (u[j] == T(0));
      }
    }
    for (std::size_t j = 0; j < lanes; ++j) zeros += zc[j];
    k += count * lanes;
  };
  constexpr std::size_t flush = std::size_t(1) << 24;
  for (std::size_t full = (n - k) / lanes; full > 0;) {
    const std::size_t count = std::min(full, flush);
    with_unit_strides(stride, 1, [&](auto s, auto) { blocks(s, count); });
    full -= count;
  }
  for (std::size_t j = 0; k < n; ++k, ++j) {
    const T u = pre(x[static_cast<std::ptrdiff_t>(k) * stride]);
    sq[j] = add_square(sq[j], u);
    ab[j] += std::fabs(u);
    zeros += (u == T(0));
  }
  for (std::size_t j = 0; j < lanes; ++j) {
    acc.sq[j] = sq[j];
    acc.ab[j] = ab[j];
  }
  acc.zeros += zeros;
}

/// Accumulates `blocks` whole blocks of 8 contiguous elements, starting at lane 0, into the lanes
/// sq/ab (updated in place) and returns their zero count. No run-time lane index, so the lanes
/// stay in registers.
/// Abs / Zeros = false (as in accumulate_runs): ab_out is not touched and 0 is returned.
template <bool Abs = true, bool Zeros = true, class T, class Pre>
inline std::size_t accumulate_blocks(const T* x, std::size_t blocks, Pre pre, T* sq_out, T* ab_out) noexcept {
  T sq[lanes], ab[lanes] = {};
  std::uint32_t zc[lanes] = {};  // callers pass fewer than 2^32 blocks
  for (std::size_t j = 0; j < lanes; ++j) sq[j] = sq_out[j];
  if constexpr (Abs)
    for (std::size_t j = 0; j < lanes; ++j) ab[j] = ab_out[j];
  for (std::size_t b = 0; b < blocks; ++b, x += lanes) {
    T u[lanes];
    SPARSEREG_LANE_LOOP
    for (std::size_t j = 0; j < lanes; ++j) u[j] = pre(x[j]);
    SPARSEREG_LANE_LOOP
    for (std::size_t j = 0; j < lanes; ++j) {
      sq[j] = add_square(sq[j], u[j]);
      if constexpr (Abs) ab[j] += std::fabs(u[j]);
      if constexpr (Zeros) zc[j] += (u[j] == T(0));
    }
  }
  std::size_t zeros = 0;
  for (std::size_t j = 0; j < lanes; ++j) {
    sq_out[j] = sq[j];
    if constexpr (Abs) ab_out[j] = ab[j];
    zeros += zc[j];
  }
  return zeros;
}

/// accumulate_run continuing a group whose 8 lanes are stored contiguously at sq / ab (updated in
/// place); returns the run's zero count.
template <class T, class Pre>
inline std::size_t accumulate_run_into(const T* x, std::ptrdiff_t stride, std::size_t n, std::size_t first, Pre pre,
                                       T* sq, T* ab) noexcept {
  lane_sums<T> acc;
  for (std::size_t j = 0; j < lanes; ++j) {
    acc.sq[j] = sq[j];
    acc.ab[j] = ab[j];
  }
  accumulate_run(x, stride, n, first, pre, acc);
  for (std::size_t j = 0; j < lanes; ++j) {
    sq[j] = acc.sq[j];
    ab[j] = acc.ab[j];
  }
  return acc.zeros;
}

/// Copies m runs of L contiguous elements, run i from src + i * L to dst + i * dst_stride, each
/// as one fixed-size copy (L = 0: `len` elements each, through a loop).
template <std::size_t L, class T>
inline void copy_short_runs(const T* src, std::size_t len, T* dst, std::size_t dst_stride, std::size_t m) noexcept {
  if constexpr (L > 0) {
    for (std::size_t i = 0; i < m; ++i) {
      T v[L];
      for (std::size_t k = 0; k < L; ++k) v[k] = src[i * L + k];
      for (std::size_t k = 0; k < L; ++k) dst[i * dst_stride + k] = v[k];
    }
  } else {
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t k = 0; k < len; ++k) dst[i * dst_stride + k] = src[i * len + k];
  }
}

#if defined(SPARSEREG_VECTOR_LANES)
/// The octet of accumulate_slab_octets for float runs of len >= 8, without the stage: block j of
/// group g's 8 * len elements (elements 8j..8j+7, lanes 0..7) lies in at most two runs, the tail
/// of run r = 8j / len from element k0 = 8j - r * len and the head of run r + 1, so it is two
/// masked loads, each lane from one of them (a masked-off lane is not read, so no address outside
/// the two runs is touched). The blocks then accumulate as accumulate_blocks does, in the same
/// order per lane, so the same bits; the stage's copies and their stores are gone (on conv
/// 256x256x3x3 and 512x512x3x3 input channels, one Zen 4 core: values 1.7-2.1x and in-place proxes
/// 1.3x faster, docs/benchmarks.md). pre goes through a lane loop on a copy of the block, as in
/// accumulate_blocks, so every caller's scalar pre works unchanged. The block loop is unrolled
/// (GCC 12 unrolled L = 9 by itself, not L = 25), so each block's run, offset and masks are
/// constants; without AVX-512 a block inside one run is one plain load instead of two AVX2 masked
/// loads (Zen 3, the group lasso prox on a 64x32x5x5 conv's input channels, the trainer's conv2:
/// 46 -> 20 us per call; docs/benchmarks.md, "thirty-first session").
template <std::size_t L, bool Abs, bool Zeros, class Pre>
void accumulate_octets_masked(const float* x, const std::vector<std::ptrdiff_t>& slab_at, std::size_t run_len,
                              std::size_t lo, std::size_t hi, Pre pre, float* sq_out, float* ab_out,
                              std::size_t* zeros) noexcept {
  using f8 = float __attribute__((vector_size(32)));
  using i8 = std::int32_t __attribute__((vector_size(32)));
  static_assert(lanes == 8, "a block of 8 float lanes is one 256-bit vector");
  const std::size_t len = L > 0 ? L : run_len;  // L = 9 or 25: the block loop is unrolled
  const std::size_t full = slab_at.size() / lanes * lanes;
  for (std::size_t s0 = 0; s0 < full; s0 += lanes) {
    // Run q of group g starts at slab[q] + g * len; slab[8] repeats slab[7]: the last block takes
    // all its lanes from run 7 and reads nothing from it.
    const float* slab[lanes + 1];
    for (std::size_t q = 0; q < lanes; ++q) slab[q] = x + slab_at[s0 + q];
    slab[lanes] = slab[lanes - 1];
    for (std::size_t g = lo; g < hi; ++g) {
      f8 sq, ab = {};
      std::memcpy(&sq, sq_out + g * lanes, sizeof sq);
      if constexpr (Abs) std::memcpy(&ab, ab_out + g * lanes, sizeof ab);
      std::uint32_t zc = 0;
      const std::size_t at = g * len;
      SPARSEREG_UNROLL_BLOCKS
      for (std::size_t j = 0; j < len; ++j) {
        const std::size_t r = lanes * j / len, k0 = lanes * j - r * len;
        const std::size_t first = std::min(lanes, len - k0);  // lanes taken from run r
        const float* a = slab[r] + at + k0;
        // Lane l >= first is element l - first of run r + 1. The address of lane 0 may lie before
        // that run's allocation (masked off, not read): formed as an integer, not a pointer.
        const void* b = reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(slab[r + 1] + at) -
                                                      first * sizeof(float));
#if defined(__AVX512F__) && defined(__AVX512VL__)
        const auto m = static_cast<__mmask8>((1u << first) - 1u);
        const __m256 v = _mm256_mask_loadu_ps(_mm256_maskz_loadu_ps(m, a), static_cast<__mmask8>(~m), b);
#else
        __m256 v;
        if (first == lanes) {
          v = _mm256_loadu_ps(a);  // the whole block inside run r
        } else {
          const i8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
          const i8 from_a = lane < static_cast<std::int32_t>(first);  // all bits set where true
          v = _mm256_or_ps(_mm256_maskload_ps(a, (__m256i)from_a),
                           _mm256_maskload_ps(static_cast<const float*>(b), (__m256i)~from_a));
        }
#endif
        float xs[lanes], us[lanes];
        _mm256_storeu_ps(xs, v);
        SPARSEREG_LANE_LOOP
        for (std::size_t l = 0; l < lanes; ++l) us[l] = pre(xs[l]);
        f8 u;
        std::memcpy(&u, us, sizeof u);
#if (defined(__FP_FAST_FMAF) && defined(__FP_FAST_FMA)) || defined(__FMA__)
        sq = (f8)_mm256_fmadd_ps((__m256)u, (__m256)u, (__m256)sq);  // add_square's rounding
#else
        sq += u * u;
#endif
        if constexpr (Abs) ab += (f8)((i8)u & 0x7fffffff);
        if constexpr (Zeros)
          zc += static_cast<std::uint32_t>(
              __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps((__m256)(i8)(u == f8{})))));
      }
      std::memcpy(sq_out + g * lanes, &sq, sizeof sq);
      if constexpr (Abs) std::memcpy(ab_out + g * lanes, &ab, sizeof ab);
      if constexpr (Zeros) zeros[g] += zc;
    }
  }
}
#endif

/// Pass 1 of the dense slabs (see grouped_sweep) for groups [lo, hi): slab s holds group g's run
/// of `len` elements at x + slab_at[s] + g * len, and group g's lanes are sq / ab + g * 8
/// ([group][lane]). Eight consecutive slabs give every group 8 * len elements, which start at
/// lane 0 (every group has then seen a multiple of 8 * len) and fill exactly `len` blocks of 8
/// lanes: they are copied into a small stage, group after group, and accumulated as whole blocks.
/// Element k of slab s goes to lane (s * len + k) mod 8 and each lane adds in element order, as
/// run by run. The last (slab count mod 8) slabs go run by run. Float runs of at least 8 elements
/// on AVX targets skip the stage (accumulate_octets_masked).
template <std::size_t L, bool Abs, bool Zeros, class T, class Pre>
void accumulate_slab_octets(const T* x, const std::vector<std::ptrdiff_t>& slab_at, std::size_t len, std::size_t lo,
                            std::size_t hi, Pre pre, T* sq, T* ab, std::size_t* zeros) {
  const std::size_t slabs = slab_at.size(), full = slabs / lanes * lanes;
  const std::size_t per = lanes * len;  // elements of one group in an octet of slabs
  constexpr std::size_t stage_size = 2048;
  const std::size_t tile = std::max<std::size_t>(1, stage_size / per);
  bool staged = true;  // else the octets went through accumulate_octets_masked
#if defined(SPARSEREG_VECTOR_LANES)
  if constexpr (std::is_same_v<T, float>) {
    if (len >= lanes) {
      accumulate_octets_masked<L, Abs, Zeros>(x, slab_at, len, lo, hi, pre, sq, ab, zeros);
      staged = false;
    }
  }
#endif
  T stage[stage_size];
  for (std::size_t s0 = 0; staged && s0 < full; s0 += lanes)
    for (std::size_t i0 = lo; i0 < hi; i0 += tile) {
      const std::size_t m = std::min(tile, hi - i0);
      for (std::size_t q = 0; q < lanes; ++q)
        copy_short_runs<L>(x + slab_at[s0 + q] + static_cast<std::ptrdiff_t>(i0 * len), len, stage + q * len, per, m);
      for (std::size_t i = 0; i < m; ++i)
        zeros[i0 + i] +=
            accumulate_blocks<Abs, Zeros>(stage + i * per, len, pre, sq + (i0 + i) * lanes, ab + (i0 + i) * lanes);
    }
  if (full == slabs) return;
  for (std::size_t g = lo; g < hi; ++g)
    for (std::size_t s = full; s < slabs; ++s)
      zeros[g] += accumulate_run_into(x + slab_at[s] + static_cast<std::ptrdiff_t>(g * len), 1, len, s * len, pre,
                                      sq + g * lanes, ab + g * lanes);
}

/// accumulate_run for M unit-stride runs of n elements each, every run starting at lane 0 (one
/// whole group each). One group's lanes form a single chain of dependent adds per 8 elements;
/// M groups interleaved are M independent chains, which hides the add latency that otherwise
/// caps one core at about a third of its L2/L3 bandwidth. Per lane the additions happen in the
/// same order, so each acc[m] is bit-identical to accumulate_run on that run alone.
/// Abs / Zeros = false: acc[m].ab / acc[m].zeros stay 0. A value sweep needs no zero counts, the
/// group lasso's no |u| either; its inner loop is then a load and a fused multiply-add per vector
/// instead of five vector operations (64 x 1024 floats in L2, one AVX-512 core: group lasso value
/// 27-31 -> 42-44 GB/s, sparse group lasso value 25-30 -> 40-45 GB/s).
/// Prefetch: the caller's batch is M consecutive groups of a tensor beyond the caches, and the next
/// batch most likely follows it: the M*n elements after xs[M-1] + n are prefetched at the rate this
/// batch is read (`whole`: one cache line per line read), or the first half of them at half that
/// rate (`first_half`: a prox, whose write pass prefetches the second half, write_run_prefetching).
/// Reading M groups at once makes M streams that each start on a new page for every batch (4 KiB
/// groups: every 1024 floats), where the hardware prefetchers restart; from DRAM the value sweep
/// then ran at 0.6-0.8 of a linear read, with the prefetch at 0.84-0.97 (Zen 4, docs/benchmarks.md).
/// The prefetches are issued after the batch's loads of an iteration: issued before them, GCC 12
/// kept all M x 8 accumulators on the stack (16-40 stack accesses per iteration; group lasso value
/// on L2-resident data 44 instead of 59 GB/s).
enum class prefetch_next { none, whole, first_half, own_next };

#if defined(SPARSEREG_VECTOR_LANES) && defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__FMA__)
#define SPARSEREG_SOFT_RUNS_AVX512 1
/// accumulate_runs' main loop for pre = soft_magnitude<float> (the sparse group lasso's norm pass):
/// the full blocks of 8 of M runs, 16 elements of a run per step. Per element the same operations
/// as the generic loop, so the same bits: u = |x| - t where that is > 0, else 0 (|x| - t is never
/// -0; a NaN compares false and is kept), lane j of a run adds element i = j mod 8 in element
/// order (the low half of a step, then the high half), u*u with add_square's one rounding, and
/// |u| as u itself (u >= +0, or a NaN, whose sign no result shows: the group's norm is NaN). The
/// zeros are the u <= 0 mask's population count (integer ports). The generic loop spent 9 vector
/// operations per 8 elements on this (two compares and an and-not for the clamp, |u| again, a
/// compare and a subtraction for the count); here 4 per 16 plus the two halves' 4. With scale_run
/// below, the in-place prox on conv 256x256x3x3 filters went from 0.24 to 0.27 of the scale on one
/// thread (docs/benchmarks.md, "twenty-eighth session"). Prefetches as in accumulate_runs.
template <std::size_t M, bool Abs, bool Zeros, prefetch_next Prefetch>
SPARSEREG_NOINLINE void soft_magnitude_runs(const float* const* xs, std::size_t n, float t, lane_sums<float>* acc,
                                            std::uintptr_t next, std::size_t prefetch_bytes) noexcept {
  // Intrinsics throughout: written with the vec:: types, GCC 12 passed each load through the
  // stack and kept the run pointers in vector registers (no faster than the generic loop).
  const __m512 tv = _mm512_set1_ps(t), zero = _mm512_setzero_ps();
  const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
  __m256 sq[M], ab[M];
  std::size_t zc[M];
  // Every loop over the runs unrolled: a run-time index into sq / ab keeps them in memory.
  SPARSEREG_UNROLL_BATCH
  for (std::size_t m = 0; m < M; ++m) {
    sq[m] = _mm256_setzero_ps();
    ab[m] = _mm256_setzero_ps();
    zc[m] = 0;
  }
  // u for 16 elements at p (the first 8 only where `mask` is 0x00ff), and its u <= 0 mask. (Plain
  // code in the loops below: lambdas capturing sq / ab made GCC keep them on the stack.)
  const auto clamp = [tv, zero, magnitude](const float* p, __mmask16 mask, __mmask16& dead) {
    const __m512 v = _mm512_maskz_loadu_ps(mask, p);
    const __m512 a = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), magnitude)), tv);
    dead = _mm512_mask_cmp_ps_mask(mask, a, zero, _CMP_LE_OQ);
    return _mm512_mask_mov_ps(a, dead, zero);
  };
  // (Halves by __builtin_shufflevector: _mm512_castps512_ps256 trips GCC 12's -Wmaybe-uninitialized.)
  const std::size_t full = n / lanes;
  std::size_t b = 0;
  for (; b + 2 <= full; b += 2) {
    SPARSEREG_UNROLL_BATCH
    for (std::size_t m = 0; m < M; ++m) {
      __mmask16 dead;
      const __m512 u = clamp(xs[m] + b * lanes, 0xffff, dead);
      const __m256 lo = (__m256)__builtin_shufflevector(u, u, 0, 1, 2, 3, 4, 5, 6, 7);
      const __m256 hi = (__m256)__builtin_shufflevector(u, u, 8, 9, 10, 11, 12, 13, 14, 15);
      sq[m] = _mm256_fmadd_ps(hi, hi, _mm256_fmadd_ps(lo, lo, sq[m]));  // add_square's one rounding each
      if constexpr (Abs) ab[m] = _mm256_add_ps(_mm256_add_ps(ab[m], lo), hi);
      if constexpr (Zeros) zc[m] += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(dead)));
    }
    for (std::size_t k = 0; k < 2 * prefetch_bytes; k += 64) prefetch_l2(next + b * prefetch_bytes + k);
  }
  if (b < full) {  // the last block of 8, alone
    SPARSEREG_UNROLL_BATCH
    for (std::size_t m = 0; m < M; ++m) {
      __mmask16 dead;
      const __m512 u = clamp(xs[m] + b * lanes, 0x00ff, dead);
      const __m256 lo = (__m256)__builtin_shufflevector(u, u, 0, 1, 2, 3, 4, 5, 6, 7);
      sq[m] = _mm256_fmadd_ps(lo, lo, sq[m]);
      if constexpr (Abs) ab[m] = _mm256_add_ps(ab[m], lo);
      if constexpr (Zeros) zc[m] += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(dead)));
    }
    for (std::size_t k = 0; k < prefetch_bytes; k += 64) prefetch_l2(next + b * prefetch_bytes + k);
  }
  SPARSEREG_UNROLL_BATCH
  for (std::size_t m = 0; m < M; ++m) {
    _mm256_storeu_ps(acc[m].sq, sq[m]);
    _mm256_storeu_ps(acc[m].ab, ab[m]);
    acc[m].zeros += zc[m];
  }
}
#endif
template <std::size_t M, bool Abs = true, bool Zeros = true, prefetch_next Prefetch = prefetch_next::none, class T,
          class Pre>
SPARSEREG_NOINLINE void accumulate_runs(const T* const* xs, std::size_t n, Pre pre, lane_sums<T>* acc,
                                        std::size_t own_ahead = 0) noexcept {
  const std::size_t full = n / lanes;
  constexpr std::size_t step_bytes = M * lanes * sizeof(T);  // read per iteration of b
  constexpr std::size_t prefetch_bytes = Prefetch == prefetch_next::whole        ? step_bytes
                                         : Prefetch == prefetch_next::first_half ? step_bytes / 2
                                                                                 : 0;
  // Stripes (`own_next`, see grouped_sweep): each run's own next group, own_ahead bytes after its
  // start, is prefetched at the rate the run is read.
  constexpr std::size_t stream_bytes = Prefetch == prefetch_next::own_next ? lanes * sizeof(T) : 0;
  const std::uintptr_t next = reinterpret_cast<std::uintptr_t>(xs[M - 1]) + n * sizeof(T);
  // The prefetches that go with step b (b * M * 8 elements read), after that step's loads.
  const auto prefetch_step = [xs, next, own_ahead](std::size_t b) {
    for (std::size_t k = 0; k < prefetch_bytes; k += 64) prefetch_l2(next + b * prefetch_bytes + k);
    if constexpr (stream_bytes > 0) {
      if (b * stream_bytes % 64 == 0)
        for (std::size_t m = 0; m < M; ++m)
          prefetch_l2(reinterpret_cast<std::uintptr_t>(xs[m]) + own_ahead + b * stream_bytes);
    }
  };
#if defined(SPARSEREG_SOFT_RUNS_AVX512)
  if constexpr (std::is_same_v<Pre, soft_magnitude<float>> && stream_bytes == 0) {
    soft_magnitude_runs<M, Abs, Zeros, Prefetch>(xs, n, pre.t, acc, next, prefetch_bytes);
  } else
#endif
#if defined(SPARSEREG_VECTOR_LANES)
  if constexpr (std::is_same_v<T, float> && vec::width == lanes) {
    // AVX2: the 8 lanes of a run are one vector register each (sq, |u|, zero counts), loaded and
    // transformed as vectors. The generic loop below left GCC 12 (tuned for Zen 3) a copy of
    // every 8 elements through the stack in two 16-byte halves, reloaded whole (a failed store
    // forward), and its accumulators in memory: group-lasso values at 3.7 GB/s on one Zen 3 core,
    // against read ceilings of 18-47 (docs/benchmarks.md, twenty-ninth session). Same operations
    // per lane (add_square's fused multiply-add where the target has FMA), so the same bits.
    vec::fv sq[M] = {}, ab[M] = {};
    vec::iv zc[M] = {};  // zero counts (a true comparison is -1, subtracted); n/8 < 2^31 per lane
    for (std::size_t b = 0; b < full; ++b) {
      SPARSEREG_UNROLL_BATCH
      for (std::size_t m = 0; m < M; ++m) {
        const vec::fv u = pre_lanes(pre, vec::load(xs[m] + b * lanes));
        sq[m] = vec::add_square8(sq[m], u);
        if constexpr (Abs) ab[m] += vec::abs(u);
        if constexpr (Zeros) zc[m] -= (u == vec::fv{});
      }
      prefetch_step(b);
    }
    SPARSEREG_UNROLL_BATCH
    for (std::size_t m = 0; m < M; ++m) {
      for (std::size_t j = 0; j < lanes; ++j) {
        acc[m].sq[j] = sq[m][j];
        acc[m].ab[j] = ab[m][j];
        acc[m].zeros += static_cast<std::uint32_t>(zc[m][j]);
      }
    }
  } else
#endif
  {
    T sq[M][lanes] = {}, ab[M][lanes] = {};
    std::uint32_t zc[M][lanes] = {};  // n/8 < 2^32 elements per lane: runs are far shorter
    for (std::size_t b = 0; b < full; ++b) {
      SPARSEREG_UNROLL_BATCH
      for (std::size_t m = 0; m < M; ++m) {
        const T* p = xs[m] + b * lanes;
        T u[lanes];
        SPARSEREG_LANE_LOOP
        for (std::size_t j = 0; j < lanes; ++j) u[j] = pre(p[j]);
        SPARSEREG_LANE_LOOP
        for (std::size_t j = 0; j < lanes; ++j) {
          sq[m][j] = add_square(sq[m][j], u[j]);
          if constexpr (Abs) ab[m][j] += std::fabs(u[j]);
          if constexpr (Zeros) zc[m][j] += (u[j] == T(0));
        }
      }
      prefetch_step(b);
    }
    // The tail works on acc, not on sq/ab: a variable index into sq/ab would keep them in memory
    // (not registers) for the whole main loop.
    SPARSEREG_UNROLL_BATCH
    for (std::size_t m = 0; m < M; ++m) {
      for (std::size_t j = 0; j < lanes; ++j) {
        acc[m].sq[j] = sq[m][j];
        acc[m].ab[j] = ab[m][j];
        acc[m].zeros += zc[m][j];
      }
    }
  }
  for (std::size_t m = 0; m < M; ++m) {
    std::size_t zeros = acc[m].zeros;
    for (std::size_t k = full * lanes, j = 0; k < n; ++k, ++j) {
      const T u = pre(xs[m][k]);
      acc[m].sq[j] = add_square(acc[m].sq[j], u);
      if constexpr (Abs) acc[m].ab[j] += std::fabs(u);
      if constexpr (Zeros) zeros += (u == T(0));
    }
    acc[m].zeros = zeros;
  }
}

/// Outcome of one group's decision: the factor pass 2 applies, and its share of the result.
template <class T>
struct group_decision {
  T factor = T(1);
  double value = 0.0;
  std::size_t zero_elements = 0;
  bool zero_group = false;
};

/// Totals of a sweep.
struct sweep_totals {
  double value = 0.0;
  std::size_t zero_elements = 0;
  std::size_t zero_groups = 0;
  std::size_t groups = 0;

  void add(const sweep_totals& o) noexcept {
    value += o.value;
    zero_elements += o.zero_elements;
    zero_groups += o.zero_groups;
    groups += o.groups;
  }
};

inline std::size_t block_count(std::size_t n) noexcept { return std::min(n, max_blocks); }
inline std::size_t block_begin(std::size_t n, std::size_t nb, std::size_t b) noexcept { return n * b / nb; }

template <class Totals>
inline sweep_totals sum_blocks(const Totals* parts, std::size_t nb) noexcept {
  sweep_totals t;
  for (std::size_t b = 0; b < nb; ++b) t.add(parts[b]);
  return t;
}

/// One pass over x (and out, and an optional third view c). run(xp, sx, op, so, cp, sc, n)
/// processes one run and returns its sweep_totals. Blocks are fixed for a given shape. Each
/// block calls its own copy of `run`: reached through the OpenMP region's shared pointer, GCC 12
/// reloaded a lambda's captures after every store of the run (they might alias it) and left the
/// loop scalar (kl_gaussian's gradient: 1.1 instead of 0.09 ns per element in cache).
template <class X, class O, class C, class Run>
sweep_totals elementwise_sweep(const view<X>& x, const view<O>& out, const view<C>& c, Run run) {
  const plan p = make_plan(x, out, c, 0u);
  if (p.size == 0) return {};
  [[maybe_unused]] const bool parallel = worth_parallel(p.size);
  sweep_totals parts[max_blocks];
  const plan_axis& r = p.run();
  if (p.rank == 1) {
    // One long run: cut it into fixed chunks (at least 16K elements each, at most max_blocks).
    const std::size_t n = r.extent;
    const std::size_t nb = std::max<std::size_t>(1, std::min(max_blocks, n / 16384));
    SPARSEREG_PRAGMA_OMP_FOR
    for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
      const std::size_t lo = block_begin(n, nb, static_cast<std::size_t>(b));
      const std::size_t hi = block_begin(n, nb, static_cast<std::size_t>(b) + 1);
      const Run block_run = run;
      parts[b] = block_run(x.data() + static_cast<std::ptrdiff_t>(lo) * r.stride_a, r.stride_a,
                           out.data() + static_cast<std::ptrdiff_t>(lo) * r.stride_b, r.stride_b,
                           c.data() + static_cast<std::ptrdiff_t>(lo) * r.stride_c, r.stride_c, hi - lo);
    }
    return sum_blocks(parts, nb);
  }
  const std::size_t e0 = p.axes[0].extent;
  const std::size_t nb = block_count(e0);
  SPARSEREG_PRAGMA_OMP_FOR
  for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
    sweep_totals t;
    const Run block_run = run;
    for_each_run(p, 0, block_begin(e0, nb, static_cast<std::size_t>(b)),
                 block_begin(e0, nb, static_cast<std::size_t>(b) + 1), [&](const run_position& pos) {
                   t.add(block_run(x.data() + pos.offset_a, r.stride_a, out.data() + pos.offset_b, r.stride_b,
                                   c.data() + pos.offset_c, r.stride_c, r.extent));
                 });
    parts[b] = t;
  }
  return sum_blocks(parts, nb);
}

#if defined(SPARSEREG_SOFT_RUNS_AVX512)
/// accumulate_lane_runs for pre = soft_magnitude<float> (the sparse group lasso's norm pass over
/// the column groups of a row-major weight), k runs (a run-time count, so the runs left after the
/// last eight of a lane take one call too): 16 columns per step. Per column the generic loop's
/// operations in run order, so the same bits: u = |x| - t where that is > 0, else +0 (a NaN
/// compares false and is kept), add_square's one rounding, |u| as u itself (u >= +0, or a NaN whose
/// sign no result shows) and the zero count from the u <= 0 mask (a masked subtraction of -1).
/// GCC 12 compiled the generic loop to 11 vector operations per run and 16 columns (two compares
/// and a blend for the clamp, |u| again, a compare, a zeroing move and a subtraction for the
/// count); here 6 plus the load.
template <bool Abs, bool Zeros>
SPARSEREG_NOINLINE void soft_magnitude_lane_runs(const float* const* rows, std::size_t k, std::size_t m, float t,
                                                 float* __restrict sq, float* __restrict ab,
                                                 std::uint32_t* __restrict zc) noexcept {
  const __m512 tv = _mm512_set1_ps(t), zero = _mm512_setzero_ps();
  const __m512i magnitude = _mm512_set1_epi32(0x7fffffff), minus_one = _mm512_set1_epi32(-1);
  for (std::size_t c = 0; c < m; c += 16) {
    const auto cols = static_cast<__mmask16>(m - c >= 16 ? 0xffffu : (1u << (m - c)) - 1u);
    __m512 s = _mm512_maskz_loadu_ps(cols, sq + c);
    __m512 a = Abs ? _mm512_maskz_loadu_ps(cols, ab + c) : zero;
    __m512i z = Zeros ? _mm512_maskz_loadu_epi32(cols, zc + c) : _mm512_setzero_si512();
    for (std::size_t q = 0; q < k; ++q) {
      const __m512 v = _mm512_maskz_loadu_ps(cols, rows[q] + c);
      const __m512 d = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), magnitude)), tv);
      const __mmask16 dead = _mm512_cmp_ps_mask(d, zero, _CMP_LE_OQ);
      const __m512 u = _mm512_mask_mov_ps(d, dead, zero);
      s = _mm512_fmadd_ps(u, u, s);
      if constexpr (Abs) a = _mm512_add_ps(a, u);
      if constexpr (Zeros) z = _mm512_mask_sub_epi32(z, dead, z, minus_one);
    }
    _mm512_mask_storeu_ps(sq + c, cols, s);
    if constexpr (Abs) _mm512_mask_storeu_ps(ab + c, cols, a);
    if constexpr (Zeros) _mm512_mask_storeu_epi32(zc + c, cols, z);
  }
}
#endif

/// Runs that cross groups, K of them at once, all adding to the same lane: run q (q < K) holds
/// element k of group k at rows[q][k], which goes to sq[k] (and ab[k]), in run order, so the
/// lanes are those of one run at a time. The lane is loaded and stored once per K runs instead
/// of once per run, and the K runs are read as K streams (docs/benchmarks.md, "twenty-seventh
/// session"). Unit strides; restrict: the runs never overlap the lanes or counts.
template <std::size_t K, bool Abs, bool Zeros, class T, class Pre>
SPARSEREG_NOINLINE void accumulate_lane_runs(const T* const* rows, std::size_t m, Pre pre, T* __restrict sq,
                                             T* __restrict ab, std::uint32_t* __restrict zc) noexcept {
#if defined(SPARSEREG_SOFT_RUNS_AVX512)
  if constexpr (std::is_same_v<Pre, soft_magnitude<float>>) {
    soft_magnitude_lane_runs<Abs, Zeros>(rows, K, m, pre.t, sq, ab, zc);
    return;
  }
#endif
  const T* xr[K];
  for (std::size_t q = 0; q < K; ++q) xr[q] = rows[q];
  for (std::size_t c = 0; c < m; ++c) {
    T s = sq[c], a = T(0);
    if constexpr (Abs) a = ab[c];
    std::uint32_t z = 0;
    for (std::size_t q = 0; q < K; ++q) {
      const T u = pre(xr[q][c]);
      s = add_square(s, u);
      if constexpr (Abs) a += std::fabs(u);
      if constexpr (Zeros) z += (u == T(0));
    }
    sq[c] = s;
    if constexpr (Abs) ab[c] = a;
    if constexpr (Zeros) zc[c] += z;
  }
}

/// Runs rows[0..n) that cross the same m consecutive groups continue their lanes: run i goes to
/// lane (first + i) mod 8, element k to group k, whose lane j is sq[j * ld + k] (ab likewise;
/// zero counts added into zc[k]). Each lane takes its runs eight at a time, in run order, and
/// the rest (fewer than eight) one by one. For the column groups of a row-major weight (one run
/// per row): 4096 x 4096 one run at a time moved 1 + 2 lines between L1 and L2 per line of x
/// (the lanes of 8 rows in 128 KiB) and its group-lasso value reached 0.5-0.6 of the read
/// ceiling, eight runs of a lane at once (rows r, r+8, ..., r+56) 0.9-1.0 of it: one stream
/// alone does not reach the bandwidth of several on this machine.
template <bool Abs, bool Zeros, class T, class Pre>
void accumulate_crossing_runs(const T* const* rows, std::size_t n, std::size_t first, std::size_t m, Pre pre, T* sq,
                              T* ab, std::size_t ld, std::uint32_t* zc) noexcept {
  constexpr std::size_t per_lane = 8;
  for (std::size_t i = 0; i < lanes && i < n; ++i) {
    const std::size_t lane = (first + i) & (lanes - 1);
    T* sql = sq + lane * ld;
    T* abl = Abs ? ab + lane * ld : nullptr;
    std::size_t q = i;
    for (; q + (per_lane - 1) * lanes < n; q += per_lane * lanes) {
      const T* own[per_lane];
      for (std::size_t k = 0; k < per_lane; ++k) own[k] = rows[q + k * lanes];
      accumulate_lane_runs<per_lane, Abs, Zeros>(own, m, pre, sql, abl, zc);
    }
#if defined(SPARSEREG_SOFT_RUNS_AVX512)
    if constexpr (std::is_same_v<Pre, soft_magnitude<float>>) {
      const float* rest[per_lane];  // this lane's last runs (fewer than eight), in one call
      std::size_t k = 0;
      for (; q < n; q += lanes) rest[k++] = rows[q];
      if (k > 0) soft_magnitude_lane_runs<Abs, Zeros>(rest, k, m, pre.t, sql, abl, zc);
      continue;
    }
#endif
    for (; q < n; q += lanes) accumulate_lane_runs<1, Abs, Zeros>(rows + q, m, pre, sql, abl, zc);
  }
}

/// Pass 2 placeholder for sweeps that only read (penalty values).
struct no_apply {
  template <class T, class O, class F>
  void operator()(const T*, std::ptrdiff_t, O*, std::ptrdiff_t, std::size_t, F) const noexcept {}
};

/// factor_of(i) for a run inside one group: the group's factor.
template <class T>
struct uniform_factor {
  T f;
  T operator()(std::size_t) const noexcept { return f; }
};

/// Pass 2 of one run of a batch whose norm pass prefetched only the first half of the next batch
/// (prefetch_next::first_half): out = apply(x, factor) in chunks of 256 elements, each followed by
/// the prefetch of half as many bytes from `ahead` on. The runs of a batch each get their slice of
/// the next batch's second half, so all of it is prefetched while the batch is written: the next
/// batch's reads from memory overlap this batch's writes instead of following them (in-place group
/// lasso prox of 64 MB and 256 MB tensors in groups of 1024, one thread, Zen 4: 0.68-0.74 ->
/// 0.84-0.90 of the in-place scale; docs/benchmarks.md). The same elementwise apply, same bits.
template <class T, class O, class Apply>
inline void write_run_prefetching(Apply& apply, const T* x, O* out, std::ptrdiff_t out_stride, std::size_t n, T factor,
                                  std::uintptr_t ahead) {
  constexpr std::size_t chunk = 256;
  for (std::size_t c = 0; c < n; c += chunk) {
    const std::size_t len = std::min(chunk, n - c);
    apply(x + c, 1, out + static_cast<std::ptrdiff_t>(c) * out_stride, out_stride, len, uniform_factor<T>{factor});
    for (std::size_t k = 0; k < len * sizeof(T) / 2; k += 64) prefetch_l2(ahead + c * sizeof(T) / 2 + k);
  }
}

/// factor_of(i) for a run that crosses groups: element i belongs to group g0 + i*stride.
template <class T, class S>
struct indexed_factor {
  const T* f;  // factor of g0
  S stride;    // std::ptrdiff_t, or std::integral_constant<std::ptrdiff_t, 1> so the loads vectorize
  T operator()(std::size_t i) const noexcept { return f[static_cast<std::ptrdiff_t>(i) * stride]; }
};

/// y[i*sy] = pre(x[i*sx]) * factor_of(i) for i < n: the write pass of a group prox (strides as
/// with_unit_strides gives them). For pre = soft_threshold_op<float> on contiguous runs with one
/// factor or a contiguous row of them, an AVX-512 form with the same operations per element, so the
/// same bits: a = |x| - t, then 0 > a ? 0 : a (vmaxps with 0 first keeps a NaN), negated where
/// x < 0, times the factor. GCC 12 compiled the generic loop to 8 vector operations per 16
/// elements (two compares and masked moves for the clamp and the sign), this form takes 6 (Zen 4,
/// 2,304-float groups in L3, an ad-hoc loop: 45 -> 34 us per 590K elements).
template <class T, class Pre, class Sx, class Sy, class Factor>
inline void scale_run(Pre pre, const T* x, Sx sx, T* y, Sy sy, std::size_t n, Factor factor_of) noexcept {
  std::size_t i = 0;
#if defined(SPARSEREG_SOFT_RUNS_AVX512)
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  constexpr bool uniform = std::is_same_v<Factor, uniform_factor<float>>;
  constexpr bool row = std::is_same_v<Factor, indexed_factor<float, unit>>;
  if constexpr (std::is_same_v<Pre, soft_threshold_op<float>> && std::is_same_v<Sx, unit> &&
                std::is_same_v<Sy, unit> && (uniform || row)) {
    const vec::fv tv = vec::fv{} + pre.t;
    const __m512 zero = _mm512_setzero_ps();
    const __m512i sign = _mm512_set1_epi32(~0x7fffffff);
    for (; i + vec::width <= n; i += vec::width) {
      const vec::fv v = vec::load(x + i);
      const __m512 a = _mm512_maskz_max_ps(0xffff, zero, (__m512)(vec::abs(v) - tv));
      const __mmask16 negative = _mm512_cmp_ps_mask((__m512)v, zero, _CMP_LT_OQ);
      const __m512i a_bits = _mm512_castps_si512(a);
      const __m512 u = _mm512_castsi512_ps(_mm512_mask_xor_epi32(a_bits, negative, a_bits, sign));
      __m512 f;
      if constexpr (uniform)
        f = _mm512_set1_ps(factor_of.f);
      else
        f = _mm512_loadu_ps(factor_of.f + i);
      vec::store(y + i, (vec::fv)_mm512_maskz_mul_ps(0xffff, u, f));
    }
  }
#endif
  for (; i < n; ++i) {
    const auto k = static_cast<std::ptrdiff_t>(i);
    y[k * sy] = pre(x[k * sx]) * factor_of(i);
  }
}

/// Calls body(b0, b1) once per thread with that thread's contiguous share of blocks [0, nb), the
/// split `omp for schedule(static)` would make. Each group lives in one block, so its elements are
/// accumulated by one thread in one fixed order whatever the thread count; walking a whole share
/// at once (rather than block by block) keeps the walk in memory order.
template <class Body>
void for_each_thread_share(std::size_t nb, [[maybe_unused]] bool parallel, Body&& body) {
#if defined(_OPENMP)
#pragma omp parallel if(parallel)
  {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    const auto nt = static_cast<std::size_t>(omp_get_num_threads());
    body(nb * t / nt, nb * (t + 1) / nt);
  }
#else
  body(std::size_t(0), nb);
#endif
}

/// How the strided paths cut a tensor into blocks: along the outermost axis that identifies the
/// group (`split`; rank when none does), so each block owns whole groups.
struct block_split {
  std::size_t split, es, nb;
  explicit block_split(const plan& p) : split(p.rank) {
    for (std::size_t k = 0; k < p.rank; ++k)
      if (p.axes[k].identifies_group) {
        split = k;
        break;
      }
    es = split < p.rank ? p.axes[split].extent : 1;
    nb = block_count(es);
  }
  /// Calls f(pos, lo, hi) for the runs of blocks [b0, b1): the run at pos restricted to [lo, hi).
  template <class F>
  void walk(const plan& p, std::size_t b0, std::size_t b1, F&& f) const {
    if (b0 >= b1) return;
    const std::size_t lo = block_begin(es, nb, b0), hi = block_begin(es, nb, b1);
    if (split == p.rank - 1) {
      for_each_run(p, p.rank, 0, 0, [&](const run_position& pos) { f(pos, lo, hi); });
    } else {
      for_each_run(p, split, lo, hi, [&](const run_position& pos) { f(pos, std::size_t(0), p.run().extent); });
    }
  }
};

/// Pass 2 of the strided sweep on its own: out = apply(x, factor[g]) for every element of group
/// g, the factors given (grouped_sweep computes them in pass 1; a penalty that already knows its
/// group norms, like the KL regularizer's gradient, passes them directly and skips pass 1).
/// Each thread walks its share of blocks in memory order.
template <class T, class O, class Apply>
void apply_group_factors(const plan& p, const block_split& bs, const view<const T>& x, const view<O>& out,
                         const T* factor, Apply apply) {
  const plan_axis& r = p.run();
  const std::size_t split = bs.split, es = bs.es, nb = bs.nb;
  const bool crossing = r.identifies_group;
  [[maybe_unused]] const bool parallel = worth_parallel(p.size);
  // Pass 2 over whole slices: when the split axis sits right outside the run and both are dense
  // (the input channels of an OIHW tensor: I x HW), one slice of a thread's share is a single
  // contiguous run whose factors repeat for every outer index. Expanding the factors of that
  // slice once turns many short runs into one long vectorized apply per outer index. Only when
  // the expanded row is at most an eighth of the tensor.
  const bool slice_apply = !crossing && p.rank >= 2 && split == p.rank - 2 && r.stride_a == 1 && r.stride_b == 1 &&
                           p.axes[split].stride_a == static_cast<std::ptrdiff_t>(r.extent) &&
                           p.axes[split].stride_b == static_cast<std::ptrdiff_t>(r.extent) &&
                           p.size / (es * r.extent) >= 8;
  if (slice_apply) {
    for_each_thread_share(nb, parallel, [&](std::size_t b0, std::size_t b1) {
      if (b0 >= b1) return;
      const std::size_t lo = block_begin(es, nb, b0), hi = block_begin(es, nb, b1);
      const std::size_t gs = p.axes[split].group_stride;
      std::vector<T> row((hi - lo) * r.extent);
      for (std::size_t i = lo; i < hi; ++i)
        std::fill_n(row.data() + (i - lo) * r.extent, r.extent, factor[i * gs]);
      for_each_run(p, split, lo, lo + 1, [&](const run_position& pos) {
        apply(x.data() + pos.offset_a, 1, out.data() + pos.offset_b, 1, row.size(),
              indexed_factor<T, std::integral_constant<std::ptrdiff_t, 1>>{row.data(), {}});
      });
    });
    return;
  }
  for_each_thread_share(nb, parallel, [&](std::size_t b0, std::size_t b1) {
    bs.walk(p, b0, b1, [&](const run_position& pos, std::size_t lo, std::size_t hi) {
      const T* xp = x.data() + pos.offset_a;
      auto* op = out.data() + pos.offset_b;
      if (!crossing) {
        apply(xp, r.stride_a, op, r.stride_b, r.extent, uniform_factor<T>{factor[pos.group]});
      } else {
        const std::size_t g0 = pos.group + lo * r.group_stride;
        const T* xr = xp + static_cast<std::ptrdiff_t>(lo) * r.stride_a;
        auto* orun = op + static_cast<std::ptrdiff_t>(lo) * r.stride_b;
        if (r.group_stride == 1)
          apply(xr, r.stride_a, orun, r.stride_b, hi - lo,
                indexed_factor<T, std::integral_constant<std::ptrdiff_t, 1>>{factor + g0, {}});
        else
          apply(xr, r.stride_a, orun, r.stride_b, hi - lo,
                indexed_factor<T, std::ptrdiff_t>{factor + g0, static_cast<std::ptrdiff_t>(r.group_stride)});
      }
    });
  });
}

/// apply_group_factors for any grouping (explicit index lists included).
template <class T, class O, class Apply>
void grouped_apply(const view<const T>& x, const view<O>& out, const grouping& grp, const T* factor, Apply apply) {
  if (x.size() == 0) return;
  if (grp.is_explicit()) {
    const auto& off = grp.explicit_offsets();
    const auto& idx = grp.explicit_indices();
    for (std::size_t g = 0; g + 1 < off.size(); ++g)
      for (std::size_t k = off[g]; k < off[g + 1]; ++k) {
        const std::size_t f = idx[k];
        apply(x.data() + x.offset_of_flat(f), 1, out.data() + out.offset_of_flat(f), 1, 1, uniform_factor<T>{factor[g]});
      }
    return;
  }
  const plan p = make_plan(x, out, grp.axis_mask());
  apply_group_factors(p, block_split(p), x, out, factor, apply);
}

/// The lanes pass 1 of a strided sweep updates for the groups g0 + k*gs, k < m, which all have
/// seen the same number of elements (`seen`): lane j of group k is sq[j * lane_stride + k *
/// group_stride] (likewise ab, when the sweep sums |u|). With one thread these point into the
/// shared workspace. With several, each thread works on a private copy of its groups, loaded when
/// it starts on them and stored back when it moves on and at the end: updated in place, the cache
/// lines at the border of two threads' group ranges move between the cores on every row
/// (measured: the input channels of a 256x256x3x3 conv weight took 4x longer on 2 threads than on
/// 1). The copy costs 2 x 8 values per group, so one thread goes without it (fc 80x3136 column
/// groups: 5-7 GB/s with the copy, 13-14 without).
/// Zero counts are always the block's own: 32-bit, one per group, contiguous (64-bit counts in
/// the workspace took 40% of the crossing loop: every vector of 8 or 16 elements needed two
/// widening adds and two 64-byte stores for them); reserve_counts adds them into the
/// workspace's counts before they could overflow.
template <class T>
struct lane_block {
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  bool private_copy = false;
  std::size_t g0 = none, gs = 1, m = 0, seen = 0;
  T* sq = nullptr;
  T* ab = nullptr;  // null when the sweep does not sum |u|
  std::uint32_t* zeros = nullptr;
  std::size_t lane_stride = 0, group_stride = 1;
  std::vector<T> own_sq, own_ab;
  std::vector<std::uint32_t> own_zeros;
  std::size_t counted_from = 0;  // `seen` when own_zeros were last added into the workspace

  /// For the thread whose share is blocks [b0, b1) of nb: private unless it has them all.
  lane_block(std::size_t b0, std::size_t b1, std::size_t nb) : private_copy(!(b0 == 0 && b1 == nb)) {}

  /// Makes the block hold groups g0_ + k*gs_, k < m_ (storing the ones it held). `at` maps (lane,
  /// group) to a workspace index (lane-major: at(j, g) = j * G + g). wab may be null.
  template <class At>
  void hold(std::size_t g0_, std::size_t gs_, std::size_t m_, T* wsq, T* wab, std::size_t* wzeros, std::size_t* wseen,
            const At& at) {
    if (g0_ == g0 && gs_ == gs && m_ == m) return;
    store(wsq, wab, wzeros, wseen, at);
    g0 = g0_;
    gs = gs_;
    m = m_;
    seen = wseen[g0];
    counted_from = seen;
    own_zeros.assign(m, 0);
    zeros = own_zeros.data();
    if (!private_copy) {
      sq = wsq + at(0, g0);
      ab = wab ? wab + at(0, g0) : nullptr;
      lane_stride = at(1, g0) - at(0, g0);
      group_stride = gs;
      return;
    }
    own_sq.resize(lanes * m);
    for (std::size_t j = 0; j < lanes; ++j)
      for (std::size_t k = 0; k < m; ++k) own_sq[j * m + k] = wsq[at(j, g0 + k * gs)];
    sq = own_sq.data();
    ab = nullptr;
    if (wab) {
      own_ab.resize(lanes * m);
      for (std::size_t j = 0; j < lanes; ++j)
        for (std::size_t k = 0; k < m; ++k) own_ab[j * m + k] = wab[at(j, g0 + k * gs)];
      ab = own_ab.data();
    }
    lane_stride = m;
    group_stride = 1;
  }
  /// Call before the groups see n more elements: a count grows by at most that many.
  void reserve_counts(std::size_t n, std::size_t* wzeros) {
    if (seen + n - counted_from > std::size_t(0xFFFFFFFFu)) add_counts(wzeros);
  }
  /// Writes the block's lanes and counts back into the workspace (all its groups have seen `seen`).
  template <class At>
  void store(T* wsq, T* wab, std::size_t* wzeros, std::size_t* wseen, const At& at) {
    if (g0 == none) return;
    if (private_copy) {
      for (std::size_t j = 0; j < lanes; ++j)
        for (std::size_t k = 0; k < m; ++k) wsq[at(j, g0 + k * gs)] = own_sq[j * m + k];
      if (wab)
        for (std::size_t j = 0; j < lanes; ++j)
          for (std::size_t k = 0; k < m; ++k) wab[at(j, g0 + k * gs)] = own_ab[j * m + k];
    }
    add_counts(wzeros);
    for (std::size_t k = 0; k < m; ++k) wseen[g0 + k * gs] = seen;
  }

 private:
  void add_counts(std::size_t* wzeros) {
    for (std::size_t k = 0; k < m; ++k) {
      wzeros[g0 + k * gs] += own_zeros[k];
      own_zeros[k] = 0;
    }
    counted_from = seen;
  }
};

/// Decides group g from its combined sums (of squares, and with WithAbs of |u|; otherwise
/// abs_sum is not used and decide gets 0), adds the decision to the block's totals and returns it.
template <bool WithAbs, class T, class Decide>
SPARSEREG_ALWAYS_INLINE auto decide_combined(Decide& decide, std::size_t g, std::size_t size, T sumsq, T abs_sum,
                                             std::size_t zeros, sweep_totals& t) {
  const auto d = decide(g, size, static_cast<double>(sumsq), WithAbs ? static_cast<double>(abs_sum) : 0.0, zeros);
  t.add({d.value, d.zero_elements, d.zero_group ? 1u : 0u, 1});
  return d;
}
/// decide_combined from group g's 8 partial sums of squares (sq[j * stride]) and, with WithAbs,
/// of |u| (ab[j * stride]; otherwise ab is not read). Every grouped path decides through here or
/// through combine_lane_rows below, which adds the lanes in the same order (combine_lanes), so
/// the lanes are combined in one order whatever the path.
template <bool WithAbs, class T, class Decide>
SPARSEREG_ALWAYS_INLINE auto decide_group(Decide& decide, std::size_t g, std::size_t size, const T* sq, const T* ab,
                                          std::size_t stride, std::size_t zeros, sweep_totals& t) {
  T sl[lanes], al[lanes] = {};
  for (std::size_t j = 0; j < lanes; ++j) sl[j] = sq[j * stride];
  if constexpr (WithAbs)
    for (std::size_t j = 0; j < lanes; ++j) al[j] = ab[j * stride];
  return decide_combined<WithAbs>(decide, g, size, combine_lanes(sl), WithAbs ? combine_lanes(al) : T(0), zeros, t);
}

/// combine_lanes of m consecutive groups whose lanes are stored lane-major (lane j of group k at
/// l[j * ld + k]) into out[k]: the same additions in the same order as decide_group's, so the
/// same bits, but one vector loop over the groups instead of eight strided loads and seven
/// dependent additions per group (the per-group decisions of the trainer's fc1, 3,136 column
/// groups, took a fifth of its sparse group lasso prox; docs/benchmarks.md).
template <class T>
void combine_lane_rows(const T* l, std::size_t ld, std::size_t m, T* __restrict out) noexcept {
  static_assert(lanes == 8, "combine_lanes' tree below");
  const T *l0 = l, *l1 = l + ld, *l2 = l + 2 * ld, *l3 = l + 3 * ld, *l4 = l + 4 * ld, *l5 = l + 5 * ld,
          *l6 = l + 6 * ld, *l7 = l + 7 * ld;
  for (std::size_t k = 0; k < m; ++k)
    out[k] = ((l0[k] + l1[k]) + (l2[k] + l3[k])) + ((l4[k] + l5[k]) + (l6[k] + l7[k]));
}

/// The grouped two-pass sweep. decide(g, size, sumsq, abs_sum, zeros) -> group_decision<T>;
/// apply(xp, sx, op, so, n, factor_of) writes one run of the output, element i scaled by
/// factor_of(i) (a uniform_factor or an indexed_factor).
/// WithAbs = false: the caller's decide does not use abs_sum, which is then 0 on every path (the
/// strided paths skip its lane stream: one read-modify-write per element of the workspace).
/// Sweeps that write nothing (apply = no_apply: penalty values, the KL norms) must not use the
/// zero count either: where groups are whole runs it is not counted and decide gets 0.
template <bool WithAbs = true, class T, class O, class Pre, class Decide, class Apply>
sweep_totals grouped_sweep(const view<const T>& x, const view<O>& out, const grouping& grp, Pre pre, Decide decide,
                           Apply apply) {
  constexpr bool writes = !std::is_same_v<Apply, no_apply>;
  if (x.size() == 0) return {};
  [[maybe_unused]] const bool parallel = worth_parallel(x.size());
  if (grp.is_explicit()) {
    // Irregular groups: gather through the index lists, one group at a time.
    const auto& off = grp.explicit_offsets();
    const auto& idx = grp.explicit_indices();
    const std::size_t G = off.size() - 1;
    const std::size_t nb = block_count(G);
    sweep_totals parts[max_blocks];
    const bool dense_x = x.is_contiguous();
    const bool dense_o = out.is_contiguous();
    SPARSEREG_PRAGMA_OMP_FOR
    for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
      sweep_totals t;
      for (std::size_t g = block_begin(G, nb, static_cast<std::size_t>(b));
           g < block_begin(G, nb, static_cast<std::size_t>(b) + 1); ++g) {
        lane_sums<T> acc;
        const std::size_t n = off[g + 1] - off[g];
        for (std::size_t k = 0; k < n; ++k) {
          const std::size_t f = idx[off[g] + k];
          const T v = x.data()[dense_x ? static_cast<std::ptrdiff_t>(f) : x.offset_of_flat(f)];
          accumulate_run(&v, 1, 1, k, pre, acc);
        }
        const auto d = decide_group<WithAbs>(decide, g, n, acc.sq, acc.ab, 1, acc.zeros, t);
        if constexpr (writes) {
          for (std::size_t k = 0; k < n; ++k) {
            const std::size_t f = idx[off[g] + k];
            const std::ptrdiff_t ox = dense_x ? static_cast<std::ptrdiff_t>(f) : x.offset_of_flat(f);
            const std::ptrdiff_t oo = dense_o ? static_cast<std::ptrdiff_t>(f) : out.offset_of_flat(f);
            apply(x.data() + ox, 1, out.data() + oo, 1, 1, uniform_factor<T>{d.factor});
          }
        }
      }
      parts[b] = t;
    }
    return sum_blocks(parts, nb);
  }

  const plan p = make_plan(x, out, grp.axis_mask());
  const std::size_t G = p.groups;
  const std::size_t group_size = p.size / G;
  const plan_axis& r = p.run();

  // Fast path: every group is exactly one run. Norm, decision and write while the group is hot.
  const bool one_run_per_group = !r.identifies_group && r.extent == group_size;
  if (one_run_per_group) {
    // Groups go in batches of `batch` (interleaved norms, accumulate_runs), then each batch is
    // decided and written while it is still in L1/L2; blocks hold at least one batch. 8 groups
    // need 24 vector registers of accumulators, so only where there are 32 (AVX-512); measured
    // on Zen 4, 8 instead of 4 gained 5-25% (more independent chains and memory streams).
#if defined(__AVX512F__)
    constexpr std::size_t batch = 8;
#else
    constexpr std::size_t batch = 4;
#endif
    sweep_totals parts[max_blocks];
    const std::size_t split = p.rank > 1 ? 0 : p.rank;
    const std::size_t e0 = p.rank > 1 ? p.axes[0].extent : 1;
    const bool prefetch = worth_prefetch(p.size * sizeof(T));
    // At least 8 groups per block whatever the batch, so the block partition (and the order the
    // totals are summed in) is the same on every target.
    const std::size_t nb = block_count(std::max<std::size_t>(1, e0 / 8));
    SPARSEREG_PRAGMA_OMP_FOR
    for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
      sweep_totals t;
      // A value sweep takes a block's groups in chunks of up to `chunk`; a chunk of c groups is cut
      // into `batch` stripes of s = c / batch consecutive groups, and batch k holds group k of every
      // stripe. The batch's runs are then `batch` memory streams that each go on through s groups,
      // instead of streams that end after one group; each run prefetches its own next group. From
      // DRAM, one thread, the flat group-lasso value went from 0.78 to 0.89-0.92 of a linear read,
      // FC rows from 0.87 to 1.08-1.10 (docs/benchmarks.md, twenty-fifth session). A prox keeps
      // batches of back-to-back groups (s = 1): with stripes its write streams made it slower; so
      // does a tensor below the prefetch size (16 MiB, mostly in L3: 0.72 -> 0.68 of the read).
      // Each group's lanes are the same bits in any order, and the values are summed in group
      // order at the end of the chunk.
      constexpr std::size_t stripe = writes ? 1 : 32;
      constexpr std::size_t chunk = batch * stripe;
      const std::size_t chunk_len = prefetch ? chunk : batch;
      // Plain arrays, not run_position[chunk]: its default initialization would write 8 KiB per
      // block on every call, which small tensors would pay for.
      std::ptrdiff_t offset_x[chunk], offset_out[chunk];
      std::size_t group_of[chunk];
      double value_of[chunk];
      std::size_t count = 0;
      bool striped = false;  // whether finish() visits the groups out of order
      const auto finish_group = [&](std::size_t i, const T* xg, const T* sq, const T* ab, std::size_t zeros,
                                    auto write) {
        // In group order straight into t; out of order the value waits for the end of the chunk.
        sweep_totals one;
        const auto d = decide_group<WithAbs>(decide, group_of[i], group_size, sq, ab, 1, zeros, striped ? one : t);
        if (striped) {
          value_of[i] = one.value;
          one.value = 0.0;  // added in group order at the end of the chunk
          t.add(one);
        }
        if constexpr (writes) write(xg, out.data() + offset_out[i], d.factor);
      };
      const auto finish = [&] {
        const std::size_t s = count / batch;
        striped = s > 1;
        // Whether the chunk's groups are back to back in memory (flat tensors, FC rows, conv filters);
        // with s = 1 these are the groups of the one batch.
        bool consecutive = r.stride_a == 1;
        for (std::size_t i = 1; i < s * batch && consecutive; ++i)
          consecutive = offset_x[i] == offset_x[i - 1] + static_cast<std::ptrdiff_t>(r.extent);
        for (std::size_t k = 0; k < s; ++k) {
          lane_sums<T> acc[batch];
          const T* xs[batch];
          for (std::size_t m = 0; m < batch; ++m) xs[m] = x.data() + offset_x[m * s + k];
          // On a tensor beyond the caches, back-to-back groups prefetch what comes next: with s = 1
          // the next batch (a value sweep while it reads it, a prox half while it reads and half
          // while it writes), with stripes each run its own next group.
          bool ahead = false;
          if (r.stride_a == 1) {
            ahead = prefetch && consecutive;
            constexpr prefetch_next next = writes ? prefetch_next::first_half : prefetch_next::whole;
            // A stripe's next group follows it; after the last batch of the chunk, stripe m goes on
            // with stripe m of the next chunk, most likely of the same shape and right behind.
            const std::size_t own_ahead = (k + 1 < s ? 1 : count - s + 1) * r.extent * sizeof(T);
            if (ahead && s > 1)
              accumulate_runs<batch, WithAbs, writes, prefetch_next::own_next>(xs, r.extent, pre, acc, own_ahead);
            else if (ahead)
              accumulate_runs<batch, WithAbs, writes, next>(xs, r.extent, pre, acc);
            else
              accumulate_runs<batch, WithAbs, writes>(xs, r.extent, pre, acc);
          } else {
            for (std::size_t m = 0; m < batch; ++m) accumulate_run(xs[m], r.stride_a, r.extent, 0, pre, acc[m]);
          }
          // The second half of the next batch: run m of this one prefetches its m-th slice. (Integer
          // arithmetic: with a negative run stride the address need not lie inside the tensor.)
          const std::uintptr_t second_half =
              reinterpret_cast<std::uintptr_t>(xs[batch - 1]) + (2 + batch) * r.extent * sizeof(T) / 2;
          for (std::size_t m = 0; m < batch; ++m)
            finish_group(m * s + k, xs[m], acc[m].sq, acc[m].ab, acc[m].zeros, [&](const T* xg, O* o, T factor) {
              if (ahead)
                write_run_prefetching(apply, xg, o, r.stride_b, r.extent, factor,
                                      second_half + m * r.extent * sizeof(T) / 2);
              else
                apply(xg, r.stride_a, o, r.stride_b, r.extent, uniform_factor<T>{factor});
            });
        }
        // The last count % batch groups, one at a time.
        for (std::size_t i = s * batch; i < count; ++i) {
          lane_sums<T> acc;
          const T* xg = x.data() + offset_x[i];
          accumulate_run(xg, r.stride_a, r.extent, 0, pre, acc);
          finish_group(i, xg, acc.sq, acc.ab, acc.zeros, [&](const T* xr, O* o, T factor) {
            apply(xr, r.stride_a, o, r.stride_b, r.extent, uniform_factor<T>{factor});
          });
        }
        if (striped)
          for (std::size_t i = 0; i < count; ++i) t.value += value_of[i];
        count = 0;
      };
      for_each_run(p, split, block_begin(e0, nb, static_cast<std::size_t>(b)),
                   block_begin(e0, nb, static_cast<std::size_t>(b) + 1), [&](const run_position& pos) {
                     offset_x[count] = pos.offset_a;
                     offset_out[count] = pos.offset_b;
                     group_of[count++] = pos.group;
                     if (count == chunk_len) finish();
                   });
      if (count > 0) finish();
      parts[b] = t;
    }
    return sum_blocks(parts, nb);
  }

  // Strided groups: pass 1 accumulates per-group lanes in a workspace, pass 2 writes.
  // Blocks split the outermost identifying axis, so each block owns whole groups; each thread
  // walks its share of blocks in memory order (for_each_thread_share).
  const block_split bs(p);
  const std::size_t split = bs.split, es = bs.es, nb = bs.nb;
  // Runs that cross groups update one lane of many consecutive groups: lanes stored [lane][group]
  // so that update is one vector loop. Runs inside a group update the 8 lanes of that group:
  // stored [group][lane], two vector loads and stores per run.
  const bool crossing = r.identifies_group;
  // Column tiles: when the run axis is the only one that identifies groups (the input neurons of
  // a row-major out x in weight), a tile of consecutive blocks holds whole groups. Each thread
  // accumulates a tile's lanes in its own small buffer, decides the tile's groups and writes the
  // tile while it is still in L2: the tensor is read from memory once instead of twice, one
  // parallel region instead of three, no shared workspace to zero. Per group the additions, and
  // per block the totals, happen in the order of the two-pass path (blocks of the run axis are
  // the blocks of the groups), so results are identical. Only when a tile of at least
  // min_tile_cols columns fits the budget: with more rows, a tile would read short pieces of
  // many rows, which the two-pass path avoids (measured no faster on 4096 x 4096).
  constexpr std::size_t tile_budget = std::size_t(256) << 10;  // bytes of x per tile
  constexpr std::size_t min_tile_cols = 256;
  const std::size_t rows = p.size / es;
  if (crossing && split == p.rank - 1 && G == es && r.group_stride == 1 &&
      rows * min_tile_cols * sizeof(T) <= tile_budget) {
    sweep_totals parts[max_blocks];
    for_each_thread_share(nb, parallel, [&](std::size_t b0, std::size_t b1) {
      if (b0 >= b1) return;
      const std::size_t max_cols = std::max<std::size_t>(tile_budget / (rows * sizeof(T)), 1);
      std::vector<T> tsq, tab, tf, csq, cab;  // csq, cab: the tile's lanes combined per group
      std::vector<std::uint32_t> tz;
      std::vector<const T*> rowp;  // the tile's runs, when contiguous
      rowp.reserve(rows);
      for (std::size_t t0 = b0, t1 = b0; t0 < b1; t0 = t1) {
        // Whole blocks, at least one, about max_cols columns.
        const std::size_t lo = block_begin(es, nb, t0);
        for (t1 = t0 + 1; t1 < b1 && block_begin(es, nb, t1 + 1) - lo <= max_cols; ++t1) {
        }
        const std::size_t m = block_begin(es, nb, t1) - lo;
        tsq.assign(lanes * m, T(0));  // lane-major: lane j of column lo + k at j * m + k
        if constexpr (WithAbs) tab.assign(lanes * m, T(0));
        if constexpr (writes) tz.assign(m, 0);
        if (r.stride_a == 1) {
          // Contiguous runs: the lanes take them eight at a time (accumulate_crossing_runs).
          rowp.clear();
          bs.walk(p, t0, t1, [&](const run_position& pos, std::size_t clo, std::size_t) {
            rowp.push_back(x.data() + pos.offset_a + static_cast<std::ptrdiff_t>(clo));
          });
          accumulate_crossing_runs<WithAbs, writes>(rowp.data(), rowp.size(), 0, m, pre, tsq.data(),
                                                    WithAbs ? tab.data() : nullptr, m, writes ? tz.data() : nullptr);
        } else {
        std::size_t seen = 0;  // element index inside each group = runs visited so far
        bs.walk(p, t0, t1, [&](const run_position& pos, std::size_t clo, std::size_t) {
          const std::size_t lane = seen++ & (lanes - 1);
          const T* xr = x.data() + pos.offset_a + static_cast<std::ptrdiff_t>(clo) * r.stride_a;
          T* sql = tsq.data() + lane * m;
          T* abl = WithAbs ? tab.data() + lane * m : nullptr;
          std::uint32_t* zl = tz.data();
          with_unit_strides(r.stride_a, 1, [&](auto sx, auto) {
            for (std::size_t k = 0; k < m; ++k) {
              const T u = pre(xr[static_cast<std::ptrdiff_t>(k) * sx]);
              sql[k] = add_square(sql[k], u);
              if constexpr (WithAbs) abl[k] += std::fabs(u);
              if constexpr (writes) zl[k] += (u == T(0));  // only a prox reports zeros
            }
          });
        });
        }
        if constexpr (writes) tf.resize(m);
        csq.resize(m);
        combine_lane_rows(tsq.data(), m, m, csq.data());
        if constexpr (WithAbs) {
          cab.resize(m);
          combine_lane_rows(tab.data(), m, m, cab.data());
        }
        for (std::size_t b = t0; b < t1; ++b) {
          sweep_totals t;
          for (std::size_t g = block_begin(es, nb, b); g < block_begin(es, nb, b + 1); ++g) {
            const std::size_t k = g - lo;
            const auto d = decide_combined<WithAbs>(decide, g, group_size, csq[k], WithAbs ? cab[k] : T(0),
                                                    writes ? static_cast<std::size_t>(tz[k]) : std::size_t(0), t);
            if constexpr (writes) tf[k] = d.factor;
          }
          parts[b] = t;
        }
        if constexpr (writes) {
          bs.walk(p, t0, t1, [&](const run_position& pos, std::size_t clo, std::size_t chi) {
            apply(x.data() + pos.offset_a + static_cast<std::ptrdiff_t>(clo) * r.stride_a, r.stride_a,
                  out.data() + pos.offset_b + static_cast<std::ptrdiff_t>(clo) * r.stride_b, r.stride_b, chi - clo,
                  indexed_factor<T, std::integral_constant<std::ptrdiff_t, 1>>{tf.data(), {}});
          });
        }
      }
    });
    return sum_blocks(parts, nb);
  }
  // Dense slabs (the input channels of an OIHW tensor: for each outer index, one contiguous I x HW
  // slab whose rows are the groups' runs): each group has seen the same number of elements when
  // a slab starts, so element k of every row goes to the same lane, (seen + k) mod 8. The slab is
  // then accumulated column by column, one vector loop over consecutive groups per k, with the
  // same per-lane order of additions as run by run. Lanes stored [lane][group] for that loop.
  const bool slab_rows = !crossing && p.rank >= 2 && split == p.rank - 2 && r.stride_a == 1 &&
                         p.axes[split].stride_a == static_cast<std::ptrdiff_t>(r.extent) &&
                         p.axes[split].group_stride == 1 && r.extent < 4 * lanes;
  // With at least 8 slabs, and the same groups in every slab, pass 1 takes the slabs eight at a
  // time (accumulate_slab_octets): contiguous copies and whole lane blocks instead of one strided
  // load per element; its lanes are stored [group][lane].
  const std::size_t slab_count = slab_rows ? p.size / (G * r.extent) : 0;
  const bool slab_octets = slab_rows && G == es && slab_count >= lanes;
  const bool lane_major = crossing || (slab_rows && !slab_octets);
  const auto at = [lane_major, G](std::size_t lane, std::size_t g) { return lane_major ? lane * G + g : g * lanes + lane; };
  // The lane-major loops skip ab without WithAbs; the other paths keep it (in registers there).
  std::vector<T> sq(lanes * G, T(0)), ab(WithAbs || !lane_major ? lanes * G : 0, T(0));
  T* const lane_ab = WithAbs ? ab.data() : nullptr;  // what the lane-major loops update
  std::vector<std::size_t> zeros(G, 0), seen(G, 0);
  std::vector<T> factor(writes ? G : 0);

  // Short runs inside a group (e.g. the 3x3 kernels of one input channel) are copied into a
  // per-group stage of lcm(run, 8) elements and accumulated a whole stage at a time: every stage
  // then starts at lane 0 and is accumulated as vector blocks, with the same per-lane order of
  // additions as run by run. Only when the stages take at most a quarter of the tensor's size.
  const bool short_runs = !crossing && !slab_rows && r.extent < 2 * lanes;
  std::size_t stage_len = r.extent;
  while (stage_len % lanes != 0) stage_len += r.extent;
  const bool staged_runs = short_runs && G * stage_len <= p.size / 4;
  std::vector<T> stage(staged_runs ? G * stage_len : 0);
  std::vector<std::size_t> staged(staged_runs ? G : 0, 0);
  // Accumulates the `count` staged elements of group g into its lanes.
  const auto flush_stage = [&](std::size_t g, std::size_t count) {
    zeros[g] += accumulate_run_into(stage.data() + g * stage_len, 1, count, seen[g], pre, sq.data() + at(0, g),
                                    ab.data() + at(0, g));
    seen[g] += count;
  };

  if (slab_octets) {
    std::vector<std::ptrdiff_t> slab_at;  // where group 0's run starts in each slab, in visiting order
    slab_at.reserve(slab_count);
    for_each_run(p, split, 0, 1, [&](const run_position& pos) { slab_at.push_back(pos.offset_a); });
    for_each_thread_share(nb, parallel, [&](std::size_t b0, std::size_t b1) {
      if (b0 >= b1) return;
      const std::size_t lo = block_begin(es, nb, b0), hi = block_begin(es, nb, b1);
      const auto run = [&](auto fixed) {
        accumulate_slab_octets<decltype(fixed)::value, WithAbs, writes>(x.data(), slab_at, r.extent, lo, hi, pre,
                                                                        sq.data(), ab.data(), zeros.data());
      };
      // 3x3 and 5x5 kernels copy their runs as fixed-size blocks.
      if (r.extent == 9)
        run(std::integral_constant<std::size_t, 9>{});
      else if (r.extent == 25)
        run(std::integral_constant<std::size_t, 25>{});
      else
        run(std::integral_constant<std::size_t, 0>{});
    });
  } else if (slab_rows) {
    for_each_thread_share(nb, parallel, [&](std::size_t b0, std::size_t b1) {
      if (b0 >= b1) return;
      const std::size_t lo = block_begin(es, nb, b0), hi = block_begin(es, nb, b1);
      const std::size_t len = r.extent;
      // Column k of a tile of `tile` rows is one vector loop over the tile's consecutive groups,
      // reading x with stride len (gathers); the zero counts of the tile stay 32-bit meanwhile.
      constexpr std::size_t tile = 256;
      lane_block<T> lb(b0, b1, nb);
      const std::size_t mw = hi - lo;
      for_each_run(p, split, lo, lo + 1, [&](const run_position& pos) {
        lb.hold(pos.group, 1, mw, sq.data(), lane_ab, zeros.data(), seen.data(), at);
        if constexpr (writes) lb.reserve_counts(len, zeros.data());
        const T* xs = x.data() + pos.offset_a;  // row lo of the slab; rows are len apart
        const std::size_t first = lb.seen;
        for (std::size_t i0 = lo; i0 < hi; i0 += tile) {
          const std::size_t m = std::min(tile, hi - i0);
          const T* xt = xs + (i0 - lo) * len;
          std::uint32_t zt[tile] = {};
          for (std::size_t k = 0; k < len; ++k) {
            const std::size_t lane = (first + k) & (lanes - 1);
            T* sql = lb.sq + lane * lb.lane_stride + (i0 - lo);  // groups are consecutive: stride 1
            T* abl = WithAbs ? lb.ab + lane * lb.lane_stride + (i0 - lo) : nullptr;
            const T* xk = xt + k;
            for (std::size_t i = 0; i < m; ++i) {
              const T v = pre(xk[i * len]);
              sql[i] = add_square(sql[i], v);
              if constexpr (WithAbs) abl[i] += std::fabs(v);
              if constexpr (writes) zt[i] += (v == T(0));  // only a prox reports zeros
            }
          }
          for (std::size_t i = 0; i < m; ++i) lb.zeros[i0 - lo + i] += zt[i];
        }
        lb.seen += len;
      });
      lb.store(sq.data(), lane_ab, zeros.data(), seen.data(), at);
    });
  } else {
  // Row by row: each run continues its group's lanes.
  for_each_thread_share(nb, parallel, [&](std::size_t b0, std::size_t b1) {
    lane_block<T> lb(b0, b1, nb);  // runs crossing groups: the groups of the current row
    // Contiguous runs crossing consecutive groups wait here, up to 64, while they cover the same
    // groups; then the lanes take them eight at a time (accumulate_crossing_runs).
    const bool batched = crossing && r.stride_a == 1 && r.group_stride == 1;
    const T* batch[lanes * 8];
    std::size_t batch_n = 0;
    const auto flush = [&] {
      if (batch_n == 0) return;
      if constexpr (writes) lb.reserve_counts(batch_n, zeros.data());
      accumulate_crossing_runs<WithAbs, writes>(batch, batch_n, lb.seen, lb.m, pre, lb.sq, lb.ab, lb.lane_stride,
                                                lb.zeros);
      lb.seen += batch_n;
      batch_n = 0;
    };
    bs.walk(p, b0, b1, [&](const run_position& pos, std::size_t lo, std::size_t hi) {
      const T* xp = x.data() + pos.offset_a;
      if (staged_runs) {
        const std::size_t g = pos.group;
        T* st = stage.data() + g * stage_len + staged[g];
        with_unit_strides(r.stride_a, 1, [&](auto sx, auto) {
          for (std::size_t k = 0; k < r.extent; ++k) st[k] = xp[static_cast<std::ptrdiff_t>(k) * sx];
        });
        staged[g] += r.extent;
        if (staged[g] == stage_len) {
          // A full stage starts at lane 0 (seen[g] is a multiple of stage_len) and is whole blocks.
          zeros[g] += accumulate_blocks(stage.data() + g * stage_len, stage_len / lanes, pre, sq.data() + at(0, g),
                                        ab.data() + at(0, g));
          seen[g] += stage_len;
          staged[g] = 0;
        }
      } else if (short_runs) {
        // A short run inside one group: update the group's lanes in the workspace element by
        // element. Copying the lanes out and back in as vectors around a few scalar updates
        // costs a failed store-to-load forward each way.
        const std::size_t g = pos.group;
        T* sqg = sq.data() + at(0, g);
        T* abg = ab.data() + at(0, g);
        const std::size_t first = seen[g];
        std::size_t z = 0;
        for (std::size_t k = 0; k < r.extent; ++k) {
          const T u = pre(xp[static_cast<std::ptrdiff_t>(k) * r.stride_a]);
          const std::size_t lane = (first + k) & (lanes - 1);
          sqg[lane] = add_square(sqg[lane], u);
          abg[lane] += std::fabs(u);
          z += (u == T(0));
        }
        zeros[g] += z;
        seen[g] += r.extent;
      } else if (!crossing) {
        // The run lies inside one group: continue that group's lanes.
        const std::size_t g = pos.group;
        zeros[g] +=
            accumulate_run_into(xp, r.stride_a, r.extent, seen[g], pre, sq.data() + at(0, g), ab.data() + at(0, g));
        seen[g] += r.extent;
      } else {
        // The run crosses groups, one element each, all of them seen equally often so far: one
        // lane of each, updated as one vector loop over consecutive groups.
        const std::size_t g0 = pos.group + lo * r.group_stride;
        const std::size_t mw = hi - lo;
        // The waiting runs cross the groups the block holds: taken before it moves on.
        if (batched && (g0 != lb.g0 || mw != lb.m)) flush();
        // Every run over these groups starts at g0.
        lb.hold(g0, r.group_stride, mw, sq.data(), lane_ab, zeros.data(), seen.data(), at);
        if (batched) {
          batch[batch_n++] = xp + static_cast<std::ptrdiff_t>(lo);
          if (batch_n == lanes * 8) flush();
          return;
        }
        if constexpr (writes) lb.reserve_counts(1, zeros.data());
        const std::size_t lane = lb.seen & (lanes - 1);
        lb.seen += 1;
        const T* xr = xp + static_cast<std::ptrdiff_t>(lo) * r.stride_a;
        T* sql = lb.sq + lane * lb.lane_stride;
        T* abl = WithAbs ? lb.ab + lane * lb.lane_stride : nullptr;
        std::uint32_t* zl = lb.zeros;  // contiguous, whatever the group stride
        with_unit_strides(r.stride_a, static_cast<std::ptrdiff_t>(lb.group_stride), [&](auto sx, auto sg) {
          for (std::size_t k = 0; k < mw; ++k) {
            const auto i = static_cast<std::ptrdiff_t>(k);
            const T u = pre(xr[i * sx]);
            sql[i * sg] = add_square(sql[i * sg], u);
            if constexpr (WithAbs) abl[i * sg] += std::fabs(u);
            if constexpr (writes) zl[i] += (u == T(0));  // only a prox reports zeros
          }
        });
      }
    });
    flush();
    lb.store(sq.data(), lane_ab, zeros.data(), seen.data(), at);
  });
  }  // slab_rows

  sweep_totals parts[max_blocks];
  const std::size_t nbg = block_count(G);
  // Lane-major lanes (no staged runs there) are combined a block of groups at a time first.
  std::vector<T> csq(lane_major ? G : 0), cab(lane_major && WithAbs ? G : 0);
  SPARSEREG_PRAGMA_OMP_FOR
  for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nbg); ++b) {
    sweep_totals t;
    const std::size_t g0 = block_begin(G, nbg, static_cast<std::size_t>(b));
    const std::size_t g1 = block_begin(G, nbg, static_cast<std::size_t>(b) + 1);
    if (lane_major) {
      combine_lane_rows(sq.data() + g0, G, g1 - g0, csq.data() + g0);
      if constexpr (WithAbs) combine_lane_rows(ab.data() + g0, G, g1 - g0, cab.data() + g0);
    }
    for (std::size_t g = g0; g < g1; ++g) {
      if (staged_runs && staged[g] > 0) flush_stage(g, staged[g]);
      const auto d = lane_major ? decide_combined<WithAbs>(decide, g, group_size, csq[g], WithAbs ? cab[g] : T(0),
                                                           zeros[g], t)
                                : decide_group<WithAbs>(decide, g, group_size, sq.data() + at(0, g),
                                                        WithAbs ? ab.data() + at(0, g) : nullptr, at(1, g) - at(0, g),
                                                        zeros[g], t);
      if constexpr (writes) factor[g] = d.factor;
    }
    parts[b] = t;
  }

  if constexpr (writes) apply_group_factors(p, bs, x, out, factor.data(), apply);
  return sum_blocks(parts, nbg);
}

/// Passed to a per-element-step prox whose caller has already run require_valid_steps on the
/// same steps (the regularizer checks every parameter before its first write): the prox then
/// skips that full read of the steps.
struct steps_already_checked_t {
  explicit constexpr steps_already_checked_t() = default;
};
inline constexpr steps_already_checked_t steps_already_checked{};

/// Throws std::invalid_argument naming the first per-element step that is negative, NaN or infinite.
template <class T>
void require_valid_steps(const char* where, const view<const T>& steps) {
  const auto bad = elementwise_sweep(steps, steps, steps, [](const T* s, std::ptrdiff_t ss, const T*, std::ptrdiff_t,
                                                              const T*, std::ptrdiff_t, std::size_t n) {
    sweep_totals t;
    with_unit_strides(ss, 1, [&](auto su, auto) {
      // Any element flagged is enough (the slow search below names it); written without && so
      // the loop is a vector compare and or.
      std::uint32_t good = 1;
      for (std::size_t i = 0; i < n; ++i) {
        const T v = s[static_cast<std::ptrdiff_t>(i) * su];
        good &= static_cast<std::uint32_t>(v >= T(0)) & static_cast<std::uint32_t>(v <= std::numeric_limits<T>::max());
      }
      t.zero_elements = 1 - good;
    });
    return t;
  });
  if (bad.zero_elements == 0) return;
  for (std::size_t f = 0; f < steps.size(); ++f) {
    const T v = steps.data()[steps.offset_of_flat(f)];
    if (!(v >= T(0) && v <= std::numeric_limits<T>::max()))
      throw_argument(where, "steps[" + std::to_string(f) + "] (row-major index) must be finite and >= 0, got " +
                                number_text(static_cast<double>(v)));
  }
}

}  // namespace detail
}  // namespace sparsereg
