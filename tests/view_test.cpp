// view<T> (include/sparsereg/view.hpp): extents, strides, size, contiguity, flat offsets, element
// access, the view<T> -> view<const T> conversion, and the rejected constructions.
#include <catch2/catch.hpp>

#include <sparsereg/view.hpp>
#include <support/reference.hpp>

#include <array>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

using Catch::Matchers::Contains;
using sparsereg::view;

TEMPLATE_TEST_CASE("a row-major view knows its extents, strides, size and offsets", "[view]", float, double) {
  using T = TestType;
  std::vector<T> buf(24);
  const view<T> v(buf.data(), {2, 3, 4});
  CHECK(v.data() == buf.data());
  CHECK(v.rank() == 3);
  CHECK(v.extent(0) == 2);
  CHECK(v.extent(1) == 3);
  CHECK(v.extent(2) == 4);
  CHECK(v.stride(0) == 12);
  CHECK(v.stride(1) == 4);
  CHECK(v.stride(2) == 1);
  CHECK(v.size() == 24);
  CHECK(!v.empty());
  CHECK(v.is_contiguous());
  CHECK(v.span_extent() == 24);
  for (std::size_t f = 0; f < 24; ++f) CHECK(v.offset_of_flat(f) == static_cast<std::ptrdiff_t>(f));
  v(1, 2, 3) = T(7);
  CHECK(buf[23] == T(7));
  v(0, 1, 2) = T(5);
  CHECK(buf[6] == T(5));
  // From any range of extents.
  const std::vector<std::size_t> shape{4, 6};
  const view<T> w(buf.data(), shape);
  CHECK(w.rank() == 2);
  CHECK(w.stride(0) == 6);
  CHECK(sparsereg::make_view(buf.data(), {24}).size() == 24);
}

TEMPLATE_TEST_CASE("views with explicit strides", "[view]", float, double) {
  using T = TestType;
  const auto lay = GENERATE(sparsereg_test::layout::padded, sparsereg_test::layout::reversed);
  const auto shape = GENERATE(std::vector<std::size_t>{2, 3, 4}, std::vector<std::size_t>{5, 1, 3},
                              std::vector<std::size_t>{7});
  CAPTURE(sparsereg_test::layout_name(lay), shape);
  sparsereg_test::tensor<T> t(shape, lay);
  const view<T> v = t.view();
  CHECK(v.rank() == shape.size());
  CHECK(v.size() == sparsereg_test::product(shape));
  for (std::size_t i = 0; i < shape.size(); ++i) {
    CHECK(v.extent(i) == shape[i]);
    CHECK(v.stride(i) == t.strides[i]);
  }
  for (std::size_t f = 0; f < v.size(); ++f) CHECK(v.offset_of_flat(f) == sparsereg_test::offset_of(shape, t.strides, f));
  // Both layouts differ from row-major as soon as two axes have extents above 1 (for these
  // shapes; a lone axis keeps stride 1 in both).
  std::size_t long_axes = 0;
  for (std::size_t e : shape) long_axes += e > 1;
  const bool expect = long_axes <= 1;
  CHECK(v.is_contiguous() == expect);
}

TEST_CASE("extent-1 axes do not break contiguity whatever their stride", "[view]") {
  std::vector<float> buf(12);
  CHECK(view<float>(buf.data(), {3, 1, 4}, {4, 99, 1}).is_contiguous());
  CHECK(view<float>(buf.data(), {1, 12}, {0, 1}).is_contiguous());
  CHECK(!view<float>(buf.data(), {3, 4}, {1, 3}).is_contiguous());
  CHECK(!view<float>(buf.data(), {3, 4}, {5, 1}).is_contiguous());
  // A broadcast (stride 0) axis of extent > 1 is not contiguous.
  CHECK(!view<float>(buf.data(), {3, 4}, {0, 1}).is_contiguous());
}

TEST_CASE("view<T> converts to view<const T>, not back", "[view]") {
  std::vector<double> buf(6);
  const view<double> v(buf.data(), {2, 3}, {1, 2});
  const view<const double> c = v;
  CHECK(c.data() == buf.data());
  CHECK(c.rank() == 2);
  CHECK(c.extent(1) == 3);
  CHECK(c.stride(1) == 2);
  CHECK(c.size() == 6);
  STATIC_REQUIRE(std::is_convertible<view<double>, view<const double>>::value);
  STATIC_REQUIRE(!std::is_convertible<view<const double>, view<double>>::value);
  STATIC_REQUIRE(!std::is_convertible<view<float>, view<const double>>::value);
  STATIC_REQUIRE(std::is_same<view<const double>::value_type, double>::value);
  STATIC_REQUIRE(std::is_same<decltype(sparsereg::as_view(v)), view<double>>::value);
}

TEST_CASE("empty and rank-0 views", "[view]") {
  const view<float> e;
  CHECK(e.size() == 0);
  CHECK(e.empty());
  CHECK(e.span_extent() == 0);
  float cell = 3.0f;
  const view<float> scalar(&cell, std::array<std::size_t, 0>{});
  CHECK(scalar.rank() == 0);
  CHECK(scalar.size() == 1);
  CHECK(scalar.is_contiguous());
  const view<float> zero(nullptr, {3, 0, 2});  // no elements: a null pointer is fine
  CHECK(zero.size() == 0);
  CHECK(zero.empty());
}

