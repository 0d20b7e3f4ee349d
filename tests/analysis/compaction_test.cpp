#include <catch2/catch.hpp>

#include <sparsereg/analysis/compaction.hpp>

#include <numeric>
#include <stdexcept>
#include <vector>

using sparsereg::view;

TEST_CASE("kept_indices keeps the non-removable indices and one unit of a collapsed layer", "[analysis]") {
  CHECK(sparsereg::kept_indices({false, true, false}) == std::vector<std::size_t>{0, 2});
  CHECK(sparsereg::kept_indices({true, true, true}) == std::vector<std::size_t>{0});
  CHECK(sparsereg::kept_indices({true, true, true}, true, 2) == std::vector<std::size_t>{2});
  CHECK(sparsereg::kept_indices({true, true}, false).empty());
  CHECK_THROWS_AS(sparsereg::kept_indices({true, true}, true, 5), std::invalid_argument);
}

TEMPLATE_TEST_CASE("gather_slices copies the kept slices along any axis", "[analysis]", float, double) {
  std::vector<TestType> src(2 * 3 * 4);
  std::iota(src.begin(), src.end(), TestType(0));
  view<const TestType> s(src.data(), {2, 3, 4});
  const std::size_t axis = GENERATE(0u, 1u, 2u);
  const std::vector<std::size_t> keep{1};
  std::vector<std::size_t> shape{2, 3, 4};
  shape[axis] = keep.size();
  std::vector<TestType> dst(shape[0] * shape[1] * shape[2]);
  sparsereg::gather_slices(s, axis, keep, view<TestType>(dst.data(), shape));
  std::size_t k = 0;
  for (std::size_t a = 0; a < shape[0]; ++a)
    for (std::size_t b = 0; b < shape[1]; ++b)
      for (std::size_t c = 0; c < shape[2]; ++c) {
        std::size_t i[3] = {a, b, c};
        i[axis] = keep[i[axis]];
        CHECK(dst[k++] == s(i[0], i[1], i[2]));
      }
}

TEST_CASE("gather_slices validates shapes and indices", "[analysis]") {
  std::vector<float> src(6), dst(4);
  view<const float> s(src.data(), {2, 3});
  CHECK_THROWS_AS(sparsereg::gather_slices(s, 1, {0, 1}, view<float>(dst.data(), {2, 3})), std::invalid_argument);
  CHECK_THROWS_AS(sparsereg::gather_slices(s, 1, {0, 7}, view<float>(dst.data(), {2, 2})), std::invalid_argument);
  CHECK_THROWS_AS(sparsereg::gather_slices(s, 2, {0}, view<float>(dst.data(), {2, 1})), std::invalid_argument);
  CHECK_NOTHROW(sparsereg::gather_slices(s, 1, {0, 2}, view<float>(dst.data(), {2, 2})));
}

TEST_CASE("gather_block drops filters and input channels together", "[analysis]") {
  // 3 x 2 x 2 (O x I x K)
  std::vector<float> src(12);
  std::iota(src.begin(), src.end(), 0.f);
  std::vector<float> dst(2 * 1 * 2);
  sparsereg::gather_block(view<const float>(src.data(), {3, 2, 2}), {{0, 2}, {1}, {}}, view<float>(dst.data(), {2, 1, 2}));
  CHECK(dst == std::vector<float>{2, 3, 10, 11});
}

TEST_CASE("gather_block: an empty kept list keeps no index, never the whole axis", "[analysis]") {
  // A layer whose three units all became removable, kept with keep_at_least_one = false.
  std::vector<float> src(3 * 2);
  std::iota(src.begin(), src.end(), 1.f);
  const auto none = sparsereg::kept_indices({true, true, true}, false);
  REQUIRE(none.empty());
  const sparsereg::axis_keep rows = none;
  CHECK_FALSE(rows.whole());
  CHECK(rows.extent(3) == 0);
  // dst sized by the kept list (0 x 2) is accepted and nothing is written or read.
  std::vector<float> empty_dst;
  CHECK_NOTHROW(sparsereg::gather_block(view<const float>(src.data(), {3, 2}), {none, {}},
                                        view<float>(empty_dst.data(), {0, 2})));
  // dst sized as the whole axis is a mismatch, reported as such (the old reading copied all rows).
  std::vector<float> full_dst(6, -1.f);
  try {
    sparsereg::gather_block(view<const float>(src.data(), {3, 2}), {none, {}}, view<float>(full_dst.data(), {3, 2}));
    FAIL("a whole-axis dst was accepted for an empty kept list");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(e.what(), Catch::Contains("dst extent(0) must be 0, got 3"));
  }
  CHECK(full_dst == std::vector<float>(6, -1.f));
  // `{}` and axis_keep::all() keep the whole axis.
  std::vector<float> dst(2 * 2);
  sparsereg::gather_block(view<const float>(src.data(), {3, 2}), {{0, 2}, sparsereg::axis_keep::all()},
                          view<float>(dst.data(), {2, 2}));
  CHECK(dst == std::vector<float>{1, 2, 5, 6});
}

TEST_CASE("gather_block names both ranks when they differ", "[analysis]") {
  std::vector<float> src(6), dst(6);
  try {
    sparsereg::gather_block(view<const float>(src.data(), {3, 2}), {{}, {}}, view<float>(dst.data(), {6}));
    FAIL("a rank mismatch was accepted");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(e.what(), Catch::Contains("dst rank 1 differs from src rank 2"));
  }
}
