// Coupled groups: one group spanning several tensors.
//
// Removing output channel k of a conv layer only saves compute if everything tied to it goes:
// slice k along axis 0 of conv1.weight (the filter), element k of conv1.bias, and slice k along
// axis 1 of conv2.weight (the next layer's input channel k). A coupled group penalty treats the
// union of those slices as ONE group ("unit" k):
//
//   R(w) = lambda_group * sum_k c_k ||(w_1[k], ..., w_P[k])||_2 + lambda_l1 * sum_p ||w_p||_1
//
// where w_p[k] is slice k along part p's axis, all parts have the same extent K along their axis
// (checked), and c_k = sqrt(total size of unit k) by default (as for single-tensor groups), or 1
// (`unweighted()`), or given (`with_weights`). This is exactly the sparse group lasso of the
// concatenation of the parts' slices, so its prox is the SGL prox (Simon et al. 2013):
//   u = soft_threshold(x, step*lambda_l1),  y[k] = max(0, 1 - step*lambda_group*c_k / ||u[k]||) * u[k]
// computed in two passes: accumulate ||u[k]||^2 over every part, then scale every part. The
// only workspace is three numbers per unit. The prox is in place (the parts are the weights).
// Sums are accumulated in double, sequentially in part order then memory order (deterministic).
// NaN in a unit makes the whole unit NaN. Per-element steps are not supported for coupled groups.
#pragma once

#include <array>        // std::array
#include <cmath>        // std::sqrt, std::isnan
#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <limits>       // std::numeric_limits
#include <memory>       // std::shared_ptr
#include <string>       // std::string, std::to_string
#include <type_traits>  // std::remove_const_t
#include <vector>       // std::vector

#include "detail/runs.hpp"
#include "errors.hpp"
#include "penalty.hpp"
#include "view.hpp"

namespace sparsereg {

/// One tensor of a coupled group and the axis whose index k selects its share of unit k.
template <class T>
struct coupled_part {
  view<T> tensor;
  std::size_t axis = 0;
};

namespace detail {

/// Key strides that make the key of an element its index along `axis` (its unit).
inline std::array<std::size_t, max_rank> unit_key_strides(std::size_t axis) {
  std::array<std::size_t, max_rank> k{};
  k[axis] = 1;
  return k;
}

}  // namespace detail

class coupled_sparse_group_lasso {
 public:
  static constexpr bool has_gradient = false;
  static constexpr bool has_prox = true;
  static constexpr bool smooth = false;
  static constexpr bool separable = false;
  static constexpr bool convex = true;
  static constexpr const char* name = "coupled_sparse_group_lasso";

  double lambda_group = 0.0;
  double lambda_l1 = 0.0;

  coupled_sparse_group_lasso(double lambda_group_, double lambda_l1_) : lambda_group(lambda_group_), lambda_l1(lambda_l1_) {
    detail::require_nonnegative("coupled_sparse_group_lasso", "lambda_group", lambda_group);
    detail::require_nonnegative("coupled_sparse_group_lasso", "lambda_l1", lambda_l1);
  }

  /// c_k = 1 for every unit.
  coupled_sparse_group_lasso& unweighted() {
    weights_.reset();
    unit_weights_ = true;
    return *this;
  }
  /// Given c_k, one per unit (finite, >= 0), checked against the unit count at use.
  coupled_sparse_group_lasso& with_weights(std::vector<double> w) {
    for (std::size_t k = 0; k < w.size(); ++k)
      if (!(w[k] >= 0.0) || std::isinf(w[k]))
        detail::throw_argument("coupled_sparse_group_lasso::with_weights",
                               "weights[" + std::to_string(k) + "] must be finite and >= 0, got " + detail::number_text(w[k]));
    weights_ = std::make_shared<const std::vector<double>>(std::move(w));
    unit_weights_ = false;
    return *this;
  }
  coupled_sparse_group_lasso scaled(double factor) const {
    coupled_sparse_group_lasso c(lambda_group * factor, lambda_l1 * factor);
    c.weights_ = weights_;
    c.unit_weights_ = unit_weights_;
    return c;
  }

  /// Number of units K; throws std::invalid_argument (naming `where`) if the parts do not fit.
  template <class T>
  std::size_t check(const char* where, const std::vector<coupled_part<T>>& parts) const {
    if (parts.empty()) detail::throw_argument(where, "a coupled group needs at least one part");
    std::size_t units = 0;
    for (std::size_t p = 0; p < parts.size(); ++p) {
      const auto& v = parts[p].tensor;
      if (parts[p].axis >= v.rank())
        detail::throw_argument(where, "parts[" + std::to_string(p) + "].axis is " + std::to_string(parts[p].axis) +
                                          " but the tensor has rank " + std::to_string(v.rank()));
      const std::size_t k = v.extent(parts[p].axis);
      if (p == 0) units = k;
      else if (k != units)
        detail::throw_argument(where, "parts[" + std::to_string(p) + "] has extent " + std::to_string(k) + " along axis " +
                                          std::to_string(parts[p].axis) + " but parts[0] has " + std::to_string(units) +
                                          "; every part must have the same number of units");
      for (std::size_t q = 0; q < p; ++q)
        if (detail::overlaps(parts[q].tensor, v))
          detail::throw_argument(where, "parts[" + std::to_string(p) + "] overlaps parts[" + std::to_string(q) + "]");
    }
    if (weights_ && weights_->size() != units)
      detail::throw_argument(where, "coupled group has " + std::to_string(weights_->size()) + " weights but " +
                                        std::to_string(units) + " units");
    return units;
  }

