// The contract every penalty follows (docs/api.md has the long form).
//
//   double value(p, w)                     penalty value R(w), accumulated in double.
//   void add_gradient(p, w, g)             g += dR/dw (ACCUMULATES into the caller's buffer; the
//                                          minimum-norm subgradient at kinks: sign(0) = 0 and a
//                                          zero group contributes 0). g must share no element
//                                          with w, nor elements with itself (no stride 0).
//   prox_result prox(p, x, y, step)        y = argmin_z R(z)*step + ||z - x||^2 / 2, exact.
//                                          y may be x (same data and strides: in place) or share
//                                          no element with it; anything else is rejected, and so
//                                          is a y whose elements share memory (a stride 0).
//                                          docs/views.md ("Aliasing rules") says what is proven
//                                          disjoint. step >= 0; step = 0 is the identity.
//                                          Returns R(y), the zero elements of y and, for group
//                                          penalties, the groups of y that are zero.
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

#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <cstdint>      // std::uintptr_t
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

/// Whether no two elements of v share an address, by a sufficient O(rank) test: the axes of
/// extent > 1, sorted by stride, must each step past every element the smaller ones reach
/// (stride_k > sum over the smaller axes j of (extent_j - 1) * stride_j). Dense, padded,
/// permuted and blocked layouts pass; a stride 0 (a broadcast) or strides such as (1, 1) on a
/// 3x3 view fail. Outputs must pass it; read-only inputs need not (they may broadcast).
template <class A>
bool strides_nest(const view<A>& v) noexcept {
  if (v.size() == 0) return true;
  std::size_t axes[max_rank];
  std::size_t n = 0;
  for (std::size_t i = 0; i < v.rank(); ++i) {
    if (v.extent(i) <= 1) continue;
    std::size_t k = n++;  // insertion sort by increasing stride
    for (; k > 0 && v.stride(axes[k - 1]) > v.stride(i); --k) axes[k] = axes[k - 1];
    axes[k] = i;
  }
  std::ptrdiff_t reach = 0;  // offset of the furthest element of the axes so far
  for (std::size_t k = 0; k < n; ++k) {
    const std::ptrdiff_t s = v.stride(axes[k]);
    if (s <= reach) return false;
    reach += static_cast<std::ptrdiff_t>(v.extent(axes[k]) - 1) * s;  // <= span_extent(), no overflow
  }
  return true;
}

/// An output (a view sparsereg writes) must give every element an address of its own.
template <class A>
void require_no_self_overlap(const char* where, const char* name, const view<A>& v) {
  if (!strides_nest(v))
    throw_argument(where, std::string(name) + " has strides that make elements share memory (" +
                              layout_text(v.extents().data(), v.strides().data(), v.rank()) +
                              "); an output needs one address per element: sorted by stride, each axis of "
                              "extent > 1 must step past all the elements of the smaller ones");
}

/// Whether the offset difference d is sum_k c_k * stride_k with |c_k| < extent_k over the axes
/// axes[0..n) of v, sorted by decreasing stride and nested (strides_nest): reach[k] is the
/// largest offset the axes after k can form, and stride_k > reach[k]. Then |d - c_k * stride_k|
/// <= reach[k] leaves at most two candidates for c_k, so this is exact in at most 2^rank steps
/// (one path when each stride exceeds twice the reach of the smaller axes, as for blocks and
/// interleaved columns).
template <class A>
bool offset_difference_reachable(std::ptrdiff_t d, const view<A>& v, const std::size_t* axes,
                                 const std::ptrdiff_t* reach, std::size_t n) noexcept {
  if (d < 0) d = -d;  // the set of differences is symmetric
  if (n == 0) return d == 0;
  const std::ptrdiff_t s = v.stride(axes[0]);
  const auto c_max = static_cast<std::ptrdiff_t>(v.extent(axes[0]) - 1);
  const std::ptrdiff_t q = d / s;  // candidates c = q (rest d - q*s in [0, s)) and q + 1 (rest in [-s, 0))
  if (q <= c_max && d - q * s <= reach[0] && offset_difference_reachable(d - q * s, v, axes + 1, reach + 1, n - 1))
    return true;
  return q + 1 <= c_max && (q + 1) * s - d <= reach[0] &&
         offset_difference_reachable((q + 1) * s - d, v, axes + 1, reach + 1, n - 1);
}

/// How the elements of two views relate in memory. `unknown`: their address ranges intersect
/// and no cheap exact test applies (different shapes or strides).
enum class memory_relation { disjoint, shared, unknown };

