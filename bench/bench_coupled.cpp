// Coupled groups across two layers (coupled.hpp): unit k = filter k of a conv weight (axis 0)
// together with input channel k of the next conv weight (axis 1), both 256x256x3x3 or both
// 512x512x3x3, 1 and 2 threads. value reads both tensors once (4 bytes per element, ceiling: the
// read-only sum over both); the in-place prox reads and writes both (8 bytes per element,
// ceiling: the in-place scale of both), each ceiling timed right before the kernel in every
// iteration (bench/ceilings.hpp). ratio = ours / ceiling.
#include "ceilings.hpp"

#include <sparsereg/coupled.hpp>

namespace {

void register_coupled(const bench::shape_case& s, bool prox) {
  const std::string name = std::string("coupled_sparse_group_lasso/") + (prox ? "prox_in_place/" : "value/") + s.name +
                           "/filters+next_input_channels";
  bench::register_manual_threads(name, [s, prox](benchmark::State& state) {
    const std::size_t n = s.size();
    bench::shape_data& d = bench::data_of(s);
    const std::vector<sparsereg::coupled_part<float>> parts = {{sparsereg::view<float>(d.x.get(), s.extents), 0},
                                                                {sparsereg::view<float>(d.y.get(), s.extents), 1}};
    std::copy(d.x.get(), d.x.get() + n, d.y.get());
    const sparsereg::coupled_sparse_group_lasso penalty(0.3, 0.1);
    const double bytes = (prox ? 8.0 : 4.0) * 2.0 * static_cast<double>(n);
    const auto scale_both = [&](float f) {
      bench::scale_pass(d.x.get(), n, f);
      bench::scale_pass(d.y.get(), n, f);
    };
    if (prox) {
      const std::size_t passes = bench::run_against_ceiling(
          state, bytes, 2 * n, "scale", [&](std::size_t pass) { scale_both((pass & 1) ? 0.5f : 2.0f); },
          [&] {
            auto r = penalty.prox(parts, 1e-6);
            benchmark::DoNotOptimize(r);
          });
      if (passes & 1) scale_both(0.5f);
    } else {
      bench::run_against_ceiling(
          state, bytes, 2 * n, "sum",
          [&](std::size_t) {
            float sum = bench::sum_pass(d.x.get(), n) + bench::sum_pass(d.y.get(), n);
            benchmark::DoNotOptimize(sum);
          },
          [&] {
            double v = penalty.value(parts);
            benchmark::DoNotOptimize(v);
          });
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& s : bench::shapes()) {
    if (s.extents.size() != 4) continue;  // the conv shapes: O x I x k x k with O == I
    register_coupled(s, false);
    register_coupled(s, true);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
