// Per-element steps for group_lasso and sparse_group_lasso: the exact prox in the diagonal metric
// of Adam-like optimizers.
//
// After an Adam step w <- w - lr * m / (sqrt(v) + eps) the natural proximal step is taken in the
// same metric, D = diag(d), d_i = lr / (sqrt(v_i) + eps):
//   y = argmin_z  R(z) + sum_i (z_i - x_i)^2 / (2 d_i).
// For separable penalties that is the per-element prox already offered by prox(p, x, y, steps).
// For the sparse group lasso R = lambda_1 ||z||_1 + sum_g tau_g ||z_g||, tau_g = lambda_group c_g,
// the optimality conditions per element are
//   (z_i - x_i) / d_i + lambda_1 s_i + tau_g z_i / ||z_g|| = 0,  s_i in sign(z_i)
// which give (derivation in docs/math.md):
//   u_i = soft_threshold(x_i, d_i lambda_1)                  (the l1 part still decouples)
//   group zero  iff  sum_i (u_i / d_i)^2 <= tau_g^2          (0 is in the subdifferential)
//   otherwise   z_i = u_i * r / (r + d_i tau_g),  where r = ||z_g|| > 0 is the unique root of
//               F(r) = sum_i u_i^2 / (r + d_i tau_g)^2 - 1.
// F is decreasing and convex on r > 0, with r in [max(0, ||u|| - d_max tau_g), ||u||]; Newton's
// method started from the left end of that bracket increases monotonically to the root (a convex
// decreasing function lies above its tangents), and we safeguard it by bisection. With equal
// steps d_i = s the root is r = ||u|| - s tau_g and this reduces to the closed-form scalar prox.
//
// Choice documented: we compute this exact prox rather than the cheaper approximation "scalar
// prox with the group's mean step", which is not a prox in any fixed metric (it shrinks elements
// with small d_i too much and large d_i too little) and so does not give the proximal-gradient
// guarantees in Adam's metric.
//
// Cost: one pass writing u (with the statistics), one pass per Newton iteration (typically 3 to
// 6 to reach double rounding, at most 100), one final writing pass. The tensor is cut into blocks
// of about 32K elements that own whole groups (along the outermost axis that carries the group
// index); all passes of a block run while it is in cache, the groups of a block in lockstep, and
// blocks are shared between OpenMP threads. Sums over a run of one group use 8 double lanes
// (vector kernels for contiguous floats: AVX-512 where enabled, GNU vector types otherwise with
// GCC or Clang), runs that cross groups update each group's sums in place (vector kernels too,
// one group per lane), so for a given build the result depends on nothing but the inputs:
// not on the blocks or the thread count (tests/threads/properties_omp.cpp). The workspace is a
// few doubles per group.
//
// Elements with d_i = 0 cannot move (infinite weight in the metric): if such an element has
// u_i != 0 its group is never zero, and it keeps z_i = u_i = x_i. NaN in a group makes the group
// NaN, as for the scalar prox.
#pragma once

#include <algorithm>  // std::max
#include <array>      // std::array
#include <cmath>      // std::sqrt, std::fabs, std::isnan, std::isfinite
#include <cstddef>    // std::size_t, std::ptrdiff_t
#include <cstdint>    // std::int32_t, std::int64_t
#include <cstring>    // std::memcpy
#include <limits>     // std::numeric_limits
#include <type_traits>  // std::is_same_v
#include <vector>     // std::vector

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#endif

#include "../detail/runs.hpp"
#include "../detail/sweep.hpp"
#include "../groups.hpp"
#include "../penalty.hpp"
#include "group_lasso.hpp"
#include "sparse_group_lasso.hpp"

