// Squared l2 (weight decay, the dense baseline): R(w) = (lambda / 2) * sum_i w_i^2.
//
// gradient:   lambda * w_i.
// prox:       y_i = x_i / (1 + step*lambda); per-element steps: x_i / (1 + step_i*lambda).
#pragma once

#include <cstddef>  // std::size_t

#include "../detail/sweep.hpp"
#include "../penalty.hpp"

namespace sparsereg {

struct squared_l2 {
  static constexpr bool has_gradient = true;
  static constexpr bool has_prox = true;
  static constexpr bool smooth = true;
  static constexpr bool separable = true;
  static constexpr bool convex = true;

  double lambda = 0.0;

  explicit squared_l2(double lambda_) : lambda(lambda_) {
    detail::require_nonnegative("squared_l2", "lambda", lambda);
  }
  squared_l2 scaled(double factor) const { return squared_l2(lambda * factor); }

  template <class T>
  double value_of(const view<const T>& w) const {
    const bool ahead = detail::worth_prefetch(w.size() * sizeof(T));  // speed only, never results
    const auto t = detail::elementwise_sweep(w, w, w, [ahead](const T* x, std::ptrdiff_t sx, const T*, std::ptrdiff_t,
                                                              const T*, std::ptrdiff_t, std::size_t n) {
      detail::sweep_totals s;
      // sum_i x_i^2 in double, in lane_sum's lanes and tree (a vector form for contiguous floats).
      s.value = detail::with_unit_strides(
          sx, 1, [&](auto sxu, auto) { return detail::abs_lane_sum<true>(x, sxu, n, ahead); });
      return s;
    });
    return 0.5 * lambda * t.value;
  }

  template <class T>
  void add_gradient_to(const view<const T>& w, const view<T>& g) const {
    const T lam = static_cast<T>(lambda);
    detail::elementwise_sweep(w, g, w, [lam](const T* x, std::ptrdiff_t sx, T* y, std::ptrdiff_t sy, const T*,
                                             std::ptrdiff_t, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i)
        y[static_cast<std::ptrdiff_t>(i) * sy] += lam * x[static_cast<std::ptrdiff_t>(i) * sx];
      return detail::sweep_totals{};
    });
  }

  template <class T>
  prox_result prox_of(const view<const T>& x, const view<T>& y, double step) const {
    const T f = static_cast<T>(1.0 / (1.0 + step * lambda));
    const bool ahead = detail::worth_prefetch(x.size() * sizeof(T));  // speed only, never results
    return finish(detail::elementwise_sweep(x, y, x, [f, ahead](const T* xp, std::ptrdiff_t sx, T* yp,
                                                                std::ptrdiff_t sy, const T*, std::ptrdiff_t,
                                                                std::size_t n) {
      detail::sweep_totals s;
      std::size_t zeros = 0;
      // y_i = x_i * f (one float multiply, on single elements and float vectors alike), with
      // sum_i y_i^2 in double in lane_sum's lanes and tree and the zero count.
      s.value = detail::with_unit_strides(sx, sy, [&](auto sxu, auto syu) {
        return detail::abs_lane_sum_zeros<true>(xp, sxu, yp, syu, n, [f](auto v) { return v * f; }, zeros, ahead);
      });
      s.zero_elements = zeros;
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
    // Same rounding as the scalar-step prox (factor 1/(1 + step_i*lambda) formed in double, then
    // one multiply in T), so equal per-element steps give bit-identical results.
    const double lam = lambda;
    return finish(detail::elementwise_sweep(x, y, steps, [lam](const T* xp, std::ptrdiff_t sx, T* yp, std::ptrdiff_t sy,
                                                               const T* sp, std::ptrdiff_t ss, std::size_t n) {
      detail::sweep_totals s;
      std::size_t zeros = 0;
      s.value = detail::with_unit_strides(sx, sy, ss, [&](auto sxu, auto syu, auto ssu) {
        return detail::lane_sum_zeros<T>(
            n,
            [&](std::size_t i) {
              const auto k = static_cast<std::ptrdiff_t>(i);
              const T v = xp[k * sxu] * static_cast<T>(1.0 / (1.0 + static_cast<double>(sp[k * ssu]) * lam));
              yp[k * syu] = v;
              return v;
            },
            [](T v) { return static_cast<double>(v) * static_cast<double>(v); }, zeros);
      });
      s.zero_elements = zeros;
      return s;
    }));
  }

 private:
  prox_result finish(const detail::sweep_totals& t) const { return {0.5 * lambda * t.value, t.zero_elements, 0, 0}; }
};

}  // namespace sparsereg
