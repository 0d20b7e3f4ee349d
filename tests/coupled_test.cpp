// Coupled groups across tensors: the prox and value must equal the single-tensor sparse group
// lasso applied to the explicit concatenation of every unit's slices.
#include <sparsereg/coupled.hpp>
#include <sparsereg/regularizer.hpp>
#include <sparsereg/sparsereg.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

namespace sr = sparsereg;

namespace {

// conv1.weight 4x3x3x3 (axis 0), conv1.bias 4 (axis 0), conv2.weight 5x4x3x3 (axis 1): 4 units.
template <class T>
struct network {
  std::vector<T> w1, b1, w2;
  explicit network(std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> d(0.0, 0.1);
    w1.resize(4 * 27);
    b1.resize(4);
    w2.resize(5 * 4 * 9);
    for (auto* v : {&w1, &b1, &w2})
      for (auto& x : *v) x = static_cast<T>(d(rng));
    // Unit 0 is weak in every part (dies under lambda_group = 0.05, step 0.5: threshold
    // 0.5 * 0.05 * sqrt(73) = 0.21 against a norm near 0.01); the others have norms near 0.85.
    for (std::size_t i = 0; i < 27; ++i) w1[i] *= T(0.01);
    b1[0] *= T(0.01);
    for (std::size_t o = 0; o < 5; ++o)
      for (std::size_t i = 0; i < 9; ++i) w2[(o * 4 + 0) * 9 + i] *= T(0.01);
  }
  std::vector<sr::coupled_part<T>> parts() {
    return {{sr::view<T>(w1.data(), {4, 3, 3, 3}), 0}, {sr::view<T>(b1.data(), {4}), 0},
            {sr::view<T>(w2.data(), {5, 4, 3, 3}), 1}};
  }
  // Row k = [w1[k, :, :, :], b1[k], w2[:, k, :, :]] : 4 x 73.
  std::vector<T> concatenation() const {
    std::vector<T> c;
    for (std::size_t k = 0; k < 4; ++k) {
      for (std::size_t i = 0; i < 27; ++i) c.push_back(w1[k * 27 + i]);
      c.push_back(b1[k]);
      for (std::size_t o = 0; o < 5; ++o)
        for (std::size_t i = 0; i < 9; ++i) c.push_back(w2[(o * 4 + k) * 9 + i]);
    }
    return c;
  }
};

}  // namespace

TEMPLATE_TEST_CASE("coupled SGL equals the SGL of the concatenated units", "[coupled]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-13;
  const double lg = 0.05, l1 = 0.002, step = 0.5;
  network<T> net(7);
  auto cat = net.concatenation();
  REQUIRE(cat.size() == 4 * 73);
  const sr::view<T> vc(cat.data(), {4, 73});

  const sr::coupled_sparse_group_lasso cp(lg, l1);
  const sr::sparse_group_lasso sgl(lg, l1, sr::groups::output_neurons());
  CHECK(cp.value(net.parts()) == Approx(sr::value(sgl, vc)).epsilon(tol));

  const auto rc = cp.prox(net.parts(), step);
  const auto rs = sr::prox(sgl, vc, vc, step);
  const auto after = net.concatenation();
  for (std::size_t i = 0; i < cat.size(); ++i) REQUIRE(double(after[i]) == Approx(double(cat[i])).margin(tol));
  CHECK(rc.groups == 4);
  CHECK(rc.zero_groups == rs.zero_groups);
  CHECK(rc.zero_groups >= 1);
  CHECK(rc.zero_groups < 4);
  CHECK(rc.zero_elements == rs.zero_elements);
  CHECK(rc.value == Approx(rs.value).epsilon(tol * 10));
  // Unit 0 is gone from all three tensors, unit 2 from none.
  for (std::size_t i = 0; i < 27; ++i) CHECK(net.w1[i] == T(0));
  CHECK(net.b1[0] == T(0));
  for (std::size_t o = 0; o < 5; ++o)
    for (std::size_t i = 0; i < 9; ++i) CHECK(net.w2[(o * 4 + 0) * 9 + i] == T(0));
  CHECK(net.b1[2] != T(0));

  // Group lasso with unit weights: the same against an unweighted grouping.
  network<T> n2(8);
  auto c2 = n2.concatenation();
  const sr::view<T> v2(c2.data(), {4, 73});
  auto gl = sr::coupled_group_lasso(0.05);
  gl.unweighted();
  gl.prox(n2.parts(), 1.0);
  auto grouping = sr::groups::output_neurons();
  grouping.unweighted();
  sr::prox(sr::group_lasso(0.05, grouping), v2, v2, 1.0);
  const auto a2 = n2.concatenation();
  for (std::size_t i = 0; i < c2.size(); ++i) REQUIRE(double(a2[i]) == Approx(double(c2[i])).margin(tol));
}