namespace sparsereg {
namespace detail {

/// Per-group workspace of the per-element-step prox, one entry per group. Structure of arrays:
/// a run that crosses groups (a row of a matrix grouped by columns) updates neighbouring entries.
struct element_step_work {
  std::vector<double> uu, scaled, dmax, tau, lo, hi, r, fv, fd, zz, zabs;
  std::vector<std::size_t> size, zeros;
  std::vector<unsigned char> state;  // 0 = solving, 1 = root found, 2 = zero, 3 = no shrink, 4 = NaN
  explicit element_step_work(std::size_t g)
      : uu(g), scaled(g), dmax(g), tau(g), lo(g), hi(g), r(g), fv(g), fd(g), zz(g), zabs(g), size(g), zeros(g),
        state(g) {}
};

/// Runs inside one group accumulate in this many double lanes (element j of a run in lane j mod
/// es_lanes), combined by es_total in a fixed tree: vector code without reassociation, and a
/// result that depends only on the run's values and length.
inline constexpr std::size_t es_lanes = 8;
inline double es_total(const double* a) noexcept {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/// Calls one(i, lane) for i < n, lane = i mod es_lanes.
template <class One>
inline void es_lane_loop(std::size_t n, One&& one) {
  std::size_t j = 0;
  for (; j + es_lanes <= n; j += es_lanes)
    for (std::size_t l = 0; l < es_lanes; ++l) one(j + l, l);
  for (std::size_t l = 0; j < n; ++j, ++l) one(j, l);
}

// What one element contributes to each pass (u = the soft-thresholded weight, dd its step).
inline double es_scaled_square(double u, double dd) noexcept {
  // ||u / d||^2 with 0/0 -> 0 and u/0 -> inf.
  const double q = dd > 0.0 ? (u / dd) * (u / dd) : std::numeric_limits<double>::infinity();
  return u != 0.0 ? q : 0.0;
}
/// Adds u^2 / q^2 to fv and u^2 / q^3 to fd, q = r + d tau. u = 0 contributes 0 (selected, not
/// branched: l1 zeroes elements at random; the select also drops the NaN of 0 * inf when r = 0
/// and d = 0).
inline void es_newton_terms(double u, double dd, double r, double tau, double& fv, double& fd) noexcept {
  const double inv = 1.0 / (r + dd * tau);
  const double t2 = u != 0.0 ? (u * inv) * (u * inv) : 0.0;
  fv += t2;
  fd += u != 0.0 ? t2 * inv : 0.0;
}
/// The prox's output for an element of a group in `state` (see element_step_work).
template <class T>
inline T es_output(T u, T dv, unsigned char state, double r, double tau) noexcept {
  switch (state) {
    case 2: return u * T(0);  // the signed zero of the scalar prox's pre(x) * 0 (-0.0 stays)
    case 4: return std::numeric_limits<T>::quiet_NaN();
    case 3: return u;
    default: return static_cast<T>(static_cast<double>(u) * r / (r + static_cast<double>(dv) * tau));
  }
}

/// Runs shorter than this go element by element into the group's sums: one lane block with the
/// AVX-512 kernels (the input channels of a 3x3 conv, runs of 9, take them), two otherwise (the
/// generic kernels' partial halves cost more than they save on runs of 9: 0.6 against 1.45 GB/s).
#if defined(__AVX512F__) && defined(__AVX512DQ__)
inline constexpr std::size_t es_min_lane_run = es_lanes;
#else
inline constexpr std::size_t es_min_lane_run = 2 * es_lanes;
#endif

#if defined(__AVX512F__) && defined(__AVX512DQ__)
// Vector forms of the three lane loops for contiguous float runs: vector lane l is lane l of the
// scalar loops (8 doubles per register), with the same operations per element, the last partial
// block through masked loads (inactive lanes load 0 and add +0.0 to sums that are >= +0.0, so
// they change no bit), and the lanes combined in registers in es_total's tree.
//
// Zero-masked forms with full masks: the unmasked conversions, max and permutes trip GCC 12's
// -Wmaybe-uninitialized inside its own headers (their undefined pass-through operand).
inline constexpr __mmask8 es_all = 0xff;
inline __m512d es_widen(__m256 v) noexcept { return _mm512_maskz_cvtps_pd(es_all, v); }
inline __m256 es_narrow(__m512d v) noexcept { return _mm512_maskz_cvtpd_ps(es_all, v); }
inline __m256 es_low_half(__m512 v) noexcept {
  return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, _mm512_castps_pd(v), 0));
}
/// Elements j..j+7 of p, or only the first `count` of them (the rest 0) when count < 8.
inline __m256 es_load(const float* p, std::size_t count) noexcept {
  if (count >= es_lanes) return _mm256_loadu_ps(p);
  const auto m = static_cast<__mmask16>((1u << count) - 1u);
  return es_low_half(_mm512_maskz_loadu_ps(m, p));
}
inline void es_store(float* p, __m256 v, std::size_t count) noexcept {
  if (count >= es_lanes) return _mm256_storeu_ps(p, v);
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1u), _mm512_castps256_ps512(v));
}
/// es_total of the 8 lanes: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), the same tree.
inline double es_total(__m512d a) noexcept {
  const __m512d s1 = _mm512_add_pd(a, _mm512_maskz_permute_pd(es_all, a, 0x55));  // pairs swapped
  const __m512d s2 = _mm512_add_pd(s1, _mm512_maskz_shuffle_f64x2(es_all, s1, s1, _MM_SHUFFLE(2, 3, 0, 1)));
  const __m512d s3 = _mm512_add_pd(s2, _mm512_maskz_shuffle_f64x2(es_all, s2, s2, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_cvtsd_f64(s3);
}
/// The largest lane (no NaN: the steps are checked; order does not matter for a maximum).
inline double es_max(__m512d a) noexcept {
  alignas(64) double l[es_lanes];
  _mm512_store_pd(l, a);
  double m = l[0];
  for (std::size_t i = 1; i < es_lanes; ++i) m = l[i] > m ? l[i] : m;
  return m;
}
/// soft_threshold_select(x, d * l1) of 8 floats: copysign(|x| - t < 0 ? 0 : |x| - t, x), NaN kept.
inline __m256 es_threshold(__m256 xv, __m256 dv, __m256 vl1) noexcept {
  const __m256 zf = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
  __m256 t = _mm256_sub_ps(_mm256_andnot_ps(sign, xv), _mm256_mul_ps(dv, vl1));
  t = _mm256_blendv_ps(t, zf, _mm256_cmp_ps(t, zf, _CMP_LT_OQ));
  return _mm256_or_ps(_mm256_andnot_ps(sign, t), _mm256_and_ps(sign, xv));
}
/// es_scaled_square of 8 lanes.
inline __m512d es_scaled_square(__m512d u, __m512d dd) noexcept {
  const __m512d zero = _mm512_setzero_pd(), inf = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  const __m512d ratio = _mm512_div_pd(u, dd);
  const __m512d q = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(dd, zero, _CMP_GT_OQ), inf, _mm512_mul_pd(ratio, ratio));
  return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(u, zero, _CMP_NEQ_UQ), q);
}
/// Pass 1 on elements j..j+count-1 (count <= 8): u = the soft threshold of src, stored to y;
/// u and d in double (0 in lanes past count).
inline void es_pass1(const float* src, float* y, const float* d, std::size_t count, __m256 vl1, __m512d& u,
                     __m512d& dd) noexcept {
  const __m256 dv = es_load(d, count);
  const __m256 uv = es_threshold(es_load(src, count), dv, vl1);
  es_store(y, uv, count);
  u = es_widen(uv);
  dd = es_widen(dv);
}
/// Calls body(j, count) for the blocks of 8 of a run of n and its last partial block.
template <class Body>
inline void es_blocks(std::size_t n, Body&& body) {
  std::size_t j = 0;
  for (; j + es_lanes <= n; j += es_lanes) body(j, es_lanes);
  if (j < n) body(j, n - j);
}
/// Pass 1 of a run of one group: totals of u^2 and (u / d)^2, and max d.
inline void es_stats_vec(const float* src, float* y, const float* d, std::size_t n, float l1, double& uu,
                            double& scaled, double& dmax) noexcept {
  const __m256 vl1 = _mm256_set1_ps(l1);
  __m512d va = _mm512_setzero_pd(), vb = va, vm = va;
  es_blocks(n, [&](std::size_t j, std::size_t count) {
    __m512d u, dd;
    es_pass1(src + j, y + j, d + j, count, vl1, u, dd);
    va = _mm512_add_pd(va, _mm512_mul_pd(u, u));
    vb = _mm512_add_pd(vb, es_scaled_square(u, dd));
    vm = _mm512_maskz_max_pd(es_all, dd, vm);  // dd > m ? dd : m (no NaN here; equal zeros keep m)
  });
  uu = es_total(va);
  scaled = es_total(vb);
  dmax = es_max(vm);
}
/// A Newton pass over a run of one group: totals of u^2 / q^2 and u^2 / q^3, q = r + d tau.
inline void es_newton_vec(const float* y, const float* d, std::size_t n, double r, double tau, double& fv,
                             double& fd) noexcept {
  const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0), vr = _mm512_set1_pd(r), vt = _mm512_set1_pd(tau);
  __m512d va = zero, vb = zero;
  es_blocks(n, [&](std::size_t j, std::size_t count) {
    const __m512d u = es_widen(es_load(y + j, count)), dd = es_widen(es_load(d + j, count));
    const __m512d inv = _mm512_div_pd(one, _mm512_add_pd(vr, _mm512_mul_pd(dd, vt)));
    const __m512d ui = _mm512_mul_pd(u, inv);
    const __mmask8 nz = _mm512_cmp_pd_mask(u, zero, _CMP_NEQ_UQ);
    const __m512d t2 = _mm512_maskz_mov_pd(nz, _mm512_mul_pd(ui, ui));
    va = _mm512_add_pd(va, t2);
    vb = _mm512_add_pd(vb, _mm512_maskz_mov_pd(nz, _mm512_mul_pd(t2, inv)));
  });
  fv = es_total(va);
  fd = es_total(vb);
}
/// The final pass over a run of a group being shrunk (es_output's default case): totals of z^2,
/// |z| and the zeros.
inline void es_final_vec(float* y, const float* d, std::size_t n, double r, double tau, double& zz, double& zabs,
                            std::size_t& zeros) noexcept {
  const __m512d zero = _mm512_setzero_pd(), vr = _mm512_set1_pd(r), vt = _mm512_set1_pd(tau);
  const __m512d abs_mask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));
  __m512d va = zero, vb = zero;
  es_blocks(n, [&](std::size_t j, std::size_t count) {
    const __m512d u = es_widen(es_load(y + j, count)), dd = es_widen(es_load(d + j, count));
    const __m256 z = es_narrow(_mm512_div_pd(_mm512_mul_pd(u, vr), _mm512_add_pd(vr, _mm512_mul_pd(dd, vt))));
    es_store(y + j, z, count);
    const __m512d zd = es_widen(z);
    va = _mm512_add_pd(va, _mm512_mul_pd(zd, zd));
    vb = _mm512_add_pd(vb, _mm512_and_pd(zd, abs_mask));
    const auto live = static_cast<__mmask8>((1u << count) - 1u);  // count <= 8
    zeros += static_cast<std::size_t>(__builtin_popcount(_mm512_mask_cmp_pd_mask(live, zd, zero, _CMP_EQ_OQ)));
  });
  zz = es_total(va);
  zabs = es_total(vb);
}

