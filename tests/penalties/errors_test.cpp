// Bad input: every rejected argument throws std::invalid_argument whose message names the
// function, the argument and the offending value, and nothing the call could write is modified.
#include <catch2/catch.hpp>

#include <sparsereg/penalties/group_element_steps.hpp>
#include <sparsereg/penalties/group_lasso.hpp>
#include <sparsereg/penalties/hard_threshold.hpp>
#include <sparsereg/penalties/kl_gaussian.hpp>
#include <sparsereg/penalties/l1.hpp>
#include <sparsereg/penalties/sparse_group_lasso.hpp>
#include <sparsereg/penalties/squared_l2.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
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
                         Catch::Matchers::Message("sparsereg::l1: lambda must be finite and >= 0, got -1"));
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

TEMPLATE_TEST_CASE("a bad step anywhere in a long contiguous or strided steps tensor is found; edge values pass",
                   "[errors][steps]", float, double) {
  // The check reads the steps as vectors (unit stride) or one by one (strided): a bad entry in
  // the middle of a vector block, in the tail, or at element 0 must be found either way; -0.0,
  // 0, the smallest denormal and the largest finite value are valid steps.
  using T = TestType;
  const std::size_t n = 1003;
  const T edge[] = {T(-0.0), T(0), std::numeric_limits<T>::denorm_min(), std::numeric_limits<T>::max()};
  for (const std::ptrdiff_t stride : {std::ptrdiff_t(1), std::ptrdiff_t(2)}) {
    CAPTURE(stride);
    std::vector<T> x(n, T(1)), y(n, T(42)), s(n * static_cast<std::size_t>(stride), T(0.5));
    for (std::size_t i = 0; i < n; ++i) s[i * static_cast<std::size_t>(stride)] = edge[i % 4];
    const view<const T> xv(x.data(), {n});
    const view<T> yv(y.data(), {n});
    const view<const T> sv(s.data(), {n}, {stride});
    CHECK_NOTHROW(sparsereg::prox(sparsereg::l1(0.1), xv, yv, sv));
    for (const std::size_t at : {std::size_t(0), std::size_t(517), n - 1}) {
      for (const T bad : {T(-1), -std::numeric_limits<T>::denorm_min(), std::numeric_limits<T>::quiet_NaN(),
                          std::numeric_limits<T>::infinity()}) {
        CAPTURE(at, bad);
        std::fill(y.begin(), y.end(), T(42));
        const T keep = s[at * static_cast<std::size_t>(stride)];
        s[at * static_cast<std::size_t>(stride)] = bad;
        CHECK_THROWS_WITH(sparsereg::prox(sparsereg::l1(0.1), xv, yv, sv),
                          Contains("steps[" + std::to_string(at) + "]"));
        CHECK(y == std::vector<T>(n, T(42)));
        s[at * static_cast<std::size_t>(stride)] = keep;
      }
    }
  }
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

TEST_CASE("numbers in messages are printed in their shortest exact form", "[errors]") {
  using sparsereg::detail::number_text;
  CHECK(number_text(-1.0) == "-1");
  CHECK(number_text(0.0) == "0");
  CHECK(number_text(100.0) == "100");
  CHECK(number_text(0.1) == "0.1");
  CHECK(number_text(-0.5) == "-0.5");
  CHECK(number_text(1e20) == "1e+20");
  CHECK(number_text(-1e-9) == "-1e-09");
  CHECK(number_text(1.0 / 3.0) == "0.3333333333333333");
  CHECK(number_text(0.1f) == "0.10000000149011612");  // a float's exact value, as a double
  CHECK(number_text(nan_v) == "nan");
  CHECK(number_text(-inf_v) == "-inf");
  for (const double v : {1.0 / 3.0, 2.0 / 3.0, 1e-300, 5e-324, 1.7976931348623157e308, 123456.789, -7e15, 0.1 + 0.2})
    CHECK(std::strtod(number_text(v).c_str(), nullptr) == v);  // reads back exactly
  REQUIRE_THROWS_MATCHES(sparsereg::prox(sparsereg::l1(0.1), std::vector<float>(2), std::vector<float>(2), -1.0),
                         std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::prox: step must be finite and >= 0, got -1"));
  REQUIRE_THROWS_MATCHES(sparsereg::squared_l2(-1e20), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::squared_l2: lambda must be finite and >= 0, got -1e+20"));
}

TEST_CASE("outputs whose elements share memory are rejected; read-only inputs may broadcast", "[errors][alias]") {
  const sparsereg::l1 p(1.0);
  // One cell seen as 4 elements (stride 0): an in-place prox would shrink it 4 times.
  float cell = 3.0f;
  const view<float> bcast(&cell, {4}, {0});
  const char* stride0 = "sparsereg::prox: y has strides that make elements share memory (shape [4], strides [0]); "
                        "an output needs one address per element: sorted by stride, each axis of extent > 1 must "
                        "step past all the elements of the smaller ones";
  REQUIRE_THROWS_MATCHES(sparsereg::prox(p, bcast, bcast, 0.5), std::invalid_argument,
                         Catch::Matchers::Message(stride0));
  std::vector<float> x4{1.0f, 2.0f, 3.0f, 4.0f};
  REQUIRE_THROWS_MATCHES(sparsereg::prox(p, x4, bcast, 0.5), std::invalid_argument, Catch::Matchers::Message(stride0));
  REQUIRE_THROWS_WITH(sparsereg::prox(p, x4, bcast, 0.5, sparsereg::without_stats), Contains("y has strides"));
  REQUIRE_THROWS_WITH(sparsereg::prox(p, x4, bcast, std::vector<float>(4, 0.5f)), Contains("y has strides"));
  REQUIRE_THROWS_WITH(sparsereg::prox(sparsereg::group_lasso(0.5, groups::whole()), bcast, bcast, 0.5),
                      Contains("y has strides") && Contains("strides [0]"));
  REQUIRE_THROWS_WITH(sparsereg::prox_per_element_steps(sparsereg::group_lasso(0.5, groups::whole()), x4, bcast,
                                                        std::vector<float>(4, 0.5f)),
                      Contains("prox_per_element_steps") && Contains("y has strides") && Contains("strides [0]"));
  CHECK(cell == 3.0f);
  // Non-zero strides that still overlap: a 3x3 view with strides (1, 1) covers 5 cells.
  std::vector<float> buf(5, 1.0f);
  const view<float> diag(buf.data(), {3, 3}, {1, 1});
  REQUIRE_THROWS_WITH(sparsereg::prox(p, diag, diag, 0.1),
                      Contains("y has strides that make elements share memory") &&
                          Contains("shape [3x3], strides [1, 1]"));
  CHECK(buf == std::vector<float>(5, 1.0f));
  // A gradient buffer is an output too (add_gradient, and the penalties' value_and_add_gradient).
  std::vector<float> w4{1.0f, -2.0f, 3.0f, -4.0f};
  REQUIRE_THROWS_MATCHES(sparsereg::add_gradient(p, w4, bcast), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::add_gradient: g has strides that make elements share "
                                                  "memory (shape [4], strides [0]); an output needs one address per "
                                                  "element: sorted by stride, each axis of extent > 1 must step past "
                                                  "all the elements of the smaller ones"));
  REQUIRE_THROWS_WITH(sparsereg::kl_gaussian(0.1).value_and_add_gradient(w4, bcast),
                      Contains("kl_gaussian::value_and_add_gradient") && Contains("g has strides"));
  CHECK(cell == 3.0f);
  // Distinct but irregularly interleaved offsets (3x2, strides (2, 3): 0 3 2 5 4 7) fail the
  // sufficient test and are rejected as outputs too (docs/views.md).
  std::vector<float> eight(8, 1.0f);
  const view<float> irregular(eight.data(), {3, 2}, {2, 3});
  REQUIRE_THROWS_WITH(sparsereg::prox(p, irregular, irregular, 0.1), Contains("shape [3x2], strides [2, 3]"));
  // Read-only inputs may broadcast: x = the cell four times, y a real buffer.
  std::vector<float> y(4, 0.0f);
  const view<const float> xb(&cell, {4}, {0});
  const auto r = sparsereg::prox(p, xb, y, 0.5);
  CHECK(y == std::vector<float>(4, 2.5f));
  CHECK(r.value == Approx(10.0));
  std::vector<float> g(4, 0.0f);
  sparsereg::add_gradient(p, xb, g);
  CHECK(g == std::vector<float>(4, 1.0f));
  // Layouts that pass: padded, column-major, blocks, extent-1 axes with any stride.
  std::vector<float> big(64, 1.0f);
  const view<float> outs[] = {view<float>(big.data(), {3, 4}, {1, 3}), view<float>(big.data(), {3, 4}, {10, 2}),
                              view<float>(big.data(), {1, 4}, {0, 1}), view<float>(big.data(), {2, 3, 4}, {1, 2, 6})};
  for (const view<float>& out : outs) CHECK_NOTHROW(sparsereg::prox(p, out, out, 0.1));
}

TEST_CASE("interleaved but disjoint x/y and w/g are accepted; shared elements are still found", "[errors][alias]") {
  // [x | y] packed row-major: column 0 and column 1 of a 6x2 buffer, against separate buffers.
  const std::vector<float> x = iota_values(6);
  std::vector<float> packed(12, 42.0f);
  for (std::size_t i = 0; i < 6; ++i) packed[2 * i] = x[i];
  const view<float> col0(packed.data(), {6}, {2});
  const view<float> col1(packed.data() + 1, {6}, {2});
  const sparsereg::sparse_group_lasso sgl(0.3, 0.4, groups::whole());
  std::vector<float> y_sep(6, 42.0f);
  const auto r_sep = sparsereg::prox(sgl, x, y_sep, 1.0);
  const auto r_int = sparsereg::prox(sgl, col0, col1, 1.0);
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(packed[2 * i] == x[i]);  // x untouched
    CHECK(std::memcmp(&packed[2 * i + 1], &y_sep[i], sizeof(float)) == 0);
  }
  CHECK(r_int.value == r_sep.value);
  CHECK(r_int.zero_elements == r_sep.zero_elements);
  // The same for a gradient: g interleaved with w.
  std::vector<float> g_sep(6, 0.5f);
  for (std::size_t i = 0; i < 6; ++i) packed[2 * i + 1] = 0.5f;
  const sparsereg::group_lasso gl(0.7, groups::whole());
  sparsereg::add_gradient(gl, x, g_sep);
  sparsereg::add_gradient(gl, col0, col1);
  for (std::size_t i = 0; i < 6; ++i) CHECK(std::memcmp(&packed[2 * i + 1], &g_sep[i], sizeof(float)) == 0);
  // Rank 2: the even and the odd columns of a 3x8 row-major buffer, a 3x4 view each.
  std::vector<float> wide(24);
  for (std::size_t i = 0; i < wide.size(); ++i) wide[i] = static_cast<float>(i % 7) - 3.0f;
  const view<float> even(wide.data(), {3, 4}, {8, 2});
  const view<float> odd(wide.data() + 1, {3, 4}, {8, 2});
  std::vector<float> y_rows(12);
  std::vector<float> x_rows(12);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 4; ++j) x_rows[4 * i + j] = wide[8 * i + 2 * j];
  const sparsereg::sparse_group_lasso rows(0.5, 0.2, groups::output_neurons());
  const auto rr_sep =
      sparsereg::prox(rows, view<const float>(x_rows.data(), {3, 4}), view<float>(y_rows.data(), {3, 4}), 1.0);
  const auto rr_int = sparsereg::prox(rows, even, odd, 1.0);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 4; ++j)
      CHECK(std::memcmp(&wide[8 * i + 2 * j + 1], &y_rows[4 * i + j], sizeof(float)) == 0);
  CHECK(rr_int.value == rr_sep.value);
  CHECK(rr_int.zero_groups == rr_sep.zero_groups);

  // Same layout, shared elements: offsets {0, 1, 3, 4} (2x2, strides (3, 1)) and the same shifted
  // by 2 ({2, 3, 5, 6}) share offset 3 = 1*3 + (-1)*1, which a non-negative greedy split of 2
  // would miss.
  std::vector<float> nine(9, 1.0f);
  const auto before = nine;
  REQUIRE_THROWS_MATCHES(sparsereg::prox(sparsereg::l1(0.1), view<const float>(nine.data(), {2, 2}, {3, 1}),
                                         view<float>(nine.data() + 2, {2, 2}, {3, 1}), 1.0),
                         std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::prox: y partially overlaps x; pass the same view for an "
                                                  "in-place prox or disjoint memory"));
  CHECK(nine == before);
  // 2x2 with strides (4, 1): offsets {0, 1, 4, 5}; shifted by 2 it is disjoint, shifted by 3 it
  // shares offset 4.
  CHECK_NOTHROW(sparsereg::add_gradient(sparsereg::l1(0.1), view<const float>(nine.data(), {2, 2}, {4, 1}),
                                        view<float>(nine.data() + 2, {2, 2}, {4, 1})));
  CHECK(nine == std::vector<float>{1.0f, 1.0f, 1.1f, 1.1f, 1.0f, 1.0f, 1.1f, 1.1f, 1.0f});  // g += 0.1 * sign(w)
  const auto after_gradient = nine;
  REQUIRE_THROWS_WITH(sparsereg::add_gradient(sparsereg::l1(0.1), view<const float>(nine.data(), {2, 2}, {4, 1}),
                                              view<float>(nine.data() + 3, {2, 2}, {4, 1})),
                      Contains("add_gradient: g overlaps w"));
  // Intersecting ranges and different layouts: rejected, saying disjointness was not shown.
  REQUIRE_THROWS_MATCHES(sparsereg::prox(sparsereg::l1(0.1), view<const float>(nine.data(), {2, 2}, {1, 4}),
                                         view<float>(nine.data() + 2, {2, 2}, {4, 1}), 1.0),
                         std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::prox: y's memory could not be shown disjoint from x's "
                                                  "(their address ranges intersect, and only views with the same "
                                                  "shape and strides are compared element by element); pass the "
                                                  "same view for an in-place prox or disjoint memory"));
  REQUIRE_THROWS_WITH(sparsereg::add_gradient(sparsereg::l1(0.1), view<const float>(nine.data(), {4}, {2}),
                                              view<float>(nine.data() + 1, {2, 2}, {4, 2})),
                      Contains("shape"));  // shapes differ: caught before the overlap test
  REQUIRE_THROWS_WITH(sparsereg::add_gradient(sparsereg::l1(0.1), view<const float>(nine.data(), {2, 2}, {2, 4}),
                                              view<float>(nine.data() + 1, {2, 2}, {4, 2})),
                      Contains("g's memory could not be shown disjoint from w's"));
  CHECK(nine == after_gradient);
}
