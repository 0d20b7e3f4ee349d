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
// prox is in place (the parts are the weights).
// Memory: prox, value and count_zero_units each allocate ONE workspace per call, K records of two
// doubles and two counts (plus the factor, a T, for the prox); nothing else in them allocates.
// The `parts` list is the caller's (regularizer::prox_step builds one per coupled group per call).
// Sums are accumulated in double, sequentially in part order then memory order (deterministic);
// runs that lie in one unit are summed with unit strides as compile-time constants, and dense
// parts are walked by a direct loop over (outer index, unit, run) (detail::for_each_dense_unit_run),
// on several threads for large tensors, each unit on one thread (the same bits for any count).
// NaN in a unit makes the whole unit NaN. Per-element steps are not supported for coupled groups.
#pragma once

#include <array>        // std::array
#include <cmath>        // std::sqrt, std::isnan
#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <limits>       // std::numeric_limits
#include <memory>       // std::shared_ptr
#include <string>       // std::string, std::to_string
#include <type_traits>  // std::remove_const_t, std::integral_constant
#include <vector>       // std::vector

#include "detail/runs.hpp"
#include "detail/sweep.hpp"
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

/// Per-unit sums of u (the prox's soft-thresholded input, or w itself) over every part, and the
/// prox's factor: one record per unit, so a call allocates its workspace once.
template <class T>
struct unit_sums {
  double ss = 0.0;         // sum u^2
  double ab = 0.0;         // sum |u|
  std::size_t n = 0;       // elements
  std::size_t zeros = 0;   // elements with u == 0 (counted only where asked for)
  T factor = T(1);         // prox only
};

/// Key strides that make the key of an element its index along `axis` (its unit).
inline std::array<std::size_t, max_rank> unit_key_strides(std::size_t axis) {
  std::array<std::size_t, max_rank> k{};
  k[axis] = 1;
  return k;
}

