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
