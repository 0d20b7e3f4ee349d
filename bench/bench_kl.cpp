// KL penalties: value + gradient (one value_and_add_gradient call) for 1M, 16M and 64M floats
// with 64, 256 and 1024 bins, 1 and 2 threads, next to the read-bandwidth ceiling ("sum", one
// read of n floats) measured in the same run (bench/ceilings.hpp).
//
// Traffic of one call, counted in bytes_per_second: the weights are read twice (histogram pass,
// gradient pass) and the gradient is read and written once (g += ...): 4 * n * sizeof(float).
// `ratio_vs_read` = that rate / the read ceiling (wall time); `ratio_vs_read_cpu` = the same ratio
// on process CPU time / threads for both (see cpu_seconds), the meaningful one on a loaded machine. kl_support::tracked (and fixed) make the two
// passes; max_abs adds one read-only pass for max|w|, which the benchmark counts as traffic too
// (5 * n * 4 bytes) so the ratio stays an honest bandwidth fraction.
//
// The weights are N(0, 1) draws (fixed seed): a realistic histogram with most elements in the
// central bins, which is the hard case for the scatter of the histogram pass.
#include "ceilings.hpp"

#include <sparsereg/penalties/kl_gaussian.hpp>
#include <sparsereg/penalties/kl_to_target.hpp>

#include <ctime>
#include <random>

namespace {

struct kl_data {
  bench::buffer w, g;
  explicit kl_data(std::size_t n) : w(n), g(n) {
    std::mt19937_64 rng(2026);
    std::normal_distribution<float> z(0.0f, 1.0f);
    float* p = w.get();
    for (std::size_t i = 0; i < n; ++i) p[i] = z(rng);
    float* q = g.get();
    for (std::size_t i = 0; i < n; ++i) q[i] = 0.0f;
  }
};

/// Process CPU seconds / threads: the time an uncontended run would take. On a shared, overloaded
/// machine wall time mostly measures the scheduler; CPU time still measures our work (and the
/// memory contention it meets), so `ratio_vs_read_cpu` compares kernel and ceiling on that scale.
double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Read ceiling: median of 7 sum passes over the same buffer, GB/s, on the given clock (wall
/// time, or process CPU time divided by the thread count).
double read_ceiling(const float* a, std::size_t n, int threads, bool cpu_time) {
  std::vector<double> rates;
  for (int r = 0; r < 7; ++r) {
    const double t0 = cpu_time ? cpu_seconds() : wall_seconds();
    float s = bench::sum_pass(a, n);
    benchmark::DoNotOptimize(s);
    const double dt = ((cpu_time ? cpu_seconds() : wall_seconds()) - t0) / (cpu_time ? threads : 1);
    rates.push_back(static_cast<double>(n) * sizeof(float) / dt * 1e-9);
  }
  std::nth_element(rates.begin(), rates.begin() + 3, rates.end());
  return rates[3];
}

kl_data& data_for(std::size_t n) {
  static std::map<std::size_t, std::unique_ptr<kl_data>> all;
  auto& d = all[n];
  if (!d) d = std::make_unique<kl_data>(n);
  return *d;
}

template <class Penalty>
void register_kl(const std::string& name, Penalty penalty, std::size_t n, double passes_w) {
  benchmark::RegisterBenchmark(name.c_str(),
                               [penalty, n, passes_w](benchmark::State& state) {
                                 const int threads = static_cast<int>(state.range(0));
                                 kl_data& d = data_for(n);
                                 bench::set_threads(threads);
                                 const double ceil = read_ceiling(d.w.get(), n, threads, false);
                                 const sparsereg::view<const float> w(d.w.get(), {n});
                                 const sparsereg::view<float> g(d.g.get(), {n});
                                 // Resolve scales and support outside the timed loop (first use).
                                 benchmark::DoNotOptimize(penalty.value_and_add_gradient(w, g));
                                 const double cpu_ceil = read_ceiling(d.w.get(), n, threads, true);
                                 using clock = std::chrono::steady_clock;
                                 const double c0 = cpu_seconds();
                                 const auto t0 = clock::now();
                                 for (auto _ : state) {
                                   double v = penalty.value_and_add_gradient(w, g);
                                   benchmark::DoNotOptimize(v);
                                   benchmark::ClobberMemory();
                                 }
                                 const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
                                 const double cpu = (cpu_seconds() - c0) / threads;
                                 const double bytes = (passes_w + 2.0) * static_cast<double>(n) * sizeof(float) *
                                                      static_cast<double>(state.iterations());
                                 const double ours = seconds > 0 ? bytes / seconds * 1e-9 : 0.0;
                                 state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
                                 state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                                                         static_cast<std::int64_t>(n));
                                 state.counters["read_ceiling_GBps"] = ceil;
                                 state.counters["ratio_vs_read"] = ours / ceil;
                                 state.counters["read_ceiling_cpu_GBps"] = cpu_ceil;
                                 state.counters["ratio_vs_read_cpu"] = (cpu > 0 ? bytes / cpu * 1e-9 : 0.0) / cpu_ceil;
                                 state.counters["ns_per_element"] =
                                     seconds * 1e9 / (static_cast<double>(n) * static_cast<double>(state.iterations()));
                                 state.SetLabel("threads=" + std::to_string(threads));
                               })
      ->ArgName("threads")
      ->Arg(1)
      ->Arg(2)
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  using sparsereg::kl_support;
  using sparsereg::kl_to_target;
  const std::vector<std::pair<std::string, std::size_t>> sizes = {
      {"1M", std::size_t(1) << 20}, {"16M", std::size_t(1) << 24}, {"64M", std::size_t(1) << 26}};
  for (const auto& [label, n] : sizes) bench::register_ceilings(label, n);
  for (const auto& [label, n] : sizes) {
    for (std::size_t bins : {64u, 256u, 1024u})
      register_kl("kl_to_target/tracked/bins:" + std::to_string(bins) + "/" + label,
                  kl_to_target(1e-3, kl_to_target::default_target(), bins, kl_support::tracked()), n, 2.0);
    register_kl("kl_to_target/max_abs/bins:256/" + label,
                kl_to_target(1e-3, kl_to_target::default_target(), 256, kl_support::max_abs()), n, 3.0);
    register_kl("kl_gaussian/" + label, sparsereg::kl_gaussian(1e-3), n, 2.0);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
