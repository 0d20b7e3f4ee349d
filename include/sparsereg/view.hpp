// view<T>: the non-owning tensor view every sparsereg operation works on.
//
// A view is a pointer, up to max_rank extents and the matching strides, counted in elements.
// It never owns, copies or reallocates the user's memory. view<const T> is the read-only form;
// a view<T> converts to it implicitly. Adapters (adapters/eigen.hpp, adapters/xtensor.hpp,
// adapters/torch.hpp) turn third-party containers into views through `as_view`, keeping their
// real memory layout (e.g. Eigen's default column-major order). See docs/views.md.
#pragma once

#include <array>             // std::array
#include <cstddef>           // std::size_t, std::ptrdiff_t
#include <initializer_list>  // std::initializer_list
#include <string>            // std::string, std::to_string
#include <type_traits>       // std::is_const_v, std::remove_const_t, std::enable_if_t

#include "errors.hpp"

namespace sparsereg {

inline constexpr std::size_t max_rank = 8;

namespace detail {
/// "shape [2x3], strides [3, 1]", for error messages about a layout.
inline std::string layout_text(const std::size_t* extents, const std::ptrdiff_t* strides, std::size_t rank) {
  std::string s = "shape [";
  for (std::size_t i = 0; i < rank; ++i) s += (i ? "x" : "") + std::to_string(extents[i]);
  s += "], strides [";
  for (std::size_t i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(strides[i]);
  return s + "]";
}
}  // namespace detail

template <class T>
class view {
 public:
  using element_type = T;
  using value_type = std::remove_const_t<T>;

  /// An empty view (rank 0, size 0, null data).
  view() = default;

  /// Row-major (C order) contiguous view of `shape`.
  view(T* data, std::initializer_list<std::size_t> shape) : data_(data) {
    set_shape("view", shape.begin(), shape.size());
    set_row_major_strides();
  }

  /// Row-major contiguous view from any range of extents (std::vector, std::array, ...).
  template <class Extents, class = decltype(std::declval<const Extents&>().size())>
  view(T* data, const Extents& shape) : data_(data) {
    set_shape("view", shape.begin(), shape.size());
    set_row_major_strides();
  }

  /// View with explicit strides, in elements. Strides must be non-negative.
  /// Every constructor throws std::invalid_argument for a negative extent, a product of the
  /// extents or an offset of the last element above PTRDIFF_MAX, or a null data with elements.
  view(T* data, std::initializer_list<std::size_t> shape, std::initializer_list<std::ptrdiff_t> strides)
      : data_(data) {
    set_shape("view", shape.begin(), shape.size());
    set_strides("view", strides.begin(), strides.size());
  }

  template <class Extents, class Strides,
            class = decltype(std::declval<const Extents&>().size() + std::declval<const Strides&>().size())>
  view(T* data, const Extents& shape, const Strides& strides) : data_(data) {
    set_shape("view", shape.begin(), shape.size());
    set_strides("view", strides.begin(), strides.size());
  }

  /// A view<T> is usable wherever a view<const T> is expected.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  view(const view<U>& other) : data_(other.data()), rank_(other.rank()) {
    for (std::size_t i = 0; i < rank_; ++i) {
      extents_[i] = other.extent(i);
      strides_[i] = other.stride(i);
    }
  }

  T* data() const noexcept { return data_; }
  std::size_t rank() const noexcept { return rank_; }
  std::size_t extent(std::size_t axis) const noexcept { return extents_[axis]; }
  std::ptrdiff_t stride(std::size_t axis) const noexcept { return strides_[axis]; }
  const std::array<std::size_t, max_rank>& extents() const noexcept { return extents_; }
  const std::array<std::ptrdiff_t, max_rank>& strides() const noexcept { return strides_; }

  /// Number of elements: the product of the extents (1 for rank 0 with data, 0 when empty).
  std::size_t size() const noexcept {
    if (data_ == nullptr && rank_ == 0) return 0;
    std::size_t n = 1;
    for (std::size_t i = 0; i < rank_; ++i) n *= extents_[i];
    return n;
  }
  bool empty() const noexcept { return size() == 0; }

  /// True when the elements are dense in row-major order (strides are the C-order strides).
  bool is_contiguous() const noexcept {
    std::ptrdiff_t expect = 1;
    for (std::size_t i = rank_; i-- > 0;) {
      if (extents_[i] != 1 && strides_[i] != expect) return false;
      expect *= static_cast<std::ptrdiff_t>(extents_[i]);
    }
    return true;
  }

  /// Element at a multi-index (bounds are the caller's responsibility).
  template <class... I>
  T& operator()(I... idx) const noexcept {
    static_assert(sizeof...(I) <= max_rank, "sparsereg::view: too many indices");
    const std::size_t ids[] = {static_cast<std::size_t>(idx)..., 0};
    std::ptrdiff_t off = 0;
    for (std::size_t i = 0; i < sizeof...(I); ++i) off += static_cast<std::ptrdiff_t>(ids[i]) * strides_[i];
    return data_[off];
  }

