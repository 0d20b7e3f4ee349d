// libtorch adapter: an at::Tensor (torch::Tensor is the same type) seen as a sparsereg::view.
//
//   #include <sparsereg/adapters/torch.hpp>
//   auto& w = conv->weight;                        // float32, CPU, any strides
//   {
//     torch::NoGradGuard no_grad;                  // after optimizer.step(), before the next forward
//     sparsereg::prox(sgl, w, w, lr);              // in place, through the adapter (float32 only)
//   }
//   sparsereg::prox(sgl, sparsereg::torch_view<double>(w64), sparsereg::torch_view<double>(w64), lr);
//
// What is accepted: a defined, strided (dense) tensor on the CPU with float32 (view<float>) or
// float64 (view<double>) elements, rank <= 8, with any non-negative strides - transposed,
// permuted, sliced and narrowed tensors keep their real layout and are never copied. A mutable
// view additionally rejects a zero stride on an axis of extent > 1 (an expand()ed tensor): one
// memory location would be several elements, which an in-place prox cannot write consistently
// (torch refuses in-place ops on such tensors for the same reason). Everything else - CUDA or
// other devices, sparse/mkldnn layouts, other dtypes (half, bfloat16, integers, complex), and
// lazily negated views - throws std::invalid_argument naming the dtype, device or layout. No
// conversion is ever done silently: converting would hand sparsereg a copy, and an in-place prox
// on a copy would leave the model unchanged.
//
// The element type is a run-time property of a tensor, while a view's is a compile-time one:
//   * sparsereg::torch_view<T>(t)   checks that t's dtype is T (float or double, optionally
//                                    const) and returns view<T>;
//   * the generic functions (value, add_gradient, prox) take a tensor directly through
//     view_adapter<at::Tensor>, which is torch_view<float>: a float64 tensor throws there and
//     must be passed as torch_view<double>(t);
//   * sparsereg::visit_torch(t, f)   calls f(view<float>) or f(view<double>) by dtype, for code
//                                    that handles both.
//
// Autograd: sparsereg writes through the tensor's data pointer, which autograd does not track.
// Apply prox (and add_gradient into param.grad()) between optimizer.step() and the next forward
// pass, under torch::NoGradGuard, exactly where torch's own optimizers write parameters; passing
// the parameter itself or its .data() gives the same view of the same memory. Do not prox a
// tensor that a not-yet-run backward pass has saved (its version counter is not bumped).
#pragma once

#include <ATen/core/Tensor.h>   // at::Tensor
#include <c10/core/Layout.h>    // at::kStrided
#include <c10/core/ScalarType.h>  // at::ScalarType, c10::toString

#include <array>        // std::array
#include <cstddef>      // std::size_t, std::ptrdiff_t
#include <sstream>      // std::ostringstream
#include <string>       // std::string, std::to_string
#include <type_traits>  // std::is_same_v, std::remove_const_t, std::is_const_v

#include "../errors.hpp"
#include "../penalty.hpp"
#include "../view.hpp"

