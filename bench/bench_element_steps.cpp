// Per-element-step proxes (the diagonal steps of Adam-like optimizers), in place, 1 and 2
// threads: the l1 prox with steps, the exact sparse group lasso prox in the metric diag(steps)
// (prox_per_element_steps), and the same through regularizer::prox_step with set_element_steps.
// Each reads x and the steps and writes x, so bytes_per_second counts 3 * n * 4 bytes, and the
// ceiling timed right before it in every iteration is the matching pass over the same buffers:
// x[i] *= m[i] in place (m = 2 and 0.5 alternately, which is exact). ratio = ours / ceiling.
#include "ceilings.hpp"

#include <sparsereg/penalties/group_element_steps.hpp>
#include <sparsereg/regularizer.hpp>

namespace {

enum class steps_op { l1, sgl, regularizer_sgl };

const char* name_of(steps_op op) {
  switch (op) {
    case steps_op::l1: return "l1_steps/prox_in_place";
    case steps_op::sgl: return "sgl_steps/prox_in_place";
    default: return "regularizer_sgl_steps/prox_step";
  }
}

/// The steps of a shape, allocated once: in [0.5e-6, 1.5e-6], so that repeated in-place proxes
/// leave the data essentially unchanged.
const bench::buffer& steps_of(const bench::shape_case& s) {
  static std::map<std::string, std::unique_ptr<bench::buffer>> all;
  auto& d = all[s.name];
  if (!d) {
    d = std::make_unique<bench::buffer>(s.size());
    for (std::size_t i = 0; i < s.size(); ++i)
      d->get()[i] = 1e-6f * (1.0f + 0.5f * (static_cast<float>((i * 2654435761u) % 1001) / 500.0f - 1.0f));
  }
  return *d;
}

void register_steps(steps_op op, const bench::shape_case& s, const bench::grouping_case* g) {
  std::string name = std::string(name_of(op)) + "/" + s.name;
  if (g) name += "/" + g->name;
  const sparsereg::grouping groups = g ? g->groups : sparsereg::groups::output_neurons();
  bench::register_manual_threads(name, [op, s, groups](benchmark::State& state) {
    float* x = bench::data_of(s).x.get();
    const sparsereg::view<float> w(x, s.extents);
    const sparsereg::view<const float> steps(steps_of(s).get(), s.extents);
    const sparsereg::l1 lasso(0.1);
    const sparsereg::sparse_group_lasso sgl(0.1, 0.1, groups);
    sparsereg::regularizer<float> reg;
    if (op == steps_op::regularizer_sgl) {
      reg.add_parameter("w", w);
      reg.add_penalty("w", sgl);
      reg.set_element_steps("w", steps);
    }
    bench::run_against_multiply(state, x, s.size(), [&] {
      switch (op) {
        case steps_op::l1: {
          auto r = sparsereg::prox(lasso, w, w, steps);
          benchmark::DoNotOptimize(r);
          break;
        }
        case steps_op::sgl: {
          auto r = sparsereg::prox_per_element_steps(sgl, w, w, steps);
          benchmark::DoNotOptimize(r);
          break;
        }
        default: reg.prox_step(1.0); break;
      }
    });
  });
}

}  // namespace

int main(int argc, char** argv) {
  // The flat 64M-element shape is left out: its three extra buffers would take 768 MiB.
  for (const auto& s : bench::shapes()) {
    if (s.name.rfind("flat", 0) == 0) continue;
    register_steps(steps_op::l1, s, nullptr);
    for (const auto& g : bench::groupings_of(s)) {
      register_steps(steps_op::sgl, s, &g);
      register_steps(steps_op::regularizer_sgl, s, &g);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
