// Property tests of l1 (include/sparsereg/penalties/l1.hpp): prox optimality, Moreau
// decomposition, agreement with a bisection reference, reported result, nonexpansiveness, exact
// identities, per-element steps, golden values, finite-difference gradient, kinks, NaN, zero size.
// Tolerance model: tests/support/reference.hpp (prox_tolerance), with groups of one element.
#include <catch2/catch.hpp>

#include <sparsereg/penalties/l1.hpp>

#if defined(SPARSEREG_TEST_VECTOR_WIDTH)
#if !defined(SPARSEREG_VECTOR_LANES)
#error "built to test the vector forms of detail/sweep.hpp, but they are not selected for this target"
#else
static_assert(sparsereg::detail::vec::width == SPARSEREG_TEST_VECTOR_WIDTH,
              "built to test the vector forms of detail/sweep.hpp at another width than this target selects");
#endif
#endif

#include <support/reference.hpp>
#include <support/separable.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace sparsereg_test;
using sparsereg::l1;

TEMPLATE_TEST_CASE("l1 prox: optimality, Moreau decomposition, reference, reported result", "[l1][prox]", float,
                   double) {
  using T = TestType;
  const auto shape = GENERATE(from_range(separable_shapes));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  const double step = GENERATE(0.25, 1.0, 3.0);
  const double lambda = GENERATE(0.05, 0.4);
  CAPTURE(shape, layout_name(lay), step, lambda);
  std::mt19937 rng(101u + static_cast<unsigned>(product(shape)));
  const std::size_t n = product(shape);
  const auto members = singletons(n);
  tensor<T> x(shape, lay);
  const auto xv = random_grouped_values<T>(members, n, rng);
  x.assign(xv);
  tensor<T> y(shape, lay == layout::reversed ? layout::padded : layout::reversed);
  const auto r = sparsereg::prox(l1(lambda), x.cview(), y.view(), step);
  const auto yv = y.values();
  CHECK(bitwise_equal(x.values(), xv));
  CHECK(y.touched_padding() == 0);

  // 1. Optimality: (x - y)/step in lambda * d|y| (groups of one element, no group term).
  const std::vector<ld> no_weights(n, 0);
  const auto opt = check_sgl_optimality(xv, yv, step, 0, lambda, members, no_weights);
  INFO(opt.detail);
  CHECK(opt.ok);

  // 2. Moreau: x = prox_{step R}(x) + step * P(x/step), P = projection onto the dual ball
  // [-lambda, lambda] (the conjugate of lambda|.| is its indicator).
  for (std::size_t i = 0; i < n; ++i) {
    const ld xi = static_cast<ld>(xv[i]);
    const ld proj = std::min<ld>(std::max<ld>(xi / step, -lambda), lambda);
    const ld tol = prox_tolerance<T>(1, std::fabs(xi) + step * lambda);
    CHECK(std::fabs(xi - (static_cast<ld>(yv[i]) + step * proj)) <= tol);
  }

  // 3. Reference: bisection on the subdifferential, in long double.
  for (std::size_t i = 0; i < n; ++i) {
    const ld ref = ref_prox_l1(static_cast<ld>(xv[i]), step * lambda);
    CHECK(std::fabs(static_cast<ld>(yv[i]) - ref) <= prox_tolerance<T>(1, std::fabs(static_cast<ld>(xv[i])) + step * lambda));
  }

  // 4. Reported value and counts. Both values sum the same |y_i| in double, possibly in another
  // order (x and y have different layouts): n * 2^-53 relative covers any summation order.
  const double v = sparsereg::value(l1(lambda), y.cview());
  const ld ref_value = ref_l1_value(lambda, yv);
  const ld vtol = static_cast<ld>(n) * std::numeric_limits<double>::epsilon() * ref_value;
  CHECK(std::fabs(r.value - v) <= vtol);
  CHECK(std::fabs(static_cast<ld>(v) - ref_value) <= vtol);
  CHECK(r.zero_elements == zero_count(yv));
  CHECK(r.zero_groups == 0);
  CHECK(r.groups == 0);
}

TEMPLATE_TEST_CASE("l1 prox is nonexpansive", "[l1][prox]", float, double) {
  check_nonexpansive<l1, TestType>(202, 0.21L);
}

TEMPLATE_TEST_CASE("l1 prox: step 0, lambda 0 and in place are exact", "[l1][prox]", float, double) {
  check_exact_identities<l1, TestType>(303, 0.3, {/*in_place_zero_elements=*/true, false, false});
}

TEMPLATE_TEST_CASE("l1 prox with per-element steps", "[l1][prox][steps]", float, double) {
  using T = TestType;
  const double lambda = 0.35;
  check_per_element_steps<l1, T>(
      404, lambda,
      [lambda](T x, T y, T s) {
        const auto one = check_sgl_optimality(std::vector<T>{x}, std::vector<T>{y}, static_cast<ld>(s), 0, lambda,
                                              singletons(1), std::vector<ld>{0});
        INFO(one.detail);
        CHECK(one.ok);
      },
      {/*in_place_zero_elements=*/false, /*equal_steps_zero_elements=*/true, /*steps_zero_elements=*/true});
}

