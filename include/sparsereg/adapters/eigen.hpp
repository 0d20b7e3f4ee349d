// Eigen adapter: Eigen dense objects with direct access and Eigen::Tensor storage as sparsereg views.
//
// Dense (Eigen/Core): Matrix, Array, Map (any InnerStride/OuterStride/Stride), Ref, Block (also
// the VectorBlock of head()/tail()/segment()) and Transpose of those, and user classes derived
// from them -- anything derived from some Eigen::DenseBase whose Flags carry DirectAccessBit.
//   * rank 2 (rows, cols), strides (rowStride(), colStride()) in elements, so Eigen's default
//     column-major storage (strides (1, rows)) and RowMajor storage (strides (cols, 1)) are both
//     seen at their real addresses: logical element (i, j) of the view is m(i, j).
//   * a compile-time vector (RowsAtCompileTime == 1 or ColsAtCompileTime == 1) is rank 1.
//   * const objects, Map<const ...>, Ref<const ...> and Block<const ...> give view<const Scalar>.
//   * a stride 0 on an axis of extent > 1 (a Map with InnerStride<0>: a broadcast) is rejected
//     with std::invalid_argument for a mutable view, as in the xtensor and libtorch adapters: one
//     address would be several elements, which a prox cannot write consistently. A const view
//     may broadcast (read-only inputs).
//   * expressions without storage (a + b, m.array().abs(), ...) are rejected at compile time:
//     evaluate them into a Matrix first (sparsereg never makes hidden copies).
// Tensor (unsupported/Eigen/CXX11/Tensor): Tensor, TensorFixedSize and TensorMap, rank N, strides
// from the dimensions and the Layout (ColMajor by default: stride of axis k = prod of the
// extents before k; RowMajor: prod of the extents after k). Logical element (i0, ..., iN-1) of
// the view is t(i0, ..., iN-1).
//
// This is the only sparsereg header that includes Eigen.
#pragma once

#include <Eigen/Core>
#include <array>        // std::array
#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <string>       // std::to_string
#include <type_traits>  // std::is_base_of, std::enable_if_t, std::remove_pointer_t, std::true_type
#include <utility>      // std::declval
#include <unsupported/Eigen/CXX11/Tensor>

#include "../errors.hpp"
#include "../penalty.hpp"
#include "../view.hpp"

