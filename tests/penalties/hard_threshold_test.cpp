// Property tests of hard_threshold, the l0 penalty (include/sparsereg/penalties/hard_threshold.hpp):
// the prox is a global minimiser (each output is 0 or x and beats the other candidate), agreement
// with the two-candidate reference, reported result, exact identities, per-element steps, golden
// values, NaN, zero size. l0 has no gradient (trait) and is not convex (no nonexpansiveness).
#include <catch2/catch.hpp>

#include <sparsereg/penalties/hard_threshold.hpp>
#include <support/reference.hpp>
#include <support/separable.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace sparsereg_test;
using sparsereg::hard_threshold;

namespace {

/// y_i must be exactly 0 or exactly x_i, and its cost step*lambda*[y != 0] + (y - x)^2/2 must not
/// exceed the other candidate's. The library compares |x| with sqrt(2 step lambda) rounded to T,
/// so near the tie x^2/2 = step*lambda either choice is acceptable: within 4 eps (two roundings
/// of the threshold, squared) relative to step*lambda + x^2/2.
template <class T>
verdict check_l0_element(T x, T y, ld t) {
  verdict v;
  const ld xl = static_cast<ld>(x);
  const ld tol = 4 * static_cast<ld>(std::numeric_limits<T>::epsilon()) * (t + xl * xl / 2);
  if (!(bitwise_equal(y, T(0)) || bitwise_equal(y, x) || (y == T(0) && x == T(0))))
    v.fail("output " + num(static_cast<ld>(y)) + " is neither 0 nor x = " + num(xl));
  else if (y != T(0) && t > xl * xl / 2 + tol)
    v.fail("kept x = " + num(xl) + " although its cost " + num(t) + " exceeds x^2/2");
  else if (y == T(0) && x != T(0) && xl * xl / 2 > t + tol)
    v.fail("zeroed x = " + num(xl) + " although x^2/2 exceeds the cost " + num(t));
  else if (std::fabs(xl * xl / 2 - t) > tol && static_cast<ld>(y) != ref_prox_l0(xl, t))
    v.fail("differs from the reference away from the tie");
  return v;
}

}  // namespace

TEST_CASE("hard_threshold traits", "[hard_threshold]") {
  STATIC_REQUIRE(!hard_threshold::has_gradient);
  STATIC_REQUIRE(hard_threshold::has_prox);
  STATIC_REQUIRE(hard_threshold::separable);
  STATIC_REQUIRE(!hard_threshold::convex);
  CHECK(hard_threshold(0.5).scaled(3.0).lambda == 1.5);
}

TEMPLATE_TEST_CASE("hard_threshold prox: global optimality, reference, reported result", "[hard_threshold][prox]",
                   float, double) {
  using T = TestType;
  const auto shape = GENERATE(from_range(separable_shapes));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  const double step = GENERATE(0.25, 1.0, 3.0);
  const double lambda = GENERATE(0.01, 0.25, 0.8);
  CAPTURE(shape, layout_name(lay), step, lambda);
  std::mt19937 rng(121u + static_cast<unsigned>(product(shape)));
  const std::size_t n = product(shape);
  tensor<T> x(shape, lay);
  auto xv = random_grouped_values<T>(singletons(n), n, rng);
  // Values just inside and just outside the threshold sqrt(2 step lambda), relative offsets
  // 1e-3 and 1e-5: far outside check_l0_element's tie band (4 eps), so a threshold that is off
  // by more than that relative amount keeps or drops one of them wrongly.
  const ld thr = std::sqrt(2 * static_cast<ld>(step) * lambda);
  const ld offsets[] = {1e-3L, -1e-3L, 1e-5L, -1e-5L};
  for (std::size_t k = 0; k < 4; ++k) xv[2 * k + 1] = static_cast<T>((k % 2 ? -1 : 1) * thr * (1 + offsets[k]));
  x.assign(xv);
  tensor<T> y(shape, lay == layout::reversed ? layout::padded : layout::reversed);
  const auto r = sparsereg::prox(hard_threshold(lambda), x.cview(), y.view(), step);
  const auto yv = y.values();
  CHECK(bitwise_equal(x.values(), xv));
  CHECK(y.touched_padding() == 0);
  for (std::size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    const auto v = check_l0_element(xv[i], yv[i], step * lambda);
    INFO(v.detail);
    CHECK(v.ok);
  }
  // Counts are integers: exact.
  CHECK(sparsereg::value(hard_threshold(lambda), y.cview()) == lambda * static_cast<double>(n - zero_count(yv)));
  CHECK(r.value == sparsereg::value(hard_threshold(lambda), y.cview()));
  // lambda * count rounded once in double.
  CHECK(std::fabs(static_cast<ld>(r.value) - ref_l0_value(lambda, yv)) <=
        std::numeric_limits<double>::epsilon() * ref_l0_value(lambda, yv));
  CHECK(r.zero_elements == zero_count(yv));
  CHECK(r.groups == 0);
}

