// Sparse group lasso (Simon, Friedman, Hastie & Tibshirani 2013; Scardapane et al. 2017):
//   R(w) = lambda_group * sum_g c_g ||w_g||_2 + lambda_l1 * ||w||_1,
// c_g from the grouping (sqrt(|g|) by default). The (lambda, alpha) form of Simon et al.,
//   R(w) = lambda * (alpha * ||w||_1 + (1 - alpha) * sum_g c_g ||w_g||_2),
// is `sparse_group_lasso::mixed(lambda, alpha, groups)`.
//
// prox (exact, closed form; derivation in docs/math.md): with u = soft_threshold(x, step*lambda_l1),
//   y_g = max(0, 1 - step*lambda_group*c_g / ||u_g||_2) * u_g   (0 when ||u_g|| = 0).
// gradient (minimum-norm subgradient): lambda_l1 * sign(w) + lambda_group * c_g * w_g / ||w_g||,
// with sign(0) = 0 and 0 for a zero group.
// NaN in a group makes that group's output NaN; other groups are untouched.
//
// group_lasso is the lambda_l1 = 0 case, with its own type (group_lasso.hpp).
#pragma once

#include <cmath>    // std::sqrt, std::isnan
#include <cstddef>  // std::size_t
#include <limits>   // std::numeric_limits
#include <type_traits>  // std::true_type, std::false_type

#include "../detail/sweep.hpp"
#include "../groups.hpp"
#include "../penalty.hpp"

namespace sparsereg {
namespace detail {

/// groups.weight(g, n) with sqrt(n) taken once per call: the groups of a grid grouping all have
/// x.size() / group_count elements (a square root per group cost a sixth of the fc1 prox of
/// the bundled trainer, 3136 groups of 80).
class group_weights {
 public:
  template <class T>
  group_weights(const grouping& grp, const view<const T>& x) : groups_(&grp) {
    if (grp.is_explicit() || grp.weighting() == group_weighting::given || x.size() == 0) return;
    n0_ = x.size() / grp.group_count(x);
    c0_ = grp.weight(0, n0_);
  }
  double operator()(std::size_t g, std::size_t n) const noexcept { return n == n0_ ? c0_ : groups_->weight(g, n); }

 private:
  const grouping* groups_;
  std::size_t n0_ = 0;  // never a group's size when 0
  double c0_ = 0.0;
};

/// Value, gradient and prox shared by group_lasso and sparse_group_lasso.
struct group_penalty_kernels {
  double lambda_group;
  double lambda_l1;
  const grouping* groups;

  template <class T>
  double value_of(const view<const T>& w) const {
    groups->check("value", w);
    const group_weights weight(*groups, w);
    const auto decide = [&](std::size_t g, std::size_t n, double sumsq, double abs_sum, std::size_t) {
      group_decision<T> d;
      d.value = lambda_group * weight(g, n) * std::sqrt(sumsq) + lambda_l1 * abs_sum;
      return d;
    };
    const auto identity = [](T v) { return v; };
    // Group lasso: sum|w| is not needed (abs_sum is then 0).
    const auto t = lambda_l1 == 0.0 ? grouped_sweep<false>(w, w, *groups, identity, decide, no_apply{})
                                    : grouped_sweep(w, w, *groups, identity, decide, no_apply{});
    return t.value;
  }

  template <class T>
  void add_gradient_to(const view<const T>& w, const view<T>& grad) const {
    groups->check("add_gradient", w);
    const group_weights weight(*groups, w);
    const T l1 = static_cast<T>(lambda_l1);
    grouped_sweep<false>(
        w, grad, *groups, [](T v) { return v; },
        [&](std::size_t g, std::size_t n, double sumsq, double, std::size_t) {
          group_decision<T> d;
          const double norm = std::sqrt(sumsq);
          d.factor = norm > 0.0 ? static_cast<T>(lambda_group * weight(g, n) / norm) : T(0);
          return d;
        },
        [l1](const T* x, std::ptrdiff_t sx, T* g, std::ptrdiff_t sg, std::size_t n, auto coef_of) {
          with_unit_strides(sx, sg, [&](auto sxu, auto sgu) {
            for (std::size_t i = 0; i < n; ++i) {
              const auto k = static_cast<std::ptrdiff_t>(i);
              const T v = x[k * sxu];
              g[k * sgu] += coef_of(i) * v + l1 * sign_of(v);
            }
          });
        });
  }

