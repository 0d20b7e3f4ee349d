// Bad input: every rejected argument throws std::invalid_argument whose message names the
// function, the argument and the offending value, and nothing the call could write is modified.
#include <catch2/catch.hpp>

#include <sparsereg/penalties/group_lasso.hpp>
#include <sparsereg/penalties/hard_threshold.hpp>
#include <sparsereg/penalties/l1.hpp>
#include <sparsereg/penalties/sparse_group_lasso.hpp>
#include <sparsereg/penalties/squared_l2.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

using Catch::Matchers::Contains;
using sparsereg::view;
namespace groups = sparsereg::groups;
using sparsereg::grouping;

namespace {
const double nan_v = std::numeric_limits<double>::quiet_NaN();
const double inf_v = std::numeric_limits<double>::infinity();

std::vector<float> iota_values(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) - 5.5f;
  return v;
}
}  // namespace

TEST_CASE("shape mismatches name both shapes and write nothing", "[errors]") {
  auto x = iota_values(6);
  std::vector<float> y(6, 42.0f);
  const view<const float> xv(x.data(), {2, 3});
  const view<float> yv(y.data(), {3, 2});
  REQUIRE_THROWS_MATCHES(sparsereg::prox(sparsereg::l1(0.1), xv, yv, 1.0), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::prox: y has shape [3x2] but x has shape [2x3]"));
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::group_lasso(0.1, groups::whole()), xv, yv, 1.0),
                      Contains("prox") && Contains("y has shape [3x2]") && Contains("[2x3]"));
  REQUIRE_THROWS_WITH(sparsereg::add_gradient(sparsereg::squared_l2(0.1), xv, yv),
                      Contains("add_gradient") && Contains("g has shape [3x2]") && Contains("w has shape [2x3]"));
  std::vector<float> steps(6, 1.0f);
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::l1(0.1), xv, view<float>(y.data(), {2, 3}),
                                      view<const float>(steps.data(), {6})),
                      Contains("prox") && Contains("steps has shape [6]") && Contains("x has shape [2x3]"));
  // Same element count, different rank.
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::l1(0.1), xv, view<float>(y.data(), {6}), 1.0),
                      Contains("y has shape [6]"));
  CHECK(y == std::vector<float>(6, 42.0f));
  CHECK(x == iota_values(6));
}

TEST_CASE("groupings that do not fit the tensor are rejected before anything is written", "[errors][groups]") {
  auto x = iota_values(12);
  std::vector<float> y(12, 42.0f);
  const view<const float> xv(x.data(), {3, 4});
  const view<float> yv(y.data(), {3, 4});
  SECTION("rank mismatch") {
    const sparsereg::group_lasso p(0.1, groups::filters());
    REQUIRE_THROWS_WITH(sparsereg::prox(p, xv, yv, 1.0),
                        Contains("prox") && Contains("rank-4") && Contains("got rank 2"));
    REQUIRE_THROWS_WITH(sparsereg::value(p, xv), Contains("value") && Contains("got rank 2"));
    REQUIRE_THROWS_WITH(sparsereg::add_gradient(p, xv, yv), Contains("add_gradient") && Contains("got rank 2"));
  }
  SECTION("axis beyond the tensor's rank (rank-free grouping)") {
    const sparsereg::sparse_group_lasso p(0.1, 0.1, grouping::by_axes({2}));
    REQUIRE_THROWS_WITH(sparsereg::prox(p, xv, yv, 1.0),
                        Contains("prox") && Contains("axis 2") && Contains("rank-2"));
  }
  SECTION("explicit index out of range") {
    const sparsereg::group_lasso p(0.1, grouping::from_lists({{0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 10, 12}}));
    REQUIRE_THROWS_WITH(sparsereg::prox(p, xv, yv, 1.0),
                        Contains("prox") && Contains("index 12") && Contains("12 elements"));
  }
  SECTION("explicit groups that do not cover the tensor") {
    const sparsereg::sparse_group_lasso p(0.1, 0.1, grouping::from_lists({{0, 1, 2}, {5, 6}}));
    REQUIRE_THROWS_WITH(sparsereg::prox(p, xv, yv, 1.0),
                        Contains("prox") && Contains("cover 5 of the 12 elements") && Contains("partition"));
    REQUIRE_THROWS_WITH(sparsereg::value(p, xv), Contains("cover 5 of the 12"));
  }
  SECTION("weights count mismatch") {
    const sparsereg::group_lasso p(0.1, groups::output_neurons().with_weights({1.0, 2.0}));
    REQUIRE_THROWS_WITH(sparsereg::prox(p, xv, yv, 1.0),
                        Contains("prox") && Contains("2 weights") && Contains("3 groups"));
    REQUIRE_THROWS_WITH(sparsereg::add_gradient(p, xv, yv), Contains("2 weights") && Contains("3 groups"));
  }
  CHECK(y == std::vector<float>(12, 42.0f));
  CHECK(x == iota_values(12));
}

