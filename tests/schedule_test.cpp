// schedule: the factor multiplying a penalty's lambda at a given step.
#include <sparsereg/schedule.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <limits>
#include <stdexcept>

using sparsereg::schedule;

TEST_CASE("schedule: constant is the same at every step") {
  const schedule one;
  const schedule c = schedule::constant(0.25);
  for (std::size_t t : {0u, 1u, 7u, 1000000u}) {
    CHECK(one(t) == 1.0);
    CHECK(c(t) == 0.25);
  }
  CHECK(one.is_identity());
  CHECK_FALSE(c.is_identity());
  CHECK_THROWS_AS(schedule::constant(-1.0), std::invalid_argument);
  CHECK_THROWS_AS(schedule::constant(std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
}

TEST_CASE("schedule: linear warm-up ramps (t + 1) / n up to 1") {
  const schedule s = schedule::linear_warmup(4);
  CHECK(s(0) == 0.25);
  CHECK(s(1) == 0.5);
  CHECK(s(2) == 0.75);
  CHECK(s(3) == 1.0);
  CHECK(s(4) == 1.0);
  CHECK(s(100000) == 1.0);
  // Monotone non-decreasing and never above 1.
  const schedule l = schedule::linear_warmup(1000);
  for (std::size_t t = 0; t + 1 < 1200; ++t) {
    REQUIRE(l(t) <= l(t + 1));
    REQUIRE(l(t) <= 1.0);
  }
  CHECK(l(499) == Approx(0.5));
  CHECK(schedule::linear_warmup(0)(0) == 1.0);
  CHECK(schedule::linear_warmup(1)(0) == 1.0);
}

TEST_CASE("schedule: step decay multiplies by the factor every `every` steps") {
  const schedule s = schedule::step_decay(10, 0.5);
  CHECK(s(0) == 1.0);
  CHECK(s(9) == 1.0);
  CHECK(s(10) == 0.5);
  CHECK(s(19) == 0.5);
  CHECK(s(20) == 0.25);
  CHECK(s(35) == 0.125);
  CHECK_THROWS_WITH(schedule::step_decay(0, 0.5), Catch::Contains("every"));
  CHECK_THROWS_WITH(schedule::step_decay(5, -0.5), Catch::Contains("factor"));
}

TEST_CASE("schedule: products and custom functions") {
  const schedule s = schedule::linear_warmup(2) * schedule::step_decay(3, 0.1);
  CHECK(s(0) == 0.5);
  CHECK(s(1) == 1.0);
  CHECK(s(3) == Approx(0.1));
  CHECK(s(6) == Approx(0.01));
  // Multiplying by the identity returns the other schedule unchanged.
  const schedule w = schedule::linear_warmup(4) * schedule();
  CHECK(w(0) == 0.25);

  const schedule c = schedule::custom([](std::size_t t) { return t < 5 ? 0.0 : 2.0; });
  CHECK(c(4) == 0.0);
  CHECK(c(5) == 2.0);
  const schedule bad = schedule::custom([](std::size_t t) { return t == 3 ? -1.0 : 1.0; });
  CHECK(bad(2) == 1.0);
  CHECK_THROWS_WITH(bad(3), Catch::Contains("step 3"));
  CHECK_THROWS_AS(schedule::custom({}), std::invalid_argument);
}

TEST_CASE("schedule: an overflowing step decay throws naming step_decay, the step and the factor") {
  const schedule s = schedule::step_decay(1, 10.0);
  CHECK(s(308) == 1e308);  // still finite: no saturation or error below the overflow
  CHECK_THROWS_AS(s(309), std::invalid_argument);
  CHECK_THROWS_WITH(s(400), Catch::Contains("schedule::step_decay") && Catch::Contains("step 400") &&
                                Catch::Contains("factor 10"));
  // Decaying factors underflow to 0, which is a valid factor.
  CHECK(schedule::step_decay(1, 0.1)(400) == 0.0);
}

TEST_CASE("schedule: a product reports itself, and its operands report themselves") {
  // Each operand finite, the product not: named as a product, not as a custom schedule.
  const schedule big = schedule::constant(1e200) * schedule::constant(1e200);
  CHECK_THROWS_WITH(big(0), Catch::Contains("schedule::operator*") && Catch::Contains("product") &&
                                Catch::Contains("step 0") && !Catch::Contains("custom"));
  // inf * 0 would be NaN: the overflowing operand throws first, under its own name.
  const schedule p = schedule::step_decay(1, 10.0) * schedule::constant(0.0);
  CHECK_THROWS_WITH(p(400), Catch::Contains("schedule::step_decay") && !Catch::Contains("custom"));
  const schedule q = schedule::custom([](std::size_t) { return -1.0; }) * schedule::constant(2.0);
  CHECK_THROWS_WITH(q(7), Catch::Contains("custom schedule returned") && Catch::Contains("step 7"));
  CHECK(p(3) == 0.0);
}

TEST_CASE("schedule: linear warm-up at the largest step is 1 (no wrap-around)") {
  const std::size_t last = std::numeric_limits<std::size_t>::max();
  CHECK(schedule::linear_warmup(1000)(last) == 1.0);
  CHECK(schedule::linear_warmup(1000)(last - 1) == 1.0);
  CHECK(schedule::linear_warmup(1)(last) == 1.0);
  CHECK(schedule::linear_warmup(last)(last - 1) == 1.0);
  CHECK(schedule::linear_warmup(last)(0) == 1.0 / static_cast<double>(last));
}
