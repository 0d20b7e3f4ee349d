// l1 penalty (lasso): R(w) = lambda * sum_i |w_i|.
//
// prox:       y_i = sign(x_i) * max(|x_i| - step*lambda, 0)   (soft threshold; Donoho 1995)
//             prox_only_of: the same output without value and zero count (without_stats).
//             per-element steps: threshold step_i*lambda (exact: the penalty is separable).
// gradient:   lambda * sign(w_i), with sign(0) = 0: the minimum-norm element of
//             the subdifferential lambda*[-1, 1] at zero.
#pragma once

#include <cmath>    // std::fabs
#include <cstddef>  // std::size_t

#include "../detail/sweep.hpp"
#include "../penalty.hpp"

namespace sparsereg {

struct l1 {
  static constexpr bool has_gradient = true;
  static constexpr bool has_prox = true;
  static constexpr bool smooth = false;
  static constexpr bool separable = true;
  static constexpr bool convex = true;

  double lambda = 0.0;

  explicit l1(double lambda_) : lambda(lambda_) { detail::require_nonnegative("l1", "lambda", lambda); }
  /// The same penalty with lambda multiplied by `factor` (schedules).
  l1 scaled(double factor) const { return l1(lambda * factor); }

  template <class T>
  double value_of(const view<const T>& w) const {
    const bool ahead = detail::worth_prefetch(w.size() * sizeof(T));  // speed only, never results
    const auto t = detail::elementwise_sweep(w, w, w, [ahead](const T* x, std::ptrdiff_t sx, const T*, std::ptrdiff_t,
                                                              const T*, std::ptrdiff_t, std::size_t n) {
      detail::sweep_totals s;
      s.value =
          detail::with_unit_strides(sx, 1, [&](auto sxu, auto) { return detail::abs_lane_sum(x, sxu, n, ahead); });
      return s;
    });
    return lambda * t.value;
  }

  template <class T>
  void add_gradient_to(const view<const T>& w, const view<T>& g) const {
    const T lam = static_cast<T>(lambda);
    detail::elementwise_sweep(w, g, w, [lam](const T* x, std::ptrdiff_t sx, T* y, std::ptrdiff_t sy, const T*,
                                             std::ptrdiff_t, std::size_t n) {
      detail::with_unit_strides(sx, sy, [&](auto sxu, auto syu) {
        for (std::size_t i = 0; i < n; ++i) {
          const auto k = static_cast<std::ptrdiff_t>(i);
          y[k * syu] += lam * detail::sign_of(x[k * sxu]);
        }
      });
      return detail::sweep_totals{};
    });
  }

  template <class T>
  prox_result prox_of(const view<const T>& x, const view<T>& y, double step) const {
    const T t = static_cast<T>(step * lambda);
    const bool ahead = detail::worth_prefetch(x.size() * sizeof(T));  // speed only, never results
    const auto r = detail::elementwise_sweep(x, y, x, [t, ahead](const T* xp, std::ptrdiff_t sx, T* yp,
                                                                 std::ptrdiff_t sy, const T*, std::ptrdiff_t,
                                                                 std::size_t n) {
      detail::sweep_totals s;
      std::size_t zeros = 0;
      // t = 0 is the identity (soft_threshold keeps -0.0 there); t > 0 uses the SIMD-friendly form.
      s.value = detail::with_unit_strides(sx, sy, [&](auto sxu, auto syu) {
        return t == T(0) ? detail::abs_lane_sum_zeros(xp, sxu, yp, syu, n, [](auto v) { return v; }, zeros, ahead)
                         : detail::soft_threshold_lane_sum_zeros(xp, sxu, yp, syu, n, t, zeros, ahead);
      });
      s.zero_elements = zeros;
      return s;
    });
    return {lambda * r.value, r.zero_elements, 0, 0};
  }

  /// The prox's output without its statistics (sparsereg::prox(..., without_stats)): the same
  /// soft threshold, written by a loop that does nothing else.
  template <class T>
  void prox_only_of(const view<const T>& x, const view<T>& y, double step) const {
    const T t = static_cast<T>(step * lambda);
    const bool ahead = detail::worth_prefetch(x.size() * sizeof(T));  // speed only, never results
    detail::elementwise_sweep(x, y, x, [t, ahead](const T* xp, std::ptrdiff_t sx, T* yp, std::ptrdiff_t sy,
                                                  const T*, std::ptrdiff_t, std::size_t n) {
      const auto run = [&](auto soft) {
        detail::with_unit_strides(sx, sy, [&](auto sxu, auto syu) {
          detail::in_prefetched_blocks(xp, sxu, n, ahead, [&](std::size_t lo, std::size_t hi) {
            for (std::size_t i = lo; i < hi; ++i) {
              const auto k = static_cast<std::ptrdiff_t>(i);
              yp[k * syu] = soft(xp[k * sxu]);
            }
          });
        });
      };
      if (t == T(0)) {
        if (xp != yp) run([](T v) { return v; });
      } else {
        run([t](T v) { return detail::soft_threshold_positive(v, t); });
      }
      return detail::sweep_totals{};
    });
  }

  template <class T>
  prox_result prox_of(const view<const T>& x, const view<T>& y, const view<const T>& steps) const {
    detail::require_valid_steps("prox", steps);
    return prox_of(x, y, steps, detail::steps_already_checked);
  }
  template <class T>
  prox_result prox_of(const view<const T>& x, const view<T>& y, const view<const T>& steps,
                      detail::steps_already_checked_t) const {
    // The threshold is rounded from step_i*lambda in double, exactly as the scalar-step prox does,
    // so equal per-element steps give bit-identical results (T(s)*T(lambda) would round twice);
    // a zero threshold is the identity (as soft_threshold, which keeps -0.0), a positive one the
    // SIMD form. Unit strides as compile-time constants: contiguous float runs take vector lanes.
    const double lam = lambda;
    const auto r = detail::elementwise_sweep(x, y, steps, [lam](const T* xp, std::ptrdiff_t sx, T* yp, std::ptrdiff_t sy,
                                                                const T* sp, std::ptrdiff_t ss, std::size_t n) {
      detail::sweep_totals s;
      std::size_t zeros = 0;
      s.value = detail::with_unit_strides(sx, sy, ss, [&](auto sxu, auto syu, auto ssu) {
        return detail::steps_soft_threshold_lane_sum_zeros(xp, sxu, yp, syu, sp, ssu, n, lam, zeros);
      });
      s.zero_elements = zeros;
      return s;
    });
    return {lambda * r.value, r.zero_elements, 0, 0};
  }
};

}  // namespace sparsereg
