// Peer benchmark: sparsereg against the same operations written as a PyTorch (libtorch 1.13 CPU)
// user writes them, on the same tensors, in one binary, next to the machine's ceilings.
//
// Names: "peer/<op>/<shape>/<grouping>/threads:<t>". Each benchmark runs, in every iteration,
// one ceiling pass on the tensor's memory and then every implementation once (ours, torch, and
// torch_alt where there is one), each timed on its own; counters report bytes over the median
// iteration time of each (see `interleaved` below for why).
//   l1_prox     ours: prox(l1) in place          torch: softshrink(w, t, out=w)
//                                                torch_alt: w.copy_(w.sign() * (w.abs() - t).clamp_min(0))
//   l1_prox_nostats  ours: prox(l1, ..., without_stats) in place (same output, no value or zero
//                    count: what softshrink computes)   torch: as l1_prox
//   gl_prox     ours: prox(group_lasso) in place torch: n = ||w||_2 over the group dims (keepdim);
//                                                       w.mul_((1 - t*c/n).clamp_min(0))
//   sgl_prox    ours: prox(sparse_group_lasso)   torch: softshrink(out=w), then the gl_prox lines
//   l1_value    ours: value(l1)                  torch: w.abs().sum()   torch_alt: linalg_vector_norm(w, 1)
//   gl_value    ours: value(group_lasso)         torch: lambda*c * ||w||_2(group dims).sum()
//   sgl_value   ours: value(sparse_group_lasso)  torch: the gl_value line + lambda1 * w.abs().sum()
//   kl_value_grad  ours: kl_to_target::value_and_add_gradient (linear soft-binning histogram)
//                  torch: the same estimator in torch ops (index_add histogram, log, sum), backward()
// Ours runs on the torch tensors through sparsereg/adapters/torch.hpp, so both sides read and
// write the same memory. Both sides get the same thread count (at::set_num_threads and
// omp_set_num_threads; Debian's libtorch is built on the same OpenMP runtime).
//
// Bytes: a prox reads and writes the tensor (2*N*4), a value reads it (N*4); value+gradient reads
// w and reads+writes g (3*N*4). Counters: ours_GBps, torch_GBps, torch_alt_GBps, ceiling_GBps
// (in-place scale x2 / x0.5 for a prox, read-only sum for a value and KL: bench/ceilings.hpp's
// passes on the same memory, same threads), ours_over_ceiling, ours_over_torch (the speed-up:
// both sides move the same bytes). bench/torch/peer_table.py turns them into a table.
//
// In-place proxes run with thresholds of about 1e-7, far below the weights' spread (N(0, 0.05^2)),
// so thousands of repetitions leave the data and the work unchanged for both sides.
#include <torch/torch.h>

#include <benchmark/benchmark.h>

#include <sparsereg/adapters/torch.hpp>
#include <sparsereg/penalties/kl_to_target.hpp>
#include <sparsereg/sparsereg.hpp>

#include "../ceilings.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

struct peer_shape {
  std::string name;
  std::vector<std::int64_t> extents;
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto e : extents) n *= e;
    return n;
  }
};

struct peer_grouping {
  std::string name;
  sparsereg::grouping groups;        // ours
  std::vector<std::int64_t> reduce;  // torch: the dims a group spans (norm over these, keepdim)
};

std::vector<peer_shape> group_shapes() {
  std::vector<peer_shape> s = {
      {"fc4096x4096", {4096, 4096}},
      {"fc80x3136", {80, 3136}},  // the bundled trainer's fc1 (1 MB: in L2/L3)
      {"conv256x256x3x3", {256, 256, 3, 3}},
      {"conv512x512x3x3", {512, 512, 3, 3}},
  };
  // Size sweep, groups of 1024 contiguous elements: 64K (L2), 256K, 1M (L3), 4M, 16M, 64M (DRAM).
  for (std::int64_t n : {std::int64_t(1) << 16, std::int64_t(1) << 18, std::int64_t(1) << 20, std::int64_t(1) << 22,
                         std::int64_t(1) << 24, std::int64_t(1) << 26})
    s.push_back({"flat" + std::to_string(n >> 10) + "K", {n / 1024, 1024}});
  return s;
}

std::vector<peer_grouping> groupings_of(const peer_shape& s) {
  namespace g = sparsereg::groups;
  if (s.extents.size() == 4)
    return {{"filters", g::filters(), {1, 2, 3}}, {"input_channels", g::input_channels(), {0, 2, 3}}};
  if (s.name.rfind("fc", 0) == 0)
    return {{"output_neurons", g::output_neurons(), {1}}, {"input_neurons", g::input_neurons(), {0}}};
  return {{"groups_of_1024", sparsereg::grouping::by_axes({0}, 2), {1}}};
}

