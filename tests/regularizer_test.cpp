// regularizer<T>: the training-loop façade must do exactly what the direct calls do, scaled by
// the schedules, and refuse misuse with errors that name the parameter.
#include <sparsereg/penalties/kl_gaussian.hpp>
#include <sparsereg/penalties/kl_to_target.hpp>
#include <sparsereg/regularizer.hpp>
#include <sparsereg/sparsereg.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

namespace sr = sparsereg;

namespace {

template <class T>
std::vector<T> random_vector(std::size_t n, std::uint32_t seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(rng));
  return v;
}

template <class T>
bool bit_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEMPLATE_TEST_CASE("regularizer: equals the direct calls", "[regularizer]", float, double) {
  using T = TestType;
  // conv 6x4x3x3 with SGL (prox) + squared_l2 (gradient); fc 5x8 with l1 (prox).
  auto conv = random_vector<T>(6 * 4 * 3 * 3, 1, 0.1);
  auto conv_g = random_vector<T>(conv.size(), 2, 0.01);
  auto fc = random_vector<T>(5 * 8, 3, 0.1);
  auto fc_g = random_vector<T>(fc.size(), 4, 0.01);
  auto conv_d = conv, conv_gd = conv_g, fc_d = fc, fc_gd = fc_g;

  const sr::sparse_group_lasso sgl(0.05, 0.01, sr::groups::filters());
  const sr::squared_l2 wd(1e-3);
  const sr::l1 lasso(0.02);
  const double lr = 0.5;

  sr::regularizer<T> reg;
  reg.add_parameter("conv", sr::view<T>(conv.data(), {6, 4, 3, 3}), sr::view<T>(conv_g.data(), {6, 4, 3, 3}));
  reg.add_parameter("fc", sr::view<T>(fc.data(), {5, 8}), sr::view<T>(fc_g.data(), {5, 8}));
  reg.add_penalty("conv", sgl);
  reg.add_penalty("conv", wd);
  reg.add_penalty("fc", lasso);

  const sr::view<T> vc(conv_d.data(), {6, 4, 3, 3}), vcg(conv_gd.data(), {6, 4, 3, 3});
  const sr::view<T> vf(fc_d.data(), {5, 8});

  const double expected_value = sr::value(sgl, vc) + sr::value(wd, vc) + sr::value(lasso, vf);
  CHECK(reg.value() == expected_value);

  reg.add_gradients();
  sr::add_gradient(wd, vc, vcg);
  CHECK(bit_equal(conv_g, conv_gd));
  CHECK(bit_equal(fc_g, fc_gd));  // l1 is a prox penalty: no gradient added

  reg.prox_step(lr);
  const auto r_sgl = sr::prox(sgl, vc, vc, lr);
  const auto r_l1 = sr::prox(lasso, vf, vf, lr);
  CHECK(bit_equal(conv, conv_d));
  CHECK(bit_equal(fc, fc_d));
  CHECK(reg.step() == 1);

  const auto last = reg.last_prox_results();
  REQUIRE(last.size() == 2);
  CHECK(last[0].value == r_sgl.value);
  CHECK(last[0].zero_groups == r_sgl.zero_groups);
  CHECK(last[1].zero_elements == r_l1.zero_elements);

  const auto vals = reg.values();
  REQUIRE(vals.size() == 3);
  CHECK(vals[0].parameter == "conv");
  CHECK(vals[0].penalty == "sparse_group_lasso");
  CHECK(vals[0].value == sr::value(sgl, vc));
  CHECK(vals[1].penalty == "squared_l2");
  CHECK(vals[2].parameter == "fc");
  CHECK(vals[2].penalty == "l1");
  CHECK(vals[2].factor == 1.0);
}