  template <class T>
  prox_result prox_of(const view<const T>& x, const view<T>& y, double step) const {
    groups->check("prox", x);
    const group_weights weight(*groups, x);
    const T t1 = static_cast<T>(step * lambda_l1);
    const double tg = step * lambda_group;
    const auto decide = [&](std::size_t g, std::size_t n, double sumsq, double abs_sum, std::size_t zeros) {
      group_decision<T> d;
      const double c = weight(g, n);
      const double norm = std::sqrt(sumsq);
      const double thr = tg * c;
      if (std::isnan(norm)) {
        d.factor = std::numeric_limits<T>::quiet_NaN();
        d.value = norm;
      } else if (thr > 0.0 && norm <= thr) {
        d.factor = T(0);
        d.zero_elements = n;
        d.zero_group = true;
      } else {
        // thr == 0 (step 0, lambda_group 0 or c_g 0) keeps factor 1 even when the sum of squares
        // underflows to 0 (every |u| below about 1e-162 in double): step 0 stays the identity.
        const double f = thr > 0.0 ? 1.0 - thr / norm : 1.0;  // in (0, 1]
        d.factor = static_cast<T>(f);
        d.value = f * (lambda_group * c * norm + lambda_l1 * abs_sum);
        d.zero_elements = zeros;
        d.zero_group = zeros == n;  // only when thr == 0: a group of zeros stays one
      }
      return d;
    };
    // u = soft_threshold(x, t1), which is x itself when t1 = 0 (group lasso, or step 0). Pass 1
    // (norms, sum |u|, zeros) reads u through `norms_pre`, pass 2 writes through `pre`: for t1 > 0
    // the first is |u| = max(|x| - t1, 0), which has the same square, absolute value and zeros as
    // u bit for bit (and is NaN where u is), without the sign u takes from x.
    const auto sweep = [&](auto norms_pre, auto pre, auto with_abs) {
      return grouped_sweep<decltype(with_abs)::value>(x, y, *groups, norms_pre, decide,
                           [pre](const T* xp, std::ptrdiff_t sx, T* yp, std::ptrdiff_t sy, std::size_t n, auto factor_of) {
                             with_unit_strides(sx, sy, [&](auto sxu, auto syu) {
                               scale_run(pre, xp, sxu, yp, syu, n, factor_of);
                             });
                           });
    };
    // Group lasso (lambda_l1 = 0): the output's value needs no sum |y|.
    const auto identity = [](T v) { return v; };
    const auto soft = soft_threshold_op<T>{t1};
    const auto magnitude = soft_magnitude<T>{t1};
    const auto r = lambda_l1 == 0.0 ? sweep(identity, identity, std::false_type{})
                   : t1 == T(0)     ? sweep(identity, identity, std::true_type{})
                                    : sweep(magnitude, soft, std::true_type{});
    return {r.value, r.zero_elements, r.zero_groups, r.groups};
  }
};

}  // namespace detail

struct sparse_group_lasso {
  static constexpr bool has_gradient = true;
  static constexpr bool has_prox = true;
  static constexpr bool smooth = false;
  static constexpr bool separable = false;
  static constexpr bool convex = true;

  double lambda_group = 0.0;
  double lambda_l1 = 0.0;
  grouping groups;

  sparse_group_lasso(double lambda_group_, double lambda_l1_, grouping groups_)
      : lambda_group(lambda_group_), lambda_l1(lambda_l1_), groups(std::move(groups_)) {
    detail::require_nonnegative("sparse_group_lasso", "lambda_group", lambda_group);
    detail::require_nonnegative("sparse_group_lasso", "lambda_l1", lambda_l1);
  }
  /// Simon et al.'s mixing form: lambda_l1 = alpha*lambda, lambda_group = (1 - alpha)*lambda.
  static sparse_group_lasso mixed(double lambda, double alpha, grouping groups_) {
    detail::require_nonnegative("sparse_group_lasso::mixed", "lambda", lambda);
    detail::require_in_unit_interval("sparse_group_lasso::mixed", "alpha", alpha);
    return sparse_group_lasso((1.0 - alpha) * lambda, alpha * lambda, std::move(groups_));
  }
  sparse_group_lasso scaled(double factor) const {
    return sparse_group_lasso(lambda_group * factor, lambda_l1 * factor, groups);
  }

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
  detail::group_penalty_kernels kernels() const { return {lambda_group, lambda_l1, &groups}; }
};

}  // namespace sparsereg
