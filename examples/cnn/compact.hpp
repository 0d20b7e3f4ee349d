// Structural analysis and compaction of a trained model: which conv filters / hidden neurons /
// first-linear-layer input features can be removed without changing the network's function,
// the per-layer report, and the smaller dense model (with sliced optimizer state).
//
// A unit j (filter of a conv, neuron of a hidden linear layer) is removable when
//   (a) it is dead: its incoming weights are all zero and its bias is <= 0, so after the ReLU it
//       outputs exactly 0 (max-pooling a zero plane gives zero), or
//   (b) nobody reads it: the next layer's input slice for j (input channel j of the next conv; the
//       h*w flattened features of channel j in the first linear layer; column j of the next linear
//       layer) is all zero.
// Either way, dropping unit j together with the next layer's slice j leaves every output unchanged.
// The first linear layer additionally drops single input features whose column is zero (the
// compacted model gathers the surviving features when it flattens). The last layer's outputs
// (classes) and the image's input channels are never removed.
//
// Layer collapse: when every unit of a layer is removable, the compacted layer keeps one unit
// (index 0, all of its weights as they were) rather than zero units, so the network stays
// connected and its output is unchanged (it was already constant in that layer); the report flags
// the layer as collapsed.
#pragma once

#include "model.hpp"
#include "optimizer.hpp"

#include <sparsereg/analysis/compaction.hpp>
#include <sparsereg/analysis/report.hpp>
#include <sparsereg/view.hpp>

