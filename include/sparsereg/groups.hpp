// Groupings: how the elements of a tensor are partitioned into groups.
//
// The general form names the axes that *identify* a group: all elements that share their
// indices on those axes form one group, and groups are numbered row-major over those axes.
// Presets name the usual layouts (conv O×I×H×W as in PyTorch, H×W×I×O as in TensorFlow; fully
// connected out×in). Irregular groups are explicit lists of row-major flat indices.
//
// Group weights c_g default to sqrt(|g|) (Simon et al. 2013; Scardapane et al. 2017), so that
// the group term does not favour small groups; `unweighted()` sets c_g = 1 and `with_weights`
// takes any non-negative finite list (one per group).
#pragma once

#include <algorithm>         // std::sort, std::adjacent_find
#include <cmath>             // std::sqrt
#include <cstddef>           // std::size_t
#include <initializer_list>  // std::initializer_list
#include <memory>            // std::shared_ptr
#include <string>            // std::string, std::to_string
#include <vector>            // std::vector

#include "errors.hpp"
#include "view.hpp"

namespace sparsereg {

enum class conv_layout {
  oihw,  ///< out × in × height × width (PyTorch, Caffe)
  hwio   ///< height × width × in × out (TensorFlow/Keras)
};

enum class group_weighting {
  sqrt_size,  ///< c_g = sqrt(|g|) (default)
  unit,       ///< c_g = 1
  given       ///< user-supplied list
};

class grouping {
 public:
  /// Groups identified by `axes` (each < max_rank, no repeats). `rank` = 0 accepts any view whose
  /// rank exceeds every axis; otherwise the view must have exactly that rank.
  static grouping by_axes(std::initializer_list<std::size_t> axes, std::size_t rank = 0) {
    return by_axes(std::vector<std::size_t>(axes), rank);
  }
  static grouping by_axes(const std::vector<std::size_t>& axes, std::size_t rank = 0) {
    grouping g;
    g.required_rank_ = rank;
    if (rank > max_rank)
      detail::throw_argument("grouping::by_axes", "rank must be <= 8, got " + std::to_string(rank));
    for (std::size_t a : axes) {
      if (a >= max_rank || (rank != 0 && a >= rank))
        detail::throw_argument("grouping::by_axes", "axis " + std::to_string(a) + " is out of range for rank " +
                                                        std::to_string(rank == 0 ? max_rank : rank));
      if (g.mask_ & (1u << a))
        detail::throw_argument("grouping::by_axes", "axis " + std::to_string(a) + " is listed twice");
      g.mask_ |= 1u << a;
    }
    return g;
  }

  /// Explicit groups: each inner list holds row-major flat indices of one group. Groups must be
  /// non-empty and disjoint, and (checked against the tensor at use) cover every element: the
  /// lists partition the tensor, so every element gets its l1 term and its prox output.
  static grouping from_lists(const std::vector<std::vector<std::size_t>>& lists) {
    grouping g;
    auto data = std::make_shared<explicit_data>();
    data->offsets.reserve(lists.size() + 1);
    data->offsets.push_back(0);
    for (std::size_t k = 0; k < lists.size(); ++k) {
      if (lists[k].empty())
        detail::throw_argument("grouping::from_lists", "group " + std::to_string(k) + " is empty");
      data->indices.insert(data->indices.end(), lists[k].begin(), lists[k].end());
      data->offsets.push_back(data->indices.size());
    }
    std::vector<std::size_t> sorted = data->indices;
    std::sort(sorted.begin(), sorted.end());
    auto dup = std::adjacent_find(sorted.begin(), sorted.end());
    if (dup != sorted.end())
      detail::throw_argument("grouping::from_lists",
                             "index " + std::to_string(*dup) + " belongs to more than one group (groups must be disjoint)");
    data->max_index = sorted.empty() ? 0 : sorted.back();
    g.explicit_ = std::move(data);
    return g;
  }

  /// Per-group weights c_g (one per group, finite, >= 0), checked against the group count at use.
  grouping& with_weights(std::vector<double> weights) {
    for (std::size_t k = 0; k < weights.size(); ++k)
      if (!(weights[k] >= 0.0) || std::isinf(weights[k]))
        detail::throw_argument("grouping::with_weights", "weights[" + std::to_string(k) +
                                                             "] must be finite and >= 0, got " +
                                                             detail::number_text(weights[k]));
    weights_ = std::make_shared<const std::vector<double>>(std::move(weights));
    weighting_ = group_weighting::given;
    return *this;
  }
  /// c_g = 1 for every group.
  grouping& unweighted() {
    weights_.reset();
    weighting_ = group_weighting::unit;
    return *this;
  }