TEMPLATE_TEST_CASE("regularizer: warm-up scales lambda by the schedule factor", "[regularizer]", float, double) {
  using T = TestType;
  auto w = random_vector<T>(8 * 5, 11, 0.2);
  auto g = std::vector<T>(w.size(), T(0));
  auto wd = w;
  auto gd = g;
  const sr::group_lasso gl(0.3, sr::groups::output_neurons());
  const sr::squared_l2 l2(0.1);
  const double lr = 0.2;

  sr::regularizer<T> reg;
  reg.add_parameter("fc", sr::view<T>(w.data(), {8, 5}), sr::view<T>(g.data(), {8, 5}));
  reg.add_penalty("fc", gl, sr::schedule::linear_warmup(4));
  reg.add_penalty("fc", l2, sr::schedule::step_decay(2, 0.5));
  const sr::view<T> v(wd.data(), {8, 5}), vg(gd.data(), {8, 5});

  for (std::size_t t = 0; t < 6; ++t) {
    const double fw = t + 1 >= 4 ? 1.0 : double(t + 1) / 4.0;
    const double fd = t < 2 ? 1.0 : (t < 4 ? 0.5 : 0.25);
    INFO("step " << t);
    REQUIRE(reg.step() == t);
    CHECK(reg.value() == sr::value(gl.scaled(fw), v) + sr::value(l2.scaled(fd), v));
    const auto vals = reg.values();
    CHECK(vals[0].factor == fw);
    CHECK(vals[1].factor == fd);
    reg.add_gradients();
    sr::add_gradient(l2.scaled(fd), v, vg);
    reg.prox_step(lr);
    sr::prox(gl.scaled(fw), v, v, lr);
    REQUIRE(bit_equal(w, wd));
    REQUIRE(bit_equal(g, gd));
  }
  // Warm-up factor 1/4 at step 0 is the same prox as a quarter of the step (up to rounding of lr*f).
  auto a = random_vector<T>(40, 12, 0.2);
  auto b = a;
  sr::regularizer<T> r2;
  r2.add_parameter("x", sr::view<T>(a.data(), {8, 5}));
  r2.add_penalty("x", gl, sr::schedule::linear_warmup(4));
  r2.prox_step(lr);
  sr::prox(gl, sr::view<T>(b.data(), {8, 5}), sr::view<T>(b.data(), {8, 5}), lr * 0.25);
  for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == Approx(b[i]).margin(1e-6));
}

TEMPLATE_TEST_CASE("regularizer: a step taken parameter by parameter equals the whole-model step", "[regularizer]", float,
                   double) {
  using T = TestType;
  // Two parameters with prox penalties (SGL, group lasso), gradient penalties (KL on group norms,
  // squared l2) and warm-up schedules; one regularizer takes whole-model steps, the other takes
  // the same steps one parameter at a time in reverse registration order (a backward pass).
  const auto init_c = random_vector<T>(6 * 4 * 3 * 3, 21, 0.1), init_f = random_vector<T>(5 * 8, 22, 0.1);
  auto c1 = init_c, f1 = init_f, c2 = init_c, f2 = init_f;
  std::vector<T> cg1(c1.size()), fg1(f1.size()), cg2(c2.size()), fg2(f2.size());
  const auto make = [](std::vector<T>& c, std::vector<T>& cg, std::vector<T>& f, std::vector<T>& fg) {
    sr::regularizer<T> reg;
    reg.add_parameter("conv", sr::view<T>(c.data(), {6, 4, 3, 3}), sr::view<T>(cg.data(), {6, 4, 3, 3}));
    reg.add_parameter("fc", sr::view<T>(f.data(), {5, 8}), sr::view<T>(fg.data(), {5, 8}));
    const auto warm = sr::schedule::linear_warmup(3);
    reg.add_penalty("conv", sr::sparse_group_lasso(0.05, 0.01, sr::groups::filters()), warm);
    reg.add_penalty("conv", sr::group_lasso(0.04, sr::groups::input_channels()), warm);
    reg.add_penalty("conv", sr::kl_to_target::on_group_norms(0.01, sr::groups::filters()), warm);
    reg.add_penalty("fc", sr::sparse_group_lasso(0.3, 0.01, sr::groups::input_neurons()), warm);
    reg.add_penalty("fc", sr::squared_l2(1e-3));
    return reg;
  };
  auto whole = make(c1, cg1, f1, fg1);
  auto layered = make(c2, cg2, f2, fg2);
  const double lr = 0.3;
  for (std::uint32_t t = 0; t < 5; ++t) {
    INFO("step " << t);
    const auto gc = random_vector<T>(c1.size(), 100 + t, 0.05), gf = random_vector<T>(f1.size(), 200 + t, 0.05);
    cg1 = gc, cg2 = gc, fg1 = gf, fg2 = gf;
    whole.add_gradients();
    for (std::size_t i = 0; i < c1.size(); ++i) c1[i] -= T(lr) * cg1[i];
    for (std::size_t i = 0; i < f1.size(); ++i) f1[i] -= T(lr) * fg1[i];
    whole.prox_step(lr);

    layered.add_gradients("fc");
    for (std::size_t i = 0; i < f2.size(); ++i) f2[i] -= T(lr) * fg2[i];
    layered.prox_parameter("fc", lr);
    layered.add_gradients("conv");
    for (std::size_t i = 0; i < c2.size(); ++i) c2[i] -= T(lr) * cg2[i];
    layered.prox_parameter("conv", lr);
    CHECK(layered.step() == t);
    layered.end_step();

    REQUIRE(whole.step() == layered.step());
    REQUIRE(bit_equal(cg1, cg2));  // the KL and squared-l2 gradients
    CHECK_FALSE(bit_equal(cg1, gc));
    REQUIRE(bit_equal(fg1, fg2));
    REQUIRE(bit_equal(c1, c2));
    REQUIRE(bit_equal(f1, f2));
    const auto a = whole.last_prox_results(), b = layered.last_prox_results();
    REQUIRE(a.size() == b.size());
    for (std::size_t k = 0; k < a.size(); ++k) CHECK(a[k].value == b[k].value);
  }
  // The prox zeroed groups (and the KL added a gradient, checked in the loop).
  CHECK(whole.last_prox_results()[2].zero_groups > 0);
  CHECK(whole.value() == layered.value());

  // Unknown names; a penalty coupling parameters cannot be applied one parameter at a time.
  CHECK_THROWS_AS(layered.add_gradients("fc2"), std::invalid_argument);
  CHECK_THROWS_WITH(layered.prox_parameter("fc2", lr), Catch::Contains("fc2") && Catch::Contains("conv"));
  CHECK_THROWS_WITH(layered.prox_parameter("fc", -1.0), Catch::Contains("lr"));
  sr::regularizer<float> coupled;
  std::vector<float> w1(4 * 3 * 3 * 3, 0.5f), b1(4, 0.1f), w2(5 * 4 * 3 * 3, 0.5f), w3(8, 1.0f);
  coupled.add_parameter("conv1.weight", sr::view<float>(w1.data(), {4, 3, 3, 3}));
  coupled.add_parameter("conv1.bias", sr::view<float>(b1.data(), {4}));
  coupled.add_parameter("conv2.weight", sr::view<float>(w2.data(), {5, 4, 3, 3}));
  coupled.add_parameter("other", sr::view<float>(w3.data(), {8}));
  coupled.add_coupled("conv1.units", sr::coupled_sparse_group_lasso(0.05, 0.002),
                      {{"conv1.weight", 0}, {"conv1.bias", 0}, {"conv2.weight", 1}});
  coupled.add_penalty("other", sr::l1(0.1));
  const auto before = w2;
  CHECK_THROWS_WITH(coupled.prox_parameter("conv2.weight", 0.5),
                    Catch::Contains("conv1.units") && Catch::Contains("prox_step"));
  CHECK(w2 == before);  // nothing applied
  CHECK_NOTHROW(coupled.add_gradients("conv2.weight"));  // no gradient penalty couples it
  coupled.prox_parameter("other", 0.5);                  // its own penalty only
  CHECK(w3[0] == Approx(0.95f));
  CHECK(w2 == before);
}

