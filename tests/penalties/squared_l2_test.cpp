// Property tests of squared_l2 (include/sparsereg/penalties/squared_l2.hpp): prox optimality,
// agreement with a bisection reference, reported result, nonexpansiveness, exact identities,
// per-element steps, golden values, finite-difference gradient, NaN, zero size.
#include <catch2/catch.hpp>

#include <sparsereg/penalties/squared_l2.hpp>
#include <support/reference.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace sparsereg_test;
using sparsereg::squared_l2;

namespace {

const std::vector<std::vector<std::size_t>> shapes = {{3, 2, 2, 3}, {4, 5}, {37}, {2, 3, 4}};

template <class T>
std::size_t zero_count(const std::vector<T>& y) {
  std::size_t n = 0;
  for (T v : y) n += v == T(0);
  return n;
}

// The prox is y = x * f with f = 1/(1 + step*lambda) rounded to T: y carries at most 2 roundings
// of |x| (f and the product), which prox_tolerance<T>(1, |x|) = 7 eps |x| covers with margin.
template <class T>
ld element_tolerance(T x) {
  return prox_tolerance<T>(1, std::fabs(static_cast<ld>(x)));
}

}  // namespace

TEMPLATE_TEST_CASE("squared_l2 prox: optimality, reference, reported result", "[squared_l2][prox]", float, double) {
  using T = TestType;
  const auto shape = GENERATE(from_range(shapes));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  const double step = GENERATE(0.25, 1.0, 3.0);
  const double lambda = GENERATE(0.05, 0.4, 2.0);
  CAPTURE(shape, layout_name(lay), step, lambda);
  std::mt19937 rng(111u + static_cast<unsigned>(product(shape)));
  const std::size_t n = product(shape);
  tensor<T> x(shape, lay);
  const auto xv = random_grouped_values<T>(singletons(n), n, rng);
  x.assign(xv);
  tensor<T> y(shape, lay == layout::reversed ? layout::padded : layout::reversed);
  const auto r = sparsereg::prox(squared_l2(lambda), x.cview(), y.view(), step);
  const auto yv = y.values();
  CHECK(bitwise_equal(x.values(), xv));
  CHECK(y.touched_padding() == 0);
  for (std::size_t i = 0; i < n; ++i) {
    CAPTURE(i, xv[i], yv[i]);
    // 1. Optimality: (x - y)/step = lambda * y (R is differentiable).
    const ld resid = (static_cast<ld>(xv[i]) - static_cast<ld>(yv[i])) / step - lambda * static_cast<ld>(yv[i]);
    CHECK(std::fabs(resid) <= element_tolerance(xv[i]) * (1 / step + lambda));
    // 3. Reference.
    CHECK(std::fabs(static_cast<ld>(yv[i]) - ref_prox_squared_l2(static_cast<ld>(xv[i]), step * lambda)) <=
          element_tolerance(xv[i]));
  }
  // 4. Reported value (same double sums, possibly in another order) and counts.
  const double v = sparsereg::value(squared_l2(lambda), y.cview());
  const ld ref_value = ref_squared_l2_value(lambda, yv);
  const ld vtol = static_cast<ld>(n) * std::numeric_limits<double>::epsilon() * ref_value;
  CHECK(std::fabs(r.value - v) <= vtol);
  CHECK(std::fabs(static_cast<ld>(v) - ref_value) <= vtol);
  CHECK(r.zero_elements == zero_count(yv));
  CHECK(r.groups == 0);
}

TEMPLATE_TEST_CASE("squared_l2 prox is nonexpansive", "[squared_l2][prox]", float, double) {
  using T = TestType;
  std::mt19937 rng(212);
  const std::size_t n = 60;
  for (int trial = 0; trial < 20; ++trial) {
    CAPTURE(trial);
    const auto a = random_grouped_values<T>(singletons(n), n, rng);
    auto b = a;
    std::normal_distribution<float> d(0.0f, trial % 2 ? 0.01f : 1.0f);
    for (auto& v : b) v = static_cast<T>(static_cast<float>(v) + d(rng));
    std::vector<T> pa(n), pb(n);
    sparsereg::prox(squared_l2(0.3), a, pa, 0.7);
    sparsereg::prox(squared_l2(0.3), b, pb, 0.7);
    const ld slack = 2 * std::sqrt(static_cast<ld>(n)) * prox_tolerance<T>(1, std::max(max_abs(a), max_abs(b)));
    CHECK(distance(pa, pb) <= distance(a, b) + slack);
  }
}