/// Exact when the address ranges [data, data + span) do not intersect, when both views start at
/// the same address, and when they have the same extents and the same strides (on axes of
/// extent > 1) and those strides nest (strides_nest): then they share an element iff the offset
/// between them is a difference of two of the view's offsets (offset_difference_reachable), so
/// interleaved views (the even and the odd elements of a buffer, two columns of a row-major
/// matrix) are told apart from overlapping ones. O(rank) in practice.
template <class A, class B>
memory_relation memory_relation_of(const view<A>& a, const view<B>& b) noexcept {
  if (a.size() == 0 || b.size() == 0) return memory_relation::disjoint;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data());
  const auto a1 = reinterpret_cast<std::uintptr_t>(a.data() + a.span_extent());
  const auto b0 = reinterpret_cast<std::uintptr_t>(b.data());
  const auto b1 = reinterpret_cast<std::uintptr_t>(b.data() + b.span_extent());
  if (!(a0 < b1 && b0 < a1)) return memory_relation::disjoint;
  if (a0 == b0) return memory_relation::shared;  // the element at data()
  if (sizeof(A) != sizeof(B) || a.rank() != b.rank()) return memory_relation::unknown;
  for (std::size_t i = 0; i < a.rank(); ++i)
    if (a.extent(i) != b.extent(i) || (a.extent(i) > 1 && a.stride(i) != b.stride(i))) return memory_relation::unknown;
  const std::uintptr_t gap = a0 < b0 ? b0 - a0 : a0 - b0;
  if (gap % sizeof(A) != 0 || !strides_nest(a)) return memory_relation::unknown;
  std::size_t axes[max_rank];  // axes of extent > 1 by decreasing stride
  std::size_t n = 0;
  for (std::size_t i = 0; i < a.rank(); ++i) {
    if (a.extent(i) <= 1) continue;
    std::size_t k = n++;
    for (; k > 0 && a.stride(axes[k - 1]) < a.stride(i); --k) axes[k] = axes[k - 1];
    axes[k] = i;
  }
  std::ptrdiff_t reach[max_rank];
  std::ptrdiff_t below = 0;
  for (std::size_t k = n; k-- > 0;) {
    reach[k] = below;
    below += static_cast<std::ptrdiff_t>(a.extent(axes[k]) - 1) * a.stride(axes[k]);
  }
  // gap < the span in bytes (the ranges intersect), so the element count fits in ptrdiff_t.
  const auto d = static_cast<std::ptrdiff_t>(gap / sizeof(A));
  return offset_difference_reachable(d, a, axes, reach, n) ? memory_relation::shared : memory_relation::disjoint;
}

/// Whether two views may share an element (false only when they are shown disjoint).
template <class A, class B>
bool overlaps(const view<A>& a, const view<B>& b) noexcept {
  return memory_relation_of(a, b) != memory_relation::disjoint;
}

template <class A, class B>
bool same_elements(const view<A>& a, const view<B>& b) noexcept {
  if (static_cast<const void*>(a.data()) != static_cast<const void*>(b.data())) return false;
  for (std::size_t i = 0; i < a.rank(); ++i)
    if (a.extent(i) != 1 && a.stride(i) != b.stride(i)) return false;
  return true;
}

/// y may be x itself (in place) or share no element with it; nothing in between. y is an output,
/// so its own elements must not share memory either.
template <class A, class B>
void require_alias_or_disjoint(const char* where, const view<A>& x, const view<B>& y) {
  require_no_self_overlap(where, "y", y);
  if (same_elements(x, y)) return;
  switch (memory_relation_of(x, y)) {
    case memory_relation::shared:
      throw_argument(where, "y partially overlaps x; pass the same view for an in-place prox or disjoint memory");
    case memory_relation::unknown:
      throw_argument(where, "y's memory could not be shown disjoint from x's (their address ranges intersect, and "
                            "only views with the same shape and strides are compared element by element); pass the "
                            "same view for an in-place prox or disjoint memory");
    default: return;
  }
}

/// a and b must share no element. A mutable view is an output here (a gradient, the weights a
/// prox writes), so it must not share memory with itself either; read-only views may.
template <class A, class B>
void require_disjoint(const char* where, const char* name_a, const view<A>& a, const char* name_b, const view<B>& b) {
  if constexpr (!std::is_const_v<A>) require_no_self_overlap(where, name_a, a);
  if constexpr (!std::is_const_v<B>) require_no_self_overlap(where, name_b, b);
  switch (memory_relation_of(a, b)) {
    case memory_relation::shared:
      throw_argument(where, std::string(name_b) + " overlaps " + name_a + "; they must be separate buffers");
    case memory_relation::unknown:
      throw_argument(where, std::string(name_b) + "'s memory could not be shown disjoint from " + name_a +
                                "'s (their address ranges intersect, and only views with the same shape and strides "
                                "are compared element by element); they must be separate buffers");
    default: return;
  }
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
  // Selects between constants, not an integer difference converted to T: the same values, and
  // loops over it vectorize (the integer form kept the l1 gradient scalar, 10 GB/s in cache).
  const T s = (x > T(0) ? T(1) : T(0)) - (x < T(0) ? T(1) : T(0));
  return x != x ? x : s;
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
