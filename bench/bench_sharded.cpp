// Sharded sparse group lasso (sharded.hpp): value and in-place prox, each as its two phases
// (partial, then finish) on the groupings bench_sparse_group_lasso uses for every shape, 1 and 2
// threads. There is no all-reduce here: this process is a one-rank world, so the shard is the
// whole tensor (offset 0, global_shape = its shape) and the partial sums are already the reduced
// ones; finish reads the buffer phase 1 wrote. What is timed is the local work of one rank per
// step, without the communication. Phase 1 overwrites the whole buffer (it zeroes it first), so
// the buffer is allocated once outside the loop and nothing else is reset per call.
// lambda_group = 0.3, lambda_l1 = 0.1 and the in-place step 1e-6 are those of
// bench_sparse_group_lasso, so the rows compare with its unsharded value / prox_in_place rows.
// value reads the tensor once (4 bytes per element, ceiling: the read-only sum); the in-place
// prox reads and writes it (8 bytes per element, ceiling: the in-place scale), each ceiling timed
// right before the kernel in every iteration (bench/ceilings.hpp). ratio = ours / ceiling.
#include "ceilings.hpp"

#include <sparsereg/sharded.hpp>

namespace {

void register_sharded(const bench::shape_case& s, const bench::grouping_case& g, bool prox) {
  const std::string name =
      std::string("sharded_sparse_group_lasso/") + (prox ? "prox_in_place/" : "value/") + s.name + "/" + g.name;
  bench::register_manual_threads(name, [s, g, prox](benchmark::State& state) {
    const std::size_t n = s.size();
    bench::shape_data& d = bench::data_of(s);
    const sparsereg::shard<float> whole{sparsereg::view<float>(d.x.get(), s.extents), s.extents,
                                        std::vector<std::size_t>(s.extents.size(), 0)};
    const sparsereg::sparse_group_lasso penalty(0.3, 0.1, g.groups);
    std::vector<double> buf(sparsereg::sharded_buffer_size(penalty, whole));
    const double bytes = (prox ? 8.0 : 4.0) * static_cast<double>(n);
    if (prox) {
      const double step = 1e-6;
      const std::size_t passes = bench::run_against_ceiling(
          state, bytes, n, "scale",
          [&](std::size_t pass) { bench::scale_pass(d.x.get(), n, (pass & 1) ? 0.5f : 2.0f); },
          [&] {
            sparsereg::sharded_prox_partial(penalty, whole, step, buf.data(), buf.size());
            auto r = sparsereg::sharded_prox_finish(penalty, whole, step, buf.data(), buf.size());
            benchmark::DoNotOptimize(r);
          });
      if (passes & 1) bench::scale_pass(d.x.get(), n, 0.5f);
    } else {
      bench::run_against_ceiling(
          state, bytes, n, "sum",
          [&](std::size_t) {
            float sum = bench::sum_pass(d.x.get(), n);
            benchmark::DoNotOptimize(sum);
          },
          [&] {
            sparsereg::sharded_value_partial(penalty, whole, buf.data(), buf.size());
            double v = sparsereg::sharded_value_finish(penalty, whole, buf.data(), buf.size());
            benchmark::DoNotOptimize(v);
          });
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& s : bench::shapes())
    for (const auto& g : bench::groupings_of(s)) {  // all by axes, as sharded.hpp requires
      register_sharded(s, g, false);
      register_sharded(s, g, true);
    }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
