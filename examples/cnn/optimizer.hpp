// SGD with momentum (PyTorch convention: v = mu*v + g; w -= lr*v) and Adam (Kingma & Ba 2015,
// bias-corrected). State buffers have the shape of their parameter, so compaction can slice
// them with the same index sets as the weights (see compact.hpp).
#pragma once

#include "model.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace sparsereg_cnn {

enum class optimizer_kind { sgd, adam };

inline optimizer_kind parse_optimizer(const std::string& s) {
  if (s == "sgd") return optimizer_kind::sgd;
  if (s == "adam") return optimizer_kind::adam;
  throw std::invalid_argument("--optimizer must be sgd or adam, got '" + s + "'");
}
inline const char* optimizer_name(optimizer_kind k) { return k == optimizer_kind::sgd ? "sgd" : "adam"; }

class optimizer {
 public:
  optimizer_kind kind = optimizer_kind::sgd;
  double momentum = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::size_t steps = 0;  // Adam's t
  // Per parameter (in model::parameters() order): SGD uses state[i][0] (velocity);
  // Adam uses state[i][0] (first moment) and state[i][1] (second moment).
  std::vector<std::vector<std::vector<float>>> state;

  optimizer() = default;
  explicit optimizer(optimizer_kind k) : kind(k) {}

  std::size_t buffers_per_parameter() const { return kind == optimizer_kind::sgd ? 1 : 2; }

  void attach(const std::vector<parameter_ref>& params) {
    state.assign(params.size(), {});
    for (std::size_t i = 0; i < params.size(); ++i)
      state[i].assign(buffers_per_parameter(), std::vector<float>(params[i].value->size(), 0.f));
  }

  /// One step on every parameter.
  void step(const std::vector<parameter_ref>& params, double lr) {
    begin_step(params);
    for (std::size_t p = 0; p < params.size(); ++p) step_parameter(params, p, lr);
  }

  /// The same step one parameter at a time (the trainer's layer-by-layer step): begin_step once,
  /// then step_parameter for each parameter in any order; the result equals step().
  void begin_step(const std::vector<parameter_ref>& params) {
    if (state.size() != params.size()) attach(params);
    ++steps;
  }
  /// Parameters of at least this many elements are updated by all threads (static split: each
  /// element's arithmetic is the same whatever the thread count, so results do not change);
  /// smaller ones on the calling thread, where a parallel region costs more than it saves.
  static constexpr std::size_t parallel_min = 65536;

  void step_parameter(const std::vector<parameter_ref>& params, std::size_t p, double lr) {
    const float flr = static_cast<float>(lr);
    float* w = params[p].value->data();
    const float* g = params[p].grad->data();
    const std::size_t n = params[p].value->size();
    if (kind == optimizer_kind::sgd) {
      const float mu = static_cast<float>(momentum);
      float* v = state[p][0].data();
      SPARSEREG_CNN_OMP(omp parallel for schedule(static) if(n >= parallel_min))
      for (std::size_t i = 0; i < n; ++i) {
        v[i] = mu * v[i] + g[i];
        w[i] -= flr * v[i];
      }
    } else {
      const float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2), e = static_cast<float>(eps);
      const double t = static_cast<double>(steps);
      const float c1 = static_cast<float>(1.0 - std::pow(beta1, t));
      const float c2 = static_cast<float>(1.0 - std::pow(beta2, t));
      const float step_size = flr / c1;
      const float sqrt_c2 = std::sqrt(c2);
      float* m = state[p][0].data();
      float* v = state[p][1].data();
      SPARSEREG_CNN_OMP(omp parallel for schedule(static) if(n >= parallel_min))
      for (std::size_t i = 0; i < n; ++i) {
        m[i] = b1 * m[i] + (1.f - b1) * g[i];
        v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
        w[i] -= step_size * m[i] / (std::sqrt(v[i]) / sqrt_c2 + e);
      }
    }
  }
};

}  // namespace sparsereg_cnn
