// How the trainer registers its tensors and penalties with sparsereg's regularizer façade.
//
// Groups (all sqrt(group size)-weighted, lambdas ramped up by schedule::linear_warmup):
//   conv weights (O x I x kH x kW): sparse group lasso over filters (groups::filters()), plus a
//     group lasso over input channels (groups::input_channels()) for every conv but the first
//     (the first conv's only input channel is the image);
//   linear weights (out x in): sparse group lasso over input neurons (groups::input_neurons(),
//     columns: a whole input feature can die), plus a group lasso over output neurons
//     (groups::output_neurons()) for every linear layer but the last (its outputs are the classes).
//   --var-weight > 0: the KL variance regularizer (kl_to_target) on every weight tensor, by
//     default on the norms of the filter / input-neuron groups (see make_variance_penalty).
// Biases are not penalized.
#pragma once

#include <stdexcept>
#include <string>

#include "model.hpp"
#include "options.hpp"

#include <sparsereg/regularizer.hpp>
#include <sparsereg/sparsereg.hpp>

#include <sparsereg/penalties/kl_to_target.hpp>

namespace sparsereg_cnn {

/// The KL variance regularizer for one weight tensor, lambda = --var-weight. The target is a
/// spike-and-slab with --target of the mass in a spike of 0.1 x the reference scale and the rest in
/// a slab of 2 x (scales relative to the tensor, measured at first use). With --var-on groups
/// (default) P is the distribution of the group norms ||w_g|| of the structure the prox removes
/// (conv filters, linear input neurons): most groups are pushed towards zero, where the group
/// prox finishes them, and the survivors spread out -- the "skewed" distribution. With
/// --var-on weights P is the distribution of the individual weights. The histogram's support is
/// the largest norm (|weight|), rounded up to a power of 1 + --var-support-rounding when that is
/// > 0 (the target is then rediscretized on a few steps only, not on every step; off by default,
/// docs/results.md). Each call returns an independent penalty (its measured scale is per tensor).
inline sparsereg::kl_to_target make_variance_penalty(const options& o, sparsereg::grouping structure) {
  const auto target = sparsereg::target::spike_and_slab(o.target, 0.1, 2.0, sparsereg::scale_mode::relative);
  const std::size_t bins = 256;
  const auto support = sparsereg::kl_support::max_abs(1.0, o.var_support_rounding);
  if (o.var_on == "weights") return sparsereg::kl_to_target(o.var_weight, target, bins, support);
  return sparsereg::kl_to_target::on_group_norms(o.var_weight, std::move(structure), target, bins, support);
}

/// Adds the variance penalty for `name` when --var-weight > 0.
inline void add_variance_penalty(sparsereg::regularizer<float>& reg, const std::string& name, const options& o,
                                 const sparsereg::grouping& structure, const sparsereg::schedule& sched) {
  if (o.var_weight > 0) reg.add_penalty(name, make_variance_penalty(o, structure), sched);
}

inline void configure_regularizer(sparsereg::regularizer<float>& reg, model& m, const options& o,
                                  std::size_t steps_per_epoch) {
  const auto warmup = static_cast<std::size_t>(o.warmup_epochs * static_cast<double>(steps_per_epoch) + 0.5);
  const auto sched = sparsereg::schedule::linear_warmup(warmup);
  const bool sgl = o.lambda_group > 0 || o.lambda_l1 > 0;
  const std::size_t layers = m.convs.size() + m.fcs.size();
  if (!o.lambda_group_scale.empty() && o.lambda_group_scale.size() != layers)
    throw usage_error("--lambda-group-scale: " + std::to_string(o.lambda_group_scale.size()) +
                      " factors given, but the model has " + std::to_string(layers) + " conv and linear layers");
  // lambda_group of weighted layer k (convs first, then linears).
  const auto group_lambda = [&](std::size_t k) {
    return o.lambda_group * (o.lambda_group_scale.empty() ? 1.0 : o.lambda_group_scale[k]);
  };
  for (std::size_t i = 0; i < m.convs.size(); ++i) {
    auto& c = m.convs[i];
    const std::string name = "conv" + std::to_string(i + 1) + ".weight";
    reg.add_parameter(name, sparsereg::view<float>(c.w.data(), {c.out_c, c.in_c, c.k, c.k}),
                      sparsereg::view<float>(c.gw.data(), {c.out_c, c.in_c, c.k, c.k}));
    if (sgl) {
      const double lg = group_lambda(i);
      reg.add_penalty(name, sparsereg::sparse_group_lasso(lg, o.lambda_l1, sparsereg::groups::filters()), sched);
      if (i > 0 && lg > 0)
        reg.add_penalty(name, sparsereg::group_lasso(lg, sparsereg::groups::input_channels()), sched);
    }
    add_variance_penalty(reg, name, o, sparsereg::groups::filters(), sched);
  }
  for (std::size_t i = 0; i < m.fcs.size(); ++i) {
    auto& f = m.fcs[i];
    const std::string name = "fc" + std::to_string(i + 1) + ".weight";
    reg.add_parameter(name, sparsereg::view<float>(f.w.data(), {f.out, f.in}), sparsereg::view<float>(f.gw.data(), {f.out, f.in}));
    if (sgl) {
      const double lg = group_lambda(m.convs.size() + i);
      reg.add_penalty(name, sparsereg::sparse_group_lasso(lg, o.lambda_l1, sparsereg::groups::input_neurons()), sched);
      if (i + 1 < m.fcs.size() && lg > 0)
        reg.add_penalty(name, sparsereg::group_lasso(lg, sparsereg::groups::output_neurons()), sched);
    }
    add_variance_penalty(reg, name, o, sparsereg::groups::input_neurons(), sched);
  }
}

}  // namespace sparsereg_cnn