// The same passes for contiguous float runs that cross groups (gs = 1: element j of the run
// belongs to group g0 + j, a row of a matrix grouped by columns): lane l serves its own group,
// whose sums live at index j + l of the arrays, so no order changes; same operations per element
// as the scalar loops. Each returns how many elements it did.
inline std::size_t es_stats_cross_vec(const float* src, float* y, const float* d, std::size_t n, float l1,
                                         double* uu, double* scaled, double* dmax) noexcept {
  const __m256 vl1 = _mm256_set1_ps(l1);
  __m512d u, dd;
  std::size_t j = 0;
  for (; j + es_lanes <= n; j += es_lanes) {
    es_pass1(src + j, y + j, d + j, es_lanes, vl1, u, dd);
    _mm512_storeu_pd(uu + j, _mm512_add_pd(_mm512_loadu_pd(uu + j), _mm512_mul_pd(u, u)));
    _mm512_storeu_pd(scaled + j, _mm512_add_pd(_mm512_loadu_pd(scaled + j), es_scaled_square(u, dd)));
    _mm512_storeu_pd(dmax + j, _mm512_maskz_max_pd(es_all, dd, _mm512_loadu_pd(dmax + j)));
  }
  return j;
}
/// The states of 8 groups, as 64-bit lanes.
inline __m512i es_states(const unsigned char* state) noexcept {
  return _mm512_maskz_cvtepu8_epi64(es_all, _mm_loadl_epi64(reinterpret_cast<const __m128i*>(state)));
}
inline std::size_t es_newton_cross_vec(const float* y, const float* d, std::size_t n, const double* r,
                                          const double* tau, const unsigned char* state, double* fv,
                                          double* fd) noexcept {
  const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
  std::size_t j = 0;
  for (; j + es_lanes <= n; j += es_lanes) {
    const __mmask8 solving = _mm512_cmpeq_epi64_mask(es_states(state + j), _mm512_setzero_si512());
    if (solving == 0) continue;  // converged groups are not even read
    const __m512d u = es_widen(_mm256_loadu_ps(y + j)), dd = es_widen(_mm256_loadu_ps(d + j));
    const __m512d q = _mm512_add_pd(_mm512_loadu_pd(r + j), _mm512_mul_pd(dd, _mm512_loadu_pd(tau + j)));
    const __m512d inv = _mm512_div_pd(one, q);
    const __m512d ui = _mm512_mul_pd(u, inv);
    const __mmask8 nz = _mm512_cmp_pd_mask(u, zero, _CMP_NEQ_UQ);
    const __m512d t2 = _mm512_maskz_mov_pd(nz, _mm512_mul_pd(ui, ui));
    const __m512d f0 = _mm512_loadu_pd(fv + j), d0 = _mm512_loadu_pd(fd + j);
    _mm512_storeu_pd(fv + j, _mm512_mask_add_pd(f0, solving, f0, t2));
    _mm512_storeu_pd(fd + j, _mm512_mask_add_pd(d0, solving, d0, _mm512_maskz_mov_pd(nz, _mm512_mul_pd(t2, inv))));
  }
  return j;
}
inline std::size_t es_final_cross_vec(float* y, const float* d, std::size_t n, const double* r, const double* tau,
                                         const unsigned char* state, double* zz, double* zabs,
                                         std::size_t* zeros) noexcept {
  static_assert(sizeof(std::size_t) == 8, "zero counts are added as 64-bit lanes");
  const __m512d zero = _mm512_setzero_pd(), nan = _mm512_set1_pd(std::numeric_limits<double>::quiet_NaN());
  const __m512d abs_mask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));
  const __m512i one = _mm512_set1_epi64(1);
  std::size_t j = 0;
  for (; j + es_lanes <= n; j += es_lanes) {
    const __m512i st = es_states(state + j);
    const __m512d u = es_widen(_mm256_loadu_ps(y + j)), dd = es_widen(_mm256_loadu_ps(d + j));
    const __m512d vr = _mm512_loadu_pd(r + j);
    // es_output in double, narrowed once: every case but the shrink is exact there (u, u * 0,
    // the NaN), and the shrink is the scalar form's double expression.
    __m512d z = _mm512_div_pd(_mm512_mul_pd(u, vr), _mm512_add_pd(vr, _mm512_mul_pd(dd, _mm512_loadu_pd(tau + j))));
    z = _mm512_mask_blend_pd(_mm512_cmpeq_epi64_mask(st, _mm512_set1_epi64(2)), z, _mm512_mul_pd(u, zero));
    z = _mm512_mask_blend_pd(_mm512_cmpeq_epi64_mask(st, _mm512_set1_epi64(3)), z, u);
    z = _mm512_mask_blend_pd(_mm512_cmpeq_epi64_mask(st, _mm512_set1_epi64(4)), z, nan);
    const __m256 zf = es_narrow(z);
    _mm256_storeu_ps(y + j, zf);
    const __m512d zd = es_widen(zf);
    _mm512_storeu_pd(zz + j, _mm512_add_pd(_mm512_loadu_pd(zz + j), _mm512_mul_pd(zd, zd)));
    _mm512_storeu_pd(zabs + j, _mm512_add_pd(_mm512_loadu_pd(zabs + j), _mm512_and_pd(zd, abs_mask)));
    const __m512i z0 = _mm512_loadu_si512(zeros + j);
    _mm512_storeu_si512(zeros + j, _mm512_mask_add_epi64(z0, _mm512_cmp_pd_mask(zd, zero, _CMP_EQ_OQ), z0, one));
  }
  return j;
}
#define SPARSEREG_ES_VECTOR 1
#elif defined(__GNUC__)
// Without AVX-512: the same six kernels in GNU vector types of 4 doubles (GCC, Clang), two per
// block of 8 (lanes 0-3 and 4-7), which the compiler lowers to what the target has (one AVX2
// register each, two SSE2 ones, NEON). Lane l is lane l of the scalar loops, with the same
// operations per element; the partial last block is copied through zeroed vectors (inactive
// lanes add +0.0 to sums >= +0.0: no bit changes). (8-double vectors were tried: GCC 12 lowers
// them to AVX2 through the stack, slower than the scalar lanes.) Vectors are locals only: no
// function takes or returns one by value, whose calling convention would depend on the
// translation unit's target flags, hence the macros and reference parameters.
typedef double es_v4d __attribute__((vector_size(32)));
typedef float es_v4f __attribute__((vector_size(16)));
typedef std::int64_t es_v4l __attribute__((vector_size(32)));
typedef std::int32_t es_v4i __attribute__((vector_size(16)));
typedef unsigned char es_v4b __attribute__((vector_size(4)));
inline constexpr std::size_t es_half = 4;
// m ? a : b per lane, m from a comparison of doubles (all ones or all zeros).
#define SPARSEREG_ES_SELECT(m, a, b) ((es_v4d)((((es_v4l)(a)) & (m)) | (((es_v4l)(b)) & ~(m))))
#define SPARSEREG_ES_WIDEN(v) __builtin_convertvector((v), es_v4d)