TEST_CASE("regularizer: set_step and the penalty mode override") {
  std::vector<double> w = {1.0, -2.0, 0.5, 4.0}, w2 = w;
  sr::regularizer<double> reg;
  reg.add_parameter("w", sr::view<double>(w.data(), {4}));
  // squared_l2 is smooth (a gradient penalty by default); as a prox it is decoupled weight decay.
  reg.add_penalty("w", sr::squared_l2(0.5), sr::schedule::step_decay(10, 0.5), {"decay", sr::apply_as::prox});
  reg.set_step(10);
  CHECK(reg.step() == 10);
  reg.prox_step(2.0);  // factor 0.5: w / (1 + 2 * 0.25)
  for (std::size_t i = 0; i < w.size(); ++i) CHECK(w[i] == w2[i] / 1.5);
  CHECK(reg.values()[0].penalty == "decay");
  CHECK(reg.step() == 11);
  // Without a gradient view a gradient-mode penalty is refused.
  CHECK_THROWS_WITH(reg.add_penalty("w", sr::squared_l2(0.5)), Catch::Contains("'w'") && Catch::Contains("gradient"));
  CHECK_THROWS_WITH(reg.add_penalty("w", sr::hard_threshold(0.5), sr::schedule(), {"", sr::apply_as::gradient}),
                    Catch::Contains("no gradient"));
}

TEST_CASE("regularizer: containers through their adapters") {
  std::vector<float> w = {0.1f, -3.0f, 0.2f}, g(3, 0.0f);
  sr::regularizer<float> reg;
  reg.add_parameter("v", w, g);
  reg.add_penalty("v", sr::l1(1.0));
  reg.prox_step(0.5);
  CHECK(w == std::vector<float>{0.0f, -2.5f, 0.0f});
  CHECK(reg.weights("v").data() == w.data());
  CHECK(reg.gradient("v").data() == g.data());
}

TEMPLATE_TEST_CASE("regularizer: per-element steps match the direct per-element prox", "[regularizer]", float, double) {
  using T = TestType;
  auto w = random_vector<T>(30, 21, 0.3), wd = w;
  std::vector<T> d(w.size());
  std::mt19937 rng(22);
  std::uniform_real_distribution<double> u(0.1, 3.0);
  for (auto& s : d) s = static_cast<T>(u(rng));
  const sr::l1 lasso(0.2);
  sr::regularizer<T> reg;
  reg.add_parameter("w", sr::view<T>(w.data(), {30}));
  reg.add_penalty("w", lasso, sr::schedule::constant(0.5));
  reg.set_element_steps("w", sr::view<const T>(d.data(), {30}));
  reg.prox_step(0.1);
  sr::prox(lasso.scaled(0.1 * 0.5), sr::view<const T>(wd.data(), {30}), sr::view<T>(wd.data(), {30}),
           sr::view<const T>(d.data(), {30}));
  CHECK(bit_equal(w, wd));
  CHECK_THROWS_WITH(reg.set_element_steps("w", sr::view<const T>(d.data(), {5, 6})), Catch::Contains("shape"));
}