TEMPLATE_TEST_CASE("hard_threshold prox: step 0, lambda 0 and in place are exact", "[hard_threshold][prox]", float,
                   double) {
  check_exact_identities<hard_threshold, TestType>(323, 0.1);
}

TEMPLATE_TEST_CASE("hard_threshold prox with per-element steps", "[hard_threshold][prox][steps]", float, double) {
  using T = TestType;
  const double lambda = 0.15;
  check_per_element_steps<hard_threshold, T>(
      424, lambda,
      [lambda](T x, T y, T s) {
        const auto v = check_l0_element(x, y, static_cast<ld>(s) * lambda);
        INFO(v.detail);
        CHECK(v.ok);
      },
      {/*in_place_zero_elements=*/false, /*equal_steps_zero_elements=*/false, /*steps_zero_elements=*/true});
}

TEMPLATE_TEST_CASE("hard_threshold golden values on a 3x4 tensor", "[hard_threshold][golden]", float, double) {
  using T = TestType;
  // x[f] = ((7 f) mod 11 - 5)/4, lambda = 0.5: 11 nonzeros -> value 5.5. Prox with step 1:
  // threshold sqrt(2 * 1 * 0.5) = 1; only |x| > 1 survives (|x| = 1 is a tie and goes to 0):
  // the three +-1.25, value 0.5 * 3 = 1.5, 9 zeros.
  std::vector<T> x{-1.25, 0.5, -0.5, 1.25, 0.25, -0.75, 1.0, 0, -1.0, 0.75, -0.25, -1.25};
  const sparsereg::view<const T> xv(x.data(), {3, 4});
  CHECK(sparsereg::value(hard_threshold(0.5), xv) == 5.5);
  std::vector<T> y(12);
  const auto r = sparsereg::prox(hard_threshold(0.5), xv, sparsereg::view<T>(y.data(), {3, 4}), 1.0);
  CHECK(y == std::vector<T>{-1.25, 0, 0, 1.25, 0, 0, 0, 0, 0, 0, 0, -1.25});
  CHECK(r.value == 1.5);
  CHECK(r.zero_elements == 9);
}

TEMPLATE_TEST_CASE("hard_threshold: NaN stays in its element, zero-size is a no-op", "[hard_threshold][nan]", float,
                   double) {
  using T = TestType;
  std::mt19937 rng(626);
  const std::size_t n = 50;
  auto x = random_grouped_values<T>(singletons(n), n, rng);
  std::vector<T> clean(n);
  sparsereg::prox(hard_threshold(0.1), x, clean, 1.0);
  x[17] = std::numeric_limits<T>::quiet_NaN();
  // NaN != 0 counts as a nonzero weight: the value stays finite (l0 counts, it does not add).
  CHECK(sparsereg::value(hard_threshold(0.1), x) == Approx(0.1 * static_cast<double>(n - zero_count(x))));
  std::vector<T> y(n);
  sparsereg::prox(hard_threshold(0.1), x, y, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    if (i == 17)
      CHECK(std::isnan(y[i]));
    else
      CHECK(bitwise_equal(y[i], clean[i]));
  }
  T cell = T(5);
  const sparsereg::view<T> e(&cell, {2, 0});
  CHECK(sparsereg::value(hard_threshold(0.2), e) == 0.0);
  CHECK(sparsereg::prox(hard_threshold(0.2), e, e, 1.0).value == 0.0);
  CHECK(cell == T(5));
}
