// KL divergence from the weight distribution to a target ("variance regularization"):
//   R(w) = lambda * KL(P || Q) = lambda * sum_b p_b log(p_b / q_b).
// Our estimator (Pandit & Banday 2023 describe the idea, not an estimator; docs/math.md):
//   P: linear binning of the statistic z_i (the weights, or the group norms ||w_g||_2) onto B
//      centres c_b = lo + b*h over the support [lo, hi] (h = (hi - lo)/(B - 1)). An element at
//      u = (z - lo)/h = k + f (0 <= f < 1) puts 1 - f on bin k and f on bin k + 1; outside the
//      support it is clamped to the edge bin. p_b = (mass_b / N + eps) / (1 + B*eps).
//   Q: the target's mass under each bin's hat function on the same support (targets.hpp),
//      renormalized, then floored the same way: q_b = (m_b / sum m + eps) / (1 + B*eps) > 0.
//   The support is chosen from the data without gradient: lo = -s, hi = s for weights
//   (lo = 0 for group norms), with s from kl_support (fixed, per-call multiple of max|z|, or
//   tracked: set from max|z| at first use and refitted only when the data leave it).
// gradient (exact; the support is a constant): with V_b = log(p_b / q_b),
//   dKL/dz_i = (V_{k+1} - V_k) / (N h (1 + B*eps)) inside interval k, the mean of the two
//   neighbouring intervals' values exactly on a centre (what central differences converge to),
//   0 outside the support. Group norms: dz_g/dw = w_g / ||w_g|| (0 for a zero group).
// Cost: weights mode, fixed or tracked support: 2 passes (histogram; gradient) + O(B);
// max_abs support: one more read-only pass for max|w|. Group mode: the grouped sweeps' passes.
// Non-finite weights: excluded from P; the value is NaN; their own gradient is NaN; every finite
// weight gets the gradient of the KL of the finite weights (group mode: a NaN poisons its group).
//
// Speed: with AVX2 (binning: AVX-512 where enabled) by the user's flags (e.g. -march=native), float
// runs take a SIMD path computing the same IEEE operations as the scalar path, so results do not
// depend on it.
//
// State (documented, not hidden): the resolved relative scale, the tracked support, the cached
// discretized target and the workspace (about 70*B doubles, allocated once) live in one object shared by a
// penalty and all its copies (scaled() copies must share it: schedules call scaled() every step).
// Use one penalty object (and its copies) from one thread at a time; fresh() gives an
// independent copy for another tensor.
#pragma once

#include <algorithm>    // std::fill, std::min
#include <cmath>        // std::log, std::exp, std::sqrt, std::floor, std::isfinite
#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <cstdint>      // std::uint8_t
#include <limits>       // std::numeric_limits
#include <memory>       // std::shared_ptr
#include <optional>     // std::optional
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <type_traits>  // std::is_floating_point_v, std::is_same_v
#include <vector>       // std::vector

#include "../detail/sweep.hpp"
#include "../groups.hpp"
#include "../penalty.hpp"
#include "../targets.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace sparsereg {

/// How the histogram support is chosen (never differentiated).
class kl_support {
 public:
  enum class kind { fixed, max_abs, tracked };

  /// [-half_width, half_width] (group norms: [0, half_width]), given by the user.
  static kl_support fixed(double half_width) {
    detail::require_positive("kl_support::fixed", "half_width", half_width);
    return {kind::fixed, half_width};
  }
  /// s = multiple * max|z|, recomputed on every call (one extra read-only pass). With rounding
  /// r > 0, s is rounded up to the next power of (1 + r) (s <= support < (1 + r) s), so the grid,
  /// and with it the discretized target (O(bins) erfc / exp to rebuild), changes only when max|z|
  /// crosses one of those powers instead of on every call. r in [0, 1]; 0 keeps s exactly.
  static kl_support max_abs(double multiple = 1.0, double rounding = 0.0) {
    detail::require_positive("kl_support::max_abs", "multiple", multiple);
    detail::require_in_unit_interval("kl_support::max_abs", "rounding", rounding);
    kl_support k{kind::max_abs, multiple};
    k.rounding_ = rounding;
    return k;
  }
  /// s = multiple * max|z| at first use, kept while the data fit: refitted (one extra histogram
  /// pass) when max|z| > s or multiple * max|z| < s / 2.
  static kl_support tracked(double multiple = 1.25) {
    detail::require_positive("kl_support::tracked", "multiple", multiple);
    return {kind::tracked, multiple};
  }

  kind mode() const noexcept { return kind_; }
  double parameter() const noexcept { return param_; }
  /// max_abs's rounding step r (0: none).
  double rounding() const noexcept { return rounding_; }

  /// s rounded up to the next power of (1 + rounding()) (s itself when rounding() is 0, or when s
  /// is not finite and positive, or when the power would overflow). A pure function of s.
  double rounded(double s) const {
    if (!(rounding_ > 0.0) || !(s > 0.0) || !std::isfinite(s)) return s;
    const double step = std::log1p(rounding_);
    const double k = std::ceil(std::log(s) / step);
    double r = std::exp(k * step);
    if (r < s) r = std::exp((k + 1.0) * step);  // log / exp rounding just below s
    return std::isfinite(r) ? r : s;
  }

 private:
  kl_support(kind k, double p) : kind_(k), param_(p) {}
  kind kind_;
  double param_;
  double rounding_ = 0.0;
};

/// The two discrete distributions behind a value (diagnostics, plots, tests).
struct kl_distributions {
  double lo = 0.0, hi = 0.0;     ///< support
  std::vector<double> centres;   ///< c_b
  std::vector<double> p, q;      ///< floored, normalized P and Q
  std::size_t count = 0;         ///< finite elements (or groups) in P
  double kl = 0.0;               ///< KL(P || Q), without lambda
};