  /// Memory offset (in elements) of the element with row-major flat index `flat`.
  std::ptrdiff_t offset_of_flat(std::size_t flat) const noexcept {
    std::ptrdiff_t off = 0;
    for (std::size_t i = rank_; i-- > 0;) {
      off += static_cast<std::ptrdiff_t>(flat % extents_[i]) * strides_[i];
      flat /= extents_[i];
    }
    return off;
  }

  /// One past the furthest element reachable through the view, as an offset from data().
  std::ptrdiff_t span_extent() const noexcept {
    if (size() == 0) return 0;
    std::ptrdiff_t last = 0;
    for (std::size_t i = 0; i < rank_; ++i) last += static_cast<std::ptrdiff_t>(extents_[i] - 1) * strides_[i];
    return last + 1;
  }

 private:
  // Both setters keep every offset a view can form within std::ptrdiff_t, so size(),
  // span_extent() and the kernels' index arithmetic cannot overflow: the product of the non-zero
  // extents and the offset of the last element are at most PTRDIFF_MAX. O(rank), once per view.
  static constexpr std::size_t max_elements = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());

  template <class It>
  void set_shape(const char* where, It first, std::size_t n) {
    if (n > max_rank)
      detail::throw_argument(where, "rank must be <= " + std::to_string(max_rank) + ", got " + std::to_string(n));
    rank_ = n;
    std::size_t elements = 1;  // product of the non-zero extents (a zero one empties the view)
    for (std::size_t i = 0; i < n; ++i, ++first) {
      if constexpr (std::is_signed_v<std::decay_t<decltype(*first)>>) {
        if (*first < 0)
          detail::throw_argument(where, "shape[" + std::to_string(i) + "] must be >= 0, got " + std::to_string(*first));
      }
      extents_[i] = static_cast<std::size_t>(*first);
      if (extents_[i] == 0) continue;
      if (extents_[i] > max_elements / elements)
        detail::throw_argument(where, "shape[" + std::to_string(i) + "] = " + std::to_string(extents_[i]) +
                                          " makes the number of elements overflow: the product of the extents "
                                          "must be <= PTRDIFF_MAX = " + std::to_string(max_elements));
      elements *= extents_[i];
    }
    if (data_ == nullptr && size_unchecked() != 0)
      detail::throw_argument(where, "data is null but the shape has " + std::to_string(size_unchecked()) + " elements");
  }
  template <class It>
  void set_strides(const char* where, It first, std::size_t n) {
    if (n != rank_)
      detail::throw_argument(where, "strides has " + std::to_string(n) + " entries but shape has " + std::to_string(rank_));
    for (std::size_t i = 0; i < n; ++i, ++first) {
      const auto s = static_cast<std::ptrdiff_t>(*first);
      if (s < 0)
        detail::throw_argument(where, "strides[" + std::to_string(i) + "] must be >= 0, got " + std::to_string(s));
      strides_[i] = s;
    }
    if (size_unchecked() == 0) return;  // no element, no offset
    const auto limit = static_cast<std::ptrdiff_t>(max_elements) - 1;  // span_extent() = last + 1
    std::ptrdiff_t last = 0;  // offset of the last element
    for (std::size_t i = 0; i < n; ++i) {
      const auto steps = static_cast<std::ptrdiff_t>(extents_[i] - 1);
      if (steps != 0 && strides_[i] != 0 && steps > (limit - last) / strides_[i])
        detail::throw_argument(where, "strides[" + std::to_string(i) + "] = " + std::to_string(strides_[i]) +
                                          " puts the last element beyond PTRDIFF_MAX elements from data() (" +
                                          detail::layout_text(extents_.data(), strides_.data(), rank_) + ")");
      last += steps * strides_[i];
    }
  }
  void set_row_major_strides() noexcept {
    std::ptrdiff_t s = 1;
    for (std::size_t i = rank_; i-- > 0;) {
      strides_[i] = s;
      s *= static_cast<std::ptrdiff_t>(extents_[i]);
    }
  }
  std::size_t size_unchecked() const noexcept {
    std::size_t n = 1;
    for (std::size_t i = 0; i < rank_; ++i) n *= extents_[i];
    return n;
  }

  T* data_ = nullptr;
  std::size_t rank_ = 0;
  std::array<std::size_t, max_rank> extents_{};
  std::array<std::ptrdiff_t, max_rank> strides_{};
};

/// Row-major view of `shape` over `data`.
template <class T>
view<T> make_view(T* data, std::initializer_list<std::size_t> shape) {
  return view<T>(data, shape);
}

/// as_view for views themselves, so generic code can call as_view on anything view-like.
template <class T>
view<T> as_view(view<T> v) noexcept {
  return v;
}

}  // namespace sparsereg