/// One float32 tensor per shape, N(0, 0.05^2), created once (first touch by torch's own fill).
/// Never modified: every benchmark works on a clone of it, because the proxes run in place and
/// thousands of calls per benchmark shrink their tensor (a shared one ended all zero after the
/// in-cache rows, where calls are fast, and the later rows then timed zeros).
const at::Tensor& tensor_of(const peer_shape& s) {
  static std::map<std::string, at::Tensor> all;
  auto& t = all[s.name];
  if (!t.defined()) {
    at::manual_seed(20261125);
    t = at::randn(s.extents, at::kFloat).mul_(0.05);
  }
  return t;
}

void set_all_threads(int threads) {
  at::set_num_threads(threads);
  bench::set_threads(threads);  // omp_set_num_threads, for our kernels
}

constexpr double lambda_group = 1e-4;
constexpr double lambda_l1 = 1e-4;
constexpr double step = 1e-3;

enum class op { l1_prox, l1_prox_nostats, gl_prox, sgl_prox, l1_value, gl_value, sgl_value, kl_value_grad };

const char* name_of(op o) {
  switch (o) {
    case op::l1_prox: return "l1_prox";
    case op::l1_prox_nostats: return "l1_prox_nostats";
    case op::gl_prox: return "gl_prox";
    case op::sgl_prox: return "sgl_prox";
    case op::l1_value: return "l1_value";
    case op::gl_value: return "gl_value";
    case op::sgl_value: return "sgl_value";
    default: return "kl_value_grad";
  }
}
bool is_prox(op o) { return o == op::l1_prox || o == op::l1_prox_nostats || o == op::gl_prox || o == op::sgl_prox; }

/// The torch side of the group proxes: w *= max(0, 1 - t*c / ||w_g||) (c = sqrt(group size)).
void torch_group_shrink(at::Tensor& w, const std::vector<std::int64_t>& reduce, double t_times_c) {
  const at::Tensor norms = at::linalg_vector_norm(w, 2, reduce, /*keepdim=*/true);
  w.mul_((1.0 - t_times_c / norms).clamp_min_(0.0));
}

double group_weight(const peer_shape& s, const peer_grouping& g) {
  std::int64_t n = 1;
  for (auto d : g.reduce) n *= s.extents[static_cast<std::size_t>(d)];
  return std::sqrt(static_cast<double>(n));
}

/// Runs one (op, shape, grouping, impl) body `reps` times; returns a DoNotOptimize-able sink.
struct runner {
  op o;
  peer_shape s;
  peer_grouping g;
  std::string impl;

  void once(at::Tensor& w) const {
    const double c = group_weight(s, g);
    if (impl == "ours") {
      switch (o) {
        case op::l1_prox: benchmark::DoNotOptimize(sparsereg::prox(sparsereg::l1(lambda_l1), w, w, step)); break;
        case op::l1_prox_nostats:
          sparsereg::prox(sparsereg::l1(lambda_l1), w, w, step, sparsereg::without_stats);
          benchmark::DoNotOptimize(w.data_ptr());
          break;
        case op::gl_prox:
          benchmark::DoNotOptimize(sparsereg::prox(sparsereg::group_lasso(lambda_group, g.groups), w, w, step));
          break;
        case op::sgl_prox:
          benchmark::DoNotOptimize(
              sparsereg::prox(sparsereg::sparse_group_lasso(lambda_group, lambda_l1, g.groups), w, w, step));
          break;
        case op::l1_value: benchmark::DoNotOptimize(sparsereg::value(sparsereg::l1(lambda_l1), w)); break;
        case op::gl_value:
          benchmark::DoNotOptimize(sparsereg::value(sparsereg::group_lasso(lambda_group, g.groups), w));
          break;
        case op::sgl_value:
          benchmark::DoNotOptimize(
              sparsereg::value(sparsereg::sparse_group_lasso(lambda_group, lambda_l1, g.groups), w));
          break;
        default: break;
      }
      return;
    }
    at::NoGradGuard no_grad;
    const bool alt = impl == "torch_alt";
    switch (o) {
      case op::l1_prox:
      case op::l1_prox_nostats:
        if (alt) {
          w.copy_(w.sign() * (w.abs() - step * lambda_l1).clamp_min(0.0));
        } else {
          at::softshrink_out(w, w, step * lambda_l1);
        }
        break;
      case op::gl_prox: torch_group_shrink(w, g.reduce, step * lambda_group * c); break;
      case op::sgl_prox:
        at::softshrink_out(w, w, step * lambda_l1);
        torch_group_shrink(w, g.reduce, step * lambda_group * c);
        break;
      case op::l1_value: {
        at::Tensor v = alt ? at::linalg_vector_norm(w, 1) : w.abs().sum();
        benchmark::DoNotOptimize(v.item<float>() * lambda_l1);
        break;
      }
      case op::gl_value: {
        at::Tensor v = at::linalg_vector_norm(w, 2, g.reduce).sum() * (lambda_group * c);
        benchmark::DoNotOptimize(v.item<float>());
        break;
      }
      case op::sgl_value: {
        at::Tensor v = at::linalg_vector_norm(w, 2, g.reduce).sum() * (lambda_group * c) + w.abs().sum() * lambda_l1;
        benchmark::DoNotOptimize(v.item<float>());
        break;
      }
      default: break;
    }
  }
};