namespace detail {

struct kl_state {
  bool unit_resolved = false;
  double unit = 1.0;
  bool support_set = false;
  double support = 0.0;
  bool q_valid = false;
  double q_lo = 0.0, q_h = 0.0, q_unit = 0.0;
  std::vector<double> q, log_q, hist, partial, table, norms;
  std::vector<double> hat_scratch;  // target::hat_masses' grid-point values
  std::vector<float> table_f;
  std::vector<float> factor_f;    // per-group gradient factors (group-norm KL), float weights
  std::vector<double> factor_d;   // the same for double weights
  double last_value = std::numeric_limits<double>::quiet_NaN();
};

inline constexpr std::size_t kl_ways = 4;  // interleaved sub-histograms per chunk

/// Doubles in one sub-histogram: a (count, sum of f) pair per bin plus a trash pair that
/// non-finite elements go to (so the hot loop has no branch).
inline std::size_t kl_sub_size(std::size_t bins) noexcept { return 2 * (bins + 1); }

#if defined(__AVX2__)
/// Elements per block of the vector binning loops: their pair offsets and f values go to stack
/// buffers of this size, then kl_add_pairs adds them in element order.
inline constexpr std::size_t kl_block = 256;

/// (1, f) added into the 16 bytes at hh: f widened to double exactly, as in the scalar loop.
inline void kl_add_pair(double* hh, const float* f) noexcept {
  const __m128d one = _mm_set_sd(1.0);
  const __m128d pair = _mm_unpacklo_pd(one, _mm_cvtss_sd(one, _mm_load_ss(f)));
  _mm_storeu_pd(hh, _mm_add_pd(_mm_loadu_pd(hh), pair));
}

/// The scalar half of the vector binning loops: (1, f[j]) added into the pair at h + offset[j],
/// for j in element order (so the same sub-histogram sums as the scalar loop); len is a multiple
/// of 4. Four elements per iteration, f widened here rather than stored as (1, f) doubles by the
/// vector loop: binning 1M floats took 0.82 ns per element with one element per iteration and the
/// pairs in double, 0.56 now (Zen 4, AVX-512; AVX2 build 0.91 -> 0.59; docs/benchmarks.md).
inline void kl_add_pairs(double* h, const int* offset, const float* f, std::size_t len) noexcept {
  for (std::size_t j = 0; j < len; j += 4) {
    kl_add_pair(h + offset[j], f + j);
    kl_add_pair(h + offset[j + 1], f + j + 1);
    kl_add_pair(h + offset[j + 2], f + j + 2);
    kl_add_pair(h + offset[j + 3], f + j + 3);
  }
}

#if defined(__AVX512F__) && defined(__AVX512DQ__)
/// kl_add_pairs with the (1, f) pairs already in double (pairs[2j], pairs[2j + 1] for element
/// j), as the AVX-512 binning loop builds them: the scalar loop then has no conversion or shuffle
/// per element (in kl_add_pairs, vcvtss2sd and vunpcklpd held most of the loop's samples on an
/// Intel Xeon; value + gradient of 1M floats 9-10% faster so, docs/benchmarks.md).
inline void kl_add_built_pairs(double* h, const int* offset, const double* pairs, std::size_t len) noexcept {
  for (std::size_t j = 0; j < len; j += 4) {
    for (std::size_t q = 0; q < 4; ++q) {
      double* hh = h + offset[j + q];
      _mm_storeu_pd(hh, _mm_add_pd(_mm_loadu_pd(hh), _mm_load_pd(pairs + 2 * (j + q))));
    }
  }
}
#endif
#endif

/// Linear binning of one run. An element at u = k + f adds (1, f) to pair k of sub-histogram
/// (i mod kl_ways): one 16-byte read-modify-write instead of two scattered ones, and interleaving
/// breaks the store-to-load chains of repeated bins. mass_b = count_b - fsum_b + fsum_{b-1}
/// (kl_collect). Bin position, clamping and f are computed exactly as in the gradient pass.
template <class T>
void kl_bin_run(const T* x, std::ptrdiff_t sx, std::size_t n, T lo, T inv_h, std::size_t bins, double* h,
                std::size_t& bad, double& amax) noexcept {
  const T umax = static_cast<T>(bins - 1);
  const T kmax = static_cast<T>(bins - 2);
  const std::size_t sub = kl_sub_size(bins);
  const int trash = static_cast<int>(bins);
  T m = T(0);
  std::size_t nb = 0;
  std::size_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
  if constexpr (std::is_same_v<T, float>) {
    if (sx == 1 && n >= 16) {
      // The AVX2 form below with 16 lanes: the same operations per element (floor as a rounding
      // toward -inf, exact), the same sub-histogram (i stays a multiple of 16) and order, so the
      // same bits.
      const __m512 vlo = _mm512_set1_ps(lo), vinv = _mm512_set1_ps(inv_h), vumax = _mm512_set1_ps(umax),
                   vkmax = _mm512_set1_ps(kmax), zero = _mm512_setzero_ps();
      const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
      const __m512i vtrash = _mm512_set1_epi32(trash);
      static_assert(kl_ways == 4, "the lane offsets below assume 4 sub-histograms");
      const int s = static_cast<int>(sub);
      const __m512i way_offset =
          _mm512_setr_epi32(0, s, 2 * s, 3 * s, 0, s, 2 * s, 3 * s, 0, s, 2 * s, 3 * s, 0, s, 2 * s, 3 * s);
      // The zero-masked forms with full masks: the unmasked intrinsics trip GCC 12's
      // -Wmaybe-uninitialized inside its own headers (their undefined pass-through operand).
      const __mmask16 all = 0xffff;
      __m512 vm = zero;
      alignas(64) int offset[kl_block];
      alignas(64) double pairs[2 * kl_block];
      const __m512d ones = _mm512_set1_pd(1.0);
      // (1, f_j) for j = 0-3 from ones (indices 0-7) and 4 f's widened (indices 8-11).
      const __m512i pair_index = _mm512_setr_epi64(0, 8, 0, 9, 0, 10, 0, 11);
      const __m512i pair_index_hi = _mm512_setr_epi64(0, 12, 0, 13, 0, 14, 0, 15);
      while (i + 16 <= n) {
        const std::size_t len = std::min(kl_block, (n - i) / 16 * 16);
        for (std::size_t j = 0; j < len; j += 16) {
          const __m512 v = _mm512_loadu_ps(x + i + j);
          const __mmask16 fin = _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), zero, _CMP_EQ_OQ);
          const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), absmask));
          vm = _mm512_maskz_max_ps(all, vm, _mm512_maskz_mov_ps(fin, a));
          __m512 u = _mm512_mul_ps(_mm512_sub_ps(v, vlo), vinv);
          u = _mm512_maskz_max_ps(all, u, zero);  // NaN -> 0 (maxps returns its second operand)
          u = _mm512_maskz_min_ps(all, u, vumax);
          const __m512 kf = _mm512_maskz_min_ps(
              all, _mm512_maskz_roundscale_ps(all, u, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), vkmax);
          const __m512 f = _mm512_maskz_sub_ps(fin, u, kf);
          const __m512i k = _mm512_mask_blend_epi32(fin, vtrash, _mm512_maskz_cvttps_epi32(all, kf));
          _mm512_store_si512(offset + j, _mm512_add_epi32(way_offset, _mm512_add_epi32(k, k)));
          nb += 16 - static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(fin)));
          const __m512d d0 = _mm512_maskz_cvtps_pd(0xff, _mm512_maskz_extractf32x8_ps(0xff, f, 0));
          const __m512d d1 = _mm512_maskz_cvtps_pd(0xff, _mm512_maskz_extractf32x8_ps(0xff, f, 1));
          double* pj = pairs + 2 * j;
          _mm512_store_pd(pj, _mm512_permutex2var_pd(ones, pair_index, d0));
          _mm512_store_pd(pj + 8, _mm512_permutex2var_pd(ones, pair_index_hi, d0));
          _mm512_store_pd(pj + 16, _mm512_permutex2var_pd(ones, pair_index, d1));
          _mm512_store_pd(pj + 24, _mm512_permutex2var_pd(ones, pair_index_hi, d1));
        }
        kl_add_built_pairs(h, offset, pairs, len);
        i += len;
      }
      alignas(64) float ms[16];
      _mm512_store_ps(ms, vm);
      for (int j = 0; j < 16; ++j) m = ms[j] > m ? ms[j] : m;
    }
  }
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
    if (sx == 1 && n >= 8) {
      // Blocks of up to kl_block elements in two loops: the vector loop computes each element's
      // pair offset (sub-histogram (i mod kl_ways) included) and its f into two stack buffers;
      // the scalar loop then does the 16-byte read-modify-writes of (1, f) in element
      // order. Same sub-histogram and order per element as the scalar loop below, so the same
      // bits. On an AVX-512 Xeon the whole value + gradient call got 1-25% faster than with the
      // indices extracted lane by lane inside one loop (docs/benchmarks.md, KL penalties).
      const __m256 vlo = _mm256_set1_ps(lo), vinv = _mm256_set1_ps(inv_h), vumax = _mm256_set1_ps(umax),
                   vkmax = _mm256_set1_ps(kmax), zero = _mm256_setzero_ps();
      const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
      const __m256i vtrash = _mm256_set1_epi32(trash);
      static_assert(kl_ways == 4, "the lane offsets below assume 4 sub-histograms");
      const int s = static_cast<int>(sub);
      const __m256i way_offset = _mm256_setr_epi32(0, s, 2 * s, 3 * s, 0, s, 2 * s, 3 * s);
      __m256 vm = zero;
      alignas(32) int offset[kl_block];
      alignas(32) float fs[kl_block];
      while (i + 8 <= n) {
        // i stays a multiple of 8, so element i + j goes to sub-histogram j mod 4 (way_offset).
        const std::size_t len = std::min(kl_block, (n - i) / 8 * 8);
        for (std::size_t j = 0; j < len; j += 8) {
          const __m256 v = _mm256_loadu_ps(x + i + j);
          const __m256 fin = _mm256_cmp_ps(_mm256_sub_ps(v, v), zero, _CMP_EQ_OQ);
          vm = _mm256_max_ps(vm, _mm256_and_ps(_mm256_and_ps(v, absmask), fin));
          __m256 u = _mm256_mul_ps(_mm256_sub_ps(v, vlo), vinv);
          u = _mm256_max_ps(u, zero);  // NaN -> 0 (maxps returns its second operand)
          u = _mm256_min_ps(u, vumax);
          const __m256 kf = _mm256_min_ps(_mm256_floor_ps(u), vkmax);
          const __m256 f = _mm256_and_ps(_mm256_sub_ps(u, kf), fin);
          const __m256i k = _mm256_blendv_epi8(vtrash, _mm256_cvttps_epi32(kf), _mm256_castps_si256(fin));
          _mm256_store_si256(reinterpret_cast<__m256i*>(offset + j), _mm256_add_epi32(way_offset, _mm256_add_epi32(k, k)));
          unsigned notfin = ~static_cast<unsigned>(_mm256_movemask_ps(fin)) & 0xffu;
          for (; notfin != 0; notfin &= notfin - 1) ++nb;  // popcount of a rare, usually zero mask
          _mm256_store_ps(fs + j, f);
        }
        kl_add_pairs(h, offset, fs, len);
        i += len;
      }
      alignas(32) float ms[8];
      _mm256_store_ps(ms, vm);
      for (int j = 0; j < 8; ++j) m = ms[j] > m ? ms[j] : m;
    }
  }
