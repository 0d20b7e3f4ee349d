// Group lasso (Yuan & Lin 2006): R(w) = lambda * sum_g c_g ||w_g||_2, c_g = sqrt(|g|) by default.
//
// prox:       block soft threshold y_g = max(0, 1 - step*lambda*c_g / ||x_g||) * x_g (0 for a zero group).
// gradient:   lambda * c_g * w_g / ||w_g||, and 0 for a zero group (the minimum-norm element of
//             the subdifferential, the ball of radius lambda*c_g).
// It shares its kernels with sparse_group_lasso (lambda_l1 = 0).
#pragma once

#include "sparse_group_lasso.hpp"

namespace sparsereg {

struct group_lasso {
  static constexpr bool has_gradient = true;
  static constexpr bool has_prox = true;
  static constexpr bool smooth = false;
  static constexpr bool separable = false;
  static constexpr bool convex = true;

  double lambda = 0.0;
  grouping groups;

  group_lasso(double lambda_, grouping groups_) : lambda(lambda_), groups(std::move(groups_)) {
    detail::require_nonnegative("group_lasso", "lambda", lambda);
  }
  group_lasso scaled(double factor) const { return group_lasso(lambda * factor, groups); }

  template <class T>
  double value_of(const view<const T>& w) const {
    return kernels().value_of(w);
  }
  template <class T>
  void add_gradient_to(const view<const T>& w, const view<T>& g) const {
    kernels().add_gradient_to(w, g);
  }
  template <class T>
  prox_result prox_of(const view<const T>& x, const view<T>& y, double step) const {
    return kernels().prox_of(x, y, step);
  }

 private:
  detail::group_penalty_kernels kernels() const { return {lambda, 0.0, &groups}; }
};

}  // namespace sparsereg
