// Iteration plans: how to walk one or two views of the same shape in memory order.
//
// A plan sorts the axes by the first view's strides (outermost first), drops extent-1 axes and
// merges neighbours that are jointly contiguous, so a walk touches memory in increasing address
// order whatever the logical layout (row- or column-major, transposed, sliced). Each axis also
// carries its contribution to the flat group index, so grouped kernels know which group a run of
// elements belongs to without any per-element division.
#pragma once

#include <array>      // std::array
#include <cstddef>    // std::size_t, std::ptrdiff_t
#include <cstdint>    // std::uint8_t

#include "../view.hpp"

namespace sparsereg {
namespace detail {

struct plan_axis {
  std::size_t extent = 1;
  std::ptrdiff_t stride_a = 0;  // stride in the first view (elements)
  std::ptrdiff_t stride_b = 0;  // stride in the second view (elements)
  std::ptrdiff_t stride_c = 0;  // stride in the third view (elements), e.g. per-element steps
  std::size_t group_stride = 0; // contribution of one step along this axis to the group index
  bool identifies_group = false;
};

/// A walk over `size` elements organised as `rank` axes, outermost first; the innermost axis is
/// the "run" that kernels process in one call.
struct plan {
  std::array<plan_axis, max_rank> axes{};
  std::size_t rank = 0;     // number of axes after merging (>= 1 unless size == 0)
  std::size_t size = 0;     // number of elements
  std::size_t groups = 1;   // number of groups (product of the identifying extents)

  const plan_axis& run() const noexcept { return axes[rank - 1]; }
  std::size_t runs() const noexcept { return rank == 0 ? 0 : size / axes[rank - 1].extent; }
};

/// Builds the plan for views `a` and `b` (same shape; b may be a) with identifying axes `mask`
/// (bit i set: logical axis i identifies the group). Groups are numbered row-major over the
/// identifying axes in logical order.
template <class A, class B, class C>
plan make_plan(const view<A>& a, const view<B>& b, const view<C>& c, unsigned mask) {
  plan p;
  p.size = a.size();
  const std::size_t r = a.rank();
  std::array<std::size_t, max_rank> gstride{};
  std::size_t g = 1;
  for (std::size_t i = r; i-- > 0;) {
    if (mask & (1u << i)) {
      gstride[i] = g;
      g *= a.extent(i);
    }
  }
  p.groups = g;
  if (p.size == 0) return p;

  std::array<std::size_t, max_rank> order{};
  std::size_t n = 0;
  for (std::size_t i = 0; i < r; ++i)
    if (a.extent(i) != 1) order[n++] = i;
  // Outermost = largest stride; ties keep the logical order (outer logical axis first). An
  // insertion sort: stable, and unlike std::stable_sort it never asks for a temporary buffer, so
  // building a plan does not allocate (tests/detail/no_alloc_test.cpp); n <= max_rank = 8.
  for (std::size_t k = 1; k < n; ++k) {
    const std::size_t v = order[k];
    std::size_t j = k;
    for (; j > 0 && a.stride(v) > a.stride(order[j - 1]); --j) order[j] = order[j - 1];
    order[j] = v;
  }

  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = order[k];
    plan_axis ax;
    ax.extent = a.extent(i);
    ax.stride_a = a.stride(i);
    ax.stride_b = b.stride(i);
    ax.stride_c = c.stride(i);
    ax.identifies_group = (mask & (1u << i)) != 0;
    ax.group_stride = gstride[i];
    if (p.rank > 0) {
      plan_axis& outer = p.axes[p.rank - 1];
      const auto e = static_cast<std::ptrdiff_t>(ax.extent);
      const bool same_kind = outer.identifies_group == ax.identifies_group;
      const bool dense_a = outer.stride_a == ax.stride_a * e;
      const bool dense_b = outer.stride_b == ax.stride_b * e;
      const bool dense_c = outer.stride_c == ax.stride_c * e;
      const bool dense_g = !ax.identifies_group || outer.group_stride == ax.group_stride * ax.extent;
      if (same_kind && dense_a && dense_b && dense_c && dense_g) {
        outer.extent *= ax.extent;
        outer.stride_a = ax.stride_a;
        outer.stride_b = ax.stride_b;
        outer.stride_c = ax.stride_c;
        outer.group_stride = ax.group_stride;
        continue;
      }
    }
    p.axes[p.rank++] = ax;
  }
  if (p.rank == 0) {  // a single element
    p.axes[0] = plan_axis{1, 1, 1, 1, 0, mask != 0};
    p.rank = 1;
  }
  return p;
}

template <class A, class B>
plan make_plan(const view<A>& a, const view<B>& b, unsigned mask) {
  return make_plan(a, b, b, mask);
}

/// Position of a run inside the walk: memory offsets in both views and the group index base.
struct run_position {
  std::ptrdiff_t offset_a = 0;
  std::ptrdiff_t offset_b = 0;
  std::ptrdiff_t offset_c = 0;
  std::size_t group = 0;
};

/// Calls f(run_position) for every run whose coordinate along plan axis `split` lies in
/// [lo, hi), in memory order. `split` must be an outer axis (< rank - 1) or rank (no split).
template <class F>
void for_each_run(const plan& p, std::size_t split, std::size_t lo, std::size_t hi, F&& f) {
  const std::size_t outer = p.rank - 1;
  std::array<std::size_t, max_rank> idx{};
  run_position pos;
  if (split < outer) {
    if (lo >= hi) return;
    idx[split] = lo;
    pos.offset_a = static_cast<std::ptrdiff_t>(lo) * p.axes[split].stride_a;
    pos.offset_b = static_cast<std::ptrdiff_t>(lo) * p.axes[split].stride_b;
    pos.offset_c = static_cast<std::ptrdiff_t>(lo) * p.axes[split].stride_c;
    pos.group = lo * p.axes[split].group_stride;
  }
  if (outer == 0) {
    f(pos);
    return;
  }
  for (;;) {
    f(pos);
    // Odometer increment over the outer axes, innermost outer axis first.
    std::size_t k = outer;
    for (;;) {
      if (k == 0) return;
      --k;
      const plan_axis& ax = p.axes[k];
      const std::size_t end = (k == split) ? hi : ax.extent;
      ++idx[k];
      pos.offset_a += ax.stride_a;
      pos.offset_b += ax.stride_b;
      pos.offset_c += ax.stride_c;
      pos.group += ax.group_stride;
      if (idx[k] < end) break;
      const std::size_t start = (k == split) ? lo : 0;
      const auto back = static_cast<std::ptrdiff_t>(idx[k] - start);
      pos.offset_a -= back * ax.stride_a;
      pos.offset_b -= back * ax.stride_b;
      pos.offset_c -= back * ax.stride_c;
      pos.group -= (idx[k] - start) * ax.group_stride;
      idx[k] = start;
    }
  }
}

}  // namespace detail
}  // namespace sparsereg