#endif
  for (; i < n; ++i) {
    const T v = x[static_cast<std::ptrdiff_t>(i) * sx];
    const bool fin = finite_value(v);
    const T a = fin ? (v < T(0) ? -v : v) : T(0);
    m = a > m ? a : m;
    T u = (v - lo) * inv_h;
    u = u >= T(0) ? u : T(0);  // NaN -> 0
    u = u <= umax ? u : umax;
    T kf = std::floor(u);
    kf = kf <= kmax ? kf : kmax;
    const T f = fin ? u - kf : T(0);
    const std::size_t k = fin ? static_cast<std::size_t>(kf) : static_cast<std::size_t>(trash);
    double* hh = h + (i & (kl_ways - 1)) * sub + 2 * k;
    hh[0] += 1.0;
    hh[1] += static_cast<double>(f);
    nb += !fin;
  }
  bad += nb;
  amax = static_cast<double>(m) > amax ? static_cast<double>(m) : amax;
}

/// Sums `parts` sub-histograms (pairs) into hist[b] = count_b - fsum_b + fsum_{b-1}, in order.
inline void kl_collect(const double* partial, std::size_t parts, std::size_t bins, double* hist) noexcept {
  const std::size_t sub = kl_sub_size(bins);
  double prev = 0.0;
  for (std::size_t b = 0; b < bins; ++b) {
    double c = 0.0, f = 0.0;
    for (std::size_t q = 0; q < parts; ++q) {
      c += partial[q * sub + 2 * b];
      f += partial[q * sub + 2 * b + 1];
    }
    hist[b] = (c - f) + prev;
    prev = f;
  }
}