/// Elements [0, count) of p (count may exceed 4: then 4), the rest 0.
inline void es_load(es_v4f& v, const float* p, std::size_t count) noexcept {
  v = es_v4f{};
  if (count >= es_half) std::memcpy(&v, p, sizeof v);
  else
    for (std::size_t i = 0; i < count; ++i) v[i] = p[i];
}
inline void es_store(float* p, const es_v4f& v, std::size_t count) noexcept {
  if (count >= es_half) std::memcpy(p, &v, sizeof v);
  else
    for (std::size_t i = 0; i < count; ++i) p[i] = v[i];
}
inline void es_loadd(es_v4d& v, const double* p) noexcept { std::memcpy(&v, p, sizeof v); }
inline void es_stored(double* p, const es_v4d& v) noexcept { std::memcpy(p, &v, sizeof v); }
/// es_total's tree over lanes 0-3 (lo) and 4-7 (hi).
inline double es_total(const es_v4d* h) noexcept {
  return ((h[0][0] + h[0][1]) + (h[0][2] + h[0][3])) + ((h[1][0] + h[1][1]) + (h[1][2] + h[1][3]));
}
inline double es_max(const es_v4d* h) noexcept {
  double m = h[0][0];
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t i = 0; i < es_half; ++i) m = h[k][i] > m ? h[k][i] : m;
  return m;
}
/// |v| per lane (the sign bit cleared), added to acc.
inline void es_add_abs(es_v4d& acc, const es_v4d& v) noexcept {
  acc += (es_v4d)((es_v4l)v & (es_v4l{} + std::numeric_limits<std::int64_t>::max()));
}
/// u = soft_threshold_select(x, d * l1): copysign(|x| - t < 0 ? 0 : |x| - t, x), NaN kept.
inline void es_threshold(es_v4f& u, const es_v4f& xv, const es_v4f& dv, float l1) noexcept {
  const es_v4i sign = es_v4i{} + std::numeric_limits<std::int32_t>::min();
  const es_v4i xi = (es_v4i)xv;
  const es_v4f t = (es_v4f)(xi & ~sign) - dv * l1;
  const es_v4i ti = (es_v4i)t & ~(t < es_v4f{});
  u = (es_v4f)((ti & ~sign) | (xi & sign));
}
/// acc += es_scaled_square per lane.
inline void es_add_scaled_square(es_v4d& acc, const es_v4d& u, const es_v4d& dd) noexcept {
  const es_v4d ratio = u / dd;
  const es_v4d inf = es_v4d{} + std::numeric_limits<double>::infinity();
  const es_v4d q = SPARSEREG_ES_SELECT(dd > es_v4d{}, ratio * ratio, inf);
  acc += SPARSEREG_ES_SELECT(u != es_v4d{}, q, es_v4d{});
}
/// Lanes whose group is in state s (all ones) or not (zeros).
inline void es_state_is(es_v4l& m, const unsigned char* state, unsigned char s) noexcept {
  es_v4b b;
  std::memcpy(&b, state, sizeof b);
  m = __builtin_convertvector(b, es_v4l) == (es_v4l{} + s);
}
/// Calls body(j, count, h) for the halves of the blocks of 8 of a run of n (h = 0: lanes 0-3,
/// h = 1: lanes 4-7), count elements from j (count < 4 only in the last one, never 0).
template <class Body>
inline void es_halves(std::size_t n, Body&& body) {
  for (std::size_t j = 0; j < n; j += es_half) body(j, n - j, (j / es_half) % 2);
}
/// Pass 1 on min(count, 4) elements: u stored to y; u and d in double.
inline void es_pass1(const float* src, float* y, const float* d, std::size_t count, float l1, es_v4d& u,
                     es_v4d& dd) noexcept {
  es_v4f xv, dv, uv;
  es_load(dv, d, count);
  es_load(xv, src, count);
  es_threshold(uv, xv, dv, l1);
  es_store(y, uv, count);
  u = SPARSEREG_ES_WIDEN(uv);
  dd = SPARSEREG_ES_WIDEN(dv);
}
/// u and d of min(count, 4) elements, in double.
inline void es_load_ud(es_v4d& u, es_v4d& dd, const float* y, const float* d, std::size_t count) noexcept {
  es_v4f yv, dv;
  es_load(yv, y, count);
  es_load(dv, d, count);
  u = SPARSEREG_ES_WIDEN(yv);
  dd = SPARSEREG_ES_WIDEN(dv);
}
inline void es_stats_vec(const float* src, float* y, const float* d, std::size_t n, float l1, double& uu,
                         double& scaled, double& dmax) noexcept {
  es_v4d va[2] = {}, vb[2] = {}, vm[2] = {};
  es_halves(n, [&](std::size_t j, std::size_t count, std::size_t h) {
    es_v4d u, dd;
    es_pass1(src + j, y + j, d + j, count, l1, u, dd);
    va[h] += u * u;
    es_add_scaled_square(vb[h], u, dd);
    vm[h] = SPARSEREG_ES_SELECT(dd > vm[h], dd, vm[h]);
  });
  uu = es_total(va);
  scaled = es_total(vb);
  dmax = es_max(vm);
}
inline void es_newton_vec(const float* y, const float* d, std::size_t n, double r, double tau, double& fv,
                          double& fd) noexcept {
  es_v4d va[2] = {}, vb[2] = {};
  es_halves(n, [&](std::size_t j, std::size_t count, std::size_t h) {
    es_v4d u, dd;
    es_load_ud(u, dd, y + j, d + j, count);
    const es_v4d inv = 1.0 / (r + dd * tau);
    const es_v4l nz = u != es_v4d{};
    const es_v4d t2 = SPARSEREG_ES_SELECT(nz, (u * inv) * (u * inv), es_v4d{});
    va[h] += t2;
    vb[h] += SPARSEREG_ES_SELECT(nz, t2 * inv, es_v4d{});
  });
  fv = es_total(va);
  fd = es_total(vb);
}
inline void es_final_vec(float* y, const float* d, std::size_t n, double r, double tau, double& zz, double& zabs,
                         std::size_t& zeros) noexcept {
  es_v4d va[2] = {}, vb[2] = {};
  es_halves(n, [&](std::size_t j, std::size_t count, std::size_t h) {
    es_v4d u, dd;
    es_load_ud(u, dd, y + j, d + j, count);
    const es_v4f z = __builtin_convertvector((u * r) / (r + dd * tau), es_v4f);
    es_store(y + j, z, count);
    const es_v4d zd = SPARSEREG_ES_WIDEN(z);
    va[h] += zd * zd;
    es_add_abs(vb[h], zd);
    for (std::size_t i = 0; i < es_half && i < count; ++i) zeros += (z[i] == 0.0f);
  });
  zz = es_total(va);
  zabs = es_total(vb);
}
inline std::size_t es_stats_cross_vec(const float* src, float* y, const float* d, std::size_t n, float l1, double* uu,
                                      double* scaled, double* dmax) noexcept {
  std::size_t j = 0;
  for (; j + es_half <= n; j += es_half) {
    es_v4d u, dd, a, b, m;
    es_pass1(src + j, y + j, d + j, es_half, l1, u, dd);
    es_loadd(a, uu + j);
    es_loadd(b, scaled + j);
    es_loadd(m, dmax + j);
    a += u * u;
    es_add_scaled_square(b, u, dd);
    es_stored(uu + j, a);
    es_stored(scaled + j, b);
    es_stored(dmax + j, SPARSEREG_ES_SELECT(dd > m, dd, m));
  }
  return j;
}
inline std::size_t es_newton_cross_vec(const float* y, const float* d, std::size_t n, const double* r,
                                       const double* tau, const unsigned char* state, double* fv,
                                       double* fd) noexcept {
  std::size_t j = 0;
  for (; j + es_half <= n; j += es_half) {
    es_v4l solving;
    es_state_is(solving, state + j, 0);
    es_v4d u, dd, vr, vt, f0, d0;
    es_load_ud(u, dd, y + j, d + j, es_half);
    es_loadd(vr, r + j);
    es_loadd(vt, tau + j);
    es_loadd(f0, fv + j);
    es_loadd(d0, fd + j);
    const es_v4d inv = 1.0 / (vr + dd * vt);
    const es_v4l nz = u != es_v4d{};
    const es_v4d t2 = SPARSEREG_ES_SELECT(nz, (u * inv) * (u * inv), es_v4d{});
    es_stored(fv + j, SPARSEREG_ES_SELECT(solving, f0 + t2, f0));
    es_stored(fd + j, SPARSEREG_ES_SELECT(solving, d0 + SPARSEREG_ES_SELECT(nz, t2 * inv, es_v4d{}), d0));
  }
  return j;
}
inline std::size_t es_final_cross_vec(float* y, const float* d, std::size_t n, const double* r, const double* tau,
                                      const unsigned char* state, double* zz, double* zabs,
                                      std::size_t* zeros) noexcept {
  const es_v4d nan = es_v4d{} + std::numeric_limits<double>::quiet_NaN();
  std::size_t j = 0;
  for (; j + es_half <= n; j += es_half) {
    es_v4d u, dd, vr, vt, a, b;
    es_load_ud(u, dd, y + j, d + j, es_half);
    es_loadd(vr, r + j);
    es_loadd(vt, tau + j);
    es_v4l shrunk_to_zero, kept, poisoned;
    es_state_is(shrunk_to_zero, state + j, 2);
    es_state_is(kept, state + j, 3);
    es_state_is(poisoned, state + j, 4);
    es_v4d z = (u * vr) / (vr + dd * vt);
    z = SPARSEREG_ES_SELECT(shrunk_to_zero, u * 0.0, z);
    z = SPARSEREG_ES_SELECT(kept, u, z);
    z = SPARSEREG_ES_SELECT(poisoned, nan, z);
    const es_v4f zf = __builtin_convertvector(z, es_v4f);
    es_store(y + j, zf, es_half);
    const es_v4d zd = SPARSEREG_ES_WIDEN(zf);
    es_loadd(a, zz + j);
    es_loadd(b, zabs + j);
    a += zd * zd;
    es_add_abs(b, zd);
    es_stored(zz + j, a);
    es_stored(zabs + j, b);
    for (std::size_t i = 0; i < es_half; ++i) zeros[j + i] += (zf[i] == 0.0f);
  }
  return j;
}
#undef SPARSEREG_ES_SELECT
#undef SPARSEREG_ES_WIDEN
#define SPARSEREG_ES_VECTOR 1
#endif

