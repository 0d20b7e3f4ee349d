// Closed-form Gaussian KL, the cheap variance regularizer (our formulation; docs/math.md):
//   R(w) = lambda * KL(N(mu, v) || N(0, s^2)) = lambda * [log(s) - log(v)/2 + (v + mu^2) / (2 s^2) - 1/2],
// mu = mean(w), v = sigma^2 + eps * s^2 with sigma^2 the population variance of w; eps (default
// 1e-12) keeps a constant tensor (sigma = 0) finite: it is the KL of a slightly widened Gaussian,
// still >= 0, and its gradient is exact for it.
// gradient (dmu/dw_i = 1/N, dsigma^2/dw_i = 2 (w_i - mu) / N):
//   dR/dw_i = lambda * [mu / (N s^2) + (1/s^2 - 1/v) (w_i - mu) / N].
// Two passes: sums (shifted by the first element against cancellation; vector lanes for contiguous
// floats on AVX targets), then the affine gradient.
// The target scale s is absolute, or relative: a multiple of the weights' standard deviation at
// first use, kept in a state shared with the penalty's copies (as kl_to_target; one thread at a
// time; fresh() for another tensor).
// Non-finite weights: excluded from mu and sigma; the value is NaN, their own gradient is NaN.
#pragma once

#include <cmath>        // std::log, std::sqrt, std::isfinite
#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <cstdint>      // std::uint8_t
#include <limits>       // std::numeric_limits
#include <memory>       // std::shared_ptr
#include <stdexcept>    // std::runtime_error
#include <type_traits>  // std::is_floating_point_v
#include <vector>       // std::vector

#include "../detail/sweep.hpp"
#include "../penalty.hpp"
#include "../targets.hpp"

namespace sparsereg {

/// Mean and population variance of the finite elements of a tensor, as kl_gaussian uses them.
struct gaussian_moments {
  std::size_t count = 0;     ///< finite elements
  std::size_t non_finite = 0;
  double mean = 0.0;
  double variance = 0.0;     ///< population variance (divide by count)
};

namespace detail {

struct kl_gaussian_state {
  bool unit_resolved = false;
  double unit = 1.0;
  double last_value = std::numeric_limits<double>::quiet_NaN();
};

/// One chunked pass: shifted sums of the finite elements, combined in chunk order.
template <class T>
gaussian_moments moments_of(const view<const T>& w) {
  gaussian_moments m;
  if (w.size() == 0) return m;
  // Shift by one element (the first in memory order of the first run, if finite) so that
  // sum (x - k)^2 - (sum (x - k))^2 / n does not cancel catastrophically for |mean| >> sigma.
  const T first = w.data()[0];
  const double k = finite_value(first) ? static_cast<double>(first) : 0.0;
  double s1[kl_chunks] = {}, s2[kl_chunks] = {};
  std::size_t cnt[kl_chunks] = {};
  for_each_chunk(w, [&](std::size_t c, const T* x, std::ptrdiff_t sx, std::size_t n) {
    constexpr std::size_t L = 4;
    double a[L] = {}, b[L] = {};
    std::size_t good = 0;
    auto one = [&](T v, std::size_t j) {
      const bool ok = finite_value(v);
      const double d = ok ? static_cast<double>(v) - k : 0.0;
      a[j] += d;
      b[j] += d * d;
      good += ok;
    };
    std::size_t i = 0;
#if defined(SPARSEREG_VECTOR_LANES)
    // Contiguous floats: the same shifted double sums in vector lanes (GCC 12 at -O3 kept the
    // 4-lane loop below scalar: 0.82 ns per element; this loop 0.19). A non-finite element is
    // replaced by k itself (a float: the first element, or 0), so it adds exactly 0, as above.
    if constexpr (std::is_same_v<T, float>) {
      if (sx == 1) {
        namespace vec = detail::vec;
        constexpr std::size_t W = vec::width;
        const vec::fv kf = vec::fv{} + static_cast<float>(k);
        const vec::dv kd = vec::dv{} + k;
        vec::dv p0 = {}, p1 = {}, p2 = {}, p3 = {}, q0 = {}, q1 = {}, q2 = {}, q3 = {};
        const auto part = [&](const float* at, vec::iv& bad, vec::dv& lo, vec::dv& hi, vec::dv& lo2, vec::dv& hi2) {
          const vec::fv v = vec::load(at);
          const vec::iv ok = (v - v) == 0;  // false for NaN and +-inf
          bad += ok + 1;                    // -1 + 1 where finite, 0 + 1 where not
          const vec::fv u = vec::select(ok, v, kf);
          const vec::dv dl = vec::widen_low(u) - kd, dh = vec::widen_high(u) - kd;
          lo += dl;
          hi += dh;
          lo2 += dl * dl;
          hi2 += dh * dh;
        };
        constexpr std::size_t flush = std::size_t(1) << 24;  // iterations per 32-bit count
        while (i + 2 * W <= n) {
          const std::size_t start = i;
          vec::iv bad = {};
          for (std::size_t it = 0; it < flush && i + 2 * W <= n; ++it, i += 2 * W) {
            part(x + i, bad, p0, p1, q0, q1);
            part(x + i + W, bad, p2, p3, q2, q3);
          }
          std::size_t nb = 0;
          for (std::size_t j = 0; j < W; ++j) nb += static_cast<std::uint32_t>(bad[j]);
          good += (i - start) - nb;
        }
        const vec::dv ps = (p0 + p1) + (p2 + p3), qs = (q0 + q1) + (q2 + q3);
        for (std::size_t j = 0; j < W / 2; ++j) a[0] += ps[j], b[0] += qs[j];
      }
    }
#endif
    if (sx == 1)
      for (; i + L <= n; i += L)
        for (std::size_t j = 0; j < L; ++j) one(x[i + j], j);
    for (; i < n; ++i) one(x[static_cast<std::ptrdiff_t>(i) * sx], 0);
    s1[c] = (a[0] + a[1]) + (a[2] + a[3]);
    s2[c] = (b[0] + b[1]) + (b[2] + b[3]);
    cnt[c] = good;
  });
  double t1 = 0.0, t2 = 0.0;
  for (std::size_t c = 0; c < kl_chunks; ++c) t1 += s1[c], t2 += s2[c], m.count += cnt[c];
  m.non_finite = w.size() - m.count;
  if (m.count == 0) return m;
  const double n = static_cast<double>(m.count);
  const double d = t1 / n;
  m.mean = k + d;
  m.variance = t2 / n - d * d;
  if (m.variance < 0.0) m.variance = 0.0;
  return m;
}

}  // namespace detail

class kl_gaussian {
 public:
  static constexpr const char* name = "kl_gaussian";
  static constexpr bool has_gradient = true;
  static constexpr bool has_prox = false;
  static constexpr bool smooth = true;
  static constexpr bool separable = false;
  static constexpr bool convex = false;