namespace sparsereg {
namespace detail {

template <class E>
constexpr at::ScalarType torch_dtype_of() noexcept {
  static_assert(std::is_same_v<E, float> || std::is_same_v<E, double>,
                "sparsereg::torch_view<T>: T must be float or double (optionally const)");
  return std::is_same_v<E, float> ? at::ScalarType::Float : at::ScalarType::Double;
}

inline std::string torch_dtype_name(at::ScalarType s) {
  // c10::toString gives "Float", "Double", "Half", ...; add torch's Python spelling too.
  std::string name = c10::toString(s);
  switch (s) {
    case at::ScalarType::Float: return name + " (torch.float32)";
    case at::ScalarType::Double: return name + " (torch.float64)";
    case at::ScalarType::Half: return name + " (torch.float16)";
    case at::ScalarType::BFloat16: return name + " (torch.bfloat16)";
    default: return name;
  }
}

inline std::string torch_device_name(const at::Tensor& t) {
  std::ostringstream s;
  s << t.device();
  return s.str();
}

inline std::string torch_layout_name(const at::Tensor& t) {
  std::ostringstream s;
  s << t.layout();
  return s.str();
}

/// Checks everything that does not depend on the element type; `where` names the caller.
inline void check_torch_tensor(const char* where, const at::Tensor& t) {
  if (!t.defined()) throw_argument(where, "the tensor is undefined (a default-constructed at::Tensor)");
  if (t.layout() != at::kStrided)
    throw_argument(where, "tensor layout " + torch_layout_name(t) +
                              " is not supported; only dense (strided) tensors are (call .to_dense() first)");
  if (!t.device().is_cpu())
    throw_argument(where, "tensor is on device " + torch_device_name(t) +
                              "; sparsereg works on CPU memory only (move it with .cpu(), or keep the master "
                              "weights on the CPU)");
  if (t.is_neg() || t.is_conj())
    throw_argument(where, "tensor is a lazily negated/conjugated view; call .resolve_neg()/.resolve_conj() first");
  if (static_cast<std::size_t>(t.dim()) > max_rank)
    throw_argument(where, "tensor rank must be <= " + std::to_string(max_rank) + ", got " + std::to_string(t.dim()));
}

}  // namespace detail

/// A view of the CPU tensor `t` with element type T (float or double, optionally const), keeping
/// the tensor's sizes and strides. Throws std::invalid_argument if t's dtype is not T, or t is not
/// a defined, dense CPU tensor (see the header comment). A mutable T also rejects expanded
/// (stride-0) axes.
template <class T>
view<T> torch_view(const at::Tensor& t) {
  using E = std::remove_const_t<T>;
  constexpr at::ScalarType want = detail::torch_dtype_of<E>();
  detail::check_torch_tensor("torch_view", t);
  if (t.scalar_type() != want)
    detail::throw_argument("torch_view", "tensor dtype is " + detail::torch_dtype_name(t.scalar_type()) +
                                             " but the view's element type is " + detail::torch_dtype_name(want) +
                                             (std::is_same_v<E, float> && t.scalar_type() == at::ScalarType::Double
                                                  ? "; pass sparsereg::torch_view<double>(t) for float64 tensors"
                                                  : "; sparsereg supports float32 and float64"));
  const std::size_t rank = static_cast<std::size_t>(t.dim());
  std::array<std::size_t, max_rank> extents{};
  std::array<std::ptrdiff_t, max_rank> strides{};
  const auto sizes = t.sizes();
  const auto steps = t.strides();
  for (std::size_t i = 0; i < rank; ++i) {
    extents[i] = static_cast<std::size_t>(sizes[i]);
    strides[i] = static_cast<std::ptrdiff_t>(steps[i]);
    if (strides[i] < 0)
      detail::throw_argument("torch_view", "stride " + std::to_string(i) + " is negative (" +
                                               std::to_string(strides[i]) + "); sparsereg views need strides >= 0");
    if constexpr (!std::is_const_v<T>) {
      if (strides[i] == 0 && extents[i] > 1)
        detail::throw_argument("torch_view", "axis " + std::to_string(i) + " has stride 0 and extent " +
                                                 std::to_string(extents[i]) +
                                                 " (an expand()ed tensor): several elements share one memory "
                                                 "location, so it cannot be written; use torch_view<const T> to "
                                                 "read it, or .contiguous() for a writable copy");
    }
  }
  // data_ptr() already includes the storage offset; it is null for an empty tensor, which view accepts.
  T* data = static_cast<T*>(t.data_ptr());
  struct range {  // extents/strides of exactly `rank` entries, for view's range constructor
    const std::size_t* b;
    std::size_t n;
    const std::size_t* begin() const { return b; }
    std::size_t size() const { return n; }
  };
  struct stride_range {
    const std::ptrdiff_t* b;
    std::size_t n;
    const std::ptrdiff_t* begin() const { return b; }
    std::size_t size() const { return n; }
  };
  return view<T>(data, range{extents.data(), rank}, stride_range{strides.data(), rank});
}

/// Calls f(view<float>) or f(view<double>) according to t's dtype; throws for any other dtype.
/// Returns what f returns (f must return the same type for both).
template <class F>
decltype(auto) visit_torch(const at::Tensor& t, F&& f) {
  detail::check_torch_tensor("visit_torch", t);
  if (t.scalar_type() == at::ScalarType::Double) return f(torch_view<double>(t));
  if (t.scalar_type() != at::ScalarType::Float)
    detail::throw_argument("visit_torch", "tensor dtype is " + detail::torch_dtype_name(t.scalar_type()) +
                                              "; sparsereg supports float32 and float64");
  return f(torch_view<float>(t));
}

/// at::Tensor (and torch::Tensor, the same type) in every generic sparsereg function: float32
/// tensors only, see torch_view. A tensor is a handle, so a const at::Tensor& still designates
/// writable memory (as in torch, where `const Tensor&` parameters are written in place).
template <>
struct view_adapter<at::Tensor> {
  static view<float> make(const at::Tensor& t) { return torch_view<float>(t); }
};

}  // namespace sparsereg
