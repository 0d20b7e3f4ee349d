// Sparsity analysis over views: zero elements, zero slices along an axis, and the per-layer
// structural report a trainer prints after training.
//
// A *slice* along axis a is the set of elements that share one index on a: slice j along axis 0 of
// an O×I×H×W conv weight is filter j, along axis 1 it is input channel j; along axis 1 of an out×in
// linear weight it is input feature j. A slice is zero when every element is exactly 0; NaN is not
// zero, so a diverged tensor never looks prunable.
//
// These helpers read through view's public API only (data(), rank(), extent(), stride(), size()),
// so they work for any layout an adapter produces. They allocate only their result.
#pragma once

#include <array>    // std::array
#include <cstddef>  // std::size_t, std::ptrdiff_t
#include <cstdint>  // std::uint32_t, std::uint64_t
#include <cstring>  // std::memcpy
#include <limits>   // std::numeric_limits
#include <string>   // std::string, std::to_string
#include <type_traits>
#include <vector>   // std::vector

#include "../errors.hpp"
#include "../view.hpp"

namespace sparsereg {

namespace detail {

/// Calls f(offset, index_on_axis) for every element of v (row-major order); `axis` may be
/// v.rank() (no axis), in which case index_on_axis is 0. The innermost loop runs over the last
/// axis with its stride, so contiguous views are read sequentially.
template <class T, class F>
void for_each_element(const view<T>& v, std::size_t axis, F&& f) {
  if (v.size() == 0) return;
  const std::size_t r = v.rank();
  if (r == 0) {
    f(std::ptrdiff_t{0}, std::size_t{0});
    return;
  }
  std::array<std::size_t, max_rank> idx{};
  const std::size_t last = r - 1;
  const std::size_t n_last = v.extent(last);
  const std::ptrdiff_t s_last = v.stride(last);
  for (;;) {
    std::ptrdiff_t base = 0;
    for (std::size_t i = 0; i < last; ++i) base += static_cast<std::ptrdiff_t>(idx[i]) * v.stride(i);
    if (axis == last) {
      for (std::size_t j = 0; j < n_last; ++j) f(base + static_cast<std::ptrdiff_t>(j) * s_last, j);
    } else {
      const std::size_t a = axis < r ? idx[axis] : 0;
      for (std::size_t j = 0; j < n_last; ++j) f(base + static_cast<std::ptrdiff_t>(j) * s_last, a);
    }
    // Odometer over axes 0 .. last-1.
    std::size_t d = last;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++idx[d] < v.extent(d)) break;
      idx[d] = 0;
    }
  }
}

/// Whether s[0, len) is all +0 / -0 (NaN is not zero). Stops at the first block of 32 elements
/// that holds a non-zero. For IEEE float and double a block is tested by OR-ing the elements' bits
/// shifted left by one (dropping the sign, so -0 counts as zero and nothing else does), which
/// vectorizes where a compare-and-break loop does not: an all-zero slice, the one a trainer's
/// dead-unit scan reads in full every step, is read about 8x faster.
template <class T>
bool all_zero(const T* s, std::size_t len) noexcept {
  std::size_t k = 0;
  if constexpr (std::numeric_limits<T>::is_iec559 && (sizeof(T) == 4 || sizeof(T) == 8)) {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr std::size_t block = 32;
    for (; k + block <= len; k += block) {
      U bits = 0;
      for (std::size_t i = 0; i < block; ++i) {
        U b;
        std::memcpy(&b, s + k + i, sizeof b);
        bits |= static_cast<U>(b << 1);
      }
      if (bits != 0) return false;
    }
  }
  for (; k < len; ++k)
    if (s[k] != 0) return false;  // NaN != 0
  return true;
}

inline void check_axis(const char* where, std::size_t axis, std::size_t rank) {
  if (axis >= rank)
    throw_argument(where, "axis must be < rank " + std::to_string(rank) + ", got " + std::to_string(axis));
}

}  // namespace detail

/// Element counts of one tensor.
struct tensor_sparsity {
  std::size_t elements = 0;
  std::size_t zero_elements = 0;
  /// Fraction of elements that are exactly zero (0 for an empty tensor).
  double fraction() const noexcept {
    return elements == 0 ? 0.0 : static_cast<double>(zero_elements) / static_cast<double>(elements);
  }
};