  bool is_explicit() const noexcept { return explicit_ != nullptr; }
  unsigned axis_mask() const noexcept { return mask_; }
  std::size_t required_rank() const noexcept { return required_rank_; }
  group_weighting weighting() const noexcept { return weighting_; }

  /// Number of groups for a tensor of this shape (after check()).
  template <class T>
  std::size_t group_count(const view<T>& v) const {
    if (explicit_) return explicit_->offsets.size() - 1;
    std::size_t g = 1;
    for (std::size_t i = 0; i < v.rank(); ++i)
      if (mask_ & (1u << i)) g *= v.extent(i);
    return g;
  }

  /// Throws std::invalid_argument (naming `where`) if this grouping does not fit view `v`.
  template <class T>
  void check(const char* where, const view<T>& v) const {
    if (explicit_) {
      if (v.size() != 0 && explicit_->max_index >= v.size())
        detail::throw_argument(where, "group index " + std::to_string(explicit_->max_index) +
                                          " is out of range for a tensor of " + std::to_string(v.size()) + " elements");
      // Disjoint indices all < size: covering every element is the same as having size indices.
      if (explicit_->indices.size() != v.size())
        detail::throw_argument(where, "explicit groups cover " + std::to_string(explicit_->indices.size()) + " of the " +
                                          std::to_string(v.size()) + " elements; they must partition the tensor");
    } else {
      if (required_rank_ != 0 && v.rank() != required_rank_)
        detail::throw_argument(where, "grouping expects a rank-" + std::to_string(required_rank_) +
                                          " tensor, got rank " + std::to_string(v.rank()));
      for (std::size_t a = v.rank(); a < max_rank; ++a)
        if (mask_ & (1u << a))
          detail::throw_argument(where, "grouping axis " + std::to_string(a) + " is out of range for a rank-" +
                                            std::to_string(v.rank()) + " tensor");
    }
    if (weighting_ == group_weighting::given && weights_->size() != group_count(v))
      detail::throw_argument(where, "grouping has " + std::to_string(weights_->size()) + " weights but the tensor has " +
                                        std::to_string(group_count(v)) + " groups");
  }

  /// Weight c_g of group `g`, whose size is `size`.
  double weight(std::size_t g, std::size_t size) const noexcept {
    switch (weighting_) {
      case group_weighting::unit: return 1.0;
      case group_weighting::given: return (*weights_)[g];
      default: return std::sqrt(static_cast<double>(size));
    }
  }

  /// Explicit groups (only when is_explicit()): CSR offsets and flat indices.
  const std::vector<std::size_t>& explicit_offsets() const noexcept { return explicit_->offsets; }
  const std::vector<std::size_t>& explicit_indices() const noexcept { return explicit_->indices; }

 private:
  struct explicit_data {
    std::vector<std::size_t> offsets;
    std::vector<std::size_t> indices;
    std::size_t max_index = 0;
  };
  unsigned mask_ = 0;
  std::size_t required_rank_ = 0;
  std::shared_ptr<const explicit_data> explicit_;
  std::shared_ptr<const std::vector<double>> weights_;
  group_weighting weighting_ = group_weighting::sqrt_size;
};

/// Named groupings for the usual weight layouts.
namespace groups {

/// One group per output filter: W[o, :, :, :] (OIHW) or W[:, :, :, o] (HWIO).
inline grouping filters(conv_layout l = conv_layout::oihw) {
  return grouping::by_axes({l == conv_layout::oihw ? 0u : 3u}, 4);
}
/// One group per input channel: W[:, i, :, :] (OIHW) or W[:, :, i, :] (HWIO).
inline grouping input_channels(conv_layout l = conv_layout::oihw) {
  return grouping::by_axes({l == conv_layout::oihw ? 1u : 2u}, 4);
}
/// One group per 2-D kernel: W[o, i, :, :] (OIHW) or W[:, :, i, o] (HWIO).
inline grouping kernels(conv_layout l = conv_layout::oihw) {
  return l == conv_layout::oihw ? grouping::by_axes({0, 1}, 4) : grouping::by_axes({2, 3}, 4);
}
/// One group per filter shape position: W[:, i, h, w] (OIHW) or W[h, w, i, :] (HWIO).
inline grouping shapes(conv_layout l = conv_layout::oihw) {
  return l == conv_layout::oihw ? grouping::by_axes({1, 2, 3}, 4) : grouping::by_axes({0, 1, 2}, 4);
}
/// Fully connected out × in: one group per output neuron (its incoming weights, a row).
inline grouping output_neurons() { return grouping::by_axes({0}, 2); }
/// Fully connected out × in: one group per input neuron (its outgoing weights, a column).
inline grouping input_neurons() { return grouping::by_axes({1}, 2); }
/// The whole tensor as one group.
inline grouping whole() { return grouping::by_axes(std::vector<std::size_t>{}, 0); }

}  // namespace groups
}  // namespace sparsereg
