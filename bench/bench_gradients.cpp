// add_gradient (g += dR/dw, the minimum-norm subgradient at kinks) of every penalty that has one
// except the KL penalties (bench_kl.cpp), on the benchmark shapes except the flat one, 1 and 2
// threads: l1, squared_l2, and group_lasso / sparse_group_lasso on each grouping of a shape.
// A gradient reads w and reads and writes g: bytes_per_second counts 3 * n * 4 bytes, and the
// ceiling timed right before it in every iteration is the in-place multiply g[i] *= m[i]
// (bench/ceilings.hpp, the same bytes). ratio = ours / ceiling.
#include "ceilings.hpp"

namespace {

template <class Penalty>
void register_gradient(const std::string& name, const Penalty& penalty, const bench::shape_case& s) {
  benchmark::RegisterBenchmark(name.c_str(), [penalty, s](benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    bench::set_threads(threads);
    const std::size_t n = s.size();
    bench::shape_data& d = bench::data_of(s);
    bench::multipliers& m = bench::multipliers_of(n);
    const sparsereg::view<const float> w(d.x.get(), s.extents);
    float* g = d.y.get();
    const sparsereg::view<float> gv(g, s.extents);
    std::fill(g, g + n, 0.0f);
    using clock = std::chrono::steady_clock;
    double kernel_s = 0.0, ceiling_s = 0.0;
    std::size_t pass = 0;
    for (auto _ : state) {
      const auto c0 = clock::now();
      bench::multiply_pass(g, (pass++ & 1) ? m.down.get() : m.up.get(), n);
      benchmark::ClobberMemory();
      const auto t0 = clock::now();
      sparsereg::add_gradient(penalty, w, gv);
      benchmark::ClobberMemory();
      const auto t1 = clock::now();
      const double k = std::chrono::duration<double>(t1 - t0).count();
      state.SetIterationTime(k);
      kernel_s += k;
      ceiling_s += std::chrono::duration<double>(t0 - c0).count();
    }
    const double bytes = 3.0 * static_cast<double>(n) * sizeof(float) * static_cast<double>(state.iterations());
    const double ours = bytes / kernel_s * 1e-9, ceil = bytes / ceiling_s * 1e-9;
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n));
    state.counters["ceiling_GBps"] = ceil;
    state.counters["ratio"] = ours / ceil;
    state.SetLabel("threads=" + std::to_string(threads) + " ceiling=multiply_in_place");
  })
      ->ArgName("threads")
      ->Arg(1)
      ->Arg(2)
      ->UseManualTime();
}

}  // namespace

int main(int argc, char** argv) {
  // The flat 64M-element shape is left out: its two multiplier arrays would take 512 MiB more.
  for (const auto& s : bench::shapes()) {
    if (s.name.rfind("flat", 0) == 0) continue;
    register_gradient("l1/add_gradient/" + s.name, sparsereg::l1(0.1), s);
    register_gradient("squared_l2/add_gradient/" + s.name, sparsereg::squared_l2(0.1), s);
    for (const auto& g : bench::groupings_of(s)) {
      register_gradient("group_lasso/add_gradient/" + s.name + "/" + g.name, sparsereg::group_lasso(0.3, g.groups), s);
      register_gradient("sparse_group_lasso/add_gradient/" + s.name + "/" + g.name,
                        sparsereg::sparse_group_lasso(0.3, 0.1, g.groups), s);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