TEMPLATE_TEST_CASE("l1 prox with per-element steps: contiguous runs give the bits of strided ones", "[l1][prox][steps]",
                   float, double) {
  // Contiguous float runs take vector lanes (detail::steps_soft_threshold_lane_sum_zeros), strided
  // ones the element loop: outputs, value and zero count must agree bit for bit at every length
  // (whole blocks of 32 and tails), with zero steps (identity, -0.0 kept), thresholds that
  // underflow to subnormals or overflow to infinity when rounded to T, and NaN / +-inf / +-0 inputs.
  using T = TestType;
  std::mt19937 rng(909u);
  std::normal_distribution<double> z(0.0, 1.0);
  std::uniform_real_distribution<double> u(0.0, 3.0);
  const double lambda = 0.35;
  const T specials[] = {T(0), T(-0.0), std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                        -std::numeric_limits<T>::infinity(), T(-1e-3)};
  const T odd_steps[] = {T(0), std::numeric_limits<T>::denorm_min(), std::numeric_limits<T>::max(), T(1e-40)};
  for (std::size_t n : {1u, 5u, 31u, 32u, 33u, 64u, 100u, 517u, 1029u}) {
    CAPTURE(n);
    std::vector<T> x(n), s(n);
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = static_cast<T>(z(rng));
      s[i] = i % 5 == 2 ? T(0) : static_cast<T>(u(rng));
    }
    for (std::size_t i = 0; i < n; i += 7) x[i] = specials[(i / 7) % 6];
    for (std::size_t i = 3; i < n; i += 11) s[i] = odd_steps[(i / 11) % 4];
    std::vector<T> xs(2 * n, T(9)), ss(2 * n, T(9)), ys(2 * n, T(9)), yc(n, T(9));
    for (std::size_t i = 0; i < n; ++i) {
      xs[2 * i] = x[i];
      ss[2 * i] = s[i];
    }
    const auto stride2 = [&](T* p) { return sparsereg::view<T>(p, {n}, {2}); };
    const auto contiguous =
        sparsereg::prox(l1(lambda), sparsereg::view<const T>(x.data(), {n}), sparsereg::view<T>(yc.data(), {n}),
                        sparsereg::view<const T>(s.data(), {n}));
    const auto strided = sparsereg::prox(l1(lambda), sparsereg::view<const T>(stride2(xs.data())), stride2(ys.data()),
                                         sparsereg::view<const T>(stride2(ss.data())));
    std::size_t differ = 0;
    for (std::size_t i = 0; i < n; ++i) differ += !bitwise_equal(yc[i], ys[2 * i]);
    CHECK(differ == 0);
    CHECK(bitwise_equal(contiguous.value, strided.value));
    CHECK(contiguous.zero_elements == strided.zero_elements);
    CHECK(contiguous.zero_elements == zero_count(yc));
    std::size_t moved = 0;  // the zero steps: x itself
    for (std::size_t i = 0; i < n; ++i) moved += s[i] == T(0) && !bitwise_equal(yc[i], x[i]);
    CHECK(moved == 0);
  }
}

TEMPLATE_TEST_CASE("l1 golden values on a 3x4 tensor", "[l1][golden]", float, double) {
  using T = TestType;
  // x[f] = ((7 f) mod 11 - 5)/4, lambda = 0.5:
  //   sum |x| = 1.25+0.5+0.5+1.25+0.25+0.75+1+0+1+0.75+0.25+1.25 = 8.75 -> value 4.375
  //   gradient = 0.5 sign(x) (0 at the zero)
  //   prox, step 1: threshold 0.5 -> |y| = max(|x| - 0.5, 0); value 0.5 * 3.75 = 1.875, 5 zeros.
  std::vector<T> x{-1.25, 0.5, -0.5, 1.25, 0.25, -0.75, 1.0, 0, -1.0, 0.75, -0.25, -1.25};
  const sparsereg::view<const T> xv(x.data(), {3, 4});
  CHECK(sparsereg::value(l1(0.5), xv) == 4.375);
  std::vector<T> g(12, T(0));
  sparsereg::add_gradient(l1(0.5), xv, sparsereg::view<T>(g.data(), {3, 4}));
  CHECK(g == std::vector<T>{-0.5, 0.5, -0.5, 0.5, 0.5, -0.5, 0.5, 0, -0.5, 0.5, -0.5, -0.5});
  std::vector<T> y(12);
  const auto r = sparsereg::prox(l1(0.5), xv, sparsereg::view<T>(y.data(), {3, 4}), 1.0);
  CHECK(y == std::vector<T>{-0.75, 0, 0, 0.75, 0, -0.25, 0.5, 0, -0.5, 0.25, 0, -0.75});
  CHECK(r.value == 1.875);
  CHECK(r.zero_elements == 5);
}