TEST_CASE("coupled SGL: validation and NaN") {
  network<double> net(9);
  auto parts = net.parts();
  const sr::coupled_sparse_group_lasso cp(0.1, 0.0);
  std::vector<double> bias5(5);
  auto bad = parts;
  bad[1] = {sr::view<double>(bias5.data(), {5}), 0};
  CHECK_THROWS_WITH(cp.value(bad), Catch::Contains("parts[1]") && Catch::Contains("extent 5"));
  bad = parts;
  bad[2].axis = 4;
  CHECK_THROWS_WITH(cp.prox(bad, 0.1), Catch::Contains("parts[2].axis"));
  bad = parts;
  bad[1] = {sr::view<double>(net.w1.data(), {4}), 0};
  CHECK_THROWS_WITH(cp.prox(bad, 0.1), Catch::Contains("overlaps"));
  CHECK_THROWS_AS(cp.value(std::vector<sr::coupled_part<double>>{}), std::invalid_argument);
  auto weighted = cp;
  weighted.with_weights({1.0, 2.0});
  CHECK_THROWS_WITH(weighted.value(parts), Catch::Contains("2 weights") && Catch::Contains("4 units"));
  CHECK_THROWS_AS(sr::coupled_sparse_group_lasso(-1.0, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(cp.prox(parts, -1.0), std::invalid_argument);

  // NaN in unit 1 (through conv2's input channel 1) poisons unit 1 only.
  net.w2[(3 * 4 + 1) * 9 + 4] = std::nan("");
  const auto r = sr::coupled_sparse_group_lasso(1e-4, 0.0).prox(parts, 0.1);
  CHECK(std::isnan(r.value));
  CHECK(std::isnan(net.b1[1]));
  CHECK(std::isnan(net.w1[1 * 27 + 5]));
  CHECK_FALSE(std::isnan(net.b1[2]));
  CHECK_FALSE(std::isnan(net.w2[(0 * 4 + 2) * 9]));
}

TEST_CASE("coupled SGL through the regularizer") {
  network<float> net(10), ref(10);
  std::vector<float> g1(net.w1.size()), g2(net.w2.size());
  sr::regularizer<float> reg;
  reg.add_parameter("conv1.weight", sr::view<float>(net.w1.data(), {4, 3, 3, 3}), sr::view<float>(g1.data(), {4, 3, 3, 3}));
  reg.add_parameter("conv1.bias", sr::view<float>(net.b1.data(), {4}));
  reg.add_parameter("conv2.weight", sr::view<float>(net.w2.data(), {5, 4, 3, 3}), sr::view<float>(g2.data(), {5, 4, 3, 3}));
  const sr::coupled_sparse_group_lasso cp(0.05, 0.002);
  reg.add_coupled("conv1.channels", cp, {{"conv1.weight", 0}, {"conv1.bias", 0}, {"conv2.weight", 1}},
                  sr::schedule::linear_warmup(2));
  CHECK(reg.value() == cp.scaled(0.5).value(ref.parts()));
  reg.prox_step(0.5);
  sr::coupled_sparse_group_lasso(0.05, 0.002).scaled(0.5).prox(ref.parts(), 0.5);
  CHECK(std::memcmp(net.w1.data(), ref.w1.data(), net.w1.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(net.b1.data(), ref.b1.data(), net.b1.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(net.w2.data(), ref.w2.data(), net.w2.size() * sizeof(float)) == 0);

  const auto vals = reg.values();
  REQUIRE(vals.size() == 1);
  CHECK(vals[0].parameter == "conv1.weight+conv1.bias+conv2.weight");
  CHECK(vals[0].penalty == "conv1.channels");

  const auto rep = reg.report();
  REQUIRE(rep.size() == 3);
  for (const auto& r : rep) {
    INFO(r.name);
    REQUIRE(r.group_penalties.size() == 1);
    CHECK(r.group_penalties[0].penalty == "conv1.channels");
    CHECK(r.group_penalties[0].groups == 4);
    CHECK(r.group_penalties[0].zero_groups == reg.last_prox_results()[0].zero_groups);
  }
  CHECK(rep[1].zero_elements >= 1);

  // Errors: unknown parameter, the same parameter twice, per-element steps.
  CHECK_THROWS_WITH(reg.add_coupled("x", cp, {{"conv1.weight", 0}, {"conv3.weight", 1}}), Catch::Contains("conv3.weight"));
  CHECK_THROWS_WITH(reg.add_coupled("x", cp, {{"conv1.weight", 0}, {"conv1.weight", 1}}), Catch::Contains("twice"));
  std::vector<float> d(4, 1.0f);
  CHECK_THROWS_WITH(reg.set_element_steps("conv1.bias", sr::view<const float>(d.data(), {4})),
                    Catch::Contains("conv1.channels"));

  // Compaction removed one unit from every part: rebind each; the group is re-validated.
  std::vector<float> w1c(3 * 27), b1c(3), w2c(5 * 3 * 9), g1c(w1c.size()), g2c(w2c.size());
  CHECK_THROWS_WITH(reg.rebind("conv1.bias", sr::view<float>(b1c.data(), {3}), {}),
                    Catch::Contains("conv1.channels") && Catch::Contains("extent"));
  CHECK(reg.weights("conv1.bias").extent(0) == 4);
  // Rebinding all parts together is validated once, on the final shapes.
  using binding = sr::regularizer<float>::binding;
  reg.rebind({binding{"conv1.weight", sr::view<float>(w1c.data(), {3, 3, 3, 3}), sr::view<float>(g1c.data(), {3, 3, 3, 3})},
              binding{"conv1.bias", sr::view<float>(b1c.data(), {3})},
              binding{"conv2.weight", sr::view<float>(w2c.data(), {5, 3, 3, 3}), sr::view<float>(g2c.data(), {5, 3, 3, 3})}});
  CHECK(reg.report()[2].group_penalties[0].groups == 3);
  const auto& compacted = reg;
  CHECK(compacted.report()[0].group_penalties[0].groups == 3);
}

TEST_CASE("coupled SGL: step 0 and lambda 0 are exact when a unit's sum of squares underflows", "[coupled]") {
  // The sums are in double, so double values of 1e-170 (squares below the smallest subnormal)
  // underflow them: unit 0 holds such values, unit 1 only zeros (some -0.0), the others ordinary
  // values. The identity keeps every bit, and only the unit of zeros counts as a zero unit.
  using T = double;
  const T tiny = 1e-170;
  network<T> net(11);
  for (std::size_t i = 0; i < 27; ++i) {
    net.w1[i] = tiny * T(i % 3 == 0 ? -1 : 2);
    net.w1[27 + i] = i % 2 ? T(-0.0) : T(0);
  }
  net.b1[0] = tiny;
  net.b1[1] = T(-0.0);
  for (std::size_t o = 0; o < 5; ++o)
    for (std::size_t i = 0; i < 9; ++i) {
      net.w2[(o * 4 + 0) * 9 + i] = -tiny;
      net.w2[(o * 4 + 1) * 9 + i] = T(0);
    }
  const network<T> ref = net;
  const auto same = [&] {
    return std::memcmp(net.w1.data(), ref.w1.data(), net.w1.size() * sizeof(T)) == 0 &&
           std::memcmp(net.b1.data(), ref.b1.data(), net.b1.size() * sizeof(T)) == 0 &&
           std::memcmp(net.w2.data(), ref.w2.data(), net.w2.size() * sizeof(T)) == 0;
  };
  const std::size_t unit1 = 27 + 1 + 5 * 9;
  for (const auto& [p, step] : {std::pair{sr::coupled_sparse_group_lasso(0.05, 0.01), 0.0},
                                std::pair{sr::coupled_sparse_group_lasso(0.0, 0.0), 0.5},
                                std::pair{sr::coupled_group_lasso(0.05), 0.0}}) {
    const auto r = p.prox(net.parts(), step);
    CHECK(same());
    CHECK(r.zero_groups == 1);
    CHECK(r.zero_elements == unit1);
  }
  // A positive threshold still zeroes unit 0.
  CHECK(sr::coupled_group_lasso(1e-30).prox(net.parts(), 1.0).zero_groups == 2);
}

TEST_CASE("coupled SGL: a part whose elements share memory is refused before anything is written") {
  std::vector<double> w{3, 3, 3, 3}, cell{3};
  const sr::coupled_sparse_group_lasso cp(0.1, 0.5);
  // parts[1]: 4 units on one address (stride 0), so an in-place prox would shrink it 4 times.
  const std::vector<sr::coupled_part<double>> parts{{sr::view<double>(w.data(), {4}), 0},
                                                    {sr::view<double>(cell.data(), {4}, {0}), 0}};
  CHECK_THROWS_WITH(cp.prox(parts, 1.0), Catch::Contains("coupled_sparse_group_lasso::prox") &&
                                             Catch::Contains("parts[1].tensor") && Catch::Contains("share memory"));
  CHECK(w == std::vector<double>{3, 3, 3, 3});
  CHECK(cell == std::vector<double>{3});
}

TEMPLATE_TEST_CASE("coupled SGL: dense parts and parts padded between outer slices give the same bits", "[coupled]",
                   float, double) {
  // Dense parts take the direct run loop, padded ones the keyed-run walker; with the padding only
  // between outer slices both see the same runs (a filter of w1, the bias element, a 3x3 input
  // channel of w2) in the same order, so value, prox output and counts must be equal bit for bit.
  using T = TestType;
  network<T> dense(11);
  for (std::size_t i = 5; i < 9; ++i) dense.w2[(2 * 4 + 1) * 9 + i] = T(0);  // zeros inside a run
  const std::size_t pad = 3;
  // w1: 4 filters of 27, each followed by `pad` spare elements; w2: 5 slabs of 4 x 9, each padded.
  std::vector<T> w1p(4 * (27 + pad), T(7)), w2p(5 * (36 + pad), T(7)), b1p(4 * 2, T(7));
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t i = 0; i < 27; ++i) w1p[k * (27 + pad) + i] = dense.w1[k * 27 + i];
  for (std::size_t o = 0; o < 5; ++o)
    for (std::size_t i = 0; i < 36; ++i) w2p[o * (36 + pad) + i] = dense.w2[o * 36 + i];
  for (std::size_t k = 0; k < 4; ++k) b1p[2 * k] = dense.b1[k];
  const auto s1 = static_cast<std::ptrdiff_t>(27 + pad), s2 = static_cast<std::ptrdiff_t>(36 + pad);
  const std::vector<sr::coupled_part<T>> padded = {{sr::view<T>(w1p.data(), {4, 3, 3, 3}, {s1, 9, 3, 1}), 0},
                                                   {sr::view<T>(b1p.data(), {4}, {2}), 0},
                                                   {sr::view<T>(w2p.data(), {5, 4, 3, 3}, {s2, 9, 3, 1}), 1}};
  for (const auto& part : padded) REQUIRE_FALSE(part.tensor.is_contiguous());
  const auto parts = dense.parts();
  for (const auto& part : parts) REQUIRE(part.tensor.is_contiguous());
  const sr::coupled_sparse_group_lasso p(0.05, 0.02);
  CHECK(p.value(parts) == p.value(padded));
  const auto zd = p.count_zero_units(parts), zp = p.count_zero_units(padded);
  CHECK(zd.zero_elements == zp.zero_elements);
  CHECK(zd.zero_elements >= 4);
  const auto rd = p.prox(parts, 0.5), rp = p.prox(padded, 0.5);
  CHECK(rd.value == rp.value);
  CHECK(rd.zero_elements == rp.zero_elements);
  CHECK(rd.zero_groups == rp.zero_groups);
  CHECK(rd.zero_groups == 1);  // unit 0
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t i = 0; i < 27; ++i)
      REQUIRE(std::memcmp(&w1p[k * (27 + pad) + i], &dense.w1[k * 27 + i], sizeof(T)) == 0);
  for (std::size_t o = 0; o < 5; ++o)
    for (std::size_t i = 0; i < 36; ++i)
      REQUIRE(std::memcmp(&w2p[o * (36 + pad) + i], &dense.w2[o * 36 + i], sizeof(T)) == 0);
  for (std::size_t k = 0; k < 4; ++k) REQUIRE(b1p[2 * k] == dense.b1[k]);
  // The padding is never touched.
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t i = 27; i < 27 + pad; ++i) REQUIRE(w1p[k * (27 + pad) + i] == T(7));
  for (std::size_t k = 0; k < 4; ++k) REQUIRE(b1p[2 * k + 1] == T(7));
}