/// Index into the (2B+1)-entry gradient table: 0 left of the support, 2j+1 on centre j,
/// 2k+2 inside interval k, 2B right of the support. u is the same (z - lo) * inv_h as in binning.
template <class T>
inline int kl_table_index(T u, T u_hi) noexcept {
  u = u >= T(-0.5) ? u : T(-0.5);  // NaN -> -0.5 (its gradient is replaced by NaN anyway)
  u = u <= u_hi ? u : u_hi;
  const T kf = std::floor(u);
  return 2 * static_cast<int>(kf) + 1 + (u > kf);
}

/// y[i] += table[index(x[i])] (NaN for non-finite x[i]) over a contiguous run.
template <class T>
void kl_gradient_run(const T* x, T* y, std::size_t n, T lo, T inv_h, T u_hi, const T* tab) noexcept {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::size_t i = 0;
  // (An AVX-512 form of this loop, 16-lane gathers, was slower on Zen 4 in cache: 0.57 against 0.48
  // ns per element, docs/benchmarks.md.)
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
    const __m256 vlo = _mm256_set1_ps(lo), vinv = _mm256_set1_ps(inv_h), vhi = _mm256_set1_ps(u_hi),
                 vmhalf = _mm256_set1_ps(-0.5f), zero = _mm256_setzero_ps(), vnan = _mm256_set1_ps(nan);
    const __m256i one = _mm256_set1_epi32(1);
    for (; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(x + i);
      const __m256 fin = _mm256_cmp_ps(_mm256_sub_ps(v, v), zero, _CMP_EQ_OQ);
      __m256 u = _mm256_mul_ps(_mm256_sub_ps(v, vlo), vinv);
      u = _mm256_max_ps(u, vmhalf);  // NaN -> -0.5
      u = _mm256_min_ps(u, vhi);
      const __m256 kf = _mm256_floor_ps(u);
      const __m256i gt = _mm256_castps_si256(_mm256_cmp_ps(u, kf, _CMP_GT_OQ));  // -1 where u > kf
      const __m256i k2 = _mm256_add_epi32(_mm256_cvttps_epi32(kf), _mm256_cvttps_epi32(kf));
      const __m256i idx = _mm256_sub_epi32(_mm256_add_epi32(k2, one), gt);
      const __m256 d = _mm256_blendv_ps(vnan, _mm256_i32gather_ps(tab, idx, 4), fin);
      _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), d));
    }
  }
#endif
  for (; i < n; ++i) {
    const T v = x[i];
    const T d = tab[kl_table_index((v - lo) * inv_h, u_hi)];
    y[i] += finite_value(v) ? d : nan;
  }
}

}  // namespace detail

class kl_to_target {
 public:
  static constexpr const char* name = "kl_to_target";
  static constexpr bool has_gradient = true;
  static constexpr bool has_prox = false;
  static constexpr bool smooth = true;  // almost everywhere: kinks on the bin centres (docs/math.md)
  static constexpr bool separable = false;
  static constexpr bool convex = false;
  static constexpr std::size_t max_bins = std::size_t(1) << 16;

  /// Our default target: half the weights in a spike of 0.1 std, the rest in a slab of 2 std.
  static target default_target() { return target::spike_and_slab(0.5, 0.1, 2.0, scale_mode::relative); }

  double lambda = 0.0;

  /// P over the weights themselves.
  explicit kl_to_target(double lambda_, target tgt = default_target(), std::size_t bins = 256,
                        kl_support support = kl_support::max_abs(1.0), double epsilon = 1e-9)
      : lambda(lambda_), target_(std::move(tgt)), bins_(bins), support_(support), epsilon_(epsilon),
        state_(std::make_shared<detail::kl_state>()) {
    validate("kl_to_target");
  }

  /// P over the group norms ||w_g||_2 (support [0, s]); the targets are folded onto z >= 0.
  static kl_to_target on_group_norms(double lambda_, grouping groups, target tgt = default_target(),
                                     std::size_t bins = 256, kl_support support = kl_support::max_abs(1.0),
                                     double epsilon = 1e-9) {
    kl_to_target p(lambda_, std::move(tgt), bins, support, epsilon);
    p.groups_ = std::move(groups);
    return p;
  }

  /// The same penalty with lambda multiplied by `factor`; shares the state (see the top comment).
  kl_to_target scaled(double factor) const {
    kl_to_target p = *this;
    p.lambda = lambda * factor;
    detail::require_nonnegative("kl_to_target::scaled", "lambda", p.lambda);
    return p;
  }
  /// A copy with its own, unresolved state (for another tensor).
  kl_to_target fresh() const {
    kl_to_target p = *this;
    p.state_ = std::make_shared<detail::kl_state>();
    return p;
  }

  const class target& target_density() const noexcept { return target_; }
  std::size_t bins() const noexcept { return bins_; }
  const kl_support& support() const noexcept { return support_; }
  double epsilon() const noexcept { return epsilon_; }
  bool on_groups() const noexcept { return groups_.has_value(); }
  /// The grouping whose norms P is estimated on (nullptr on individual weights): what the
  /// regularizer checks against a parameter's shape when the penalty is attached or rebound.
  const grouping* group_structure() const noexcept { return groups_ ? &*groups_ : nullptr; }

