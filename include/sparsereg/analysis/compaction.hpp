// Compaction helpers: turn the zero slices of a tensor into a smaller dense tensor.
//
// The model-level bookkeeping (a removed conv filter also removes the next layer's input channel,
// and through a flatten the block of features it fed) belongs to the caller; these helpers do the
// per-tensor part: choose the kept indices and gather the kept slices along an axis into a
// caller-provided buffer. They never allocate in the copy.
#pragma once

#include <array>             // std::array
#include <cstddef>           // std::size_t, std::ptrdiff_t
#include <initializer_list>  // std::initializer_list
#include <string>            // std::to_string
#include <type_traits>
#include <utility>           // std::move
#include <vector>            // std::vector

#include "../errors.hpp"
#include "../view.hpp"
#include "report.hpp"

namespace sparsereg {

/// Indices j with removable[j] == false, ascending. If every index is removable and
/// `keep_at_least_one` is true, returns {fallback} instead: a layer with zero units would
/// disconnect the network, so a collapsed layer keeps one (all-zero) unit and the caller reports
/// the collapse. `fallback` must be < removable.size().
inline std::vector<std::size_t> kept_indices(const std::vector<bool>& removable, bool keep_at_least_one = true,
                                             std::size_t fallback = 0) {
  std::vector<std::size_t> keep;
  for (std::size_t j = 0; j < removable.size(); ++j)
    if (!removable[j]) keep.push_back(j);
  if (keep.empty() && keep_at_least_one && !removable.empty()) {
    if (fallback >= removable.size())
      detail::throw_argument("kept_indices", "fallback " + std::to_string(fallback) + " is out of range for " +
                                                 std::to_string(removable.size()) + " indices");
    keep.push_back(fallback);
  }
  return keep;
}

/// Element-wise OR of two flag vectors of equal length.
inline std::vector<bool> either(const std::vector<bool>& a, const std::vector<bool>& b) {
  if (a.size() != b.size())
    detail::throw_argument("either", "lengths differ: " + std::to_string(a.size()) + " vs " + std::to_string(b.size()));
  std::vector<bool> r(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) r[i] = a[i] || b[i];
  return r;
}

/// dst = the slices of src along `axis` listed in `keep`, in that order. dst must have src's
/// rank and extents except extent(axis) == keep.size(); any layout. src and dst must not overlap.
template <class S, class D>
void gather_slices(view<S> src, std::size_t axis, const std::vector<std::size_t>& keep, view<D> dst) {
  static_assert(std::is_same_v<std::remove_const_t<S>, D>, "gather_slices: dst must be a mutable view of src's type");
  const char* where = "gather_slices";
  detail::check_axis(where, axis, src.rank());
  if (dst.rank() != src.rank())
    detail::throw_argument(where, "dst rank " + std::to_string(dst.rank()) + " differs from src rank " +
                                      std::to_string(src.rank()));
  for (std::size_t i = 0; i < src.rank(); ++i) {
    const std::size_t want = i == axis ? keep.size() : src.extent(i);
    if (dst.extent(i) != want)
      detail::throw_argument(where, "dst extent(" + std::to_string(i) + ") must be " + std::to_string(want) + ", got " +
                                        std::to_string(dst.extent(i)));
  }
  for (std::size_t j : keep)
    if (j >= src.extent(axis))
      detail::throw_argument(where, "keep index " + std::to_string(j) + " is out of range for extent " +
                                        std::to_string(src.extent(axis)));
  // Walk dst; map its index on `axis` through keep to find the source element.
  const std::ptrdiff_t src_axis_stride = src.stride(axis);
  const std::size_t r = dst.rank();
  std::array<std::size_t, max_rank> idx{};
  if (dst.size() == 0) return;
  const S* sp = src.data();
  D* dp = dst.data();
  for (;;) {
    std::ptrdiff_t so = 0, d_off = 0;
    for (std::size_t i = 0; i < r; ++i) {
      d_off += static_cast<std::ptrdiff_t>(idx[i]) * dst.stride(i);
      if (i == axis)
        so += static_cast<std::ptrdiff_t>(keep[idx[i]]) * src_axis_stride;
      else
        so += static_cast<std::ptrdiff_t>(idx[i]) * src.stride(i);
    }
    dp[d_off] = sp[so];
    std::size_t d = r;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++idx[d] < dst.extent(d)) break;
      idx[d] = 0;
    }
  }
}

