// group_lasso: value and prox (out of place and in place) for a contiguous and a strided grouping
// of every benchmark shape, 1 and 2 threads, next to the ceilings of the same run.
// lambda = 0.3 with step 1 shrinks uniform [-1, 1] data by about half (threshold 0.3*sqrt(n)
// against a group norm of about 0.58*sqrt(n)), so no group is trivially zero.
#include "ceilings.hpp"

int main(int argc, char** argv) {
  bench::register_all_ceilings();
  for (const auto& s : bench::shapes())
    for (const auto& g : bench::groupings_of(s))
      bench::register_kernels("group_lasso", sparsereg::group_lasso(0.3, g.groups), s, g.name, 1.0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
