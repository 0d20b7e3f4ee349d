// Property tests of squared_l2 (include/sparsereg/penalties/squared_l2.hpp): prox optimality,
// agreement with a bisection reference, reported result, nonexpansiveness, exact identities,
// per-element steps, golden values, finite-difference gradient, NaN, zero size.
#include <catch2/catch.hpp>

#include <sparsereg/penalties/squared_l2.hpp>
#include <support/reference.hpp>
#include <support/separable.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace sparsereg_test;
using sparsereg::squared_l2;

namespace {

// The prox is y = x * f with f = 1/(1 + step*lambda) rounded to T: y carries at most 2 roundings
// of |x| (f and the product), which prox_tolerance<T>(1, |x|) = 7 eps |x| covers with margin.
template <class T>
ld element_tolerance(T x) {
  return prox_tolerance<T>(1, std::fabs(static_cast<ld>(x)));
}

}  // namespace

TEMPLATE_TEST_CASE("squared_l2 prox: optimality, reference, reported result", "[squared_l2][prox]", float, double) {
  using T = TestType;
  const auto shape = GENERATE(from_range(separable_shapes));
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
  check_nonexpansive<squared_l2, TestType>(212, 0);
}

TEMPLATE_TEST_CASE("squared_l2 prox: step 0, lambda 0 and in place are exact", "[squared_l2][prox]", float, double) {
  check_exact_identities<squared_l2, TestType>(313, 0.3);
}

TEMPLATE_TEST_CASE("squared_l2 prox with per-element steps", "[squared_l2][prox][steps]", float, double) {
  using T = TestType;
  const double lambda = 0.35;
  check_per_element_steps<squared_l2, T>(414, lambda, [lambda](T x, T y, T step) {
    const ld s = static_cast<ld>(step);
    const ld resid = (static_cast<ld>(x) - static_cast<ld>(y)) / s - lambda * static_cast<ld>(y);
    CHECK(std::fabs(resid) <= element_tolerance(x) * (1 / s + lambda));
  });
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
  check_gradient_matches_central_differences<squared_l2>(515, 0.0f, 2.0f, 0.8);
}

TEMPLATE_TEST_CASE("squared_l2: NaN stays in its element, zero-size is a no-op", "[squared_l2][nan]", float, double) {
  using T = TestType;
  check_nan_stays_in_its_element<squared_l2, T>(616, 0.2);
  T cell = T(5), other = T(7);
  const sparsereg::view<T> e(&cell, {0, 4});
  CHECK(sparsereg::value(squared_l2(0.2), e) == 0.0);
  CHECK(sparsereg::prox(squared_l2(0.2), e, e, 1.0).value == 0.0);
  sparsereg::add_gradient(squared_l2(0.2), e, sparsereg::view<T>(&other, {0, 4}));
  CHECK(cell == T(5));
  CHECK(other == T(7));
}