/// Pass 1 of a block: u = soft_threshold(src, d * l1) written to y (src may be y), and per group
/// ||u||^2, ||u / d||^2, max d and the size. A run of n elements from group g0 + j * gs.
/// Groups met for the first time are appended to `ids`.
template <class T>
void es_stats(const T* src, T* y, const T* d, std::ptrdiff_t sy, std::ptrdiff_t sd, std::size_t g0, std::size_t gs,
              std::size_t n, T l1, element_step_work& w, std::vector<std::size_t>& ids) {
  // Element k's terms added to the sums a (||u||^2), b (||u / d||^2) and m (max d).
  const auto elem = [&](std::ptrdiff_t k, std::ptrdiff_t syu, std::ptrdiff_t sdu, double& a, double& b, double& m) {
    const T dv = d[k * sdu];
    const T uv = soft_threshold_select(src[k * syu], dv * l1);
    y[k * syu] = uv;
    const double u = static_cast<double>(uv), dd = static_cast<double>(dv);
    a += u * u;
    b += es_scaled_square(u, dd);
    m = dd > m ? dd : m;
  };
  if (gs != 0) {  // every element its own group
    // Runs of a walk have all their groups in common or none (a group is one combination of
    // coordinates on the group axes), so the first one tells whether the run's groups are new.
    const bool fresh = w.size[g0] == 0;
    for (std::size_t j = 0; j < n; ++j) {
      if (fresh) ids.push_back(g0 + j * gs);
      ++w.size[g0 + j * gs];
    }
    std::size_t start = 0;
#if defined(SPARSEREG_ES_VECTOR)
    if constexpr (std::is_same_v<T, float>)
      if (gs == 1 && sy == 1 && sd == 1)
        start = es_stats_cross_vec(src, y, d, n, l1, &w.uu[g0], &w.scaled[g0], &w.dmax[g0]);
#endif
    for (std::size_t j = start; j < n; ++j) {
      const std::size_t g = g0 + j * gs;
      elem(static_cast<std::ptrdiff_t>(j), sy, sd, w.uu[g], w.scaled[g], w.dmax[g]);
    }
    return;
  }
  if (w.size[g0] == 0) ids.push_back(g0);
  w.size[g0] += n;
  if (n < es_min_lane_run) {  // in order, in registers
    double a = w.uu[g0], b = w.scaled[g0], m = w.dmax[g0];
    for (std::size_t j = 0; j < n; ++j) elem(static_cast<std::ptrdiff_t>(j), sy, sd, a, b, m);
    w.uu[g0] = a, w.scaled[g0] = b, w.dmax[g0] = m;
    return;
  }
  double ta, tb, tm;
#if defined(SPARSEREG_ES_VECTOR)
  if constexpr (std::is_same_v<T, float>)
    if (sy == 1 && sd == 1) {
      es_stats_vec(src, y, d, n, l1, ta, tb, tm);
      w.uu[g0] += ta, w.scaled[g0] += tb, w.dmax[g0] = tm > w.dmax[g0] ? tm : w.dmax[g0];
      return;
    }
#endif
  double a[es_lanes] = {}, b[es_lanes] = {}, m[es_lanes] = {};
  es_lane_loop(n, [&](std::size_t i, std::size_t l) {
    elem(static_cast<std::ptrdiff_t>(i), sy, sd, a[l], b[l], m[l]);
  });
  ta = es_total(a), tb = es_total(b), tm = 0.0;
  for (double v : m) tm = v > tm ? v : tm;
  w.uu[g0] += ta, w.scaled[g0] += tb, w.dmax[g0] = tm > w.dmax[g0] ? tm : w.dmax[g0];
}

