// sparsereg/adapters/xtensor.hpp: every supported xtensor object becomes a view whose logical
// element (i0, ..., iN-1) IS the object's element at the same index (same address, every index),
// for containers and adaptors in both layouts and for strided views (data() + data_offset()).
// Const-ness carries over; negative strides and broadcasts (stride 0 on a long axis) are rejected.
#include <array>
#include <catch2/catch.hpp>
#include <cstddef>
#include <sparsereg/adapters/xtensor.hpp>
#include <sparsereg/sparsereg.hpp>
#include <stdexcept>
#include <type_traits>
#include <vector>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xfixed.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xstrided_view.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

namespace sr = sparsereg;

namespace {

/// Number of multi-indices whose view element is not e(idx) itself (0 when the view aliases e).
template <class V, class E>
std::size_t misplaced(const V& v, E& e) {
  const auto& shape = e.shape();
  if (v.rank() != shape.size()) return 1000000;
  std::size_t n = 1;
  for (std::size_t k = 0; k < shape.size(); ++k) {
    if (v.extent(k) != shape[k]) return 1000000;
    n *= shape[k];
  }
  std::size_t bad = 0;
  for (std::size_t f = 0; f < n; ++f) {
    std::vector<std::size_t> idx(shape.size());
    std::size_t rest = f;
    std::ptrdiff_t off = 0;
    for (std::size_t k = shape.size(); k-- > 0;) {
      idx[k] = rest % shape[k];
      rest /= shape[k];
      off += static_cast<std::ptrdiff_t>(idx[k]) * v.stride(k);
    }
    bad += (&v.data()[off] != &e.element(idx.begin(), idx.end()));
  }
  return bad;
}

template <class X>
using view_type_of = decltype(sr::as_view(std::declval<X&>()));

}  // namespace

static_assert(std::is_same_v<view_type_of<xt::xarray<float>>, sr::view<float>>);
static_assert(std::is_same_v<view_type_of<const xt::xarray<float>>, sr::view<const float>>);
static_assert(std::is_same_v<view_type_of<const xt::xtensor<double, 3>>, sr::view<const double>>);

TEST_CASE("xtensor containers keep their real strides in both layouts", "[adapters][xtensor]") {
  xt::xarray<float> a = xt::zeros<float>({3, 4, 5});
  xt::xarray<float, xt::layout_type::column_major> ac = xt::zeros<float>({3, 4, 5});
  xt::xtensor<double, 4> t = xt::zeros<double>({2, 3, 4, 5});
  xt::xtensor<double, 4, xt::layout_type::column_major> tc = xt::zeros<double>({2, 3, 4, 5});
  xt::xtensor_fixed<float, xt::xshape<3, 2>> f;
  const auto& ca = a;
  CHECK(misplaced(sr::as_view(a), a) == 0);
  CHECK(misplaced(sr::as_view(ac), ac) == 0);
  CHECK(misplaced(sr::as_view(t), t) == 0);
  CHECK(misplaced(sr::as_view(tc), tc) == 0);
  CHECK(misplaced(sr::as_view(f), f) == 0);
  CHECK(misplaced(sr::as_view(ca), ca) == 0);
  CHECK(sr::as_view(tc).stride(0) == 1);
  CHECK(sr::as_view(tc).stride(3) == 24);
  CHECK(sr::as_view(t).is_contiguous());
  CHECK_FALSE(sr::as_view(tc).is_contiguous());
}

