// The contract every penalty follows (docs/api.md has the long form).
//
//   double value(p, w)                     penalty value R(w), accumulated in double.
//   void add_gradient(p, w, g)             g += dR/dw (ACCUMULATES into the caller's buffer; the
//                                          minimum-norm subgradient at kinks: sign(0) = 0 and a
//                                          zero group contributes 0). g must not overlap w.
//   prox_result prox(p, x, y, step)        y = argmin_z R(z)*step + ||z - x||^2 / 2, exact.
//                                          y may alias x (same data and strides: in place); any
//                                          other overlap is rejected. step >= 0; step = 0 is the
//                                          identity. Returns R(y), the zero elements of y and,
//                                          for group penalties, the groups of y that are zero.
//   void prox(p, x, y, step, without_stats) the same output, bit for bit, without the statistics:
//                                          for l1, whose statistics cost more than the soft
//                                          threshold itself; other penalties compute and drop them.
//   prox(p, x, y, steps)                   separable penalties only: per-element steps (a view of
//                                          the same shape), the diagonal metric of Adam-like
//                                          optimizers.
//
// w, x, y, g, steps: any sparsereg::view or anything an adapter turns into one (Eigen, xtensor,
// libtorch, std::vector). Hyper-parameters are validated when a penalty is constructed: NaN,
// infinite or negative values throw std::invalid_argument naming the parameter and its value.
// NaN weights propagate: into the value, and into the prox output of their own group only.
// Zero-size tensors are a no-op (value 0).
#pragma once

#include <cstddef>      // std::size_t
#include <string>       // std::string
#include <type_traits>  // std::remove_cv_t, std::is_const_v, std::void_t
#include <utility>      // std::declval
#include <vector>       // std::vector (adapter)

#include "errors.hpp"
#include "view.hpp"