/// One Newton pass over a run: F(r) + 1 and -F'(r) / 2 of the groups still solving.
template <class T>
void es_newton(const T* y, const T* d, std::ptrdiff_t sy, std::ptrdiff_t sd, std::size_t g0, std::size_t gs,
               std::size_t n, element_step_work& w) {
  const auto elem = [&](std::ptrdiff_t k, std::size_t g, double& a, double& b) {
    es_newton_terms(static_cast<double>(y[k * sy]), static_cast<double>(d[k * sd]), w.r[g], w.tau[g], a, b);
  };
  if (gs != 0) {
    std::size_t start = 0;
#if defined(SPARSEREG_ES_VECTOR)
    if constexpr (std::is_same_v<T, float>)
      if (gs == 1 && sy == 1 && sd == 1)
        start = es_newton_cross_vec(y, d, n, &w.r[g0], &w.tau[g0], &w.state[g0], &w.fv[g0], &w.fd[g0]);
#endif
    for (std::size_t j = start; j < n; ++j) {
      const std::size_t g = g0 + j * gs;
      if (w.state[g] == 0) elem(static_cast<std::ptrdiff_t>(j), g, w.fv[g], w.fd[g]);
    }
    return;
  }
  if (w.state[g0] != 0) return;  // converged groups are not even read
  if (n < es_min_lane_run) {  // in order, in registers
    const double r = w.r[g0], tau = w.tau[g0];
    double a = w.fv[g0], b = w.fd[g0];
    for (std::size_t j = 0; j < n; ++j) {
      const auto k = static_cast<std::ptrdiff_t>(j);
      es_newton_terms(static_cast<double>(y[k * sy]), static_cast<double>(d[k * sd]), r, tau, a, b);
    }
    w.fv[g0] = a, w.fd[g0] = b;
    return;
  }
#if defined(SPARSEREG_ES_VECTOR)
  if constexpr (std::is_same_v<T, float>)
    if (sy == 1 && sd == 1) {
      double ta, tb;
      es_newton_vec(y, d, n, w.r[g0], w.tau[g0], ta, tb);
      w.fv[g0] += ta, w.fd[g0] += tb;
      return;
    }
#endif
  double a[es_lanes] = {}, b[es_lanes] = {};
  es_lane_loop(n, [&](std::size_t i, std::size_t l) { elem(static_cast<std::ptrdiff_t>(i), g0, a[l], b[l]); });
  w.fv[g0] += es_total(a), w.fd[g0] += es_total(b);
}

/// Final pass over a run: z = es_output, written to y, and per group ||z||^2, ||z||_1, zeros.
template <class T>
void es_final(T* y, const T* d, std::ptrdiff_t sy, std::ptrdiff_t sd, std::size_t g0, std::size_t gs, std::size_t n,
              element_step_work& w) {
  const auto elem = [&](std::ptrdiff_t k, std::size_t g, double& a, double& b, std::size_t& zeros) {
    const T z = es_output(y[k * sy], d[k * sd], w.state[g], w.r[g], w.tau[g]);
    y[k * sy] = z;
    const double zd = static_cast<double>(z);
    a += zd * zd;
    b += std::fabs(zd);
    zeros += (z == T(0));
  };
  if (gs != 0) {
    std::size_t start = 0;
#if defined(SPARSEREG_ES_VECTOR)
    if constexpr (std::is_same_v<T, float>)
      if (gs == 1 && sy == 1 && sd == 1)
        start = es_final_cross_vec(y, d, n, &w.r[g0], &w.tau[g0], &w.state[g0], &w.zz[g0], &w.zabs[g0],
                                      &w.zeros[g0]);
#endif
    for (std::size_t j = start; j < n; ++j) {
      const std::size_t g = g0 + j * gs;
      elem(static_cast<std::ptrdiff_t>(j), g, w.zz[g], w.zabs[g], w.zeros[g]);
    }
    return;
  }
  if (n < es_min_lane_run) {  // in order, in registers
    const unsigned char state = w.state[g0];
    const double r = w.r[g0], tau = w.tau[g0];
    double a = w.zz[g0], b = w.zabs[g0];
    std::size_t zeros = w.zeros[g0];
    for (std::size_t j = 0; j < n; ++j) {
      const auto k = static_cast<std::ptrdiff_t>(j);
      const T z = es_output(y[k * sy], d[k * sd], state, r, tau);
      y[k * sy] = z;
      const double zd = static_cast<double>(z);
      a += zd * zd;
      b += std::fabs(zd);
      zeros += (z == T(0));
    }
    w.zz[g0] = a, w.zabs[g0] = b, w.zeros[g0] = zeros;
    return;
  }
  std::size_t zeros = 0;
#if defined(SPARSEREG_ES_VECTOR)
  if constexpr (std::is_same_v<T, float>)
    if (sy == 1 && sd == 1 && (w.state[g0] == 0 || w.state[g0] == 1)) {
      double ta, tb;
      es_final_vec(y, d, n, w.r[g0], w.tau[g0], ta, tb, zeros);
      w.zz[g0] += ta, w.zabs[g0] += tb, w.zeros[g0] += zeros;
      return;
    }
#endif
  double a[es_lanes] = {}, b[es_lanes] = {};
  es_lane_loop(n, [&](std::size_t i, std::size_t l) { elem(static_cast<std::ptrdiff_t>(i), g0, a[l], b[l], zeros); });
  w.zz[g0] += es_total(a), w.zabs[g0] += es_total(b), w.zeros[g0] += zeros;
}