TEST_CASE("bad views are rejected with a clear message", "[view][errors]") {
  std::vector<float> buf(16);
  REQUIRE_THROWS_WITH(view<float>(buf.data(), std::vector<std::size_t>(9, 1)),
                      Contains("sparsereg::view") && Contains("rank must be <= 8, got 9"));
  CHECK_NOTHROW(view<float>(buf.data(), std::vector<std::size_t>(8, 1)));
  REQUIRE_THROWS_WITH(view<float>(buf.data(), {2, 3}, {3, -1}), Contains("strides[1] must be >= 0, got -1"));
  REQUIRE_THROWS_WITH(view<float>(buf.data(), {2, 3}, {3}), Contains("strides has 1 entries but shape has 2"));
  REQUIRE_THROWS_WITH(view<float>(nullptr, {2, 3}), Contains("data is null") && Contains("6 elements"));
  REQUIRE_THROWS_AS(view<float>(buf.data(), std::vector<std::size_t>(9, 1), std::vector<std::ptrdiff_t>(9, 1)),
                    std::invalid_argument);
}

TEST_CASE("negative extents from a signed shape are rejected with their position and value", "[view][errors]") {
  std::vector<float> buf(16);
  REQUIRE_THROWS_MATCHES(view<float>(buf.data(), std::vector<int>{-1, 4}), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::view: shape[0] must be >= 0, got -1"));
  REQUIRE_THROWS_MATCHES(view<float>(buf.data(), std::vector<long>{2, -3}, std::vector<std::ptrdiff_t>{3, 1}),
                         std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::view: shape[1] must be >= 0, got -3"));
  // The same signed types with valid extents are fine.
  const view<float> ok(buf.data(), std::vector<int>{4, 4});
  CHECK(ok.size() == 16);
  CHECK(ok.stride(0) == 4);
}

TEST_CASE("shapes whose element count overflows are rejected, not wrapped", "[view][errors]") {
  std::vector<float> buf(4);
  constexpr std::size_t two32 = std::size_t(1) << 32;
  constexpr std::size_t two62 = std::size_t(1) << 62;
  // Null data with 2^64 elements: the count must not wrap to 0 and pass the null-data check.
  REQUIRE_THROWS_MATCHES(view<float>(nullptr, {two32, two32}), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::view: shape[1] = 4294967296 makes the number of "
                                                  "elements overflow: the product of the extents must be <= "
                                                  "PTRDIFF_MAX = 9223372036854775807"));
  REQUIRE_THROWS_WITH(view<float>(buf.data(), {two32 + 1, two32 - 1}),
                      Contains("shape[1] = 4294967295") && Contains("overflow"));
  REQUIRE_THROWS_WITH(view<float>(buf.data(), {two62, 4}), Contains("shape[1] = 4") && Contains("overflow"));
  REQUIRE_THROWS_WITH(view<float>(buf.data(), {two62, 2}, {2, 1}), Contains("shape[1] = 2") && Contains("overflow"));
  // Up to PTRDIFF_MAX elements is a valid shape (the view is never dereferenced here).
  const auto max_elements = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
  CHECK(view<float>(buf.data(), {max_elements}).size() == max_elements);
  CHECK(view<float>(buf.data(), {two62, 1}).size() == two62);
  // A zero extent empties the view, but the other extents must still multiply within bounds.
  CHECK(view<float>(nullptr, {0, two32, two32 / 4}).empty());
  REQUIRE_THROWS_WITH(view<float>(nullptr, {0, two32, two32}), Contains("shape[2]") && Contains("overflow"));
}

TEST_CASE("strides that put the last element beyond PTRDIFF_MAX are rejected", "[view][errors]") {
  std::vector<float> buf(4);
  constexpr auto max = std::numeric_limits<std::ptrdiff_t>::max();
  constexpr std::ptrdiff_t two62 = std::ptrdiff_t(1) << 62;
  REQUIRE_THROWS_MATCHES(view<float>(buf.data(), {3}, {two62}), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::view: strides[0] = 4611686018427387904 puts the last "
                                                  "element beyond PTRDIFF_MAX elements from data() (shape [3], "
                                                  "strides [4611686018427387904])"));
  REQUIRE_THROWS_WITH(view<float>(buf.data(), {2, 3}, {max, 1}), Contains("strides[0] = 9223372036854775807"));
  // Each term fits, the sum does not.
  REQUIRE_THROWS_WITH(view<float>(buf.data(), {2, 2}, {two62, two62}),
                      Contains("strides[1] = 4611686018427387904") && Contains("shape [2x2]"));
  // The largest valid span: the last element at PTRDIFF_MAX - 1, span_extent() == PTRDIFF_MAX.
  const view<float> far(buf.data(), {2}, {max - 1});
  CHECK(far.span_extent() == max);
  // The stride of an extent-1 axis is never used, and a view without elements reaches nothing.
  CHECK(view<float>(buf.data(), {1, 4}, {max, 1}).span_extent() == 4);
  CHECK(view<float>(buf.data(), {0, 3}, {max, max}).empty());
}
