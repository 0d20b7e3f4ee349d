// Shared shapes of the separable-penalty property tests (l1, squared_l2, hard_threshold).
//
// Each helper runs the checks of one property for a penalty type P (constructed as P(lambda)); the
// per-element optimality condition, which differs between penalties, is passed in as a callable.
// SECTIONs inside the helpers behave as if written in the calling TEST_CASE.
//
// API (namespace sparsereg_test):
//   separable_shapes             the tensor shapes every separable test runs on
//   zero_count(y)                number of exact zeros
//   count_checks                 which reported counts a helper compares (not every test did)
//   check_exact_identities<P,T>  step 0 and lambda 0 copy x bit for bit; in place == out of place
//   check_per_element_steps<P,T> equal steps == scalar step; different steps: each element optimal
//   check_gradient_matches_central_differences<P>  finite-difference gradient check
//   check_nonexpansive<P,T>      ||prox(a) - prox(b)|| <= ||a - b|| on random pairs
//   check_nan_stays_in_its_element<P,T>  a NaN only affects its own element of prox and gradient
#pragma once

#include <catch2/catch.hpp>

#include <support/properties.hpp>
#include <support/reference.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <vector>

namespace sparsereg_test {

inline const std::vector<std::vector<std::size_t>> separable_shapes = {{3, 2, 2, 3}, {4, 5}, {37}, {2, 3, 4}};

template <class T>
std::size_t zero_count(const std::vector<T>& y) {
  std::size_t n = 0;
  for (T v : y) n += v == T(0);
  return n;
}

/// Which prox_result counts a helper compares besides the value.
struct count_checks {
  bool in_place_zero_elements = false;     ///< in place vs out of place: zero_elements equal
  bool equal_steps_zero_elements = false;  ///< per-element equal steps vs scalar: zero_elements equal
  bool steps_zero_elements = false;        ///< per-element different steps: zero_elements == zero_count(y)
};

/// Step 0 and lambda 0 return x bit for bit (including -0.0); in place equals out of place
/// (lambda `in_place_lambda`, step 1) and does not touch the padding. Generates every shape and
/// layout.
template <class P, class T>
void check_exact_identities(unsigned seed, double in_place_lambda, count_checks counts = {}) {
  const auto shape = GENERATE(from_range(separable_shapes));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  CAPTURE(shape, layout_name(lay));
  std::mt19937 rng(seed);
  tensor<T> x(shape, lay);
  const auto xv = random_grouped_values<T>(singletons(x.size()), x.size(), rng);  // includes -0.0
  x.assign(xv);
  {
    tensor<T> y(shape, lay);
    sparsereg::prox(P(0.5), x.cview(), y.view(), 0.0);
    CHECK(bitwise_equal(y.values(), xv));
  }
  {
    tensor<T> y(shape, lay);
    sparsereg::prox(P(0.0), x.cview(), y.view(), 2.0);
    CHECK(bitwise_equal(y.values(), xv));
  }
  {
    tensor<T> y(shape, lay);
    const auto r1 = sparsereg::prox(P(in_place_lambda), x.cview(), y.view(), 1.0);
    tensor<T> z = x;
    const auto r2 = sparsereg::prox(P(in_place_lambda), z.cview(), z.view(), 1.0);
    CHECK(bitwise_equal(z.values(), y.values()));
    CHECK(r1.value == r2.value);
    if (counts.in_place_zero_elements) CHECK(r1.zero_elements == r2.zero_elements);
    CHECK(z.touched_padding() == 0);
  }
}

/// Per-element steps. `element_ok(x_i, y_i, s_i)` checks one element's optimality for its own
/// (nonzero) step s_i; an element with step 0 must come back bit for bit. Generates every shape
/// and the contiguous and reversed layouts.
template <class P, class T, class ElementCheck>
void check_per_element_steps(unsigned seed, double lambda, ElementCheck element_ok, count_checks counts = {}) {
  const auto shape = GENERATE(from_range(separable_shapes));
  const auto lay = GENERATE(layout::contiguous, layout::reversed);
  CAPTURE(shape, layout_name(lay));
  std::mt19937 rng(seed);
  const std::size_t n = product(shape);
  tensor<T> x(shape, lay);
  const auto xv = random_grouped_values<T>(singletons(n), n, rng);
  x.assign(xv);

  SECTION("equal steps give the scalar-step prox, bit for bit") {
    for (const float s : {0.0f, 0.1f, 0.7f, 1.0f, 2.3f}) {
      CAPTURE(s);
      tensor<T> steps(shape, lay);
      steps.assign(std::vector<T>(n, static_cast<T>(s)));
      tensor<T> y1(shape, lay), y2(shape, lay);
      const auto r1 = sparsereg::prox(P(lambda), x.cview(), y1.view(), steps.cview());
      const auto r2 = sparsereg::prox(P(lambda), x.cview(), y2.view(), static_cast<double>(static_cast<T>(s)));
      CHECK(bitwise_equal(y1.values(), y2.values()));
      CHECK(r1.value == r2.value);
      if (counts.equal_steps_zero_elements) CHECK(r1.zero_elements == r2.zero_elements);
    }
  }
  SECTION("different steps: each element is optimal for its own step; step 0 keeps it exactly") {
    std::uniform_real_distribution<float> u(0.0f, 3.0f);
    std::vector<T> sv(n);
    for (std::size_t i = 0; i < n; ++i) sv[i] = i % 7 == 3 ? T(0) : static_cast<T>(u(rng));
    tensor<T> steps(shape, lay);
    steps.assign(sv);
    tensor<T> y(shape, layout::contiguous);
    const auto r = sparsereg::prox(P(lambda), x.cview(), y.view(), steps.cview());
    const auto yv = y.values();
    for (std::size_t i = 0; i < n; ++i) {
      CAPTURE(i, xv[i], sv[i], yv[i]);
      if (sv[i] == T(0)) {
        CHECK(bitwise_equal(yv[i], xv[i]));
        continue;
      }
      element_ok(xv[i], yv[i], sv[i]);
    }
    if (counts.steps_zero_elements) CHECK(r.zero_elements == zero_count(yv));
  }
}

/// Nonexpansiveness: ||prox(a) - prox(b)|| <= ||a - b|| for P(0.3), step 0.7, 20 random pairs of
/// 60 elements (b = a + noise of scale 1 or 0.01). The slack is 2 sqrt(n) element tolerances of
/// scale max|x| + `extra_scale`.
template <class P, class T>
void check_nonexpansive(unsigned seed, ld extra_scale) {
  std::mt19937 rng(seed);
  const std::size_t n = 60;
  check_nonexpansive_trials<T>(P(0.3), {n}, singletons(n), rng, 20, 0.7, 1, extra_scale);
}

/// 50 random elements, element 17 set to NaN: value and prox value are NaN, the prox and the
/// gradient are NaN at 17 and bit-for-bit unchanged elsewhere (P(lambda), step 1).
template <class P, class T>
void check_nan_stays_in_its_element(unsigned seed, double lambda) {
  std::mt19937 rng(seed);
  const std::size_t n = 50;
  auto x = random_grouped_values<T>(singletons(n), n, rng);
  std::vector<T> clean(n), g_clean(n, T(0));
  sparsereg::prox(P(lambda), x, clean, 1.0);
  sparsereg::add_gradient(P(lambda), x, g_clean);
  x[17] = std::numeric_limits<T>::quiet_NaN();
  CHECK(std::isnan(sparsereg::value(P(lambda), x)));
  std::vector<T> y(n), g(n, T(0));
  CHECK(std::isnan(sparsereg::prox(P(lambda), x, y, 1.0).value));
  sparsereg::add_gradient(P(lambda), x, g);
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
}

/// The gradient of P(lambda) at 40 doubles with |w_i| in [lo, hi] (random signs) matches central
/// differences with h = 1e-6 to relative error 1e-6 (norm of the difference over norm of the sum).
template <class P>
void check_gradient_matches_central_differences(unsigned seed, float lo, float hi, double lambda) {
  std::mt19937 rng(seed);
  const std::size_t n = 40;
  const auto x = random_away_from_zero<double>(n, lo, hi, rng);
  CHECK(central_difference_error(P(lambda), x, {n}, 1e-6) < 1e-6);
}

}  // namespace sparsereg_test