namespace sparsereg_cnn {

struct compaction_plan {
  // Per parameterized layer (convs first, then linears): kept output units, ascending.
  std::vector<std::vector<std::size_t>> keep_out;
  // Per parameterized layer: kept input slices (conv: input channels; linear: input columns).
  std::vector<std::vector<std::size_t>> keep_in;
  std::vector<std::uint32_t> flatten_keep;  // the compacted model's flatten gather (empty = all)
  architecture arch;                        // the compacted architecture
  std::vector<sparsereg::layer_report> report;
};

namespace detail {

inline std::vector<std::size_t> all_indices(std::size_t n) {
  std::vector<std::size_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

inline std::vector<bool> dead_units(const std::vector<float>& w, const std::vector<float>& b,
                                    const std::vector<std::size_t>& shape) {
  auto zero_rows = sparsereg::zero_slices(sparsereg::view<const float>(w.data(), shape), 0);
  for (std::size_t j = 0; j < zero_rows.size(); ++j) zero_rows[j] = zero_rows[j] && !(b[j] > 0.f);
  return zero_rows;
}

}  // namespace detail

/// Plans the structural compaction of m (does not modify m).
inline compaction_plan plan_compaction(model& m) {
  compaction_plan plan;
  const std::size_t nc = m.convs.size(), nf = m.fcs.size(), L = nc + nf;
  // Per layer: weight shape, unit count, consumer input-slice zero flags.
  std::vector<std::vector<std::size_t>> shapes(L);
  std::vector<const std::vector<float>*> ws(L), bs(L);
  for (std::size_t i = 0; i < nc; ++i) {
    const auto& c = m.convs[i];
    shapes[i] = {c.out_c, c.in_c, c.k, c.k};
    ws[i] = &c.w;
    bs[i] = &c.b;
  }
  for (std::size_t i = 0; i < nf; ++i) {
    const auto& f = m.fcs[i];
    shapes[nc + i] = {f.out, f.in};
    ws[nc + i] = &f.w;
    bs[nc + i] = &f.b;
  }
  std::vector<std::vector<bool>> zero_in(L), zero_out(L), removable(L);
  for (std::size_t i = 0; i < L; ++i) {
    sparsereg::view<const float> v(ws[i]->data(), shapes[i]);
    zero_out[i] = sparsereg::zero_slices(v, 0);
    zero_in[i] = sparsereg::zero_slices(v, 1);
  }
  // Column j of the first linear layer reads flattened feature feat[j] of channel feat[j] / hw.
  const std::size_t hw = m.flat.hw;
  std::vector<std::size_t> feat(m.fcs[0].in);
  for (std::size_t j = 0; j < feat.size(); ++j) feat[j] = m.flat.keep.empty() ? j : m.flat.keep[j];

  plan.keep_out.assign(L, {});
  plan.keep_in.assign(L, {});
  std::vector<bool> collapsed(L, false);
  for (std::size_t i = 0; i + 1 < L; ++i) {
    const auto dead = detail::dead_units(*ws[i], *bs[i], shapes[i]);
    std::vector<bool> unread(shapes[i][0], false);
    if (i + 1 < nc) {
      unread = zero_in[i + 1];
    } else if (i + 1 == nc) {  // last conv feeds the first linear layer through flatten
      std::vector<bool> read(shapes[i][0], false);
      for (std::size_t j = 0; j < feat.size(); ++j)
        if (!zero_in[nc][j]) read[feat[j] / hw] = true;
      for (std::size_t c = 0; c < read.size(); ++c) unread[c] = !read[c];
    } else {
      unread = zero_in[i + 1];
    }
    removable[i] = sparsereg::either(dead, unread);
    plan.keep_out[i] = sparsereg::kept_indices(removable[i], true, 0);
    collapsed[i] = sparsereg::count_true(removable[i]) == removable[i].size();
  }
  plan.keep_out[L - 1] = detail::all_indices(shapes[L - 1][0]);
  // Inputs: first conv keeps the image channels; later convs and linear layers follow their producer.
  for (std::size_t i = 0; i < L; ++i) {
    if (i == 0 && nc > 0) {
      plan.keep_in[i] = detail::all_indices(shapes[0][1]);
    } else if (i < nc || i > nc) {
      plan.keep_in[i] = plan.keep_out[i - 1];
    } else {  // first linear layer: kept columns
      std::vector<bool> col_removable(feat.size());
      std::vector<bool> chan_kept(nc > 0 ? shapes[nc - 1][0] : 0, false);
      if (nc > 0)
        for (auto c : plan.keep_out[nc - 1]) chan_kept[c] = true;
      for (std::size_t j = 0; j < feat.size(); ++j)
        col_removable[j] = zero_in[nc][j] || (nc > 0 && !chan_kept[feat[j] / hw]);
      plan.keep_in[i] = sparsereg::kept_indices(col_removable, true, 0);
      if (sparsereg::count_true(col_removable) == col_removable.size()) collapsed[i] = true;
    }
  }
  // Flatten gather of the compacted model, in compacted channel numbering.
  {
    std::vector<std::size_t> new_pos;
    if (nc > 0) {
      new_pos.assign(shapes[nc - 1][0], 0);
      for (std::size_t p = 0; p < plan.keep_out[nc - 1].size(); ++p) new_pos[plan.keep_out[nc - 1][p]] = p;
    }
    const std::size_t kept_channels = nc > 0 ? plan.keep_out[nc - 1].size() : m.flat.channels;
    std::vector<std::uint32_t> fk;
    for (auto j : plan.keep_in[nc]) {
      const std::size_t f = feat[j];
      const std::size_t c = f / hw, p = f % hw;
      const std::size_t nf_idx = (nc > 0 ? new_pos[c] : c) * hw + p;
      fk.push_back(static_cast<std::uint32_t>(nf_idx));
    }
    bool identity = fk.size() == kept_channels * hw;
    for (std::size_t j = 0; identity && j < fk.size(); ++j) identity = fk[j] == j;
    plan.flatten_keep = identity ? std::vector<std::uint32_t>{} : fk;
  }
  // Compacted architecture.
  plan.arch = m.arch;
  {
    std::size_t li = 0;
    for (auto& l : plan.arch.layers)
      if (l.type != layer_spec::kind::pool) l.out = plan.keep_out[li++].size();
  }
  // Report.
  for (std::size_t i = 0; i < L; ++i) {
    sparsereg::layer_report r;
    const bool is_conv = i < nc;
    r.name = is_conv ? "conv" + std::to_string(i + 1) : "fc" + std::to_string(i - nc + 1);
    r.units = shapes[i][0];
    r.inputs = shapes[i][1];
    r.units_kept = plan.keep_out[i].size();
    r.inputs_kept = plan.keep_in[i].size();
    const std::size_t kk = is_conv ? shapes[i][2] * shapes[i][3] : 1;
    const std::size_t positions = is_conv ? m.convs[i].out_h() * m.convs[i].out_w() : 1;
    r.groups = shapes[i][0] + shapes[i][1];
    r.groups_zeroed = sparsereg::count_true(zero_out[i]) + sparsereg::count_true(zero_in[i]);
    r.elements = ws[i]->size();
    r.zero_elements = sparsereg::count_zeros(sparsereg::view<const float>(ws[i]->data(), {ws[i]->size()}));
    r.params_before = r.units * r.inputs * kk + r.units;
    r.params_after = r.units_kept * r.inputs_kept * kk + r.units_kept;
    r.flops_before = r.units * r.inputs * kk * positions;
    r.flops_after = r.units_kept * r.inputs_kept * kk * positions;
    r.collapsed = collapsed[i];
    plan.report.push_back(r);
  }
  return plan;
}

namespace detail {
inline void gather_param(const std::vector<float>& src, const std::vector<std::size_t>& shape,
                         const std::vector<std::vector<std::size_t>>& keep, std::vector<float>& dst) {
  // Here an empty list keeps the whole axis: every kept list comes from kept_indices(..., true),
  // which is never empty.
  std::vector<std::size_t> out_shape(shape.size());
  std::vector<sparsereg::axis_keep> axes(shape.size());
  std::size_t n = 1;
  for (std::size_t a = 0; a < shape.size(); ++a) {
    if (!keep[a].empty()) axes[a] = keep[a];
    out_shape[a] = axes[a].extent(shape[a]);
    n *= out_shape[a];
  }
  dst.assign(n, 0.f);
  sparsereg::gather_block(sparsereg::view<const float>(src.data(), shape), axes,
                          sparsereg::view<float>(dst.data(), out_shape));
}
}  // namespace detail

/// Per parameter of m (in m.parameters() order): the index sets to keep on each axis.
inline std::vector<std::vector<std::vector<std::size_t>>> parameter_keeps(model& m, const compaction_plan& plan) {
  std::vector<std::vector<std::vector<std::size_t>>> keeps;
  const std::size_t nc = m.convs.size();
  for (std::size_t i = 0; i < nc; ++i) {
    keeps.push_back({plan.keep_out[i], plan.keep_in[i], {}, {}});
    keeps.push_back({plan.keep_out[i]});
  }
  for (std::size_t i = 0; i < m.fcs.size(); ++i) {
    keeps.push_back({plan.keep_out[nc + i], plan.keep_in[nc + i]});
    keeps.push_back({plan.keep_out[nc + i]});
  }
  return keeps;
}

/// The compacted model; if `opt` is given, `opt_out` receives its state sliced the same way (so
/// fine-tuning continues with the same momentum / Adam moments on the surviving weights).
inline model compact(model& m, const compaction_plan& plan, const optimizer* opt = nullptr, optimizer* opt_out = nullptr) {
  model c(plan.arch, plan.flatten_keep);
  auto src = m.parameters();
  auto dst = c.parameters();
  const auto keeps = parameter_keeps(m, plan);
  for (std::size_t p = 0; p < src.size(); ++p) {
    detail::gather_param(*src[p].value, src[p].shape, keeps[p], *dst[p].value);
    if (dst[p].value->size() != dst[p].grad->size())
      throw std::logic_error("compact: shape mismatch for " + src[p].name);
  }
  if (opt && opt_out) {
    *opt_out = optimizer(opt->kind);
    opt_out->momentum = opt->momentum;
    opt_out->beta1 = opt->beta1;
    opt_out->beta2 = opt->beta2;
    opt_out->eps = opt->eps;
    opt_out->steps = opt->steps;
    opt_out->state.assign(src.size(), {});
    for (std::size_t p = 0; p < src.size() && p < opt->state.size(); ++p) {
      opt_out->state[p].resize(opt->state[p].size());
      for (std::size_t b = 0; b < opt->state[p].size(); ++b)
        detail::gather_param(opt->state[p][b], src[p].shape, keeps[p], opt_out->state[p][b]);
    }
  }
  return c;
}

/// Zeroes, in m, every element that compaction with `plan` removes (weights, biases and, given,
/// the gradients or any other parameter-shaped buffers): the "masked full model".
inline void apply_mask(model& m, const compaction_plan& plan, bool grads_too = false) {
  auto params = m.parameters();
  const auto keeps = parameter_keeps(m, plan);
  for (std::size_t p = 0; p < params.size(); ++p) {
    const auto& shape = params[p].shape;
    std::vector<std::vector<bool>> kept(shape.size());
    for (std::size_t a = 0; a < shape.size(); ++a) {
      kept[a].assign(shape[a], keeps[p][a].empty());
      for (auto j : keeps[p][a]) kept[a][j] = true;
    }
    std::vector<float>* bufs[2] = {params[p].value, grads_too ? params[p].grad : nullptr};
    std::size_t total = params[p].value->size();
    for (std::size_t flat = 0; flat < total; ++flat) {
      std::size_t rem = flat;
      bool keep = true;
      for (std::size_t a = shape.size(); a-- > 0;) {
        keep = keep && kept[a][rem % shape[a]];
        rem /= shape[a];
      }
      if (!keep)
        for (auto* b : bufs)
          if (b) (*b)[flat] = 0.f;
    }
  }
}

}  // namespace sparsereg_cnn
