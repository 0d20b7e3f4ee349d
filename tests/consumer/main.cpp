// Downstream use of the installed headers: a regularizer with a group penalty and a schedule.
// Exits non-zero if the result is wrong, so run.sh checks more than "it links".
#include <sparsereg/sparsereg.hpp>

#include <cstdio>
#include <vector>

int main() {
  // Two output neurons of 3 inputs: the first is small and must be pruned, the second kept.
  std::vector<float> w = {0.01f, -0.02f, 0.01f, 1.0f, 2.0f, -2.0f};
  std::vector<float> g(w.size(), 0.0f);
  sparsereg::regularizer<float> reg;
  reg.add_parameter("fc.weight", sparsereg::view<float>(w.data(), {2, 3}), sparsereg::view<float>(g.data(), {2, 3}));
  reg.add_penalty("fc.weight", sparsereg::sparse_group_lasso(0.1, 0.01, sparsereg::groups::output_neurons()),
                  sparsereg::schedule::linear_warmup(1));
  reg.add_penalty("fc.weight", sparsereg::squared_l2(1e-3));
  reg.add_gradients();
  reg.prox_step(0.5);
  const auto rep = reg.report();
  const bool ok = rep.size() == 1 && rep[0].group_penalties.size() == 1 && rep[0].group_penalties[0].zero_groups == 1 &&
                  w[0] == 0.0f && w[3] != 0.0f && g[3] == 1e-3f;
  std::printf("consumer: value %.6f, zero groups %zu -> %s\n", reg.value(),
              rep.empty() ? std::size_t(0) : rep[0].group_penalties[0].zero_groups, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
