// Keyed runs: walk one or two views of the same shape in memory order, in long runs, knowing for
// each element an integer key (a group or unit index) that is linear in the multi-index:
//   key(i_0, ..., i_{r-1}) = sum_a i_a * key_strides[a].
// Used by the kernels that keep per-key workspaces (coupled groups, sharded groups, the
// per-element-step group prox). It reuses the iteration plans of plan.hpp by passing the key
// strides as the third view's strides, so axes merge only when they are dense in both views AND
// in the key: a tensor O x I x 3 x 3 grouped by filters walks O runs of I*9 elements, never 3.
#pragma once

#include <array>    // std::array
#include <cmath>    // std::fabs
#include <cstddef>  // std::size_t, std::ptrdiff_t

#include "../view.hpp"
#include "plan.hpp"

namespace sparsereg {
namespace detail {

/// The first `n` entries of an array as a range, to build a view's shape or strides from it
/// without a std::vector (view's constructors take any range with begin() and size()).
template <class E>
struct array_prefix {
  const E* first;
  std::size_t n;
  const E* begin() const noexcept { return first; }
  std::size_t size() const noexcept { return n; }
};

/// The plan of a keyed walk over views a and b of one shape: its third strides (stride_c,
/// offset_c) are the keys, so axes merge only where the key is dense too, and every plan axis
/// either carries the key (stride_c != 0) or not (stride_c == 0). Allocates nothing.
template <class A, class B>
plan keyed_plan(const view<A>& a, const view<B>& b, const std::array<std::size_t, max_rank>& key_strides) {
  static const unsigned char anchor = 0;
  std::array<std::size_t, max_rank> extents{};
  std::array<std::ptrdiff_t, max_rank> kstrides{};
  for (std::size_t i = 0; i < a.rank(); ++i) {
    extents[i] = a.extent(i);
    kstrides[i] = static_cast<std::ptrdiff_t>(key_strides[i]);
  }
  // The key "view" is never dereferenced: only its strides matter to the plan. Built from the
  // arrays themselves, so a call allocates nothing (tests/detail/no_alloc_test.cpp).
  const view<const unsigned char> keys(&anchor, array_prefix<std::size_t>{extents.data(), a.rank()},
                                       array_prefix<std::ptrdiff_t>{kstrides.data(), a.rank()});
  return make_plan(a, b, keys, 0u);
}

/// Calls f(pa, sa, pb, sb, key0, key_stride, n) for every run: n elements pa[j*sa], pb[j*sb]
/// with key key0 + j*key_stride (key_stride = 0: the whole run has one key). Sequential, in the
/// memory order of `a`; the order is a function of the shapes and strides only.
template <class A, class B, class F>
void for_each_keyed_run(const view<A>& a, const view<B>& b, const std::array<std::size_t, max_rank>& key_strides,
                        F&& f) {
  if (a.size() == 0) return;
  const plan p = keyed_plan(a, b, key_strides);
  const plan_axis& r = p.run();
  for_each_run(p, p.rank, 0, 0, [&](const run_position& pos) {
    f(a.data() + pos.offset_a, r.stride_a, b.data() + pos.offset_b, r.stride_b, static_cast<std::size_t>(pos.offset_c),
      static_cast<std::size_t>(r.stride_c), r.extent);
  });
}

/// Soft threshold without branches (random signs would mispredict every other element):
/// copysign(max(|x| - t, 0), x); NaN stays NaN (NaN < 0 is false, so max keeps it).
template <class T>
inline T soft_threshold_select(T x, T t) noexcept {
  const T a = std::fabs(x) - t;
  return std::copysign(a < T(0) ? T(0) : a, x);
}

/// ss += sum u^2, ab += sum |u|, zeros += #{u == 0} over u = pre(p[j*sp]), j < n, in double.
/// Four accumulators (element j to lane j mod 4, combined in a fixed tree) break the add-latency
/// chain; the result depends on nothing but the values and n. S: std::ptrdiff_t, or
/// std::integral_constant<std::ptrdiff_t, 1> for unit-stride runs (so the loads vectorize).
template <class T, class S, class Pre>
inline void sum_squares_abs(const T* p, S sp, std::size_t n, Pre pre, double& ss, double& ab, std::size_t& zeros) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
  std::size_t z = 0, j = 0;
  auto at = [&](std::size_t i) { return static_cast<double>(pre(p[static_cast<std::ptrdiff_t>(i) * sp])); };
  for (; j + 4 <= n; j += 4) {
    const double u0 = at(j), u1 = at(j + 1), u2 = at(j + 2), u3 = at(j + 3);
    s0 += u0 * u0;
    s1 += u1 * u1;
    s2 += u2 * u2;
    s3 += u3 * u3;
    a0 += std::fabs(u0);
    a1 += std::fabs(u1);
    a2 += std::fabs(u2);
    a3 += std::fabs(u3);
    z += static_cast<std::size_t>(u0 == 0.0) + static_cast<std::size_t>(u1 == 0.0) + static_cast<std::size_t>(u2 == 0.0) +
         static_cast<std::size_t>(u3 == 0.0);
  }
  double* sl[4] = {&s0, &s1, &s2, &s3};
  double* al[4] = {&a0, &a1, &a2, &a3};
  for (std::size_t l = 0; j < n; ++j, ++l) {
    const double u = at(j);
    *sl[l] += u * u;
    *al[l] += std::fabs(u);
    z += (u == 0.0);
  }
  ss += (s0 + s1) + (s2 + s3);
  ab += (a0 + a1) + (a2 + a3);
  zeros += z;
}

/// Row-major key strides of the axes in `mask` over `extents` (the group numbering of groups.hpp).
template <class Extents>
std::array<std::size_t, max_rank> row_major_key_strides(unsigned mask, const Extents& extents, std::size_t rank,
                                                        std::size_t* count = nullptr) {
  std::array<std::size_t, max_rank> s{};
  std::size_t g = 1;
  for (std::size_t i = rank; i-- > 0;)
    if (mask & (1u << i)) {
      s[i] = g;
      g *= extents[i];
    }
  if (count) *count = g;
  return s;
}

}  // namespace detail
}  // namespace sparsereg