/// After pass 1: the group's case, and the bracket of its root when it needs one (returns true).
inline bool es_decide(element_step_work& w, std::size_t g, double lambda_group, const grouping& grp) {
  w.tau[g] = lambda_group * grp.weight(g, w.size[g]);
  const double tau = w.tau[g];
  if (std::isnan(w.uu[g])) {
    w.state[g] = 4;
  } else if (tau == 0.0) {
    // No group shrink (lambda_group 0, e.g. lr 0 in the regularizer): decided before the test
    // below, which a group of tiny u (||u / d||^2 underflowing to 0) would otherwise fail.
    w.state[g] = 3;
  } else if (w.dmax[g] == 0.0) {
    // Every step of the group is 0: the prox is the identity there. Decided here because the
    // root search divides by r + d_i tau, which is 0/0 when ||u|| underflows to 0.
    w.state[g] = 3;
  } else if (!(w.scaled[g] > tau * tau)) {
    w.state[g] = 2;  // includes ||u|| = 0
  } else {
    const double norm = std::sqrt(w.uu[g]);
    w.hi[g] = norm;
    w.lo[g] = std::max(0.0, norm - w.dmax[g] * tau);
    w.r[g] = w.lo[g];
    w.state[g] = 0;
    return true;
  }
  return false;
}

/// One safeguarded Newton step from the sums of the last pass; returns true when the group is done.
inline bool es_newton_step(element_step_work& w, std::size_t g) {
  const double F = w.fv[g] - 1.0;  // F(r); F'(r) = -2 fd
  if (F == 0.0) {
    w.state[g] = 1;
    return true;
  }
  if (F > 0.0) w.lo[g] = w.r[g];
  else w.hi[g] = w.r[g];
  const double step = F / (2.0 * w.fd[g]);
  // Newton converges quadratically: with F'' / (2 |F'|) <= 1.5 / r here, the error after a step
  // of relative size 1e-9 is below 2e-18 relative, under double rounding. This is tested before
  // the bracket: at the root itself F is rounding noise of either sign, and a step that rounds
  // onto the bracket's end must end the search, not fall back to a bisection step (which once
  // moved converged roots by ~1e-9 relative and then stopped there).
  if (std::fabs(step) <= 1e-9 * w.r[g]) {
    w.r[g] += step;
    w.state[g] = 1;
    return true;
  }
  double next = w.r[g] + step;
  if (!(next > w.lo[g] && next < w.hi[g])) next = 0.5 * (w.lo[g] + w.hi[g]);
  w.r[g] = next;
  if (!(w.hi[g] - w.lo[g] <= 1e-15 * w.hi[g])) return false;
  w.state[g] = 1;
  return true;
}

/// The whole prox for the groups of one block: for_runs(f) calls f(src, y, d, sy, sd, g0, gs, n)
/// for every run of the block, in the same order each time; the block owns its groups whole.
template <class T, class ForRuns>
void es_solve_block(ForRuns&& for_runs, double lambda_group, const grouping& grp, T l1, element_step_work& w,
                    std::vector<std::size_t>& ids) {
  ids.clear();
  for_runs([&](const T* src, T* y, const T* d, std::ptrdiff_t sy, std::ptrdiff_t sd, std::size_t g0, std::size_t gs,
               std::size_t n) { es_stats(src, y, d, sy, sd, g0, gs, n, l1, w, ids); });
  std::size_t solving = 0;
  for (std::size_t g : ids) solving += es_decide(w, g, lambda_group, grp);
  // Newton passes over the block while it is in cache; a group leaves once its iterate stops moving.
  for (int it = 0; it < 100 && solving > 0; ++it) {
    for (std::size_t g : ids)
      if (w.state[g] == 0) w.fv[g] = w.fd[g] = 0.0;
    for_runs([&](const T*, T* y, const T* d, std::ptrdiff_t sy, std::ptrdiff_t sd, std::size_t g0, std::size_t gs,
                 std::size_t n) { es_newton(y, d, sy, sd, g0, gs, n, w); });
    for (std::size_t g : ids)
      if (w.state[g] == 0 && es_newton_step(w, g)) --solving;
  }
  for_runs([&](const T*, T* y, const T* d, std::ptrdiff_t sy, std::ptrdiff_t sd, std::size_t g0, std::size_t gs,
               std::size_t n) { es_final(y, d, sy, sd, g0, gs, n, w); });
}

/// Elements per block of the per-element-step prox: y and d of a float block (256 KB) stay in
/// L2 through the Newton passes. (A macro so that the thread tests can make blocks small.)
#ifndef SPARSEREG_ELEMENT_STEPS_BLOCK
#define SPARSEREG_ELEMENT_STEPS_BLOCK (std::size_t(1) << 15)
#endif
inline constexpr std::size_t es_block_elements = SPARSEREG_ELEMENT_STEPS_BLOCK;

