// The KL variance penalties must give bit-identical values and gradients for any thread count
// (fixed chunk partition, fixed combine order), so data-parallel replicas stay identical.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cstring>
#include <random>
#include <sparsereg/penalties/kl_gaussian.hpp>
#include <sparsereg/penalties/kl_to_target.hpp>
#include <vector>

namespace {

template <class T>
void require_thread_independent(std::vector<std::size_t> shape, bool on_groups) {
  std::size_t n = 1;
  for (auto e : shape) n *= e;
  std::vector<T> w(n);
  std::mt19937_64 rng(3);
  std::normal_distribution<double> z(0, 1);
  for (auto& x : w) x = T(z(rng));
  double v[3];
  std::vector<T> g[3];
  for (int t = 1; t <= 3; ++t) {
    omp_set_num_threads(t);
    auto p = on_groups ? sparsereg::kl_to_target::on_group_norms(1.0, sparsereg::grouping::by_axes({1}, 2))
                       : sparsereg::kl_to_target(1.0);
    g[t - 1].assign(n, T(0.25));
    const sparsereg::view<const T> wv(w.data(), shape);
    const sparsereg::view<T> gv(g[t - 1].data(), shape);
    v[t - 1] = sparsereg::value(p, wv);
    sparsereg::add_gradient(p, wv, gv);
    sparsereg::kl_gaussian q(1.0);
    v[t - 1] += sparsereg::value(q, wv);
    sparsereg::add_gradient(q, wv, gv);
  }
  CAPTURE(n, on_groups);
  for (int t = 1; t < 3; ++t) {
    REQUIRE(v[t] == v[0]);
    REQUIRE(std::memcmp(g[t].data(), g[0].data(), n * sizeof(T)) == 0);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("kl penalties are bit-identical for 1, 2 and 3 threads", "[kl][threads]", float, double) {
  require_thread_independent<TestType>({1u << 18}, false);
  require_thread_independent<TestType>({512, 512}, false);
  require_thread_independent<TestType>({512, 512}, true);
  require_thread_independent<TestType>({777}, false);
}