namespace sparsereg {
namespace detail {

/// Every Eigen dense type derives from some DenseBase<D>, though not always DenseBase<X>: a
/// VectorBlock (v.head(n), v.segment(i, n)) derives from DenseBase<Block<...>>, a user class
/// derived from Matrix from DenseBase<Matrix<...>>. The probe matches any D.
template <class D>
std::true_type eigen_dense_probe(const Eigen::DenseBase<D>*);
std::false_type eigen_dense_probe(...);
template <class X>
inline constexpr bool is_eigen_dense_v =
    decltype(eigen_dense_probe(std::declval<std::remove_reference_t<X>*>()))::value;

template <class X>
inline constexpr bool eigen_has_direct_access_v = (static_cast<unsigned>(X::Flags) & Eigen::DirectAccessBit) != 0;

/// Element type of the view of an Eigen dense object `Y` (possibly const-qualified): what data()
/// points to, or the bare Scalar when there is no data() (the static_assert then explains).
template <class Y, bool direct = eigen_has_direct_access_v<std::remove_cv_t<Y>>>
struct eigen_dense_element {
  using type = typename std::remove_cv_t<Y>::Scalar;
};
template <class Y>
struct eigen_dense_element<Y, true> {
  using type = std::remove_pointer_t<decltype(std::declval<Y&>().data())>;
};

template <class X>
struct is_eigen_tensor_storage : std::false_type {};
template <class S, int N, int O, class I>
struct is_eigen_tensor_storage<Eigen::Tensor<S, N, O, I>> : std::true_type {};
template <class S, class D, int O, class I>
struct is_eigen_tensor_storage<Eigen::TensorFixedSize<S, D, O, I>> : std::true_type {};
template <class P, int O, template <class> class MP>
struct is_eigen_tensor_storage<Eigen::TensorMap<P, O, MP>> : std::true_type {};

/// Every Eigen tensor type (storage or expression) derives from TensorBase<X, ReadOnlyAccessors>.
template <class X>
inline constexpr bool is_eigen_tensor_v = std::is_base_of_v<Eigen::TensorBase<X, Eigen::ReadOnlyAccessors>, X>;

template <class Y, bool storage = is_eigen_tensor_storage<std::remove_cv_t<Y>>::value>
struct eigen_tensor_element {
  using type = typename std::remove_cv_t<Y>::Scalar;
};
template <class Y>
struct eigen_tensor_element<Y, true> {
  using type = std::remove_pointer_t<decltype(std::declval<Y&>().data())>;
};

}  // namespace detail

/// Eigen dense objects (Matrix, Array, Map, Ref, Block, Transpose, ...).
template <class X>
struct view_adapter<X, std::enable_if_t<detail::is_eigen_dense_v<X>>> {
  template <class Y>  // Y is X or const X
  static view<typename detail::eigen_dense_element<Y>::type> make(Y& x) {
    static_assert(detail::eigen_has_direct_access_v<X>,
                  "sparsereg: this Eigen expression has no storage of its own (no DirectAccessBit: a sum, "
                  "product, abs(), cast, reverse, ...). sparsereg works on memory in place and never makes "
                  "hidden copies: evaluate it into an Eigen::Matrix/Array first, or pass a Matrix, Array, Map, "
                  "Ref or Block.");
    using E = typename detail::eigen_dense_element<Y>::type;
    if constexpr (!detail::eigen_has_direct_access_v<X>) {
      return view<E>();  // unreachable: the static_assert above already failed (keeps errors short)
    } else {
      static_assert(std::is_pointer_v<decltype(x.data())>, "sparsereg: Eigen object whose data() is not a pointer");
      const auto rows = static_cast<std::size_t>(x.rows());
      const auto cols = static_cast<std::size_t>(x.cols());
      const auto rs = static_cast<std::ptrdiff_t>(x.rowStride());
      const auto cs = static_cast<std::ptrdiff_t>(x.colStride());
      if (rs < 0 || cs < 0)
        detail::throw_argument("as_view", "Eigen object has a negative stride (rowStride " + std::to_string(rs) +
                                              ", colStride " + std::to_string(cs) +
                                              "); sparsereg views need non-negative strides");
      if constexpr (!std::is_const_v<E>) {
        if (rows != 0 && cols != 0 && ((rs == 0 && rows > 1) || (cs == 0 && cols > 1)))
          detail::throw_argument("as_view", "Eigen object of " + std::to_string(rows) + "x" + std::to_string(cols) +
                                                " elements has a stride 0 (rowStride " + std::to_string(rs) +
                                                ", colStride " + std::to_string(cs) +
                                                "): several elements share one memory location, so it cannot be "
                                                "written; map it as const (Map<const ...>) to read it");
      }
      E* p = x.data();
      if constexpr (X::ColsAtCompileTime == 1) {
        return view<E>(p, std::array<std::size_t, 1>{rows}, std::array<std::ptrdiff_t, 1>{rs});
      } else if constexpr (X::RowsAtCompileTime == 1) {
        return view<E>(p, std::array<std::size_t, 1>{cols}, std::array<std::ptrdiff_t, 1>{cs});
      } else {
        return view<E>(p, std::array<std::size_t, 2>{rows, cols}, std::array<std::ptrdiff_t, 2>{rs, cs});
      }
    }
  }
};

/// Eigen tensors: Tensor, TensorFixedSize, TensorMap (and a clear error for tensor expressions).
template <class X>
struct view_adapter<X, std::enable_if_t<detail::is_eigen_tensor_v<X>>> {
  template <class Y>  // Y is X or const X
  static view<typename detail::eigen_tensor_element<Y>::type> make(Y& x) {
    static_assert(detail::is_eigen_tensor_storage<X>::value,
                  "sparsereg: this Eigen tensor expression has no storage of its own (a sum, slice, shuffle, "
                  "chip, ...). sparsereg works on memory in place and never makes hidden copies: evaluate it "
                  "into an Eigen::Tensor first, or pass a Tensor, TensorFixedSize or TensorMap.");
    using E = typename detail::eigen_tensor_element<Y>::type;
    if constexpr (!detail::is_eigen_tensor_storage<X>::value) {
      return view<E>();  // unreachable: the static_assert above already failed (keeps errors short)
    } else {
      static_assert(std::is_pointer_v<decltype(x.data())>,
                    "sparsereg: TensorMap with a custom MakePointer: data() must be a raw pointer");
      constexpr std::size_t rank = static_cast<std::size_t>(X::NumIndices);
      static_assert(rank <= max_rank, "sparsereg: tensors of rank above 8 are not supported");
      std::array<std::size_t, rank> extents{};
      std::array<std::ptrdiff_t, rank> strides{};
      std::ptrdiff_t s = 1;
      // Eigen tensors are dense: ColMajor puts axis 0 innermost, RowMajor puts the last axis innermost.
      const bool row_major = static_cast<int>(X::Layout) == static_cast<int>(Eigen::RowMajor);
      for (std::size_t k = 0; k < rank; ++k) {
        const std::size_t axis = row_major ? rank - 1 - k : k;
        extents[axis] = static_cast<std::size_t>(x.dimension(static_cast<Eigen::Index>(axis)));
        strides[axis] = s;
        s *= static_cast<std::ptrdiff_t>(extents[axis]);
      }
      return view<E>(x.data(), extents, strides);
    }
  }
};

namespace detail {
template <class D>
std::true_type eigen_plain_probe(const Eigen::PlainObjectBase<D>*);
std::false_type eigen_plain_probe(...);
/// Eigen types whose object holds the elements (a view of a temporary one would dangle), also
/// through a user class derived from Matrix or Array.
template <class X>
struct eigen_owns_storage : decltype(eigen_plain_probe(std::declval<std::remove_reference_t<X>*>())) {};
template <class S, int N, int O, class I>
struct eigen_owns_storage<Eigen::Tensor<S, N, O, I>> : std::true_type {};
template <class S, class D, int O, class I>
struct eigen_owns_storage<Eigen::TensorFixedSize<S, D, O, I>> : std::true_type {};
// Ref<const M> bound to an expression evaluates it into storage held by the Ref object itself.
template <class M, int O, class S>
struct eigen_owns_storage<Eigen::Ref<const M, O, S>> : std::true_type {};
}  // namespace detail

/// sparsereg::as_view(x) for an Eigen object: the view every sparsereg function would use.
template <class X,
          std::enable_if_t<
              detail::is_eigen_dense_v<std::remove_cv_t<X>> || detail::is_eigen_tensor_v<std::remove_cv_t<X>>, int> = 0>
auto as_view(X& x) {
  return view_adapter<std::remove_cv_t<X>>::make(x);
}
/// Temporaries: fine for Map, Block, Transpose, TensorMap (they refer to storage living elsewhere),
/// rejected for objects that own their elements.
template <
    class X,
    std::enable_if_t<!std::is_reference_v<X> && (detail::is_eigen_dense_v<X> || detail::is_eigen_tensor_v<X>), int> = 0>
auto as_view(X&& x) {
  static_assert(!detail::eigen_owns_storage<X>::value,
                "sparsereg::as_view: the argument is a temporary that owns its elements; the view would "
                "dangle. Name the object first.");
  return view_adapter<X>::make(x);
}

}  // namespace sparsereg