TEMPLATE_TEST_CASE("regularizer: per-element steps of every penalty with such a prox match its direct prox, and a bad "
                   "step is refused before any write",
                   "[regularizer]", float, double) {
  // prox_step checks the steps once for all parameters and then runs each prox on them without
  // checking them again; the result must be the public (checking) entry's, bit for bit.
  using T = TestType;
  const std::vector<std::size_t> shape{6, 5};
  const std::size_t n = 30;
  std::vector<T> d(n);
  std::mt19937 rng(31);
  std::uniform_real_distribution<double> u(0.1, 3.0);
  for (auto& s : d) s = static_cast<T>(u(rng));
  d[7] = T(0);  // a zero step: that element is left as it is
  const sr::view<const T> vd(d.data(), shape);
  const double step = 0.3, factor = 0.5;
  std::size_t compared = 0;
  const auto check = [&](const auto& penalty, auto direct) {
    auto w = random_vector<T>(n, 32, 0.5), wd = w;
    sr::regularizer<T> reg;
    reg.add_parameter("w", sr::view<T>(w.data(), shape));
    sr::penalty_options as_prox;
    as_prox.mode = sr::apply_as::prox;  // squared_l2 would default to a gradient
    reg.add_penalty("w", penalty, sr::schedule::constant(factor), as_prox);
    reg.set_element_steps("w", vd);
    reg.prox_step(step);
    direct(penalty.scaled(step * factor), sr::view<const T>(wd.data(), shape), sr::view<T>(wd.data(), shape));
    CHECK(bit_equal(w, wd));
    CHECK(w != random_vector<T>(n, 32, 0.5));  // the prox did something
    ++compared;
  };
  const auto separable = [&](const auto& p, const sr::view<const T>& x, const sr::view<T>& y) {
    sr::prox(p, x, y, vd);
  };
  const auto grouped = [&](const auto& p, const sr::view<const T>& x, const sr::view<T>& y) {
    sr::prox_per_element_steps(p, x, y, vd);
  };
  check(sr::l1(0.2), separable);
  check(sr::squared_l2(0.7), separable);
  check(sr::hard_threshold(0.05), separable);
  check(sr::sparse_group_lasso(0.3, 0.1, sr::groups::output_neurons()), grouped);
  check(sr::group_lasso(0.4, sr::groups::input_neurons()), grouped);
  CHECK(compared == 5);

  // A NaN step for a group penalty: refused by prox_step, naming the parameter and the element,
  // before the first parameter is written.
  auto a = random_vector<T>(n, 33, 0.5), b = random_vector<T>(n, 34, 0.5);
  const auto a0 = a, b0 = b;
  auto bad = d;
  bad[11] = std::numeric_limits<T>::quiet_NaN();
  sr::regularizer<T> reg;
  reg.add_parameter("a", sr::view<T>(a.data(), shape));
  reg.add_parameter("b", sr::view<T>(b.data(), shape));
  reg.add_penalty("a", sr::sparse_group_lasso(0.3, 0.1, sr::groups::output_neurons()));
  reg.add_penalty("b", sr::sparse_group_lasso(0.3, 0.1, sr::groups::output_neurons()));
  reg.set_element_steps("b", sr::view<const T>(bad.data(), shape));
  CHECK_THROWS_WITH(reg.prox_step(step), Catch::Contains("'b'") && Catch::Contains("steps[11]"));
  CHECK(bit_equal(a, a0));
  CHECK(bit_equal(b, b0));
}

TEST_CASE("regularizer: errors name the parameter") {
  std::vector<float> w(2 * 3 * 2 * 2, 1.0f), g(w.size()), small(6), other(6);
  const sr::view<float> vw(w.data(), {2, 3, 2, 2}), vg(g.data(), {2, 3, 2, 2});
  sr::regularizer<float> reg;
  CHECK_THROWS_WITH(reg.prox_step(0.1), Catch::Contains("prox_step") && Catch::Contains("no parameter"));
  CHECK_THROWS_AS(reg.add_parameter("", vw, vg), std::invalid_argument);
  reg.add_parameter("conv1.weight", vw, vg);
  CHECK_THROWS_WITH(reg.add_parameter("conv1.weight", vw, vg),
                    Catch::Contains("conv1.weight") && Catch::Contains("already registered"));
  CHECK_THROWS_WITH(reg.add_penalty("conv2.weight", sr::l1(0.1)),
                    Catch::Contains("conv2.weight") && Catch::Contains("conv1.weight"));
  CHECK_THROWS_WITH(reg.add_parameter("bad", vw, sr::view<float>(small.data(), {6})),
                    Catch::Contains("'bad'") && Catch::Contains("[6]") && Catch::Contains("[2x3x2x2]"));
  CHECK_THROWS_WITH(reg.add_parameter("alias", vw, vw), Catch::Contains("overlaps"));
  // A conv grouping on a rank-2 tensor.
  reg.add_parameter("fc", sr::view<float>(small.data(), {2, 3}), sr::view<float>(other.data(), {2, 3}));
  CHECK_THROWS_WITH(reg.add_penalty("fc", sr::group_lasso(0.1, sr::groups::filters())),
                    Catch::Contains("fc") && Catch::Contains("rank"));
  CHECK_THROWS_AS(reg.prox_step(-1.0), std::invalid_argument);
  CHECK(reg.penalty_count() == 0);
}

