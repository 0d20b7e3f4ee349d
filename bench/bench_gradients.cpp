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
  bench::register_manual_threads(name, [penalty, s](benchmark::State& state) {
    bench::shape_data& d = bench::data_of(s);
    const sparsereg::view<const float> w(d.x.get(), s.extents);
    float* g = d.y.get();
    const sparsereg::view<float> gv(g, s.extents);
    std::fill(g, g + s.size(), 0.0f);
    bench::run_against_multiply(state, g, s.size(), [&] { sparsereg::add_gradient(penalty, w, gv); });
  });
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