/// The prox itself. The caller has checked everything: x, y and d of one shape, y equal to x or
/// disjoint from it, d disjoint from y, grp valid for x's shape, every d_i finite and >= 0.
template <class T>
prox_result group_prox_element_steps(double lambda_group, double lambda_l1, const grouping& grp, const view<const T>& x,
                                     const view<T>& y, const view<const T>& d, steps_already_checked_t) {
  if (x.size() == 0) return {};
  T l1 = static_cast<T>(lambda_l1);
  // Pass 1 (the soft threshold) is fused into the first pass of each block, reading x at y's
  // offsets, when x has y's strides (in place, or both contiguous); otherwise it runs first, on
  // its own, and the blocks start from u in y (soft threshold at 0: the identity, bit for bit).
  bool same_layout = true;
  for (std::size_t i = 0; i < x.rank(); ++i) same_layout = same_layout && x.stride(i) == y.stride(i);
  const T* src = x.data();
  if (!same_layout) {
    elementwise_sweep(x, y, d, [l1](const T* xp, std::ptrdiff_t sx, T* yp, std::ptrdiff_t sy, const T* dp,
                                    std::ptrdiff_t sd, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i) {
        const auto k = static_cast<std::ptrdiff_t>(i);
        yp[k * sy] = soft_threshold_select(xp[k * sx], dp[k * sd] * l1);
      }
      return sweep_totals{};
    });
    src = y.data();
    l1 = T(0);
  }
  const std::size_t G = grp.group_count(x);
  element_step_work w(G);
  [[maybe_unused]] const bool parallel = worth_parallel(x.size());
  if (grp.is_explicit()) {
    // Index lists: each group is a block of single-element runs.
    const auto& off = grp.explicit_offsets();
    const auto& idx = grp.explicit_indices();
    for_each_thread_share(G, parallel, [&](std::size_t g0, std::size_t g1) {
      std::vector<std::size_t> ids;
      for (std::size_t g = g0; g < g1; ++g)
        es_solve_block<T>(
            [&](auto&& f) {
              for (std::size_t k = off[g]; k < off[g + 1]; ++k) {
                const std::ptrdiff_t oy = y.offset_of_flat(idx[k]);
                f(src + oy, y.data() + oy, d.data() + d.offset_of_flat(idx[k]), 1, 1, g, 0, 1);
              }
            },
            lambda_group, grp, l1, w, ids);
    });
  } else {
    const plan p = keyed_plan(y, d, row_major_key_strides(grp.axis_mask(), y.extents(), y.rank()));
    const plan_axis& r = p.run();
    // Blocks along the outermost axis that carries the group index own whole groups (a group's
    // elements share their coordinate there); a block's runs are visited in memory order, so
    // each group is accumulated in the same order whatever the blocks and the thread count.
    std::size_t split = p.rank;
    for (std::size_t k = 0; k < p.rank; ++k)
      if (p.axes[k].stride_c != 0) {
        split = k;
        break;
      }
    const std::size_t es = split < p.rank ? p.axes[split].extent : 1;
    const std::size_t per_unit = p.size / es;
    std::size_t unit = std::max<std::size_t>(1, es_block_elements / per_unit);
    // Split along the runs themselves (columns of a row-major matrix): whole cache lines per row.
    if (split + 1 == p.rank) unit = (std::max<std::size_t>(unit, 64) + 15) / 16 * 16;
    const std::size_t nb = split < p.rank ? (es + unit - 1) / unit : 1;
    for_each_thread_share(nb, parallel && nb > 1, [&](std::size_t b0, std::size_t b1) {
      std::vector<std::size_t> ids;
      for (std::size_t b = b0; b < b1; ++b) {
        const std::size_t lo = b * unit, hi = std::min(es, lo + unit);
        es_solve_block<T>(
            [&](auto&& f) {
              const auto visit = [&](const run_position& pos, std::size_t a, std::size_t e) {
                const std::ptrdiff_t oy = pos.offset_a + static_cast<std::ptrdiff_t>(a) * r.stride_a;
                const std::ptrdiff_t od = pos.offset_b + static_cast<std::ptrdiff_t>(a) * r.stride_b;
                const auto g0 = static_cast<std::size_t>(pos.offset_c + static_cast<std::ptrdiff_t>(a) * r.stride_c);
                f(src + oy, y.data() + oy, d.data() + od, r.stride_a, r.stride_b, g0,
                  static_cast<std::size_t>(r.stride_c), e - a);
              };
              if (split + 1 == p.rank)
                for_each_run(p, p.rank, 0, 0, [&](const run_position& pos) { visit(pos, lo, hi); });
              else if (split < p.rank)
                for_each_run(p, split, lo, hi, [&](const run_position& pos) { visit(pos, 0, r.extent); });
              else
                for_each_run(p, p.rank, 0, 0, [&](const run_position& pos) { visit(pos, 0, r.extent); });
            },
            lambda_group, grp, l1, w, ids);
      }
    });
  }
  prox_result res;
  res.groups = G;
  for (std::size_t g = 0; g < G; ++g) {
    res.value += w.tau[g] * std::sqrt(w.zz[g]) + lambda_l1 * w.zabs[g];
    res.zero_elements += w.zeros[g];
    res.zero_groups += (w.zeros[g] == w.size[g]);
  }
  return res;
}

template <class X, class Y, class S>
prox_result group_prox_element_steps_checked(double lambda_group, double lambda_l1, const grouping& grp, const X& x,
                                             Y&& y, const S& steps) {
  const auto vx = const_view_of(x);
  const auto vy = mutable_view_of(y);
  const auto vs = const_view_of(steps);
  using T = typename decltype(vx)::value_type;
  static_assert(std::is_same_v<T, typename decltype(vy)::value_type> && std::is_same_v<T, typename decltype(vs)::value_type>,
                "sparsereg::prox_per_element_steps: x, y and steps must have the same element type");
  require_same_shape("prox_per_element_steps", "x", vx, "y", vy);
  require_same_shape("prox_per_element_steps", "x", vx, "steps", vs);
  require_alias_or_disjoint("prox_per_element_steps", vx, vy);
  require_disjoint("prox_per_element_steps", "y", vy, "steps", vs);
  grp.check("prox_per_element_steps", vx);
  require_valid_steps("prox_per_element_steps", vs);
  return group_prox_element_steps<T>(lambda_group, lambda_l1, grp, vx, view<T>(vy), vs, steps_already_checked);
}

/// prox_per_element_steps for a caller that has made every check of group_prox_element_steps
/// (the regularizer, at registration and in its pre-step check).
template <class T>
prox_result prox_per_element_steps_checked_by_caller(const sparse_group_lasso& p, const view<const T>& x,
                                                     const view<T>& y, const view<const T>& d) {
  return group_prox_element_steps<T>(p.lambda_group, p.lambda_l1, p.groups, x, y, d, steps_already_checked);
}
template <class T>
prox_result prox_per_element_steps_checked_by_caller(const group_lasso& p, const view<const T>& x, const view<T>& y,
                                                     const view<const T>& d) {
  return group_prox_element_steps<T>(p.lambda, 0.0, p.groups, x, y, d, steps_already_checked);
}

}  // namespace detail

/// y = argmin_z R(z) + sum_i (z_i - x_i)^2 / (2 steps_i) for the sparse group lasso (exact).
template <class X, class Y, class S>
prox_result prox_per_element_steps(const sparse_group_lasso& p, const X& x, Y&& y, const S& steps) {
  return detail::group_prox_element_steps_checked(p.lambda_group, p.lambda_l1, p.groups, x, y, steps);
}

/// The same for the group lasso.
template <class X, class Y, class S>
prox_result prox_per_element_steps(const group_lasso& p, const X& x, Y&& y, const S& steps) {
  return detail::group_prox_element_steps_checked(p.lambda, 0.0, p.groups, x, y, steps);
}

}  // namespace sparsereg