  /// R(w).
  template <class T>
  double value(const std::vector<coupled_part<T>>& parts) const {
    using E = std::remove_const_t<T>;
    const std::size_t K = check("coupled_sparse_group_lasso::value", parts);
    std::vector<double> ss(K, 0.0), ab(K, 0.0);
    std::vector<std::size_t> n(K, 0);
    accumulate(parts, [](E v) { return v; }, ss, ab, n, nullptr);
    double total = 0.0;
    for (std::size_t k = 0; k < K; ++k) total += lambda_group * weight(k, n[k]) * std::sqrt(ss[k]) + lambda_l1 * ab[k];
    return total;
  }

  /// In place: every part <- its share of prox_{step R}. Returns R at the output, zero elements,
  /// zero units (as zero_groups) and the unit count (as groups).
  template <class T>
  prox_result prox(const std::vector<coupled_part<T>>& parts, double step) const {
    static_assert(!std::is_const_v<T>, "sparsereg::coupled_sparse_group_lasso::prox: the parts must be mutable");
    const char* where = "coupled_sparse_group_lasso::prox";
    detail::require_nonnegative(where, "step", step);
    const std::size_t K = check(where, parts);
    const T t1 = static_cast<T>(step * lambda_l1);
    const auto pre = [t1](T v) { return detail::soft_threshold_select(v, t1); };
    std::vector<double> ss(K, 0.0), ab(K, 0.0);
    std::vector<std::size_t> n(K, 0), zeros(K, 0);
    accumulate(parts, pre, ss, ab, n, &zeros);
    std::vector<T> factor(K);
    prox_result res;
    res.groups = K;
    for (std::size_t k = 0; k < K; ++k) {
      const double c = weight(k, n[k]);
      const double norm = std::sqrt(ss[k]);
      const double thr = step * lambda_group * c;
      if (std::isnan(norm)) {
        factor[k] = std::numeric_limits<T>::quiet_NaN();
        res.value += norm;
      } else if (norm <= thr) {
        factor[k] = T(0);
        res.zero_elements += n[k];
        ++res.zero_groups;
      } else {
        const double f = 1.0 - thr / norm;
        factor[k] = static_cast<T>(f);
        res.value += f * (lambda_group * c * norm + lambda_l1 * ab[k]);
        res.zero_elements += zeros[k];
      }
    }
    for (const auto& part : parts) {
      detail::for_each_keyed_run(part.tensor, part.tensor, detail::unit_key_strides(part.axis),
                                 [&](T* p, std::ptrdiff_t sp, T*, std::ptrdiff_t, std::size_t k0, std::size_t ks, std::size_t n) {
                                   if (ks == 0) {
                                     const T f = factor[k0];
                                     for (std::size_t j = 0; j < n; ++j) {
                                       T& v = p[static_cast<std::ptrdiff_t>(j) * sp];
                                       v = pre(v) * f;
                                     }
                                   } else {
                                     for (std::size_t j = 0; j < n; ++j) {
                                       T& v = p[static_cast<std::ptrdiff_t>(j) * sp];
                                       v = pre(v) * factor[k0 + j * ks];
                                     }
                                   }
                                 });
    }
    return res;
  }

  /// Units whose every element is exactly zero (report), as {groups, zero_groups}.
  template <class T>
  prox_result count_zero_units(const std::vector<coupled_part<T>>& parts) const {
    using E = std::remove_const_t<T>;
    const std::size_t K = check("coupled_sparse_group_lasso::count_zero_units", parts);
    std::vector<double> ss(K, 0.0), ab(K, 0.0);
    std::vector<std::size_t> n(K, 0), zeros(K, 0);
    accumulate(parts, [](E v) { return v; }, ss, ab, n, &zeros);
    prox_result r;
    r.groups = K;
    for (std::size_t k = 0; k < K; ++k) {
      r.zero_elements += zeros[k];
      r.zero_groups += zeros[k] == n[k];
    }
    return r;
  }

  /// c_k for unit k of total size `size`.
  double weight(std::size_t k, std::size_t size) const noexcept {
    if (weights_) return (*weights_)[k];
    return unit_weights_ ? 1.0 : std::sqrt(static_cast<double>(size));
  }

 private:
  template <class T, class Pre>
  static void accumulate(const std::vector<coupled_part<T>>& parts, Pre pre, std::vector<double>& ss, std::vector<double>& ab,
                         std::vector<std::size_t>& n, std::vector<std::size_t>* zeros) {
    for (const auto& part : parts) {
      detail::for_each_keyed_run(
          part.tensor, part.tensor, detail::unit_key_strides(part.axis),
          [&](const auto* p, std::ptrdiff_t sp, const auto*, std::ptrdiff_t, std::size_t k0, std::size_t ks, std::size_t len) {
            if (ks == 0) {  // the run lies in one unit
              std::size_t z = 0;
              detail::sum_squares_abs(p, sp, len, pre, ss[k0], ab[k0], z);
              n[k0] += len;
              if (zeros) (*zeros)[k0] += z;
            } else {
              for (std::size_t j = 0; j < len; ++j) {
                const std::size_t k = k0 + j * ks;
                const double u = static_cast<double>(pre(p[static_cast<std::ptrdiff_t>(j) * sp]));
                ss[k] += u * u;
                ab[k] += std::fabs(u);
                ++n[k];
                if (zeros) (*zeros)[k] += (u == 0.0);
              }
            }
          });
    }
  }

  std::shared_ptr<const std::vector<double>> weights_;
  bool unit_weights_ = false;
};

/// The group lasso over coupled units (lambda_l1 = 0).
inline coupled_sparse_group_lasso coupled_group_lasso(double lambda_group) {
  return coupled_sparse_group_lasso(lambda_group, 0.0);
}

}  // namespace sparsereg
