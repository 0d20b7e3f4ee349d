// hard_threshold (l0): value and prox (out of place and in place) on every benchmark shape, 1 and
// 2 threads, each next to the machine's ceilings measured in the same run (bench/ceilings.hpp).
#include "ceilings.hpp"

int main(int argc, char** argv) {
  bench::register_all_ceilings();
  const sparsereg::hard_threshold penalty(0.1);
  for (const auto& s : bench::shapes()) bench::register_kernels("hard_threshold", penalty, s, "", 1.0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