/// Number of elements of w that are exactly zero.
template <class T>
std::size_t count_zeros(view<T> w) {
  std::size_t n = 0;
  const auto* p = w.data();
  detail::for_each_element(w, w.rank(), [&](std::ptrdiff_t off, std::size_t) { n += (p[off] == 0) ? 1 : 0; });
  return n;
}

template <class T>
tensor_sparsity sparsity(view<T> w) {
  return tensor_sparsity{w.size(), count_zeros(w)};
}

/// For every index j along `axis`, whether the slice w[..., j, ...] is entirely zero.
/// Throws std::invalid_argument if axis >= w.rank().
template <class T>
std::vector<bool> zero_slices(view<T> w, std::size_t axis) {
  detail::check_axis("zero_slices", axis, w.rank());
  const auto* p = w.data();
  if (axis == 0 && w.is_contiguous()) {
    // Slice j is one contiguous range: stop at its first block holding a non-zero. A trainer
    // calls this every step; a live slice ends the scan in its first block, a dead one is read
    // in full.
    const std::size_t n = w.extent(0), len = n == 0 ? 0 : w.size() / n;
    std::vector<bool> zero(n);
    for (std::size_t j = 0; j < n; ++j) zero[j] = detail::all_zero(p + j * len, len);
    return zero;
  }
  std::vector<bool> nonzero(w.extent(axis), false);
  detail::for_each_element(w, axis, [&](std::ptrdiff_t off, std::size_t j) {
    if (p[off] != 0) nonzero[j] = true;  // NaN != 0, so NaN keeps its slice
  });
  std::vector<bool> zero(nonzero.size());
  for (std::size_t j = 0; j < zero.size(); ++j) zero[j] = !nonzero[j];
  return zero;
}

/// Number of true entries.
inline std::size_t count_true(const std::vector<bool>& flags) noexcept {
  std::size_t n = 0;
  for (bool f : flags) n += f ? 1 : 0;
  return n;
}

/// Number of all-zero slices of w along `axis`.
template <class T>
std::size_t count_zero_slices(view<T> w, std::size_t axis) {
  return count_true(zero_slices(w, axis));
}

/// One row of a structural report: what training zeroed in one layer and what a compaction that
/// removes whole units keeps. Counts are filled by the caller (a trainer knows its layers'
/// wiring: a removed conv filter also removes the matching input channel of the next layer).
struct layer_report {
  std::string name;
  std::size_t units = 0;          ///< output units before removal (conv filters / linear neurons)
  std::size_t units_kept = 0;     ///< output units after removal
  std::size_t inputs = 0;         ///< input channels / features before removal
  std::size_t inputs_kept = 0;    ///< input channels / features after removal
  std::size_t groups = 0;         ///< penalty groups of this layer's weight
  std::size_t groups_zeroed = 0;  ///< of those, entirely zero
  std::size_t elements = 0;       ///< weight elements
  std::size_t zero_elements = 0;  ///< weight elements that are exactly zero
  std::size_t params_before = 0;  ///< weights + biases before removal
  std::size_t params_after = 0;   ///< weights + biases after structural removal
  std::size_t flops_before = 0;   ///< forward multiply-accumulates per sample, before
  std::size_t flops_after = 0;    ///< forward multiply-accumulates per sample, after
  bool collapsed = false;         ///< every unit was removable; compaction kept one anyway

  double removed_fraction() const noexcept {
    return params_before == 0 ? 0.0
                              : 1.0 - static_cast<double>(params_after) / static_cast<double>(params_before);
  }
};

/// Column totals of a report.
inline layer_report total_of(const std::vector<layer_report>& layers, const std::string& name = "total") {
  layer_report t;
  t.name = name;
  for (const auto& l : layers) {
    t.units += l.units;
    t.units_kept += l.units_kept;
    t.inputs += l.inputs;
    t.inputs_kept += l.inputs_kept;
    t.groups += l.groups;
    t.groups_zeroed += l.groups_zeroed;
    t.elements += l.elements;
    t.zero_elements += l.zero_elements;
    t.params_before += l.params_before;
    t.params_after += l.params_after;
    t.flops_before += l.flops_before;
    t.flops_after += l.flops_after;
    t.collapsed = t.collapsed || l.collapsed;
  }
  return t;
}

}  // namespace sparsereg