  /// Reference scale the relative target scales multiply (NaN until resolved; 1 for absolute).
  double reference_scale() const noexcept {
    if (!target_.is_relative()) return 1.0;
    return state_->unit_resolved ? state_->unit : std::numeric_limits<double>::quiet_NaN();
  }
  /// lambda * KL of the last value/gradient call (NaN before the first).
  double last_value() const noexcept { return state_->last_value; }

  /// Resolves the relative scales (and a tracked support) from `w` now, replacing earlier ones.
  template <class W>
  void resolve(const W& w) const {
    const auto v = detail::const_view_of(w);
    state_->unit_resolved = false;
    state_->support_set = false;
    state_->q_valid = false;
    run(v, static_cast<const view<typename decltype(v)::value_type>*>(nullptr), nullptr);
  }
  /// Forgets resolved scales, tracked support and cache.
  void reset() const { *state_ = detail::kl_state{}; }

  template <class T>
  double value_of(const view<const T>& w) const {
    return lambda * run(w, static_cast<const view<T>*>(nullptr), nullptr);
  }
  template <class T>
  void add_gradient_to(const view<const T>& w, const view<T>& g) const {
    run(w, &g, nullptr);
  }

  /// Value and gradient from one histogram: returns lambda * KL and adds its gradient into g.
  template <class W, class G>
  double value_and_add_gradient(const W& w, G&& g) const {
    const auto vw = detail::const_view_of(w);
    const auto vg = detail::mutable_view_of(g);
    static_assert(std::is_same_v<typename decltype(vw)::value_type, typename decltype(vg)::value_type>,
                  "sparsereg::kl_to_target::value_and_add_gradient: w and g must have the same element type");
    detail::require_same_shape("kl_to_target::value_and_add_gradient", "w", vw, "g", vg);
    detail::require_disjoint("kl_to_target::value_and_add_gradient", "w", vw, "g", vg);
    return lambda * run(vw, &vg, nullptr);
  }

  /// P, Q and the KL for `w` (allocates; for diagnostics and plots).
  template <class W>
  kl_distributions distributions(const W& w) const {
    const auto v = detail::const_view_of(w);
    kl_distributions d;
    run(v, static_cast<const view<typename decltype(v)::value_type>*>(nullptr), &d);
    return d;
  }

  /// Resolved scale and tracked support, for checkpoints (regularizer::save_state).
  std::vector<std::uint8_t> save_state() const {
    std::vector<std::uint8_t> out;
    detail::kl_put(out, 1.0);  // format version
    detail::kl_put(out, state_->unit_resolved ? 1.0 : 0.0);
    detail::kl_put(out, state_->unit);
    detail::kl_put(out, state_->support_set ? 1.0 : 0.0);
    detail::kl_put(out, state_->support);
    return out;
  }
  void load_state(const std::vector<std::uint8_t>& in) {
    std::size_t pos = 0;
    if (detail::kl_get(in, pos) != 1.0) throw std::runtime_error("sparsereg::load_state: unknown KL penalty state version");
    detail::kl_state s;
    s.unit_resolved = detail::kl_get(in, pos) != 0.0;
    s.unit = detail::kl_get(in, pos);
    s.support_set = detail::kl_get(in, pos) != 0.0;
    s.support = detail::kl_get(in, pos);
    if (pos != in.size() || !(s.unit > 0.0) || !std::isfinite(s.unit) || !(s.support >= 0.0) || !std::isfinite(s.support))
      throw std::runtime_error("sparsereg::load_state: malformed KL penalty state");
    *state_ = std::move(s);
  }

 private:
  void validate(const char* where) const {
    detail::require_nonnegative(where, "lambda", lambda);
    if (bins_ < 2 || bins_ > max_bins)
      detail::throw_argument(where, "bins must lie in [2, " + std::to_string(max_bins) + "], got " + std::to_string(bins_));
    if (!(epsilon_ > 0.0 && epsilon_ <= 1e-2))
      detail::throw_argument(where, "epsilon must lie in (0, 0.01], got " + detail::number_text(epsilon_));
  }

  /// Grid of one call in the element type: u = (z - lo) * inv_h, the same expression in both passes.
  template <class T>
  struct grid {
    T lo, inv_h;
    double lo_d, h_d, inv_h_d;
  };
  template <class T>
  grid<T> make_grid(double lo, double hi) const {
    grid<T> g;
    g.lo = static_cast<T>(lo);
    g.inv_h = static_cast<T>(static_cast<double>(bins_ - 1) / (hi - lo));
    g.lo_d = static_cast<double>(g.lo);
    g.inv_h_d = static_cast<double>(g.inv_h);
    g.h_d = 1.0 / g.inv_h_d;
    return g;
  }

  /// Support half-width when the data give none (all zeros): four widest target scales.
  double fallback_support() const { return 4.0 * target_.scale() * (target_.is_relative() ? state_->unit : 1.0); }

  [[noreturn]] void throw_unresolvable(double unit) const {
    detail::throw_argument(groups_ ? "kl_to_target(on_group_norms)" : "kl_to_target",
                           "cannot resolve the relative scales of target " + target_.describe() + ": the reference scale (" +
                               std::string(groups_ ? "RMS of the group norms" : "standard deviation of the weights") +
                               ") is " + detail::number_text(unit) +
                               "; use absolute scales or resolve() on non-degenerate weights");
  }