TEST_CASE("l1 gradient matches central finite differences away from zero", "[l1][gradient]") {
  // |w_i| >= 0.1 and h = 1e-6: l1 is linear between kinks, so the only error is rounding,
  // eps |R| / h <= 1e-8 for |R| <= 50; relative error 1e-6 is generous and catches any wrong sign.
  check_gradient_matches_central_differences<l1>(505, 0.1f, 1.0f, 0.8);
}

TEMPLATE_TEST_CASE("l1 gradient at zero is exactly 0 and accumulates", "[l1][gradient]", float, double) {
  using T = TestType;
  std::vector<T> w{0, T(-0.0), 2, -3};
  std::vector<T> g{1, 1, 1, 1};
  sparsereg::add_gradient(l1(0.25), w, g);
  CHECK(g == std::vector<T>{1, 1, 1.25, 0.75});
  std::vector<T> z(5, T(0)), gz(5, T(0));
  sparsereg::add_gradient(l1(0.25), z, gz);
  for (T v : gz) CHECK(bitwise_equal(v, T(0)));
}

TEMPLATE_TEST_CASE("l1: NaN stays in its element, zero-size is a no-op", "[l1][nan]", float, double) {
  using T = TestType;
  check_nan_stays_in_its_element<l1, T>(606, 0.2);

  T cell = T(5), other = T(7);
  const sparsereg::view<T> e(&cell, {3, 0, 2});
  CHECK(sparsereg::value(l1(0.2), e) == 0.0);
  const auto r = sparsereg::prox(l1(0.2), e, e, 1.0);
  CHECK(r.value == 0.0);
  CHECK(r.zero_elements == 0);
  sparsereg::add_gradient(l1(0.2), e, sparsereg::view<T>(&other, {3, 0, 2}));
  sparsereg::prox(l1(0.2), e, e, sparsereg::view<const T>(&other, {3, 0, 2}));
  CHECK(cell == T(5));
  CHECK(other == T(7));
}

TEMPLATE_TEST_CASE("l1 prox without_stats writes the prox's output bit for bit", "[l1][prox]", float, double) {
  using T = TestType;
  const auto shape = GENERATE(from_range(separable_shapes));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  const double step = GENERATE(0.0, 1.0);
  CAPTURE(shape, layout_name(lay), step);
  std::mt19937 rng(707u + static_cast<unsigned>(product(shape)));
  const std::size_t n = product(shape);
  auto xv = random_grouped_values<T>(singletons(n), n, rng);
  // The special values: signed zeros, a NaN of each sign, infinities.
  const T specials[] = {T(0), T(-0.0), std::numeric_limits<T>::quiet_NaN(), -std::numeric_limits<T>::quiet_NaN(),
                        std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity()};
  for (std::size_t i = 0; i < n && i < 6; ++i) xv[(i * 7919) % n] = specials[i];
  tensor<T> x(shape, lay);
  x.assign(xv);
  const auto other = lay == layout::reversed ? layout::padded : layout::reversed;
  // Out of place into another layout, and in place.
  tensor<T> with(shape, other), without(shape, other);
  sparsereg::prox(l1(0.3), x.cview(), with.view(), step);
  sparsereg::prox(l1(0.3), x.cview(), without.view(), step, sparsereg::without_stats);
  CHECK(bitwise_equal(with.values(), without.values()));
  CHECK(without.touched_padding() == 0);
  CHECK(bitwise_equal(x.values(), xv));
  tensor<T> a = x, b = x;
  sparsereg::prox(l1(0.3), a.cview(), a.view(), step);
  sparsereg::prox(l1(0.3), b.cview(), b.view(), step, sparsereg::without_stats);
  CHECK(bitwise_equal(a.values(), b.values()));
}

TEST_CASE("prox without_stats checks its arguments like prox", "[l1][prox]") {
  std::vector<float> x{1.0f, -2.0f, 0.5f, 0.0f}, y(4, 9.0f), short_y(3, 9.0f);
  CHECK_THROWS_WITH(sparsereg::prox(l1(0.1), x, y, -1.0, sparsereg::without_stats), Catch::Contains("step"));
  CHECK_THROWS_AS(sparsereg::prox(l1(0.1), x, short_y, 1.0, sparsereg::without_stats), std::invalid_argument);
  CHECK(y == std::vector<float>(4, 9.0f));
  CHECK(short_y == std::vector<float>(3, 9.0f));
  sparsereg::prox(l1(0.5), x, y, 1.0, sparsereg::without_stats);
  CHECK(y == std::vector<float>{0.5f, -1.5f, 0.0f, 0.0f});
}