/// Which indices of one axis gather_block keeps: the whole axis (a default-constructed value,
/// so `{}` in a braced list, or `axis_keep::all()`), or the listed indices in that order. A list
/// may be empty: it keeps none (what kept_indices(removable, false) returns for a collapsed
/// layer), which is never read as "the whole axis".
class axis_keep {
 public:
  axis_keep() = default;
  // Implicit on purpose: `{0, 2}` and the vector kept_indices returns stand for their lists.
  axis_keep(std::initializer_list<std::size_t> indices) : whole_(false), indices_(indices) {}
  axis_keep(std::vector<std::size_t> indices) : whole_(false), indices_(std::move(indices)) {}
  static axis_keep all() { return axis_keep(); }

  bool whole() const noexcept { return whole_; }
  const std::vector<std::size_t>& indices() const noexcept { return indices_; }
  /// The extent of the gathered axis when the source axis has `extent` indices.
  std::size_t extent(std::size_t source_extent) const noexcept { return whole_ ? source_extent : indices_.size(); }

 private:
  bool whole_ = true;
  std::vector<std::size_t> indices_;
};

/// Gathers along several axes at once: keep[a] says which indices of axis a are kept (axis_keep:
/// the whole axis, or a list, possibly empty). dst has the reduced extents. Used for a conv weight
/// that loses both filters (axis 0) and input channels (axis 1).
template <class S, class D>
void gather_block(view<S> src, const std::vector<axis_keep>& keep, view<D> dst) {
  static_assert(std::is_same_v<std::remove_const_t<S>, D>, "gather_block: dst must be a mutable view of src's type");
  const char* where = "gather_block";
  const std::size_t r = src.rank();
  if (keep.size() != r)
    detail::throw_argument(where, "keep has " + std::to_string(keep.size()) + " entries, src rank is " + std::to_string(r));
  if (dst.rank() != r)
    detail::throw_argument(where, "dst rank " + std::to_string(dst.rank()) + " differs from src rank " +
                                      std::to_string(r));
  for (std::size_t i = 0; i < r; ++i) {
    const std::size_t want = keep[i].extent(src.extent(i));
    if (dst.extent(i) != want)
      detail::throw_argument(where, "dst extent(" + std::to_string(i) + ") must be " + std::to_string(want) + ", got " +
                                        std::to_string(dst.extent(i)));
    for (std::size_t j : keep[i].indices())
      if (j >= src.extent(i))
        detail::throw_argument(where, "keep index " + std::to_string(j) + " on axis " + std::to_string(i) +
                                          " is out of range for extent " + std::to_string(src.extent(i)));
  }
  if (dst.size() == 0) return;
  std::array<std::size_t, max_rank> idx{};
  const S* sp = src.data();
  D* dp = dst.data();
  for (;;) {
    std::ptrdiff_t so = 0, d_off = 0;
    for (std::size_t i = 0; i < r; ++i) {
      d_off += static_cast<std::ptrdiff_t>(idx[i]) * dst.stride(i);
      const std::size_t s_idx = keep[i].whole() ? idx[i] : keep[i].indices()[idx[i]];
      so += static_cast<std::ptrdiff_t>(s_idx) * src.stride(i);
    }
    dp[d_off] = sp[so];
    std::size_t d = r;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++idx[d] < dst.extent(d)) break;
      idx[d] = 0;
    }
  }
}

}  // namespace sparsereg