/// Median of per-iteration seconds: an iteration in which the scheduler took the core away is an
/// outlier on a shared machine, and the median ignores it.
double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

/// Times, in every iteration and in this order: one pass of the matching ceiling on the tensor's
/// own memory (in-place scale by 2 / 0.5 for a prox, read-only sum otherwise), then each
/// implementation once. Interleaving at the millisecond scale puts the three under the same load;
/// the counters are bytes over the median iteration time of each.
struct interleaved {
  std::vector<std::string> impls;
  std::vector<std::vector<double>> seconds;
  std::vector<double> ceiling_seconds;
  std::size_t pass = 0;

  template <class Body>
  void run(benchmark::State& state, float* data, std::size_t n, bool scale_ceiling, Body&& body) {
    using clock = std::chrono::steady_clock;
    seconds.assign(impls.size(), {});
    for (std::size_t k = 0; k < impls.size(); ++k) body(k);  // warm-up
    for (auto _ : state) {
      const auto c0 = clock::now();
      if (scale_ceiling) {
        bench::scale_pass(data, n, (pass++ & 1) ? 0.5f : 2.0f);
      } else {
        float sum = bench::sum_pass(data, n);
        benchmark::DoNotOptimize(sum);
      }
      benchmark::ClobberMemory();
      auto t = clock::now();
      ceiling_seconds.push_back(std::chrono::duration<double>(t - c0).count());
      for (std::size_t k = 0; k < impls.size(); ++k) {
        body(k);
        benchmark::ClobberMemory();
        const auto t1 = clock::now();
        const double sec = std::chrono::duration<double>(t1 - t).count();
        seconds[k].push_back(sec);
        if (k == 0) state.SetIterationTime(sec);
        t = t1;
      }
    }
    if (pass & 1) bench::scale_pass(data, n, 0.5f);  // an even number of passes restores the data
  }

  void report(benchmark::State& state, double bytes, double ceiling_bytes, int threads) const {
    const double ceil = ceiling_bytes / median(ceiling_seconds) * 1e-9;
    state.counters["ceiling_GBps"] = ceil;
    std::vector<double> gbps;
    for (std::size_t k = 0; k < impls.size(); ++k) {
      gbps.push_back(bytes / median(seconds[k]) * 1e-9);
      state.counters[impls[k] + "_GBps"] = gbps.back();
    }
    state.counters["ours_over_ceiling"] = gbps[0] / ceil;
    if (gbps.size() > 1) state.counters["ours_over_torch"] = gbps[0] / gbps[1];
    state.counters["threads"] = threads;
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes * static_cast<double>(state.iterations())));
  }
};

void register_op(op o, const peer_shape& s, const peer_grouping& g, int threads) {
  const std::string name =
      std::string("peer/") + name_of(o) + "/" + s.name + "/" + g.name + "/threads:" + std::to_string(threads);
  benchmark::RegisterBenchmark(name.c_str(), [o, s, g, threads](benchmark::State& state) {
    set_all_threads(threads);
    const std::size_t n = static_cast<std::size_t>(s.numel());
    at::Tensor w = tensor_of(s).clone();
    interleaved iv;
    iv.impls = {"ours", "torch"};
    if (o == op::l1_prox || o == op::l1_prox_nostats || o == op::l1_value) iv.impls.push_back("torch_alt");
    std::vector<runner> runners;
    for (const auto& impl : iv.impls) runners.push_back(runner{o, s, g, impl});
    iv.run(state, w.data_ptr<float>(), n, is_prox(o), [&](std::size_t k) { runners[k].once(w); });
    const double bytes = (is_prox(o) ? 2.0 : 1.0) * static_cast<double>(n) * sizeof(float);
    iv.report(state, bytes, bytes, threads);
  })->UseManualTime();
}