TEMPLATE_TEST_CASE("squared_l2 prox: step 0, lambda 0 and in place are exact", "[squared_l2][prox]", float, double) {
  using T = TestType;
  const auto shape = GENERATE(from_range(shapes));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  CAPTURE(shape, layout_name(lay));
  std::mt19937 rng(313);
  tensor<T> x(shape, lay);
  const auto xv = random_grouped_values<T>(singletons(x.size()), x.size(), rng);
  x.assign(xv);
  {
    tensor<T> y(shape, lay);
    sparsereg::prox(squared_l2(0.5), x.cview(), y.view(), 0.0);
    CHECK(bitwise_equal(y.values(), xv));
  }
  {
    tensor<T> y(shape, lay);
    sparsereg::prox(squared_l2(0.0), x.cview(), y.view(), 2.0);
    CHECK(bitwise_equal(y.values(), xv));
  }
  {
    tensor<T> y(shape, lay);
    const auto r1 = sparsereg::prox(squared_l2(0.3), x.cview(), y.view(), 1.0);
    tensor<T> z = x;
    const auto r2 = sparsereg::prox(squared_l2(0.3), z.cview(), z.view(), 1.0);
    CHECK(bitwise_equal(z.values(), y.values()));
    CHECK(r1.value == r2.value);
    CHECK(z.touched_padding() == 0);
  }
}

TEMPLATE_TEST_CASE("squared_l2 prox with per-element steps", "[squared_l2][prox][steps]", float, double) {
  using T = TestType;
  const auto shape = GENERATE(from_range(shapes));
  const auto lay = GENERATE(layout::contiguous, layout::reversed);
  CAPTURE(shape, layout_name(lay));
  std::mt19937 rng(414);
  const std::size_t n = product(shape);
  tensor<T> x(shape, lay);
  const auto xv = random_grouped_values<T>(singletons(n), n, rng);
  x.assign(xv);
  const double lambda = 0.35;

  SECTION("equal steps give the scalar-step prox, bit for bit") {
    for (const float s : {0.0f, 0.1f, 0.7f, 1.0f, 2.3f}) {
      CAPTURE(s);
      tensor<T> steps(shape, lay);
      steps.assign(std::vector<T>(n, static_cast<T>(s)));
      tensor<T> y1(shape, lay), y2(shape, lay);
      const auto r1 = sparsereg::prox(squared_l2(lambda), x.cview(), y1.view(), steps.cview());
      const auto r2 = sparsereg::prox(squared_l2(lambda), x.cview(), y2.view(), static_cast<double>(static_cast<T>(s)));
      CHECK(bitwise_equal(y1.values(), y2.values()));
      CHECK(r1.value == r2.value);
    }
  }
  SECTION("different steps: each element is optimal for its own step; step 0 keeps it exactly") {
    std::uniform_real_distribution<float> u(0.0f, 3.0f);
    std::vector<T> sv(n);
    for (std::size_t i = 0; i < n; ++i) sv[i] = i % 7 == 3 ? T(0) : static_cast<T>(u(rng));
    tensor<T> steps(shape, lay);
    steps.assign(sv);
    tensor<T> y(shape, layout::contiguous);
    sparsereg::prox(squared_l2(lambda), x.cview(), y.view(), steps.cview());
    const auto yv = y.values();
    for (std::size_t i = 0; i < n; ++i) {
      CAPTURE(i, xv[i], sv[i], yv[i]);
      if (sv[i] == T(0)) {
        CHECK(bitwise_equal(yv[i], xv[i]));
        continue;
      }
      const ld s = static_cast<ld>(sv[i]);
      const ld resid = (static_cast<ld>(xv[i]) - static_cast<ld>(yv[i])) / s - lambda * static_cast<ld>(yv[i]);
      CHECK(std::fabs(resid) <= element_tolerance(xv[i]) * (1 / s + lambda));
    }
  }
}