namespace sparsereg {

/// What a proximal step did, computed in the same pass.
struct prox_result {
  double value = 0.0;             ///< penalty value at the output y
  std::size_t zero_elements = 0;  ///< elements of y that are exactly zero
  std::size_t zero_groups = 0;    ///< groups of y that are entirely zero (group penalties)
  std::size_t groups = 0;         ///< number of groups (group penalties; 0 for separable ones)
};

/// Customisation point: specialise view_adapter<Container> with a static `make(Container&)`
/// returning a sparsereg::view to make a container usable by every sparsereg function. The
/// adapters under sparsereg/adapters/ do this for Eigen, xtensor and libtorch; docs/views.md
/// shows how to write one.
template <class X, class = void>
struct view_adapter {};

template <class T>
struct view_adapter<view<T>> {
  static view<T> make(const view<T>& v) noexcept { return v; }
};

/// A std::vector of float or double is a rank-1 contiguous view.
template <class T, class A>
struct view_adapter<std::vector<T, A>, std::enable_if_t<std::is_floating_point_v<T>>> {
  static view<T> make(std::vector<T, A>& v) { return view<T>(v.data(), {v.size()}); }
  static view<const T> make(const std::vector<T, A>& v) { return view<const T>(v.data(), {v.size()}); }
};

namespace detail {

template <class X, class = void>
struct has_view_adapter : std::false_type {};
template <class X>
struct has_view_adapter<X, std::void_t<decltype(view_adapter<std::remove_cv_t<X>>::make(std::declval<X&>()))>>
    : std::true_type {};

template <class X>
auto view_of(X& x) {
  static_assert(has_view_adapter<X>::value,
                "sparsereg: this argument is not a tensor sparsereg knows. Pass a sparsereg::view, include the "
                "adapter for your container (sparsereg/adapters/eigen.hpp, xtensor.hpp or torch.hpp), or "
                "specialise sparsereg::view_adapter for it (see docs/views.md).");
  return view_adapter<std::remove_cv_t<X>>::make(x);
}

template <class X>
auto const_view_of(X& x) {
  auto v = view_of(x);
  using E = typename decltype(v)::value_type;
  return view<const E>(v);
}

template <class X>
auto mutable_view_of(X& x) {
  auto v = view_of(x);
  using E = typename decltype(v)::element_type;
  static_assert(!std::is_const_v<E>,
                "sparsereg: this output (prox result or gradient) is read-only. Pass a mutable tensor or a "
                "view<T> with non-const T (see docs/views.md).");
  return v;
}

template <class A, class B>
void require_same_shape(const char* where, const char* name_a, const view<A>& a, const char* name_b,
                        const view<B>& b) {
  bool same = a.rank() == b.rank();
  for (std::size_t i = 0; same && i < a.rank(); ++i) same = a.extent(i) == b.extent(i);
  if (!same) {
    auto shape = [](const auto& v) {
      std::string s = "[";
      for (std::size_t i = 0; i < v.rank(); ++i) s += (i ? "x" : "") + std::to_string(v.extent(i));
      return s + "]";
    };
    throw_argument(where, std::string(name_b) + " has shape " + shape(b) + " but " + name_a + " has shape " + shape(a));
  }
}

template <class A, class B>
bool overlaps(const view<A>& a, const view<B>& b) noexcept {
  if (a.size() == 0 || b.size() == 0) return false;
  const auto* a0 = reinterpret_cast<const char*>(a.data());
  const auto* a1 = reinterpret_cast<const char*>(a.data() + a.span_extent());
  const auto* b0 = reinterpret_cast<const char*>(b.data());
  const auto* b1 = reinterpret_cast<const char*>(b.data() + b.span_extent());
  return a0 < b1 && b0 < a1;
}

template <class A, class B>
bool same_elements(const view<A>& a, const view<B>& b) noexcept {
  if (static_cast<const void*>(a.data()) != static_cast<const void*>(b.data())) return false;
  for (std::size_t i = 0; i < a.rank(); ++i)
    if (a.extent(i) != 1 && a.stride(i) != b.stride(i)) return false;
  return true;
}

/// y may be x itself (in place) or disjoint from it; nothing in between.
template <class A, class B>
void require_alias_or_disjoint(const char* where, const view<A>& x, const view<B>& y) {
  if (overlaps(x, y) && !same_elements(x, y))
    throw_argument(where, "y partially overlaps x; pass the same view for an in-place prox or disjoint memory");
}

template <class A, class B>
void require_disjoint(const char* where, const char* name_a, const view<A>& a, const char* name_b, const view<B>& b) {
  if (overlaps(a, b))
    throw_argument(where, std::string(name_b) + " overlaps " + name_a + "; they must be separate buffers");
}

/// Soft threshold: sign(x) * max(|x| - t, 0). NaN stays NaN (the comparison is written so).
template <class T>
inline T soft_threshold(T x, T t) noexcept {
  T a = (x < T(0) ? -x : x) - t;
  a = a < T(0) ? T(0) : a;
  return x < T(0) ? -a : a;
}

/// sign(x) with sign(0) = 0 (the minimum-norm subgradient of |x| at 0); NaN stays NaN, so a NaN
/// weight poisons its own gradient instead of being silently treated as zero.
template <class T>
inline T sign_of(T x) noexcept {
  return x != x ? x : T((x > T(0)) - (x < T(0)));
}

}  // namespace detail

/// Penalty value R(w).
template <class P, class W>
double value(const P& p, const W& w) {
  return p.value_of(detail::const_view_of(w));
}

/// g += dR/dw (minimum-norm subgradient at kinks).
template <class P, class W, class G>
void add_gradient(const P& p, const W& w, G&& g) {
  static_assert(P::has_gradient, "sparsereg::add_gradient: this penalty has no (sub)gradient; use prox()");
  const auto vw = detail::const_view_of(w);
  const auto vg = detail::mutable_view_of(g);
  static_assert(std::is_same_v<typename decltype(vw)::value_type, typename decltype(vg)::value_type>,
                "sparsereg::add_gradient: w and g must have the same element type");
  detail::require_same_shape("add_gradient", "w", vw, "g", vg);
  detail::require_disjoint("add_gradient", "w", vw, "g", vg);
  p.add_gradient_to(vw, vg);
}

/// y = prox_{step * R}(x). y may be x (in place).
template <class P, class X, class Y>
prox_result prox(const P& p, const X& x, Y&& y, double step) {
  const auto vx = detail::const_view_of(x);
  const auto vy = detail::mutable_view_of(y);
  static_assert(std::is_same_v<typename decltype(vx)::value_type, typename decltype(vy)::value_type>,
                "sparsereg::prox: x and y must have the same element type");
  detail::require_nonnegative("prox", "step", step);
  detail::require_same_shape("prox", "x", vx, "y", vy);
  detail::require_alias_or_disjoint("prox", vx, vy);
  return p.prox_of(vx, vy, step);
}

/// Tag of the prox overload that skips the statistics of prox_result.
struct without_stats_t {
  explicit without_stats_t() = default;
};
inline constexpr without_stats_t without_stats{};

namespace detail {
template <class P, class T, class = void>
struct has_prox_only : std::false_type {};
template <class P, class T>
struct has_prox_only<P, T,
                     std::void_t<decltype(std::declval<const P&>().prox_only_of(
                         std::declval<const view<const T>&>(), std::declval<const view<T>&>(), 0.0))>>
    : std::true_type {};
}  // namespace detail

/// y = prox_{step * R}(x), the same output as prox(p, x, y, step) bit for bit, without computing
/// R(y) and the zero counts. For l1 those statistics (a double sum and a count per element) cost
/// more than the soft threshold; a training loop that does not log them every step can skip
/// them. Penalties without a statistics-free kernel run their prox and drop the result.
template <class P, class X, class Y>
void prox(const P& p, const X& x, Y&& y, double step, without_stats_t) {
  const auto vx = detail::const_view_of(x);
  const auto vy = detail::mutable_view_of(y);
  using T = typename decltype(vx)::value_type;
  static_assert(std::is_same_v<T, typename decltype(vy)::value_type>,
                "sparsereg::prox: x and y must have the same element type");
  detail::require_nonnegative("prox", "step", step);
  detail::require_same_shape("prox", "x", vx, "y", vy);
  detail::require_alias_or_disjoint("prox", vx, vy);
  if constexpr (detail::has_prox_only<P, T>::value)
    p.prox_only_of(vx, vy, step);
  else
    (void)p.prox_of(vx, vy, step);
}

/// Separable penalties: y_i = prox_{steps_i * R_i}(x_i), one step per element.
template <class P, class X, class Y, class S, class = std::enable_if_t<!std::is_arithmetic_v<S>>>
prox_result prox(const P& p, const X& x, Y&& y, const S& steps) {
  static_assert(P::separable, "sparsereg::prox: per-element steps need a separable penalty (l1, squared_l2, "
                              "hard_threshold); group penalties take one step");
  const auto vx = detail::const_view_of(x);
  const auto vy = detail::mutable_view_of(y);
  const auto vs = detail::const_view_of(steps);
  static_assert(std::is_same_v<typename decltype(vx)::value_type, typename decltype(vy)::value_type> &&
                    std::is_same_v<typename decltype(vx)::value_type, typename decltype(vs)::value_type>,
                "sparsereg::prox: x, y and steps must have the same element type");
  detail::require_same_shape("prox", "x", vx, "y", vy);
  detail::require_same_shape("prox", "x", vx, "steps", vs);
  detail::require_alias_or_disjoint("prox", vx, vy);
  detail::require_disjoint("prox", "y", vy, "steps", vs);
  return p.prox_of(vx, vy, vs);
}

}  // namespace sparsereg