TEST_CASE("regularizer: rebind re-validates the groupings") {
  std::vector<float> w(4 * 3 * 2 * 2, 1.0f), g(w.size()), w2(w.size()), g2(w.size());
  sr::regularizer<float> reg;
  reg.add_parameter("conv", sr::view<float>(w.data(), {4, 3, 2, 2}), sr::view<float>(g.data(), {4, 3, 2, 2}));
  reg.add_penalty("conv", sr::group_lasso(0.1, sr::groups::filters()));
  reg.add_penalty("conv", sr::squared_l2(0.1));
  // Compaction kept 2 of 4 filters: still rank 4, fine.
  reg.rebind("conv", sr::view<float>(w2.data(), {2, 3, 2, 2}), sr::view<float>(g2.data(), {2, 3, 2, 2}));
  CHECK(reg.weights("conv").extent(0) == 2);
  // A flattened tensor no longer fits the filter grouping: refused, and nothing changes.
  CHECK_THROWS_WITH(reg.rebind("conv", sr::view<float>(w2.data(), {24}), sr::view<float>(g2.data(), {24})),
                    Catch::Contains("conv") && Catch::Contains("[24]"));
  CHECK(reg.weights("conv").rank() == 4);
  CHECK(reg.weights("conv").extent(0) == 2);
  // squared_l2 needs the gradient.
  CHECK_THROWS_WITH(reg.rebind("conv", sr::view<float>(w2.data(), {2, 3, 2, 2}), {}), Catch::Contains("gradient"));
  CHECK_THROWS_WITH(reg.rebind("nope", sr::view<float>(w2.data(), {2, 3, 2, 2}), {}), Catch::Contains("'nope'"));
  // An explicit grouping whose indices no longer fit.
  sr::regularizer<float> r2;
  r2.add_parameter("x", sr::view<float>(w.data(), {8}));
  r2.add_penalty("x", sr::group_lasso(0.1, sr::grouping::from_lists({{0, 1, 2}, {3, 4}, {5, 6, 7}})));
  CHECK_THROWS_WITH(r2.rebind("x", sr::view<float>(w.data(), {6}), {}), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(r2.rebind("x", sr::view<float>(w.data(), {9}), {}), Catch::Contains("x [9]"));
  r2.rebind("x", sr::view<float>(w.data(), {2, 4}), {});
  CHECK(r2.weights("x").rank() == 2);
}

TEST_CASE("regularizer: report counts zero elements and zero groups") {
  // 4 filters of 3x2x2; filters 1 and 3 are zero, and two more elements of filter 0.
  std::vector<double> w(4 * 12);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 1.0 + double(i);
  for (std::size_t i = 12; i < 24; ++i) w[i] = 0.0;
  for (std::size_t i = 36; i < 48; ++i) w[i] = 0.0;
  w[0] = 0.0;
  w[5] = 0.0;
  std::vector<double> fc = {0.0, 1.0, 0.0, 0.0, 2.0, 0.0};
  sr::regularizer<double> reg;
  reg.add_parameter("conv", sr::view<double>(w.data(), {4, 3, 2, 2}));
  reg.add_parameter("fc", sr::view<double>(fc.data(), {2, 3}));
  reg.add_penalty("conv", sr::sparse_group_lasso(0.1, 0.1, sr::groups::filters()), sr::schedule(), {"filters", sr::apply_as::automatic});
  reg.add_penalty("conv", sr::group_lasso(0.1, sr::groups::input_channels()), sr::schedule(), {"channels", sr::apply_as::automatic});
  reg.add_penalty("fc", sr::group_lasso(0.1, sr::groups::input_neurons()));
  reg.add_penalty("fc", sr::l1(0.1));
  const auto rep = reg.report();
  REQUIRE(rep.size() == 2);
  CHECK(rep[0].name == "conv");
  CHECK(rep[0].elements == 48);
  CHECK(rep[0].zero_elements == 26);
  REQUIRE(rep[0].group_penalties.size() == 2);
  CHECK(rep[0].group_penalties[0].penalty == "filters");
  CHECK(rep[0].group_penalties[0].groups == 4);
  CHECK(rep[0].group_penalties[0].zero_groups == 2);
  CHECK(rep[0].group_penalties[1].groups == 3);
  CHECK(rep[0].group_penalties[1].zero_groups == 0);
  CHECK(rep[1].elements == 6);
  CHECK(rep[1].zero_elements == 4);
  REQUIRE(rep[1].group_penalties.size() == 1);  // l1 has no groups
  CHECK(rep[1].group_penalties[0].groups == 3);
  CHECK(rep[1].group_penalties[0].zero_groups == 2);  // columns 0 and 2 are {0, 0}
  // A NaN is not zero.
  w[12] = std::numeric_limits<double>::quiet_NaN();
  CHECK(reg.report()[0].group_penalties[0].zero_groups == 1);
}

TEST_CASE("regularizer: state round trip and validation") {
  std::vector<float> a(12, 0.5f), b(6, 0.25f), ga(12), gb(6);
  auto configure = [&](sr::regularizer<float>& r) {
    r.add_parameter("a", sr::view<float>(a.data(), {3, 4}), sr::view<float>(ga.data(), {3, 4}));
    r.add_parameter("b", sr::view<float>(b.data(), {6}), sr::view<float>(gb.data(), {6}));
    r.add_penalty("a", sr::group_lasso(0.01, sr::groups::output_neurons()), sr::schedule::linear_warmup(100));
    r.add_penalty("b", sr::squared_l2(0.01));
  };
  sr::regularizer<float> r1;
  configure(r1);
  for (int i = 0; i < 7; ++i) r1.prox_step(0.1);
  const auto state = r1.save_state();

  sr::regularizer<float> r2;
  configure(r2);
  r2.load_state(state);
  CHECK(r2.step() == 7);
  CHECK(r2.values()[0].factor == r1.values()[0].factor);
  CHECK(r2.save_state() == state);

  SECTION("a different configuration is refused and changes nothing") {
    sr::regularizer<float> r3;
    r3.add_parameter("a", sr::view<float>(a.data(), {3, 4}));
    r3.add_parameter("c", sr::view<float>(b.data(), {6}));
    CHECK_THROWS_WITH(r3.load_state(state), Catch::Contains("'b'") && Catch::Contains("'c'"));
    sr::regularizer<float> r4;
    r4.add_parameter("a", sr::view<float>(a.data(), {4, 3}), sr::view<float>(ga.data(), {4, 3}));
    r4.add_parameter("b", sr::view<float>(b.data(), {6}), sr::view<float>(gb.data(), {6}));
    CHECK_THROWS_WITH(r4.load_state(state), Catch::Contains("[3x4]") && Catch::Contains("[4x3]"));
    sr::regularizer<float> r5;
    r5.add_parameter("a", sr::view<float>(a.data(), {3, 4}), sr::view<float>(ga.data(), {3, 4}));
    r5.add_parameter("b", sr::view<float>(b.data(), {6}), sr::view<float>(gb.data(), {6}));
    r5.add_penalty("a", sr::l1(0.01));
    r5.add_penalty("b", sr::squared_l2(0.01));
    CHECK_THROWS_WITH(r5.load_state(state), Catch::Contains("group_lasso"));
    CHECK(r5.step() == 0);
  }
  SECTION("malformed states are runtime errors") {
    auto truncated = state;
    truncated.resize(state.size() - 3);
    CHECK_THROWS_AS(r2.load_state(truncated), std::runtime_error);
    auto bad_magic = state;
    bad_magic[0] ^= 0xFF;
    CHECK_THROWS_WITH(r2.load_state(bad_magic), Catch::Contains("magic"));
    auto bad_version = state;
    bad_version[8] = 99;
    CHECK_THROWS_WITH(r2.load_state(bad_version), Catch::Contains("version 99"));
    auto trailing = state;
    trailing.push_back(0);
    CHECK_THROWS_WITH(r2.load_state(trailing), Catch::Contains("trailing"));
    CHECK_THROWS_AS(r2.load_state({}), std::runtime_error);
    // A huge length field must not allocate or read past the end.
    auto huge = state;
    huge[8 + 8 + 8 + 8] = 0xFF;  // low byte of the first name length
    for (std::size_t k = 1; k < 8; ++k) huge[8 + 8 + 8 + 8 + k] = 0xFF;
    CHECK_THROWS_AS(r2.load_state(huge), std::runtime_error);
    CHECK(r2.step() == 7);
  }
}

TEST_CASE("regularizer: copies are independent") {
  std::vector<double> w = {1.0, 2.0};
  sr::regularizer<double> r1;
  r1.add_parameter("w", sr::view<double>(w.data(), {2}));
  r1.add_penalty("w", sr::l1(0.1), sr::schedule::linear_warmup(10));
  sr::regularizer<double> r2 = r1;
  r1.set_step(5);
  CHECK(r2.step() == 0);
  CHECK(r2.penalty_count() == 1);
  CHECK(r2.values()[0].factor == 0.1);
  CHECK(r1.values()[0].factor == 0.6);
}

TEST_CASE("regularizer: KL penalties are gradient penalties whose state is saved") {
  auto w = random_vector<double>(500, 81, 0.1), g = std::vector<double>(500, 0.0);
  auto wd = w, gd = g;
  sr::regularizer<double> reg;
  reg.add_parameter("w", sr::view<double>(w.data(), {500}), sr::view<double>(g.data(), {500}));
  reg.add_penalty("w", sr::kl_to_target(0.1), sr::schedule::linear_warmup(2));
  reg.add_penalty("w", sr::kl_gaussian(0.2));
  reg.add_gradients();
  sr::add_gradient(sr::kl_to_target(0.1).scaled(0.5), sr::view<const double>(wd.data(), {500}), sr::view<double>(gd.data(), {500}));
  sr::add_gradient(sr::kl_gaussian(0.2), sr::view<const double>(wd.data(), {500}), sr::view<double>(gd.data(), {500}));
  CHECK(bit_equal(g, gd));
  reg.prox_step(0.1);  // no prox penalty: only advances the step
  CHECK(bit_equal(w, wd));
  const auto vals = reg.values();
  CHECK(vals[0].penalty == "kl_to_target");
  CHECK(vals[1].penalty == "kl_gaussian");
  CHECK(vals[0].factor == 1.0);

  const auto state = reg.save_state();
  sr::regularizer<double> fresh;
  fresh.add_parameter("w", sr::view<double>(w.data(), {500}), sr::view<double>(g.data(), {500}));
  fresh.add_penalty("w", sr::kl_to_target(0.1), sr::schedule::linear_warmup(2));
  fresh.add_penalty("w", sr::kl_gaussian(0.2));
  fresh.load_state(state);
  CHECK(fresh.save_state() == state);
  CHECK(fresh.value() == reg.value());
  // A copy of the regularizer does not share the KL state with the original.
  sr::regularizer<double> copy = reg;
  CHECK(copy.save_state() == state);
}

TEST_CASE("regularizer: weights and gradients whose elements share memory are refused at binding") {
  std::vector<float> w(12, 1.0f), g(12, 0.0f), cell(1, 2.0f);
  sr::regularizer<float> reg;
  CHECK_THROWS_MATCHES(reg.add_parameter("b", sr::view<float>(cell.data(), {4}, {0}), sr::view<float>(g.data(), {4})),
                       std::invalid_argument,
                       Catch::Matchers::Message("sparsereg::regularizer::add_parameter: weights of 'b' has strides "
                                                "that make elements share memory (shape [4], strides [0]); an output "
                                                "needs one address per element: sorted by stride, each axis of "
                                                "extent > 1 must step past all the elements of the smaller ones"));
  CHECK_THROWS_WITH(reg.add_parameter("b", sr::view<float>(cell.data(), {4}, {0})), Catch::Contains("weights of 'b'"));
  CHECK_THROWS_WITH(reg.add_parameter("c", sr::view<float>(w.data(), {3, 3}),
                                      sr::view<float>(g.data(), {3, 3}, {1, 1})),
                    Catch::Contains("gradient of 'c'") && Catch::Contains("shape [3x3], strides [1, 1]"));
  CHECK_THROWS_AS(reg.weights("b"), std::invalid_argument);  // nothing was registered
  reg.add_parameter("w", sr::view<float>(w.data(), {3, 4}), sr::view<float>(g.data(), {3, 4}));
  reg.add_penalty("w", sr::squared_l2(0.1));
  CHECK_THROWS_WITH(reg.rebind("w", sr::view<float>(w.data(), {3, 4}), sr::view<float>(g.data(), {3, 4}, {0, 1})),
                    Catch::Contains("rebind") && Catch::Contains("gradient of 'w'") &&
                        Catch::Contains("strides [0, 1]"));
  CHECK(reg.gradient("w").stride(0) == 4);  // unchanged
}

TEST_CASE("regularizer: weights and gradient interleaved in one buffer act as separate buffers") {
  // [w | g] packed row-major: w = column 0, g = column 1 of a 10x2 buffer.
  const auto w0 = random_vector<float>(10, 7);
  std::vector<float> packed(20, 0.0f), w(w0), g(10, 0.0f);
  for (std::size_t i = 0; i < 10; ++i) packed[2 * i] = w0[i];
  sr::regularizer<float> sep, inter;
  sep.add_parameter("p", sr::view<float>(w.data(), {10}), sr::view<float>(g.data(), {10}));
  inter.add_parameter("p", sr::view<float>(packed.data(), {10}, {2}), sr::view<float>(packed.data() + 1, {10}, {2}));
  for (auto* r : {&sep, &inter}) {
    r->add_penalty("p", sr::squared_l2(0.3));
    r->add_penalty("p", sr::l1(0.05));
    r->add_gradients();
    r->prox_step(0.5);
  }
  for (std::size_t i = 0; i < 10; ++i) {
    CHECK(std::memcmp(&packed[2 * i], &w[i], sizeof(float)) == 0);
    CHECK(std::memcmp(&packed[2 * i + 1], &g[i], sizeof(float)) == 0);
  }
}

TEST_CASE("regularizer: a step that throws has modified nothing and names the penalty and parameter") {
  // Parameter a is proxed (l1) before b, whose penalty fails: a must be unchanged, and a retry
  // after the cause is removed must give exactly one prox of each.
  std::vector<double> a{1, 2, 3}, b{1, 2, 3}, steps{1, -1, 1};
  std::vector<double> ga(3, 0.0), gb(3, 0.0);
  sr::regularizer<double> reg;
  reg.add_parameter("a", sr::view<double>(a.data(), {3}), sr::view<double>(ga.data(), {3}));
  reg.add_parameter("b", sr::view<double>(b.data(), {3}), sr::view<double>(gb.data(), {3}));
  reg.add_penalty("a", sr::l1(1.0));
  reg.add_penalty("a", sr::squared_l2(1.0));
  bool fail = true;
  const auto nan_until_fixed = sr::schedule::custom([&](std::size_t) { return fail ? std::nan("") : 1.0; });
  reg.add_penalty("b", sr::l1(1.0), nan_until_fixed);
  reg.add_penalty("b", sr::squared_l2(1.0), nan_until_fixed);
  const auto before_a = a, before_ga = ga;
  CHECK_THROWS_WITH(reg.prox_step(0.5), Catch::Contains("prox_step") && Catch::Contains("'b'") &&
                                            Catch::Contains("l1") && Catch::Contains("nan"));
  CHECK(bit_equal(a, before_a));
  CHECK(reg.step() == 0);
  CHECK_THROWS_WITH(reg.add_gradients(), Catch::Contains("add_gradients") && Catch::Contains("'b'"));
  CHECK(bit_equal(ga, before_ga));
  fail = false;
  reg.prox_step(0.5);
  CHECK(a == std::vector<double>{0.5, 1.5, 2.5});
  CHECK(b == std::vector<double>{0.5, 1.5, 2.5});

  // Per-element steps holding a negative value: checked before the first parameter is proxed.
  sr::regularizer<double> reg2;
  std::vector<double> c{1, 2, 3}, e{1, 2, 3};
  reg2.add_parameter("c", sr::view<double>(c.data(), {3}));
  reg2.add_parameter("e", sr::view<double>(e.data(), {3}));
  reg2.add_penalty("c", sr::l1(1.0));
  reg2.add_penalty("e", sr::l1(1.0));
  reg2.set_element_steps("e", sr::view<const double>(steps.data(), {3}));
  CHECK_THROWS_WITH(reg2.prox_step(0.5), Catch::Contains("'e'") && Catch::Contains("steps[1]"));
  CHECK(c == std::vector<double>{1, 2, 3});
  // Steps sharing memory with the weights are refused when they are set.
  CHECK_THROWS_WITH(reg2.set_element_steps("c", sr::view<const double>(c.data(), {3})),
                    Catch::Contains("set_element_steps") && Catch::Contains("steps of 'c'"));
}

TEST_CASE("regularizer: a KL penalty on group norms is checked against the parameter's shape") {
  std::vector<float> w(6, 0.5f), g(6), w4(2 * 3 * 1 * 1, 0.5f), g4(6);
  sr::regularizer<float> reg;
  reg.add_parameter("fc", sr::view<float>(w.data(), {2, 3}), sr::view<float>(g.data(), {2, 3}));
  CHECK_THROWS_WITH(reg.add_penalty("fc", sr::kl_to_target::on_group_norms(0.1, sr::groups::filters())),
                    Catch::Contains("add_penalty") && Catch::Contains("fc") && Catch::Contains("rank"));
  CHECK(reg.penalty_count() == 0);
  reg.add_penalty("fc", sr::kl_to_target::on_group_norms(0.1, sr::groups::output_neurons()));
  reg.add_parameter("conv", sr::view<float>(w4.data(), {2, 3, 1, 1}), sr::view<float>(g4.data(), {2, 3, 1, 1}));
  reg.add_penalty("conv", sr::kl_to_target::on_group_norms(0.1, sr::groups::filters()));
  CHECK_THROWS_WITH(reg.rebind("conv", sr::view<float>(w4.data(), {6}), sr::view<float>(g4.data(), {6})),
                    Catch::Contains("rebind") && Catch::Contains("conv"));
  CHECK(reg.weights("conv").rank() == 4);
}