TEMPLATE_TEST_CASE("squared_l2 golden values on a 3x4 tensor", "[squared_l2][golden]", float, double) {
  using T = TestType;
  // x[f] = ((7 f) mod 11 - 5)/4, lambda = 0.5:
  //   sum x^2 = 3*1.5625 + 2*0.25 + 2*0.0625 + 2*0.5625 + 2*1 = 8.4375 -> value 0.25 * 8.4375 = 2.109375
  //   gradient = 0.5 x; prox with step 2: x / (1 + 2*0.5) = x / 2, value 2.109375 / 4 = 0.52734375.
  std::vector<T> x{-1.25, 0.5, -0.5, 1.25, 0.25, -0.75, 1.0, 0, -1.0, 0.75, -0.25, -1.25};
  const sparsereg::view<const T> xv(x.data(), {3, 4});
  CHECK(sparsereg::value(squared_l2(0.5), xv) == 2.109375);
  std::vector<T> g(12, T(0)), y(12);
  sparsereg::add_gradient(squared_l2(0.5), xv, sparsereg::view<T>(g.data(), {3, 4}));
  CHECK(g == std::vector<T>{-0.625, 0.25, -0.25, 0.625, 0.125, -0.375, 0.5, 0, -0.5, 0.375, -0.125, -0.625});
  const auto r = sparsereg::prox(squared_l2(0.5), xv, sparsereg::view<T>(y.data(), {3, 4}), 2.0);
  CHECK(y == g);  // x/2 and 0.5 x coincide here
  CHECK(r.value == 0.52734375);
  CHECK(r.zero_elements == 1);
}

TEST_CASE("squared_l2 gradient matches central finite differences", "[squared_l2][gradient]") {
  // R is quadratic: central differences are exact up to rounding, eps |R| / h <= 1e-9 here.
  std::mt19937 rng(515);
  const std::size_t n = 40;
  auto x = random_away_from_zero<double>(n, 0.0f, 2.0f, rng);
  std::vector<double> g(n, 0.0);
  sparsereg::add_gradient(squared_l2(0.8), x, g);
  const double h = 1e-6;
  ld num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    const double fd = (sparsereg::value(squared_l2(0.8), xp) - sparsereg::value(squared_l2(0.8), xm)) / (2 * h);
    num += (g[i] - fd) * (g[i] - fd);
    den += (g[i] + fd) * (g[i] + fd);
  }
  CHECK(std::sqrt(num / den) < 1e-6);
}

TEMPLATE_TEST_CASE("squared_l2: NaN stays in its element, zero-size is a no-op", "[squared_l2][nan]", float, double) {
  using T = TestType;
  std::mt19937 rng(616);
  const std::size_t n = 50;
  auto x = random_grouped_values<T>(singletons(n), n, rng);
  std::vector<T> clean(n), g_clean(n, T(0));
  sparsereg::prox(squared_l2(0.2), x, clean, 1.0);
  sparsereg::add_gradient(squared_l2(0.2), x, g_clean);
  x[17] = std::numeric_limits<T>::quiet_NaN();
  CHECK(std::isnan(sparsereg::value(squared_l2(0.2), x)));
  std::vector<T> y(n), g(n, T(0));
  CHECK(std::isnan(sparsereg::prox(squared_l2(0.2), x, y, 1.0).value));
  sparsereg::add_gradient(squared_l2(0.2), x, g);
  for (std::size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    if (i == 17) {
      CHECK(std::isnan(y[i]));
      CHECK(std::isnan(g[i]));
    } else {
      CHECK(bitwise_equal(y[i], clean[i]));
      CHECK(bitwise_equal(g[i], g_clean[i]));
    }
  }
  T cell = T(5), other = T(7);
  const sparsereg::view<T> e(&cell, {0, 4});
  CHECK(sparsereg::value(squared_l2(0.2), e) == 0.0);
  CHECK(sparsereg::prox(squared_l2(0.2), e, e, 1.0).value == 0.0);
  sparsereg::add_gradient(squared_l2(0.2), e, sparsereg::view<T>(&other, {0, 4}));
  CHECK(cell == T(5));
  CHECK(other == T(7));
}
