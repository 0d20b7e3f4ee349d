// zero_slices along axis 0 (the dead-unit scan a trainer runs after every prox step) on every
// benchmark shape, with every slice zero: the case in which the whole tensor is read (a live slice
// ends the scan in its first block). zero_slices is serial, so only one thread; its ceiling, timed
// right before it in every iteration, is the one-thread read-only sum (bench/ceilings.hpp).
// bytes_per_second counts n * 4 bytes; ratio = ours / ceiling.
#include <sparsereg/analysis/report.hpp>

#include "ceilings.hpp"

int main(int argc, char** argv) {
  for (const auto& s : bench::shapes()) {
    benchmark::RegisterBenchmark(("analysis/zero_slices/" + s.name).c_str(),
                                 [s](benchmark::State& state) {
                                   bench::shape_data& d = bench::data_of(s);
                                   const std::size_t n = s.size();
                                   std::fill(d.x.get(), d.x.get() + n, 0.0f);
                                   const sparsereg::view<const float> w(d.x.get(), s.extents);
                                   std::size_t dead = 0;
                                   bench::run_against_ceiling(
                                       state, static_cast<double>(n) * sizeof(float), n, "sum",
                                       [&](std::size_t) {
                                         float t = bench::sum_pass(d.x.get(), n);
                                         benchmark::DoNotOptimize(t);
                                       },
                                       [&] { dead = sparsereg::count_true(sparsereg::zero_slices(w, 0)); });
                                   if (dead != s.extents[0]) state.SkipWithError("not every slice was found zero");
                                 })
        ->ArgName("threads")
        ->Arg(1)
        ->UseManualTime();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
