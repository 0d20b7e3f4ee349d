// l0 penalty: R(w) = lambda * #{i : w_i != 0}. Not convex; its prox is hard thresholding.
//
// prox:       y_i = x_i if |x_i| > sqrt(2*step*lambda), else 0 (at equality both are minimisers;
//             we choose 0, which keeps the output sparser). Per-element steps use step_i.
// No gradient: the penalty is piecewise constant.
#pragma once

#include <cmath>    // std::sqrt
#include <cstddef>  // std::size_t

#include "../detail/sweep.hpp"
#include "../penalty.hpp"

namespace sparsereg {

struct hard_threshold {
  static constexpr bool has_gradient = false;
  static constexpr bool has_prox = true;
  static constexpr bool smooth = false;
  static constexpr bool separable = true;
  static constexpr bool convex = false;

  double lambda = 0.0;

  explicit hard_threshold(double lambda_) : lambda(lambda_) {
    detail::require_nonnegative("hard_threshold", "lambda", lambda);
  }
  hard_threshold scaled(double factor) const { return hard_threshold(lambda * factor); }

  template <class T>
  double value_of(const view<const T>& w) const {
    const auto t = detail::elementwise_sweep(w, w, w, [](const T* x, std::ptrdiff_t sx, const T*, std::ptrdiff_t,
                                                         const T*, std::ptrdiff_t, std::size_t n) {
      detail::sweep_totals s;
      s.zero_elements =
          detail::with_unit_strides(sx, 1, [&](auto sxu, auto) { return detail::count_zeros(x, sxu, n); });
      s.groups = n;
      return s;
    });
    return lambda * static_cast<double>(t.groups - t.zero_elements);
  }

  template <class T>
  prox_result prox_of(const view<const T>& x, const view<T>& y, double step) const {
    const T thr = static_cast<T>(std::sqrt(2.0 * step * lambda));
    const bool ahead = detail::worth_prefetch(x.size() * sizeof(T));  // speed only, never results
    return finish(detail::elementwise_sweep(x, y, x, [thr, ahead](const T* xp, std::ptrdiff_t sx, T* yp,
                                                                  std::ptrdiff_t sy, const T*, std::ptrdiff_t,
                                                                  std::size_t n) {
      detail::sweep_totals s;
      detail::with_unit_strides(sx, sy, [&](auto sxu, auto syu) {
        detail::in_prefetched_blocks(xp, sxu, n, ahead, [&](std::size_t lo, std::size_t hi) {
          for (std::size_t i = lo; i < hi; ++i) {
            const auto k = static_cast<std::ptrdiff_t>(i);
            const T v = xp[k * sxu];
            // NaN fails the test and is kept; zeros (also -0.0) pass through, so step 0 and
            // lambda 0 are the identity bit for bit.
            const T out = (v < T(0) ? -v : v) <= thr && v != T(0) ? T(0) : v;
            yp[k * syu] = out;
            s.zero_elements += (out == T(0));
          }
        });
      });
      s.groups = n;
      return s;
    }));
  }

  template <class T>
  prox_result prox_of(const view<const T>& x, const view<T>& y, const view<const T>& steps) const {
    detail::require_valid_steps("prox", steps);
    return prox_of(x, y, steps, detail::steps_already_checked);
  }
  template <class T>
  prox_result prox_of(const view<const T>& x, const view<T>& y, const view<const T>& steps,
                      detail::steps_already_checked_t) const {
    const double lam2 = 2.0 * lambda;
    return finish(detail::elementwise_sweep(x, y, steps, [lam2](const T* xp, std::ptrdiff_t sx, T* yp, std::ptrdiff_t sy,
                                                                const T* sp, std::ptrdiff_t ss, std::size_t n) {
      detail::sweep_totals s;
      detail::with_unit_strides(sx, sy, ss, [&](auto sxu, auto syu, auto ssu) {
        for (std::size_t i = 0; i < n; ++i) {
          const auto k = static_cast<std::ptrdiff_t>(i);
          const T v = xp[k * sxu];
          const T thr = static_cast<T>(std::sqrt(lam2 * static_cast<double>(sp[k * ssu])));
          const T out = (v < T(0) ? -v : v) <= thr && v != T(0) ? T(0) : v;
          yp[k * syu] = out;
          s.zero_elements += (out == T(0));
        }
      });
      s.groups = n;
      return s;
    }));
  }

 private:
  prox_result finish(const detail::sweep_totals& t) const {
    return {lambda * static_cast<double>(t.groups - t.zero_elements), t.zero_elements, 0, 0};
  }
};

}  // namespace sparsereg
