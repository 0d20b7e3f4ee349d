#include <catch2/catch.hpp>

#include <sparsereg/analysis/report.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

using sparsereg::view;

TEMPLATE_TEST_CASE("zero_slices finds all-zero filters and input channels of an OIHW tensor", "[analysis]", float,
                   double) {
  // 3 filters x 2 input channels x 2 x 2
  std::vector<TestType> w(3 * 2 * 2 * 2, TestType(1));
  // filter 1 entirely zero
  for (std::size_t i = 0; i < 8; ++i) w[8 + i] = 0;
  // input channel 0 zero in every filter
  for (std::size_t o = 0; o < 3; ++o)
    for (std::size_t k = 0; k < 4; ++k) w[o * 8 + k] = 0;
  view<const TestType> v(w.data(), {3, 2, 2, 2});
  CHECK(sparsereg::zero_slices(v, 0) == std::vector<bool>{false, true, false});
  CHECK(sparsereg::zero_slices(v, 1) == std::vector<bool>{true, false});
  CHECK(sparsereg::count_zero_slices(v, 0) == 1);
  CHECK(sparsereg::count_zeros(v) == 8 + 8);
  CHECK(sparsereg::sparsity(v).fraction() == Approx(16.0 / 24.0));
  CHECK_THROWS_AS(sparsereg::zero_slices(v, 4), std::invalid_argument);
}

TEST_CASE("zero_slices follows strides (column-major matrix)", "[analysis]") {
  // 2 x 3 matrix stored column-major: element (r, c) at r + 2c.
  std::vector<float> m{1, 0, 0, 0, 2, 0};  // column 0 = (1,0), column 1 = (0,0), column 2 = (2,0)
  view<float> v(m.data(), {2, 3}, {1, 2});
  CHECK(sparsereg::zero_slices(v, 1) == std::vector<bool>{false, true, false});
  CHECK(sparsereg::zero_slices(v, 0) == std::vector<bool>{false, true});
}

TEST_CASE("NaN never makes a slice look zero", "[analysis]") {
  std::vector<float> m{0, std::numeric_limits<float>::quiet_NaN(), 0, 0};
  view<float> v(m.data(), {2, 2});
  CHECK(sparsereg::zero_slices(v, 0) == std::vector<bool>{false, true});
  CHECK(sparsereg::count_zeros(v) == 3);
}

TEST_CASE("zero_slices: the contiguous early-exit scan agrees with an element-by-element reference", "[analysis]") {
  // 7 filters x 3 x 2 x 2 (12 elements each); filter j has its only non-zero at position pos[j]
  // (-1: none), so the scan must find non-zeros at the first, middle and last element, and NaN.
  const std::size_t O = 7, len = 12;
  const int pos[O] = {0, -1, 11, 5, -1, 1, 10};
  std::vector<float> w(O * len, 0.f);
  for (std::size_t j = 0; j < O; ++j)
    if (pos[j] >= 0) w[j * len + static_cast<std::size_t>(pos[j])] = (j == 6) ? std::numeric_limits<float>::quiet_NaN() : -0.5f;
  w[1 * len + 3] = -0.0f;  // negative zero is zero
  std::vector<bool> expected(O);
  for (std::size_t j = 0; j < O; ++j) {
    bool zero = true;
    for (std::size_t k = 0; k < len; ++k) zero = zero && w[j * len + k] == 0.f;
    expected[j] = zero;
  }
  CHECK(expected == std::vector<bool>{false, true, false, false, true, false, false});
  CHECK(sparsereg::zero_slices(view<const float>(w.data(), {O, 3, 2, 2}), 0) == expected);
  // The same elements seen through a strided (non-contiguous) view take the general path: equal.
  std::vector<float> padded(O * len * 2, 1.f);
  for (std::size_t i = 0; i < w.size(); ++i) padded[2 * i] = w[i];
  const view<const float> strided(padded.data(), {O, 3, 2, 2}, {24, 8, 4, 2});
  CHECK_FALSE(strided.is_contiguous());
  CHECK(sparsereg::zero_slices(strided, 0) == expected);
  // Zero-size tensors: every slice of an empty extent is (vacuously) zero, no slices at all.
  CHECK(sparsereg::zero_slices(view<const float>(w.data(), {3, 0}), 0) == std::vector<bool>{true, true, true});
  CHECK(sparsereg::zero_slices(view<const float>(w.data(), {0, 4}), 0).empty());
}

TEMPLATE_TEST_CASE("zero_slices: long slices (the blockwise bit test) agree with an element-by-element reference",
                   "[analysis]", float, double) {
  // Slices of 100 elements: three blocks of 32 and a tail of 4. Each slice holds one special value
  // at one position (first / last element of a block, the tail); -0 must count as zero, NaN,
  // infinity, the smallest subnormals of either sign and -2 (sign and top exponent bit only) as
  // non-zero.
  using L = std::numeric_limits<TestType>;
  const std::size_t len = 100;
  const std::size_t positions[] = {0, 31, 32, 63, 64, 95, 96, 99};
  const TestType values[] = {TestType(1), TestType(-2), -TestType(0), L::quiet_NaN(), L::infinity(), L::denorm_min(),
                             -L::denorm_min()};
  std::vector<TestType> w;
  std::vector<bool> expected;
  for (std::size_t q : positions)
    for (TestType x : values) {
      const std::size_t start = w.size();
      w.resize(start + len, TestType(0));
      w[start + q] = x;
      bool zero = true;
      for (std::size_t k = 0; k < len; ++k) zero = zero && w[start + k] == TestType(0);
      expected.push_back(zero);
    }
  w.resize(w.size() + len, TestType(0));  // one all-zero slice
  expected.push_back(true);
  const std::size_t O = expected.size();
  REQUIRE(std::count(expected.begin(), expected.end(), true) == 9);  // the eight -0 slices and the zero one
  CHECK(sparsereg::zero_slices(view<const TestType>(w.data(), {O, 4, 25}), 0) == expected);
  CHECK(sparsereg::zero_slices(view<const TestType>(w.data(), {O, len}), 0) == expected);
  // The strided general path on the same elements: equal.
  std::vector<TestType> padded(w.size() * 2, TestType(1));
  for (std::size_t i = 0; i < w.size(); ++i) padded[2 * i] = w[i];
  const view<const TestType> strided(padded.data(), {O, len}, {static_cast<std::ptrdiff_t>(2 * len), 2});
  CHECK(sparsereg::zero_slices(strided, 0) == expected);
}

TEST_CASE("layer reports add up", "[analysis]") {
  sparsereg::layer_report a, b;
  a.params_before = 100;
  a.params_after = 10;
  b.params_before = 100;
  b.params_after = 90;
  b.collapsed = true;
  const auto t = sparsereg::total_of({a, b});
  CHECK(t.params_before == 200);
  CHECK(t.params_after == 100);
  CHECK(t.collapsed);
  CHECK(a.removed_fraction() == Approx(0.9));
}