/// For a dense row-major tensor with at least two units and at least two elements after the
/// unit axis: calls f(run, k, len) for every run of elements that lie in one unit (slice k along
/// `axis`), in memory order -- outer index, then unit, then the len elements after the axis --
/// and returns true; returns false (and calls nothing) otherwise. Those are exactly the runs, in
/// the same order, that for_each_keyed_run visits there (it cannot merge the unit axis or the
/// outer axes into a run), so both give the same sums; this loop skips the walker's per-run
/// position bookkeeping, which dominates for short runs (the 3x3 of a conv input channel).
/// Tensors of at least SPARSEREG_PARALLEL_MIN_ELEMENTS are shared between threads by units: each
/// thread walks the outer indices in order over its own contiguous range of units, so every
/// unit's runs still arrive in memory order and on one thread (the same sums for any thread
/// count); f must only touch unit k's state.
template <class T, class F>
bool for_each_dense_unit_run(const view<T>& v, std::size_t axis, F&& f) {
  if (!v.is_contiguous() || v.size() == 0) return false;
  std::size_t outer = 1, len = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= v.extent(i);
  for (std::size_t i = axis + 1; i < v.rank(); ++i) len *= v.extent(i);
  const std::size_t K = v.extent(axis);
  if (K < 2 || len < 2) return false;
  T* base = v.data();
  const auto walk = [&](std::size_t k0, std::size_t k1) {
    for (std::size_t o = 0; o < outer; ++o) {
      T* p = base + (o * K + k0) * len;
      for (std::size_t k = k0; k < k1; ++k, p += len) f(p, k, len);
    }
  };
#if defined(_OPENMP)
  if (worth_parallel(v.size()) && omp_get_max_threads() > 1) {
    for_each_thread_share(K, true, walk);
    return true;
  }
#endif
  walk(0, K);  // inline: through the parallel region's outlined body the 1-thread prox ran 25% slower
  return true;
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
    std::vector<detail::unit_sums<E>> u(K);
    accumulate<false>(parts, [](E v) { return v; }, u);
    double total = 0.0;
    for (std::size_t k = 0; k < K; ++k)
      total += lambda_group * weight(k, u[k].n) * std::sqrt(u[k].ss) + lambda_l1 * u[k].ab;
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
    for (std::size_t p = 0; p < parts.size(); ++p)  // written in place below
      detail::require_no_self_overlap(where, ("parts[" + std::to_string(p) + "].tensor").c_str(), parts[p].tensor);
    const T t1 = static_cast<T>(step * lambda_l1);
    const auto pre = [t1](T v) { return detail::soft_threshold_select(v, t1); };
    std::vector<detail::unit_sums<T>> u(K);
    accumulate<true>(parts, pre, u);
    prox_result res;
    res.groups = K;
    for (std::size_t k = 0; k < K; ++k) {
      const double c = weight(k, u[k].n);
      const double norm = std::sqrt(u[k].ss);
      const double thr = step * lambda_group * c;
      if (std::isnan(norm)) {
        u[k].factor = std::numeric_limits<T>::quiet_NaN();
        res.value += norm;
      } else if (thr > 0.0 && norm <= thr) {
        u[k].factor = T(0);
        res.zero_elements += u[k].n;
        ++res.zero_groups;
      } else {
        // thr == 0 (step 0, lambda_group 0 or c_k 0) keeps factor 1 even when the sum of squares
        // underflows to 0 (every |u| below about 1e-162 in double): step 0 stays the identity.
        const double f = thr > 0.0 ? 1.0 - thr / norm : 1.0;
        u[k].factor = static_cast<T>(f);
        res.value += f * (lambda_group * c * norm + lambda_l1 * u[k].ab);
        res.zero_elements += u[k].zeros;
        res.zero_groups += u[k].zeros == u[k].n;  // only when thr == 0: a unit of zeros stays one
      }
    }
    for (const auto& part : parts) {
      // One run of unit k, stride s (a compile-time 1 where the run is contiguous).
      const auto scale_run = [&](T* p, auto s, std::size_t k, std::size_t n) {
        const T f = u[k].factor;
        for (std::size_t j = 0; j < n; ++j) {
          T& v = p[static_cast<std::ptrdiff_t>(j) * s];
          v = pre(v) * f;
        }
      };
      const auto scale_dense = [&](T* p, std::size_t k, std::size_t n) {
        scale_run(p, std::integral_constant<std::ptrdiff_t, 1>{}, k, n);
      };
      const bool dense = detail::for_each_dense_unit_run(part.tensor, part.axis, scale_dense);
      if (dense) continue;
      detail::for_each_keyed_run(part.tensor, part.tensor, detail::unit_key_strides(part.axis),
                                 [&](T* p, std::ptrdiff_t sp, T*, std::ptrdiff_t, std::size_t k0, std::size_t ks, std::size_t n) {
                                   if (ks == 0) {
                                     detail::with_unit_strides(sp, 1, [&](auto s, auto) { scale_run(p, s, k0, n); });
                                   } else {
                                     for (std::size_t j = 0; j < n; ++j) {
                                       T& v = p[static_cast<std::ptrdiff_t>(j) * sp];
                                       v = pre(v) * u[k0 + j * ks].factor;
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
    std::vector<detail::unit_sums<E>> u(K);
    accumulate<true>(parts, [](E v) { return v; }, u);
    prox_result r;
    r.groups = K;
    for (std::size_t k = 0; k < K; ++k) {
      r.zero_elements += u[k].zeros;
      r.zero_groups += u[k].zeros == u[k].n;
    }
    return r;
  }

  /// c_k for unit k of total size `size`.
  double weight(std::size_t k, std::size_t size) const noexcept {
    if (weights_) return (*weights_)[k];
    return unit_weights_ ? 1.0 : std::sqrt(static_cast<double>(size));
  }

 private:
  template <bool Zeros, class T, class Pre, class E>
  static void accumulate(const std::vector<coupled_part<T>>& parts, Pre pre, std::vector<detail::unit_sums<E>>& acc) {
    for (const auto& part : parts) {
      // One run of unit k, stride s (a compile-time 1 where the run is contiguous).
      const auto sum_run = [&](const auto* p, auto s, std::size_t k, std::size_t len) {
        std::size_t z = 0;
        detail::sum_squares_abs(p, s, len, pre, acc[k].ss, acc[k].ab, z);
        acc[k].n += len;
        if constexpr (Zeros) acc[k].zeros += z;
      };
      const auto sum_dense = [&](const auto* p, std::size_t k, std::size_t len) {
        sum_run(p, std::integral_constant<std::ptrdiff_t, 1>{}, k, len);
      };
      const bool dense = detail::for_each_dense_unit_run(part.tensor, part.axis, sum_dense);
      if (dense) continue;
      detail::for_each_keyed_run(
          part.tensor, part.tensor, detail::unit_key_strides(part.axis),
          [&](const auto* p, std::ptrdiff_t sp, const auto*, std::ptrdiff_t, std::size_t k0, std::size_t ks,
              std::size_t len) {
            if (ks == 0) {  // the run lies in one unit
              detail::with_unit_strides(sp, 1, [&](auto s, auto) { sum_run(p, s, k0, len); });
            } else {
              for (std::size_t j = 0; j < len; ++j) {
                const std::size_t k = k0 + j * ks;
                const double u = static_cast<double>(pre(p[static_cast<std::ptrdiff_t>(j) * sp]));
                acc[k].ss += u * u;
                acc[k].ab += std::fabs(u);
                ++acc[k].n;
                if constexpr (Zeros) acc[k].zeros += (u == 0.0);
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