// ---- KL to a target: value and gradient -------------------------------------------------------

/// The same estimator as sparsereg::kl_to_target (weights mode, support [-s, s] with s = max|w|,
/// B bins, linear binning, floor eps), written with torch ops and differentiated by autograd.
struct torch_kl {
  std::int64_t bins;
  double eps;
  double lambda;
  at::Tensor log_q;  // float32 [B], the target discretized by sparsereg on the same bins

  at::Tensor value(const at::Tensor& w) const {
    const double s = w.detach().abs().max().item<double>();  // support: no gradient
    const double lo = -s, inv_h = static_cast<double>(bins - 1) / (2.0 * s);
    const at::Tensor u = ((w - lo) * inv_h).clamp(0.0, static_cast<double>(bins - 1));
    const at::Tensor k = u.detach().floor().clamp_max(static_cast<double>(bins - 2)).to(at::kLong);
    const at::Tensor f = u - k.to(at::kFloat);
    const at::Tensor flat_k = k.reshape({-1});
    const at::Tensor flat_f = f.reshape({-1});
    at::Tensor mass = at::zeros({bins}, w.options().requires_grad(false));
    mass = mass.index_add(0, flat_k, 1.0 - flat_f).index_add(0, flat_k + 1, flat_f);
    const double norm = 1.0 / (1.0 + static_cast<double>(bins) * eps);
    const at::Tensor p = (mass / static_cast<double>(w.numel()) + eps) * norm;
    return (p * (p.log() - log_q)).sum() * lambda;
  }
};

void register_kl(const peer_shape& s, int threads) {
  const std::string name = std::string("peer/kl_value_grad/") + s.name + "/weights/threads:" + std::to_string(threads);
  benchmark::RegisterBenchmark(name.c_str(), [s, threads](benchmark::State& state) {
    set_all_threads(threads);
    const std::size_t n = static_cast<std::size_t>(s.numel());
    at::Tensor w = tensor_of(s).clone();
    at::Tensor g = at::zeros_like(w);
    const sparsereg::kl_to_target kl(1e-3);
    const auto dist = kl.distributions(w);
    const torch_kl tk{static_cast<std::int64_t>(kl.bins()), kl.epsilon(), kl.lambda,
                      at::log(at::tensor(dist.q, at::kDouble)).to(at::kFloat)};
    at::Tensor wg = w.detach().clone().requires_grad_(true);  // torch's own leaf, same values
    interleaved iv;
    iv.impls = {"ours", "torch"};
    iv.run(state, w.data_ptr<float>(), n, false, [&](std::size_t k) {
      if (k == 0) {
        benchmark::DoNotOptimize(kl.value_and_add_gradient(w, g));
      } else {
        wg.mutable_grad() = at::Tensor();  // as optimizer.zero_grad(set_to_none=True)
        at::Tensor v = tk.value(wg);
        v.backward();
        benchmark::DoNotOptimize(v.item<float>());
      }
    });
    // Same estimator (checked once, outside timing): the values agree to float rounding.
    const double ours_v = kl.value_and_add_gradient(w, g);
    const double torch_v = tk.value(wg).item<double>();
    state.counters["rel_diff_value"] = std::abs(ours_v - torch_v) / std::max(1e-30, std::abs(ours_v));
    iv.report(state, 3.0 * static_cast<double>(n) * sizeof(float), static_cast<double>(n) * sizeof(float), threads);
  })->UseManualTime();
}

void register_all() {
  for (int threads : {1, 2}) {
    for (const auto& s : group_shapes()) {
      const bool flat = s.name.rfind("flat", 0) == 0;
      for (const auto& g : groupings_of(s)) {
        for (op o : {op::sgl_prox, op::gl_prox, op::sgl_value, op::gl_value}) register_op(o, s, g, threads);
        if (flat)
          for (op o : {op::l1_prox, op::l1_prox_nostats, op::l1_value}) register_op(o, s, g, threads);
      }
    }
    for (const auto& s : {peer_shape{"flat64K", {64, 1024}}, peer_shape{"flat1024K", {1024, 1024}},
                          peer_shape{"conv512x512x3x3", {512, 512, 3, 3}}, peer_shape{"fc4096x4096", {4096, 4096}}})
      register_kl(s, threads);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("torch_version", std::to_string(TORCH_VERSION_MAJOR) + "." +
                                                  std::to_string(TORCH_VERSION_MINOR) + "." +
                                                  std::to_string(TORCH_VERSION_PATCH));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