  double lambda = 0.0;

  /// Target N(0, target_scale^2), target_scale absolute or relative to the weights' std at first use.
  explicit kl_gaussian(double lambda_, double target_scale = 2.0, scale_mode mode = scale_mode::relative,
                       double epsilon = 1e-12)
      : lambda(lambda_), scale_(target_scale), mode_(mode), epsilon_(epsilon),
        state_(std::make_shared<detail::kl_gaussian_state>()) {
    detail::require_nonnegative("kl_gaussian", "lambda", lambda);
    detail::require_positive("kl_gaussian", "target_scale", scale_);
    if (!(epsilon_ > 0.0 && epsilon_ <= 1e-2))
      detail::throw_argument("kl_gaussian", "epsilon must lie in (0, 0.01], got " + detail::number_text(epsilon_));
  }

  kl_gaussian scaled(double factor) const {
    kl_gaussian p = *this;
    p.lambda = lambda * factor;
    detail::require_nonnegative("kl_gaussian::scaled", "lambda", p.lambda);
    return p;
  }
  kl_gaussian fresh() const {
    kl_gaussian p = *this;
    p.state_ = std::make_shared<detail::kl_gaussian_state>();
    return p;
  }

  double epsilon() const noexcept { return epsilon_; }
  scale_mode mode() const noexcept { return mode_; }
  /// s_t in the weights' units (NaN while a relative scale is unresolved).
  double target_scale() const noexcept {
    if (mode_ == scale_mode::absolute) return scale_;
    return state_->unit_resolved ? scale_ * state_->unit : std::numeric_limits<double>::quiet_NaN();
  }
  double last_value() const noexcept { return state_->last_value; }

  template <class W>
  void resolve(const W& w) const {
    state_->unit_resolved = false;
    resolved_scale(detail::const_view_of(w), detail::moments_of(detail::const_view_of(w)));
  }
  void reset() const { *state_ = detail::kl_gaussian_state{}; }

  /// KL(N(mu, sigma^2 + eps s^2) || N(0, s^2)) from moments (without lambda).
  double kl_of(const gaussian_moments& m, double s) const {
    const double s2 = s * s;
    const double v = m.variance + epsilon_ * s2;
    const double kl = std::log(s) - 0.5 * std::log(v) + (v + m.mean * m.mean) / (2.0 * s2) - 0.5;
    return kl > 0.0 ? kl : 0.0;  // >= 0 exactly; a tiny negative is rounding
  }

  template <class T>
  double value_of(const view<const T>& w) const {
    static_assert(std::is_floating_point_v<T>, "kl_gaussian: weights must be float or double");
    if (w.size() == 0) return state_->last_value = 0.0;
    const gaussian_moments m = detail::moments_of(w);
    const double s = resolved_scale(w, m);
    const double v = m.non_finite > 0 ? std::numeric_limits<double>::quiet_NaN() : lambda * kl_of(m, s);
    return state_->last_value = v;
  }

  template <class T>
  void add_gradient_to(const view<const T>& w, const view<T>& g) const {
    value_and_gradient(w, g);
  }

