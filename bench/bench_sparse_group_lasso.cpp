// sparse_group_lasso: value and prox (out of place and in place) for a contiguous and a strided
// grouping of every benchmark shape, 1 and 2 threads, next to the ceilings of the same run.
// lambda_l1 = 0.1 zeroes about 10% of uniform [-1, 1] elements; lambda_group = 0.3 then shrinks
// each group by about half.
#include "ceilings.hpp"

int main(int argc, char** argv) {
  bench::register_all_ceilings();
  for (const auto& s : bench::shapes())
    for (const auto& g : bench::groupings_of(s))
      bench::register_kernels("sparse_group_lasso", sparsereg::sparse_group_lasso(0.3, 0.1, g.groups), s, g.name, 1.0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