TEST_CASE("malformed groupings are rejected when built", "[errors][groups]") {
  REQUIRE_THROWS_WITH(grouping::by_axes({4}, 4), Contains("grouping::by_axes") && Contains("axis 4") &&
                                                     Contains("out of range for rank 4"));
  REQUIRE_THROWS_WITH(grouping::by_axes({8}), Contains("axis 8") && Contains("out of range"));
  REQUIRE_THROWS_WITH(grouping::by_axes({0}, 9), Contains("rank must be <= 8, got 9"));
  REQUIRE_THROWS_WITH(grouping::by_axes({1, 0, 1}, 3), Contains("grouping::by_axes") && Contains("axis 1 is listed twice"));
  REQUIRE_THROWS_WITH(grouping::from_lists({{0, 1}, {}, {2}}), Contains("grouping::from_lists") && Contains("group 1 is empty"));
  REQUIRE_THROWS_WITH(grouping::from_lists({{0, 3}, {1, 2}, {4, 3}}),
                      Contains("grouping::from_lists") && Contains("index 3") && Contains("more than one group"));
  REQUIRE_THROWS_WITH(grouping::from_lists({{0, 0}}), Contains("index 0") && Contains("more than one group"));
  REQUIRE_THROWS_WITH(groups::whole().with_weights({1.0, -0.5}),
                      Contains("with_weights") && Contains("weights[1]") && Contains("-0.5"));
  REQUIRE_THROWS_WITH(groups::whole().with_weights({nan_v}), Contains("weights[0]") && Contains("nan"));
  REQUIRE_THROWS_WITH(groups::whole().with_weights({0.0, inf_v}), Contains("weights[1]") && Contains("inf"));
}

TEST_CASE("negative, NaN and infinite hyper-parameters are rejected with their name and value", "[errors]") {
  REQUIRE_THROWS_MATCHES(sparsereg::l1(-1.0), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::l1: lambda must be finite and >= 0, got -1.000000"));
  REQUIRE_THROWS_WITH(sparsereg::l1(nan_v), Contains("l1") && Contains("lambda") && Contains("nan"));
  REQUIRE_THROWS_WITH(sparsereg::l1(inf_v), Contains("lambda") && Contains("inf"));
  REQUIRE_THROWS_WITH(sparsereg::squared_l2(-2.0), Contains("squared_l2") && Contains("lambda") && Contains("-2"));
  REQUIRE_THROWS_WITH(sparsereg::squared_l2(nan_v), Contains("squared_l2") && Contains("nan"));
  REQUIRE_THROWS_WITH(sparsereg::hard_threshold(-1e-9), Contains("hard_threshold") && Contains("lambda") && Contains("-1e-09"));
  REQUIRE_THROWS_WITH(sparsereg::hard_threshold(inf_v), Contains("hard_threshold") && Contains("inf"));
  REQUIRE_THROWS_WITH(sparsereg::group_lasso(-0.5, groups::whole()), Contains("group_lasso") && Contains("lambda") && Contains("-0.5"));
  REQUIRE_THROWS_WITH(sparsereg::group_lasso(nan_v, groups::whole()), Contains("group_lasso") && Contains("nan"));
  REQUIRE_THROWS_WITH(sparsereg::sparse_group_lasso(-1.0, 0.1, groups::whole()),
                      Contains("sparse_group_lasso") && Contains("lambda_group") && Contains("-1"));
  REQUIRE_THROWS_WITH(sparsereg::sparse_group_lasso(0.1, nan_v, groups::whole()),
                      Contains("sparse_group_lasso") && Contains("lambda_l1") && Contains("nan"));
  REQUIRE_THROWS_WITH(sparsereg::sparse_group_lasso(0.1, inf_v, groups::whole()), Contains("lambda_l1") && Contains("inf"));
  REQUIRE_THROWS_WITH(sparsereg::sparse_group_lasso::mixed(-1.0, 0.5, groups::whole()),
                      Contains("mixed") && Contains("lambda") && Contains("-1"));
  REQUIRE_THROWS_WITH(sparsereg::l1(0.5).scaled(-1.0), Contains("lambda") && Contains("-0.5"));
  REQUIRE_THROWS_WITH(sparsereg::group_lasso(0.5, groups::whole()).scaled(nan_v), Contains("lambda") && Contains("nan"));
}

TEST_CASE("alpha of sparse_group_lasso::mixed must lie in [0, 1]", "[errors]") {
  REQUIRE_THROWS_WITH(sparsereg::sparse_group_lasso::mixed(1.0, 1.5, groups::whole()),
                      Contains("sparse_group_lasso::mixed") && Contains("alpha") && Contains("1.5"));
  REQUIRE_THROWS_WITH(sparsereg::sparse_group_lasso::mixed(1.0, -0.25, groups::whole()),
                      Contains("alpha") && Contains("-0.25"));
  REQUIRE_THROWS_WITH(sparsereg::sparse_group_lasso::mixed(1.0, nan_v, groups::whole()), Contains("alpha") && Contains("nan"));
  CHECK_NOTHROW(sparsereg::sparse_group_lasso::mixed(1.0, 0.0, groups::whole()));
  CHECK_NOTHROW(sparsereg::sparse_group_lasso::mixed(1.0, 1.0, groups::whole()));
}

TEST_CASE("NaN, negative and infinite steps are rejected and write nothing", "[errors]") {
  auto x = iota_values(12);
  std::vector<float> y(12, 42.0f);
  const view<const float> xv(x.data(), {3, 4});
  const view<float> yv(y.data(), {3, 4});
  REQUIRE_THROWS_MATCHES(sparsereg::prox(sparsereg::l1(0.1), xv, yv, nan_v), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::prox: step must be finite and >= 0, got nan"));
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::squared_l2(0.1), xv, yv, -0.5), Contains("step") && Contains("-0.5"));
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::hard_threshold(0.1), xv, yv, inf_v), Contains("step") && Contains("inf"));
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::group_lasso(0.1, groups::output_neurons()), xv, yv, -1.0),
                      Contains("prox") && Contains("step") && Contains("-1"));
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::sparse_group_lasso(0.1, 0.1, groups::input_neurons()), xv, yv, nan_v),
                      Contains("step") && Contains("nan"));
  // In place too: x must survive.
  auto z = iota_values(12);
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::l1(0.1), view<float>(z.data(), {3, 4}), view<float>(z.data(), {3, 4}), nan_v),
                      Contains("step"));
  CHECK(z == iota_values(12));
  CHECK(y == std::vector<float>(12, 42.0f));
}