  /// Returns lambda * KL and adds its gradient into g, in two passes.
  template <class W, class G>
  double value_and_add_gradient(const W& w, G&& g) const {
    const auto vw = detail::const_view_of(w);
    const auto vg = detail::mutable_view_of(g);
    static_assert(std::is_same_v<typename decltype(vw)::value_type, typename decltype(vg)::value_type>,
                  "sparsereg::kl_gaussian::value_and_add_gradient: w and g must have the same element type");
    detail::require_same_shape("kl_gaussian::value_and_add_gradient", "w", vw, "g", vg);
    detail::require_disjoint("kl_gaussian::value_and_add_gradient", "w", vw, "g", vg);
    return value_and_gradient(vw, vg);
  }

  std::vector<std::uint8_t> save_state() const {
    std::vector<std::uint8_t> out;
    detail::kl_put(out, 1.0);
    detail::kl_put(out, state_->unit_resolved ? 1.0 : 0.0);
    detail::kl_put(out, state_->unit);
    return out;
  }
  void load_state(const std::vector<std::uint8_t>& in) {
    std::size_t pos = 0;
    if (detail::kl_get(in, pos) != 1.0) throw std::runtime_error("sparsereg::load_state: unknown KL penalty state version");
    detail::kl_gaussian_state s;
    s.unit_resolved = detail::kl_get(in, pos) != 0.0;
    s.unit = detail::kl_get(in, pos);
    if (pos != in.size() || !(s.unit > 0.0) || !std::isfinite(s.unit))
      throw std::runtime_error("sparsereg::load_state: malformed KL penalty state");
    *state_ = s;
  }

 private:
  template <class T>
  double resolved_scale(const view<const T>&, const gaussian_moments& m) const {
    if (mode_ == scale_mode::absolute) return scale_;
    auto& st = *state_;
    if (!st.unit_resolved) {
      const double u = std::sqrt(m.variance);
      if (!(u > 0.0) || !std::isfinite(u))
        detail::throw_argument("kl_gaussian", "cannot resolve the relative target scale: the weights' standard deviation is " +
                                                  detail::number_text(u) +
                                                  "; use scale_mode::absolute or resolve() on non-degenerate weights");
      st.unit = u;
      st.unit_resolved = true;
    }
    return scale_ * st.unit;
  }

  template <class T>
  double value_and_gradient(const view<const T>& w, const view<T>& g) const {
    if (w.size() == 0) return state_->last_value = 0.0;
    const gaussian_moments m = detail::moments_of(w);
    const double s = resolved_scale(w, m);
    const double value = m.non_finite > 0 ? std::numeric_limits<double>::quiet_NaN() : lambda * kl_of(m, s);
    state_->last_value = value;
    const double n = m.count > 0 ? static_cast<double>(m.count) : 1.0;
    const double s2 = s * s;
    const double v = m.variance + epsilon_ * s2;
    const T a = static_cast<T>(lambda * m.mean / (n * s2));
    const T b = static_cast<T>(lambda * (1.0 / s2 - 1.0 / v) / n);
    const T mu = static_cast<T>(m.mean);
    const T nan = std::numeric_limits<T>::quiet_NaN();
    detail::elementwise_sweep(w, g, w, [=](const T* x, std::ptrdiff_t sx, T* y, std::ptrdiff_t sy, const T*,
                                           std::ptrdiff_t, std::size_t cnt) {
      auto body = [&](T xv) { return detail::finite_value(xv) ? a + b * (xv - mu) : nan; };
      if (sx == 1 && sy == 1) {
        std::size_t i = 0;
#if defined(SPARSEREG_VECTOR_LANES)
        // GCC 12 keeps the loop below scalar, with a branch per element (1.1 ns per element on
        // Zen 3, AVX2). The same operations in vector lanes, the select after the affine term
        // instead of a branch before it: the same bits (both contract b * (x - mu) + a alike).
        if constexpr (std::is_same_v<T, float>) {
          namespace vec = detail::vec;
          const vec::fv va = vec::fv{} + a, vb = vec::fv{} + b, vmu = vec::fv{} + mu, vnan = vec::fv{} + nan;
          for (; i + vec::width <= cnt; i += vec::width) {
            const vec::fv v = vec::load(x + i);
            const vec::fv r = va + vb * (v - vmu);
            vec::store(y + i, vec::load(y + i) + vec::select((v - v) == 0, r, vnan));
          }
        }
#endif
        for (; i < cnt; ++i) y[i] += body(x[i]);
      } else {
        for (std::size_t i = 0; i < cnt; ++i)
          y[static_cast<std::ptrdiff_t>(i) * sy] += body(x[static_cast<std::ptrdiff_t>(i) * sx]);
      }
      return detail::sweep_totals{};
    });
    return value;
  }

  double scale_;
  scale_mode mode_;
  double epsilon_;
  std::shared_ptr<detail::kl_gaussian_state> state_;
};

}  // namespace sparsereg