TEST_CASE("xtensor adaptors and strided views alias their memory", "[adapters][xtensor]") {
  std::vector<double> buf(120);
  for (std::size_t k = 0; k < buf.size(); ++k) buf[k] = static_cast<double>(k);
  auto over_vector = xt::adapt(buf, std::vector<std::size_t>{4, 5});
  CHECK(misplaced(sr::as_view(over_vector), over_vector) == 0);
  auto over_pointer = xt::adapt<xt::layout_type::column_major>(buf.data() + 7, 20, xt::no_ownership(),
                                                               std::array<std::size_t, 2>{4, 5});
  CHECK(misplaced(sr::as_view(over_pointer), over_pointer) == 0);
  CHECK(sr::as_view(over_pointer).data() == buf.data() + 7);
  auto with_strides = xt::adapt(buf.data(), 12, xt::no_ownership(), std::array<std::size_t, 2>{3, 4},
                                std::array<std::ptrdiff_t, 2>{20, 3});
  CHECK(misplaced(sr::as_view(with_strides), with_strides) == 0);

  xt::xarray<double> a = xt::adapt(buf, std::vector<std::size_t>{4, 5, 6});
  auto slab = xt::view(a, 2, xt::range(1, 4), xt::all());  // data_offset = 2*30 + 1*6
  REQUIRE(misplaced(sr::as_view(slab), slab) == 0);
  CHECK(sr::as_view(slab).data() == a.data() + 66);
  auto stepped = xt::strided_view(a, {xt::all(), xt::range(0, 5, 2), xt::range(1, 6, 2)});
  CHECK(misplaced(sr::as_view(stepped), stepped) == 0);
  auto transposed = xt::transpose(a);
  CHECK(misplaced(sr::as_view(transposed), transposed) == 0);
  xt::xarray<double, xt::layout_type::column_major> ac = a;
  auto col_slab = xt::view(ac, xt::all(), 3);
  CHECK(misplaced(sr::as_view(col_slab), col_slab) == 0);
}

TEST_CASE("xtensor: extent-1 axes may have stride 0; broadcasts and reversed views are rejected",
          "[adapters][xtensor]") {
  xt::xtensor<float, 3> t = xt::zeros<float>({3, 1, 4});  // xtensor gives the middle axis stride 0
  for (std::size_t k = 0; k < t.size(); ++k) t.data()[k] = static_cast<float>(k) - 5.5f;
  const auto v = sr::as_view(t);
  CHECK(v.stride(1) == 0);
  CHECK(v.is_contiguous());
  // Same result as the raw row-major view of the same memory.
  std::vector<float> raw(t.data(), t.data() + t.size());
  const sr::group_lasso pen(0.3, sr::grouping::by_axes({0}, 3));
  CHECK(sr::value(pen, t) == sr::value(pen, sr::view<float>(raw.data(), {3, 1, 4})));
  sr::prox(pen, t, t, 1.0);
  sr::prox(pen, sr::view<float>(raw.data(), {3, 1, 4}), sr::view<float>(raw.data(), {3, 1, 4}), 1.0);
  CHECK(std::vector<float>(t.data(), t.data() + t.size()) == raw);

  std::vector<float> buf(12, 1.0f);
  auto broadcast = xt::adapt(buf.data(), 12, xt::no_ownership(), std::array<std::size_t, 2>{3, 4},
                             std::array<std::ptrdiff_t, 2>{0, 1});
  CHECK_THROWS_AS(sr::as_view(broadcast), std::invalid_argument);
  CHECK_THROWS_AS(sr::value(sr::l1(1.0), broadcast), std::invalid_argument);

  xt::xarray<float> a = xt::zeros<float>({4, 5});
  auto reversed = xt::view(a, xt::range(3, xt::placeholders::_, -1), xt::all());
  CHECK_THROWS_WITH(sr::as_view(reversed), Catch::Contains("negative strides"));
}

TEST_CASE("penalties run in place on an xtensor view and touch nothing else", "[adapters][xtensor]") {
  xt::xarray<double> a = xt::zeros<double>({4, 6});
  for (std::size_t k = 0; k < a.size(); ++k) a.data()[k] = 0.1 * static_cast<double>(k) - 1.0;
  const xt::xarray<double> before = a;
  const sr::sparse_group_lasso pen(0.5, 0.05, sr::groups::output_neurons());
  auto rows = xt::view(a, xt::range(1, 3), xt::all());
  const auto r = sr::prox(pen, rows, rows, 1.0);
  CHECK(r.groups == 2);
  // Rows 0 and 3 are untouched; rows 1 and 2 match the prox of a copy.
  xt::xtensor<double, 2> copy = xt::view(before, xt::range(1, 3), xt::all());
  sr::prox(pen, copy, copy, 1.0);
  for (std::size_t j = 0; j < 6; ++j) {
    CHECK(a(0, j) == before(0, j));
    CHECK(a(3, j) == before(3, j));
    CHECK(a(1, j) == copy(0, j));
    CHECK(a(2, j) == copy(1, j));
  }
}
