// xtensor adapter: xtensor objects with a data interface as sparsereg views.
//
// Supported: xt::xarray, xt::xtensor, xt::xtensor_fixed, adapted buffers (xt::adapt), in row-major,
// column-major or dynamic layout, and the strided views over them that expose their memory
// (xt::view with integer/range/all slices, xt::strided_view, xt::transpose of a container).
//   * extents = shape(), strides = strides() (already in elements), data = data() + data_offset(),
//     so logical element (i0, ..., iN-1) of the view is a(i0, ..., iN-1) whatever the layout.
//   * xtensor gives extent-1 axes stride 0; sparsereg ignores the stride of extent-1 axes, so that
//     is harmless. A stride 0 on a longer axis (a broadcast: many logical elements on one address)
//     and negative strides (reversed slices) are rejected with std::invalid_argument.
//   * const objects give view<const T>.
//   * expressions without a data interface (a + b, xt::abs(a), views with index/keep slices)
//     are rejected at compile time: evaluate them into a container first.
//
// This is the only sparsereg header that includes xtensor.
#pragma once

#include <array>        // std::array
#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <string>       // std::to_string
#include <type_traits>  // std::enable_if_t, std::void_t, std::is_pointer_v
#include <xtensor/xexpression.hpp>
#include <xtensor/xutils.hpp>

#include "../errors.hpp"
#include "../penalty.hpp"
#include "../view.hpp"

namespace sparsereg {
namespace detail {

template <class X>
inline constexpr bool is_xtensor_expression_v = xt::is_xexpression<X>::value;

/// True when `Y` (possibly const) exposes its memory: a pointer data(), data_offset(), shape() and
/// strides(). xtensor enables these members on views only when the view is strided.
template <class Y, class = void>
struct xtensor_has_memory : std::false_type {};
template <class Y>
struct xtensor_has_memory<Y,
                          std::void_t<decltype(std::declval<Y&>().data()), decltype(std::declval<Y&>().data_offset()),
                                      decltype(std::declval<Y&>().shape()), decltype(std::declval<Y&>().strides())>>
    : std::bool_constant<std::is_pointer_v<decltype(std::declval<Y&>().data())>> {};

template <class Y, bool memory = xtensor_has_memory<Y>::value>
struct xtensor_element {
  using type = typename std::remove_cv_t<Y>::value_type;
};
template <class Y>
struct xtensor_element<Y, true> {
  using type = std::remove_pointer_t<decltype(std::declval<Y&>().data())>;
};

}  // namespace detail

template <class X>
struct view_adapter<X, std::enable_if_t<detail::is_xtensor_expression_v<X>>> {
  template <class Y>  // Y is X or const X
  static view<typename detail::xtensor_element<Y>::type> make(Y& x) {
    static_assert(detail::xtensor_has_memory<Y>::value,
                  "sparsereg: this xtensor expression does not expose its memory (a function such as a + b or "
                  "xt::abs(a), a broadcast, or a view with index/keep/drop slices). sparsereg works on memory "
                  "in place and never makes hidden copies: evaluate it into an xt::xarray/xtensor first "
                  "(xt::eval), or pass a container, an xt::adapt buffer or a strided view.");
    using E = typename detail::xtensor_element<Y>::type;
    if constexpr (!detail::xtensor_has_memory<Y>::value) {
      return view<E>();  // unreachable: the static_assert above already failed (keeps errors short)
    } else {
      const auto& shape = x.shape();
      const auto& strides = x.strides();
      const std::size_t rank = shape.size();
      if (rank > max_rank)
        detail::throw_argument("as_view",
                               "rank must be <= " + std::to_string(max_rank) + ", got " + std::to_string(rank));
      std::array<std::size_t, max_rank> ext{};
      std::array<std::ptrdiff_t, max_rank> str{};
      for (std::size_t k = 0; k < rank; ++k) {
        ext[k] = static_cast<std::size_t>(shape[k]);
        const auto s = static_cast<std::ptrdiff_t>(strides[k]);
        if (s < 0)
          detail::throw_argument("as_view", "xtensor stride " + std::to_string(k) + " is " + std::to_string(s) +
                                                " (a reversed view); sparsereg views need non-negative strides");
        if (s == 0 && ext[k] > 1)
          detail::throw_argument("as_view", "xtensor axis " + std::to_string(k) + " has extent " +
                                                std::to_string(ext[k]) +
                                                " but stride 0 (a broadcast): its elements share one address");
        // xtensor's stride of an extent-1 axis is 0; any value is equivalent there, 0 is kept.
        str[k] = s;
      }
      E* p = x.data() + static_cast<std::ptrdiff_t>(x.data_offset());
      return view<E>(p, array_prefix<std::size_t>(ext, rank), array_prefix<std::ptrdiff_t>(str, rank));
    }
  }

 private:
  /// The first n entries of a as a range the view constructor accepts.
  template <class V>
  struct prefix {
    const V* first;
    std::size_t n;
    const V* begin() const noexcept { return first; }
    std::size_t size() const noexcept { return n; }
  };
  template <class V>
  static prefix<V> array_prefix(const std::array<V, max_rank>& a, std::size_t n) noexcept {
    return {a.data(), n};
  }
};

/// sparsereg::as_view(x) for an xtensor object: the view every sparsereg function would use.
/// Lvalues only: xtensor's temporaries (views, adaptors) may own the closure they refer to.
template <class X, std::enable_if_t<detail::is_xtensor_expression_v<std::remove_cv_t<X>>, int> = 0>
auto as_view(X& x) {
  return view_adapter<std::remove_cv_t<X>>::make(x);
}

}  // namespace sparsereg