  /// Population standard deviation of the finite elements (two chunked passes; first use only).
  template <class T>
  static double std_of(const view<const T>& w) {
    // Shifted by the first element, so a constant tensor gives exactly 0.
    const T first = w.data()[0];
    const double k = detail::finite_value(first) ? static_cast<double>(first) : 0.0;
    double sum[detail::kl_chunks] = {}, sq[detail::kl_chunks] = {};
    std::size_t cnt[detail::kl_chunks] = {};
    detail::for_each_chunk(w, [&](std::size_t c, const T* x, std::ptrdiff_t sx, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i) {
        const T v = x[static_cast<std::ptrdiff_t>(i) * sx];
        if (detail::finite_value(v)) {
          sum[c] += static_cast<double>(v) - k;
          ++cnt[c];
        }
      }
    });
    double s = 0.0;
    std::size_t n = 0;
    for (std::size_t c = 0; c < detail::kl_chunks; ++c) s += sum[c], n += cnt[c];
    if (n == 0) return 0.0;
    const double mean = k + s / static_cast<double>(n);
    detail::for_each_chunk(w, [&](std::size_t c, const T* x, std::ptrdiff_t sx, std::size_t n_) {
      for (std::size_t i = 0; i < n_; ++i) {
        const T v = x[static_cast<std::ptrdiff_t>(i) * sx];
        if (detail::finite_value(v)) {
          const double d = static_cast<double>(v) - mean;
          sq[c] += d * d;
        }
      }
    });
    double ss = 0.0;
    for (std::size_t c = 0; c < detail::kl_chunks; ++c) ss += sq[c];
    return std::sqrt(ss / static_cast<double>(n));
  }

  template <class T>
  static double max_abs_of(const view<const T>& w) {
    double m[detail::kl_chunks] = {};
    detail::for_each_chunk(w, [&](std::size_t c, const T* x, std::ptrdiff_t sx, std::size_t n) {
      constexpr std::size_t L = 8;
      T lane[L] = {};
      const T big = std::numeric_limits<T>::max();
      std::size_t i = 0;
      auto one = [&](T v, T& acc) {
        T a = std::fabs(v);  // (not v < 0 ? -v : v, which GCC compiled to a branch on random signs)
        a = a <= big ? a : T(0);  // NaN and inf do not set the support
        acc = a > acc ? a : acc;
      };
      T r = T(0);
#if defined(SPARSEREG_VECTOR_LANES)
      // Contiguous floats in four vector maxima: GCC 12 at -O3 kept the 8-lane loop below scalar
      // (0.64 ns per element; this loop 0.06 in cache). A maximum does not depend on the order.
      if constexpr (std::is_same_v<T, float>) {
        if (sx == 1) {
          namespace vec = detail::vec;
          constexpr std::size_t W = vec::width;
          const vec::fv vbig = vec::fv{} + big, zero = {};
          vec::fv m0 = {}, m1 = {}, m2 = {}, m3 = {};
          const auto step = [&](vec::fv& m, const float* p) {
            const vec::fv a = vec::abs(vec::load(p));
            const vec::fv b = vec::select(a <= vbig, a, zero);
            m = vec::select(b > m, b, m);
          };
          for (; i + 4 * W <= n; i += 4 * W) {
            step(m0, x + i);
            step(m1, x + i + W);
            step(m2, x + i + 2 * W);
            step(m3, x + i + 3 * W);
          }
          m0 = vec::select(m1 > m0, m1, m0);
          m2 = vec::select(m3 > m2, m3, m2);
          m0 = vec::select(m2 > m0, m2, m0);
          for (std::size_t j = 0; j < W; ++j) r = m0[j] > r ? m0[j] : r;
        }
      }
#endif
      if (sx == 1)
        for (; i + L <= n; i += L)
          for (std::size_t j = 0; j < L; ++j) one(x[i + j], lane[j]);
      for (; i < n; ++i) one(x[static_cast<std::ptrdiff_t>(i) * sx], lane[0]);
      for (std::size_t j = 0; j < L; ++j) r = lane[j] > r ? lane[j] : r;
      m[c] = static_cast<double>(r);
    });
    double r = 0.0;
    for (std::size_t c = 0; c < detail::kl_chunks; ++c) r = m[c] > r ? m[c] : r;
    return r;
  }

  struct binned {
    std::size_t count = 0;  // finite elements in P
    std::size_t bad = 0;    // non-finite elements
    double amax = 0.0;      // max |z| over finite z
  };

  /// Histogram of the weights into state_->hist (chunked, deterministic).
  template <class T>
  binned bin_elements(const view<const T>& w, const grid<T>& gr) const {
    auto& st = *state_;
    const std::size_t B = bins_;
    const std::size_t stride = detail::kl_ways * detail::kl_sub_size(B);
    st.partial.resize(detail::kl_chunks * stride);
    // Zero only the chunks for_each_chunk can use (one for small tensors).
    const std::size_t used = w.size() < detail::kl_chunks * detail::kl_min_chunk ? 1 : detail::kl_chunks;
    std::fill(st.partial.begin(), st.partial.begin() + static_cast<std::ptrdiff_t>(used * stride), 0.0);
    std::size_t bad[detail::kl_chunks] = {};
    double amax[detail::kl_chunks] = {};
    const std::size_t nc = detail::for_each_chunk(w, [&](std::size_t c, const T* x, std::ptrdiff_t sx, std::size_t n) {
      detail::kl_bin_run(x, sx, n, gr.lo, gr.inv_h, B, st.partial.data() + c * stride, bad[c], amax[c]);
    });
    binned r;
    st.hist.assign(B, 0.0);
    detail::kl_collect(st.partial.data(), nc * detail::kl_ways, B, st.hist.data());
    for (std::size_t c = 0; c < nc; ++c) {
      r.bad += bad[c];
      r.amax = amax[c] > r.amax ? amax[c] : r.amax;
    }
    r.count = w.size() - r.bad;
    return r;
  }

  /// Histogram of the group norms (already in state_->norms) into state_->hist.
  binned bin_norms(const grid<double>& gr) const {
    auto& st = *state_;
    const std::size_t B = bins_;
    st.partial.assign(detail::kl_ways * detail::kl_sub_size(B), 0.0);
    binned r;
    detail::kl_bin_run(st.norms.data(), 1, st.norms.size(), gr.lo, gr.inv_h, B, st.partial.data(), r.bad, r.amax);
    st.hist.assign(B, 0.0);
    detail::kl_collect(st.partial.data(), detail::kl_ways, B, st.hist.data());
    r.count = st.norms.size() - r.bad;
    return r;
  }

  /// Discretized target on the grid (cached while grid and scale are unchanged).
  void ensure_q(double lo, double h, double unit) const {
    auto& st = *state_;
    if (st.q_valid && st.q_lo == lo && st.q_h == h && st.q_unit == unit) return;
    const std::size_t B = bins_;
    st.q.assign(B, 0.0);
    st.log_q.assign(B, 0.0);
    target_.hat_masses(lo, h, B, unit, st.q.data(), st.hat_scratch);
    double total = 0.0;
    for (double m : st.q) total += m;
    if (!(total > 0.0) || !std::isfinite(total))
      detail::throw_argument("kl_to_target", "target " + target_.describe() + " has no mass on the support [" +
                                                 detail::number_text(lo) + ", " +
                                                 detail::number_text(lo + h * static_cast<double>(B - 1)) + "]");
    const double norm = 1.0 / (1.0 + static_cast<double>(B) * epsilon_);
    for (std::size_t b = 0; b < B; ++b) {
      st.q[b] = (st.q[b] / total + epsilon_) * norm;
      st.log_q[b] = std::log(st.q[b]);
    }
    st.q_valid = true;
    st.q_lo = lo;
    st.q_h = h;
    st.q_unit = unit;
  }

  /// KL(P || Q) from state_->hist; fills the gradient table (lambda included) when asked.
  double finish(std::size_t count, double inv_h, bool want_table) const {
    auto& st = *state_;
    const std::size_t B = bins_;
    const double norm = 1.0 / (1.0 + static_cast<double>(B) * epsilon_);
    const double inv_n = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
    double kl = 0.0;
    // Reuse hist for V_b = log(p_b / q_b). An empty bin has p = epsilon * norm exactly (0 * inv_n
    // + epsilon), so its log is taken once: the group-norm KL of a layer with 32 filters fills at
    // most 64 of 256 bins (a 32 x 25 tensor, 1 thread: 11 -> 7-8 us per call, same bits).
    const double p_empty = (0.0 * inv_n + epsilon_) * norm;
    const double log_empty = std::log(p_empty);
    for (std::size_t b = 0; b < B; ++b) {
      const bool empty = st.hist[b] == 0.0;
      const double p = empty ? p_empty : (st.hist[b] * inv_n + epsilon_) * norm;
      const double v = (empty ? log_empty : std::log(p)) - st.log_q[b];
      kl += p * v;
      st.hist[b] = v;
    }
    if (want_table) {
      st.table.assign(2 * B + 1, 0.0);
      if (count > 0) {
        const double c = lambda * inv_h * inv_n * norm;
        for (std::size_t k = 0; k + 1 < B; ++k) st.table[2 * k + 2] = c * (st.hist[k + 1] - st.hist[k]);
        for (std::size_t j = 0; j < B; ++j) {
          const double left = j > 0 ? st.table[2 * j] : 0.0;
          const double right = j + 1 < B ? st.table[2 * j + 2] : 0.0;
          st.table[2 * j + 1] = 0.5 * (left + right);
        }
      }
    }
    // KL >= 0 exactly; a tiny negative sum is rounding.
    return kl > 0.0 ? kl : 0.0;
  }

  void fill_distributions(kl_distributions& d, double lo, double h, std::size_t count) const {
    auto& st = *state_;
    const std::size_t B = bins_;
    d.lo = lo;
    d.hi = lo + h * static_cast<double>(B - 1);
    d.count = count;
    d.centres.resize(B);
    d.p.resize(B);
    d.q = st.q;
    for (std::size_t b = 0; b < B; ++b) {
      d.centres[b] = lo + h * static_cast<double>(b);
      d.p[b] = std::exp(st.hist[b] + st.log_q[b]);
    }
  }

  /// Support half-width for this call (before binning); `zmax` computes max|z| when needed.
  template <class MaxFn>
  double support_for(MaxFn&& zmax) const {
    auto& st = *state_;
    double s = 0.0;
    switch (support_.mode()) {
      case kl_support::kind::fixed: return support_.parameter();
      case kl_support::kind::max_abs: {
        s = support_.rounded(support_.parameter() * zmax());
        break;
      }
      default:
        if (st.support_set) return st.support;
        s = support_.parameter() * zmax();
        break;
    }
    if (!(s > 0.0)) s = fallback_support();
    if (support_.mode() == kl_support::kind::tracked) {
      st.support = s;
      st.support_set = true;
    }
    return s;
  }

  /// Tracked support: refit when the data left it or shrank below half of it.
  bool needs_refit(double s, double amax) const {
    if (support_.mode() != kl_support::kind::tracked || !(amax > 0.0)) return false;
    return amax > s || support_.parameter() * amax < 0.5 * s;
  }

  /// The whole computation: returns KL (without lambda); adds lambda * dKL/dw into *g when g.
  template <class T, class G>
  double run(const view<const T>& w, const G* g, kl_distributions* diag) const {
    static_assert(std::is_floating_point_v<T>, "kl_to_target: weights must be float or double");
    if (w.size() == 0) {
      state_->last_value = 0.0;
      return 0.0;
    }
    const double kl = groups_ ? run_groups(w, g, diag) : run_elements(w, g, diag);
    state_->last_value = lambda * kl;
    return kl;
  }

  template <class T, class G>
  double run_elements(const view<const T>& w, const G* g, kl_distributions* diag) const {
    auto& st = *state_;
    if (target_.is_relative() && !st.unit_resolved) {
      const double u = std_of(w);
      if (!(u > 0.0) || !std::isfinite(u)) throw_unresolvable(u);
      st.unit = u;
      st.unit_resolved = true;
    }
    const double unit = target_.is_relative() ? st.unit : 1.0;
    double s = support_for([&] { return max_abs_of(w); });
    grid<T> gr = make_grid<T>(-s, s);
    binned b = bin_elements(w, gr);
    if (needs_refit(s, b.amax)) {
      s = support_.parameter() * b.amax;
      st.support = s;
      gr = make_grid<T>(-s, s);
      b = bin_elements(w, gr);
    }
    ensure_q(gr.lo_d, gr.h_d, unit);
    double kl = finish(b.count, gr.inv_h_d, g != nullptr);
    if (diag) fill_distributions(*diag, gr.lo_d, gr.h_d, b.count), diag->kl = kl;
    if (b.bad > 0) kl = std::numeric_limits<double>::quiet_NaN();
    if constexpr (!std::is_same_v<G, view<const T>>) {
      if (g) add_element_gradient(w, *g, gr);
    }
    return kl;
  }

  template <class T>
  void add_element_gradient(const view<const T>& w, const view<T>& g, const grid<T>& gr) const {
    auto& st = *state_;
    const std::size_t B = bins_;
    const T* tab;
    if constexpr (std::is_same_v<T, double>) {
      tab = st.table.data();
    } else {
      st.table_f.resize(st.table.size());
      for (std::size_t i = 0; i < st.table.size(); ++i) st.table_f[i] = static_cast<T>(st.table[i]);
      tab = st.table_f.data();
    }
    const T lo = gr.lo, inv_h = gr.inv_h;
    const T u_hi = static_cast<T>(B) - T(0.5);
    const T nan = std::numeric_limits<T>::quiet_NaN();
    detail::elementwise_sweep(w, g, w, [=](const T* x, std::ptrdiff_t sx, T* y, std::ptrdiff_t sy, const T*,
                                           std::ptrdiff_t, std::size_t n) {
      auto body = [&](T v) {
        const T d = tab[detail::kl_table_index((v - lo) * inv_h, u_hi)];
        return detail::finite_value(v) ? d : nan;
      };
      if (sx == 1 && sy == 1) {
        detail::kl_gradient_run(x, y, n, lo, inv_h, u_hi, tab);
      } else {
        for (std::size_t i = 0; i < n; ++i)
          y[static_cast<std::ptrdiff_t>(i) * sy] += body(x[static_cast<std::ptrdiff_t>(i) * sx]);
      }
      return detail::sweep_totals{};
    });
  }

  template <class T, class G>
  double run_groups(const view<const T>& w, const G* g, kl_distributions* diag) const {
    auto& st = *state_;
    const grouping& grp = *groups_;
    grp.check("kl_to_target(on_group_norms)", w);
    st.norms.resize(grp.group_count(w));
    double* norms = st.norms.data();
    detail::grouped_sweep<false>(
        w, w, grp, [](T v) { return v; },
        [norms](std::size_t gi, std::size_t, double sumsq, double, std::size_t) {
          norms[gi] = std::sqrt(sumsq);
          return detail::group_decision<T>{};
        },
        detail::no_apply{});
    if (target_.is_relative() && !st.unit_resolved) {
      double ss = 0.0;
      std::size_t n = 0;
      for (double r : st.norms)
        if (std::isfinite(r)) ss += r * r, ++n;
      const double u = n > 0 ? std::sqrt(ss / static_cast<double>(n)) : 0.0;
      if (!(u > 0.0) || !std::isfinite(u)) throw_unresolvable(u);
      st.unit = u;
      st.unit_resolved = true;
    }
    const double unit = target_.is_relative() ? st.unit : 1.0;
    // The largest finite norm (norms are >= 0 or NaN) through max_abs_of's eight running maxima:
    // one dependent chain of compares took 4 us of fc1's call (3,136 norms) on the Intel Xeon.
    double s = support_for([&] { return max_abs_of(view<const double>(st.norms.data(), {st.norms.size()})); });
    grid<double> gr = make_grid<double>(0.0, s);
    binned b = bin_norms(gr);
    if (needs_refit(s, b.amax)) {
      s = support_.parameter() * b.amax;
      st.support = s;
      gr = make_grid<double>(0.0, s);
      b = bin_norms(gr);
    }
    ensure_q(gr.lo_d, gr.h_d, unit);
    double kl = finish(b.count, gr.inv_h_d, g != nullptr);
    if (diag) fill_distributions(*diag, gr.lo_d, gr.h_d, b.count), diag->kl = kl;
    if (b.bad > 0) kl = std::numeric_limits<double>::quiet_NaN();
    if constexpr (!std::is_same_v<G, view<const T>>) {
      if (g) {
        // d KL / d w = (dKL/dr_g) w / r_g for w in group g: one factor per group from the norms
        // computed above, then one pass that adds factor * w (no second norm pass).
        const double* tab = st.table.data();
        const double lo = gr.lo, inv_h = gr.inv_h;
        const double u_hi = static_cast<double>(bins_) - 0.5;
        auto& factor = [&]() -> std::vector<T>& {
          if constexpr (std::is_same_v<T, float>) return st.factor_f;
          else return st.factor_d;
        }();
        factor.resize(st.norms.size());
        for (std::size_t gi = 0; gi < factor.size(); ++gi) {
          const double r = st.norms[gi];
          if (!std::isfinite(r)) factor[gi] = std::numeric_limits<T>::quiet_NaN();
          else if (r > 0.0) factor[gi] = static_cast<T>(tab[detail::kl_table_index((r - lo) * inv_h, u_hi)] / r);
          else factor[gi] = T(0);
        }
        detail::grouped_apply(w, *g, grp, factor.data(),
                              [](const T* x, std::ptrdiff_t sx, T* y, std::ptrdiff_t sy, std::size_t n, auto factor_of) {
                                // Unit strides as compile-time constants, as in the SGL apply: the
                                // compiler needs no runtime stride check to vectorize contiguous runs.
                                detail::with_unit_strides(sx, sy, [&](auto sxu, auto syu) {
                                  for (std::size_t i = 0; i < n; ++i) {
                                    const auto k = static_cast<std::ptrdiff_t>(i);
                                    y[k * syu] += factor_of(i) * x[k * sxu];
                                  }
                                });
                              });
      }
    }
    return kl;
  }

  class target target_;
  std::size_t bins_;
  kl_support support_;
  double epsilon_;
  std::optional<grouping> groups_;
  std::shared_ptr<detail::kl_state> state_;
};

}  // namespace sparsereg