TEMPLATE_TEST_CASE("per-element steps with a bad entry name its row-major index and write nothing", "[errors][steps]",
                   float, double) {
  using T = TestType;
  std::vector<T> x(12), y(12, T(42)), s(12, T(1));
  for (std::size_t i = 0; i < 12; ++i) x[i] = static_cast<T>(i) - T(5.5);
  const view<const T> xv(x.data(), {3, 4});
  const view<T> yv(y.data(), {3, 4});
  // Steps stored column-major: row-major index 6 = (1, 2) lives at memory offset 1 + 2*3 = 7.
  const view<const T> sv(s.data(), {3, 4}, {1, 3});
  SECTION("negative") {
    s[7] = T(-1);
    REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::l1(0.1), xv, yv, sv),
                        Contains("prox") && Contains("steps[6]") && Contains("-1"));
  }
  SECTION("NaN") {
    s[7] = std::numeric_limits<T>::quiet_NaN();
    REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::squared_l2(0.1), xv, yv, sv), Contains("steps[6]") && Contains("nan"));
  }
  SECTION("infinite") {
    s[7] = std::numeric_limits<T>::infinity();
    REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::hard_threshold(0.1), xv, yv, sv), Contains("steps[6]") && Contains("inf"));
  }
  SECTION("the first bad entry is the one named") {
    s[7] = T(-1);
    s[2] = T(-3);  // offset 2 = (2, 0) -> row-major index 8, after 6
    s[3] = T(-2);  // offset 3 = (0, 1) -> row-major index 1
    REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::l1(0.1), xv, yv, sv), Contains("steps[1]") && Contains("-2"));
  }
  CHECK(y == std::vector<T>(12, T(42)));
}

TEST_CASE("partial overlaps between x, y, g and steps are rejected", "[errors][alias]") {
  std::vector<float> buf(13);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(i) - 6.0f;
  const auto original = buf;
  const view<const float> x(buf.data(), {3, 4});
  const view<float> y_shifted(buf.data() + 1, {3, 4});
  REQUIRE_THROWS_MATCHES(sparsereg::prox(sparsereg::l1(0.1), x, y_shifted, 1.0), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::prox: y partially overlaps x; pass the same view for an "
                                                  "in-place prox or disjoint memory"));
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::sparse_group_lasso(0.1, 0.1, groups::output_neurons()), x, y_shifted, 1.0),
                      Contains("partially overlaps"));
  // Same start, different strides (a transpose of a 2x2 block): overlapping, not the same elements.
  const view<const float> a(buf.data(), {2, 2}, {2, 1});
  const view<float> at(buf.data(), {2, 2}, {1, 2});
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::l1(0.1), a, at, 1.0), Contains("y partially overlaps x"));
  // Gradient buffer overlapping the weights, even exactly.
  REQUIRE_THROWS_WITH(sparsereg::add_gradient(sparsereg::l1(0.1), x, y_shifted),
                      Contains("add_gradient") && Contains("g overlaps w"));
  REQUIRE_THROWS_WITH(sparsereg::add_gradient(sparsereg::group_lasso(0.1, groups::output_neurons()), x,
                                              view<float>(buf.data(), {3, 4})),
                      Contains("g overlaps w"));
  // Steps overlapping the output.
  std::vector<float> xs(12, 1.0f);
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::l1(0.1), view<const float>(xs.data(), {3, 4}), view<float>(buf.data(), {3, 4}),
                                      view<const float>(buf.data() + 1, {3, 4})),
                      Contains("steps overlaps y"));
  CHECK(buf == original);
  CHECK(xs == std::vector<float>(12, 1.0f));
}
