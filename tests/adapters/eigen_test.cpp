// sparsereg/adapters/eigen.hpp: every supported Eigen object becomes a view whose logical element
// (i, j) (or (i0, ..., iN-1) for tensors) IS the object's element at the same index: the same
// address, for every index. Const-ness carries over, vectors are rank 1, storage-less expressions
// do not compile (checked by hand: see docs/views.md), and the penalty API works through adapters,
// including Eigen temporaries such as blocks, with the aliasing rules of penalty.hpp.
#include <catch2/catch.hpp>
#include <cstddef>
#include <sparsereg/adapters/eigen.hpp>
#include <sparsereg/sparsereg.hpp>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace sr = sparsereg;

namespace {

/// Number of (i, j) whose view element is not m(i, j) itself (0 when the view aliases m exactly).
/// Read-only Eigen objects return coefficients by value: there the buffers hold distinct values
/// and the values are compared.
template <class V, class M>
std::size_t misplaced_2d(const V& v, M&& m) {
  std::size_t bad = 0;
  if (v.rank() != 2 || v.extent(0) != static_cast<std::size_t>(m.rows()) ||
      v.extent(1) != static_cast<std::size_t>(m.cols()))
    return 1000000;
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      if constexpr (std::is_lvalue_reference_v<decltype(m(i, j))>)
        bad += (&v(i, j) != &m(i, j));
      else
        bad += (v(i, j) != m(i, j));
    }
  return bad;
}

template <class V, class M>
std::size_t misplaced_1d(const V& v, M&& m) {
  std::size_t bad = 0;
  if (v.rank() != 1 || v.extent(0) != static_cast<std::size_t>(m.size())) return 1000000;
  for (Eigen::Index i = 0; i < m.size(); ++i) bad += (&v(i) != &m(i));
  return bad;
}

template <class X>
using view_type_of = decltype(sr::as_view(std::declval<X&>()));

}  // namespace

// Const-ness and element type, checked at compile time.
static_assert(std::is_same_v<view_type_of<Eigen::MatrixXf>, sr::view<float>>);
static_assert(std::is_same_v<view_type_of<const Eigen::MatrixXf>, sr::view<const float>>);
static_assert(std::is_same_v<view_type_of<Eigen::Map<const Eigen::MatrixXd>>, sr::view<const double>>);
static_assert(std::is_same_v<view_type_of<Eigen::Map<Eigen::MatrixXd>>, sr::view<double>>);
static_assert(std::is_same_v<view_type_of<Eigen::Ref<const Eigen::MatrixXf>>, sr::view<const float>>);
static_assert(std::is_same_v<view_type_of<Eigen::Block<const Eigen::MatrixXf>>, sr::view<const float>>);
static_assert(std::is_same_v<view_type_of<Eigen::Block<Eigen::MatrixXf>>, sr::view<float>>);
static_assert(std::is_same_v<view_type_of<Eigen::Tensor<float, 4>>, sr::view<float>>);
static_assert(std::is_same_v<view_type_of<const Eigen::Tensor<float, 4>>, sr::view<const float>>);
static_assert(std::is_same_v<view_type_of<Eigen::TensorMap<Eigen::Tensor<const float, 2>>>, sr::view<const float>>);
static_assert(sr::detail::has_view_adapter<Eigen::ArrayXXd>::value);

TEST_CASE("Eigen matrices keep their real strides (column-major default, row-major)", "[adapters][eigen]") {
  Eigen::MatrixXf col(4, 7);
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row(4, 7);
  const auto vc = sr::as_view(col);
  const auto vr = sr::as_view(row);
  CHECK(vc.stride(0) == 1);
  CHECK(vc.stride(1) == 4);
  CHECK(vr.stride(0) == 7);
  CHECK(vr.stride(1) == 1);
  CHECK(misplaced_2d(vc, col) == 0);
  CHECK(misplaced_2d(vr, row) == 0);
  CHECK_FALSE(vc.is_contiguous());  // contiguous means row-major dense
  CHECK(vr.is_contiguous());

  Eigen::ArrayXXd arr(3, 5);
  CHECK(misplaced_2d(sr::as_view(arr), arr) == 0);
  Eigen::Matrix3f fixed;
  CHECK(misplaced_2d(sr::as_view(fixed), fixed) == 0);
  Eigen::Matrix<double, 3, 4, Eigen::RowMajor> fixed_row;
  CHECK(misplaced_2d(sr::as_view(fixed_row), fixed_row) == 0);
  const Eigen::MatrixXf& ccol = col;
  CHECK(misplaced_2d(sr::as_view(ccol), ccol) == 0);
}

TEST_CASE("Eigen blocks, maps, refs and transposes alias their storage", "[adapters][eigen]") {
  Eigen::MatrixXf col = Eigen::MatrixXf::Zero(9, 8);
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row(9, 8);

  CHECK(misplaced_2d(sr::as_view(col.block(2, 1, 5, 4)), col.block(2, 1, 5, 4)) == 0);
  CHECK(misplaced_2d(sr::as_view(row.block(2, 1, 5, 4)), row.block(2, 1, 5, 4)) == 0);
  CHECK(misplaced_2d(sr::as_view(col.block(1, 1, 6, 6).block(1, 2, 3, 3)), col.block(2, 3, 3, 3)) == 0);
  CHECK(misplaced_2d(sr::as_view(col.topRightCorner(3, 2)), col.topRightCorner(3, 2)) == 0);
  CHECK(misplaced_2d(sr::as_view(col.transpose()), col.transpose()) == 0);
  CHECK(misplaced_2d(sr::as_view(row.transpose()), row.transpose()) == 0);
  CHECK(misplaced_2d(sr::as_view(col.middleCols(2, 3)), col.middleCols(2, 3)) == 0);
  CHECK(misplaced_2d(sr::as_view(row.middleRows(2, 3)), row.middleRows(2, 3)) == 0);

  std::vector<double> buf(200);
  for (std::size_t k = 0; k < buf.size(); ++k) buf[k] = static_cast<double>(k);
  using dyn_stride = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
  Eigen::Map<Eigen::MatrixXd, 0, dyn_stride> strided(buf.data() + 3, 4, 5, dyn_stride(17, 3));
  const auto vs = sr::as_view(strided);
  CHECK(vs.stride(0) == 3);
  CHECK(vs.stride(1) == 17);
  CHECK(vs.data() == buf.data() + 3);
  CHECK(misplaced_2d(vs, strided) == 0);
  Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>> pitched(
      buf.data(), 4, 5, Eigen::OuterStride<>(8));
  CHECK(sr::as_view(pitched).stride(0) == 8);
  CHECK(misplaced_2d(sr::as_view(pitched), pitched) == 0);
  Eigen::Map<Eigen::MatrixXd, 0, Eigen::InnerStride<2>> every_other(buf.data(), 4, 5);
  CHECK(misplaced_2d(sr::as_view(every_other), every_other) == 0);
  Eigen::Map<const Eigen::MatrixXd> read_only(buf.data(), 6, 7);
  CHECK(misplaced_2d(sr::as_view(read_only), read_only) == 0);

  Eigen::Ref<Eigen::MatrixXf> ref = col.block(1, 2, 4, 3);
  CHECK(misplaced_2d(sr::as_view(ref), col.block(1, 2, 4, 3)) == 0);
  Eigen::Ref<const Eigen::MatrixXf> cref = col.middleCols(1, 2);
  CHECK(misplaced_2d(sr::as_view(cref), col.middleCols(1, 2)) == 0);
  Eigen::Ref<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
             Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>
      any_ref = row.block(1, 1, 3, 3);
  CHECK(misplaced_2d(sr::as_view(any_ref), row.block(1, 1, 3, 3)) == 0);
}

TEST_CASE("Eigen compile-time vectors are rank 1; a dynamic n x 1 matrix stays rank 2", "[adapters][eigen]") {
  Eigen::VectorXf v(6);
  Eigen::RowVectorXd rv(5);
  Eigen::Vector3f v3;
  CHECK(misplaced_1d(sr::as_view(v), v) == 0);
  CHECK(misplaced_1d(sr::as_view(rv), rv) == 0);
  CHECK(misplaced_1d(sr::as_view(v3), v3) == 0);

  Eigen::MatrixXf col(5, 4);
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row(5, 4);
  CHECK(misplaced_1d(sr::as_view(col.col(2)), col.col(2)) == 0);
  CHECK(misplaced_1d(sr::as_view(col.row(3)), col.row(3)) == 0);  // stride 5
  CHECK(sr::as_view(col.row(3)).stride(0) == 5);
  CHECK(misplaced_1d(sr::as_view(row.col(1)), row.col(1)) == 0);  // stride 4
  CHECK(sr::as_view(row.col(1)).stride(0) == 4);
  CHECK(misplaced_1d(sr::as_view(col.diagonal()), col.diagonal()) == 0);

  Eigen::MatrixXf one_col(5, 1);
  CHECK(sr::as_view(one_col).rank() == 2);
}

TEST_CASE("Eigen tensors: strides from the dimensions and the layout", "[adapters][eigen]") {
  Eigen::Tensor<float, 4> col(3, 4, 2, 5);  // ColMajor by default
  Eigen::Tensor<float, 4, Eigen::RowMajor> row(3, 4, 2, 5);
  const auto vc = sr::as_view(col);
  const auto vr = sr::as_view(row);
  REQUIRE(vc.rank() == 4);
  CHECK(vc.stride(0) == 1);
  CHECK(vc.stride(1) == 3);
  CHECK(vc.stride(2) == 12);
  CHECK(vc.stride(3) == 24);
  CHECK(vr.stride(0) == 40);
  CHECK(vr.stride(3) == 1);
  CHECK(vr.is_contiguous());
  std::size_t bad = 0;
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 4; ++b)
      for (int c = 0; c < 2; ++c)
        for (int d = 0; d < 5; ++d)
          bad += (&vc(a, b, c, d) != &col(a, b, c, d)) + (&vr(a, b, c, d) != &row(a, b, c, d));
  CHECK(bad == 0);

  std::vector<double> buf(60);
  Eigen::TensorMap<Eigen::Tensor<double, 3, Eigen::RowMajor>> map(buf.data(), 3, 4, 5);
  Eigen::TensorMap<Eigen::Tensor<const double, 3>> cmap(buf.data(), 3, 4, 5);
  Eigen::TensorFixedSize<double, Eigen::Sizes<2, 3, 4>> fixed;
  bad = 0;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        bad += (&sr::as_view(map)(a, b, c) != &map(a, b, c)) + (&sr::as_view(cmap)(a, b, c) != &cmap(a, b, c)) +
               (&sr::as_view(fixed)(a, b, c) != &fixed(a, b, c));
  CHECK(bad == 0);

  Eigen::Tensor<float, 0> scalar;
  scalar() = -2.0f;
  const auto v0 = sr::as_view(scalar);
  CHECK(v0.rank() == 0);
  CHECK(v0.size() == 1);
  CHECK(sr::value(sr::l1(0.5), scalar) == 1.0);
}

TEST_CASE("penalties run on Eigen objects and temporaries, in place on a block only", "[adapters][eigen]") {
  Eigen::MatrixXd m(6, 5);
  for (Eigen::Index j = 0; j < 5; ++j)
    for (Eigen::Index i = 0; i < 6; ++i) m(i, j) = (i - 2.5) * 0.3 + (j - 2) * 0.11;
  const Eigen::MatrixXd before = m;
  const sr::l1 pen(0.4);
  const auto r = sr::prox(pen, m.block(1, 1, 3, 3), m.block(1, 1, 3, 3), 0.5);  // in place on the block
  std::size_t zeros = 0;
  for (Eigen::Index j = 0; j < 5; ++j)
    for (Eigen::Index i = 0; i < 6; ++i) {
      const bool inside = i >= 1 && i < 4 && j >= 1 && j < 4;
      const double t = 0.2;  // step * lambda
      const double want = inside ? (before(i, j) > t    ? before(i, j) - t
                                    : before(i, j) < -t ? before(i, j) + t
                                                        : 0.0)
                                 : before(i, j);
      CHECK(m(i, j) == want);
      zeros += inside && want == 0.0;
    }
  CHECK(r.zero_elements == zeros);

  // A sparsereg function accepts a const matrix as input and a Map as output.
  const Eigen::MatrixXd& cm = before;
  std::vector<double> out(30);
  Eigen::Map<Eigen::MatrixXd> out_map(out.data(), 6, 5);
  sr::prox(pen, cm, out_map, 0.5);
  CHECK(out_map(5, 4) == Eigen::MatrixXd(before.array().sign() * (before.array().abs() - 0.2).max(0.0))(5, 4));

  // Zero-size matrices are a no-op.
  Eigen::MatrixXf empty(0, 4);
  CHECK(sr::value(sr::l1(1.0), empty) == 0.0);
  CHECK(sr::prox(sr::group_lasso(1.0, sr::groups::output_neurons()), empty, empty, 1.0).zero_elements == 0);
}

TEST_CASE("Eigen views follow the aliasing rules", "[adapters][eigen]") {
  Eigen::MatrixXf m = Eigen::MatrixXf::Random(5, 5);
  const sr::l1 pen(0.1);
  // The transpose of a square matrix overlaps it with other strides: neither in place nor disjoint.
  CHECK_THROWS_AS(sr::prox(pen, m, m.transpose(), 1.0), std::invalid_argument);
  // Partially overlapping blocks.
  CHECK_THROWS_AS(sr::prox(pen, m.block(0, 0, 3, 3), m.block(1, 1, 3, 3), 1.0), std::invalid_argument);
  // Disjoint blocks and the same block are fine.
  CHECK_NOTHROW(sr::prox(pen, m.block(0, 0, 2, 2), m.block(3, 3, 2, 2), 1.0));
  CHECK_NOTHROW(sr::prox(pen, m.block(0, 0, 2, 2), m.block(0, 0, 2, 2), 1.0));
  // A gradient buffer must not overlap the weights.
  CHECK_THROWS_AS(sr::add_gradient(pen, m, m), std::invalid_argument);
  // Shapes must match: a 3 x 4 block against a 4 x 3 one.
  CHECK_THROWS_AS(sr::prox(pen, m.block(0, 0, 3, 4), Eigen::MatrixXf(4, 3), 1.0), std::invalid_argument);
  // The even and the odd elements of one buffer share no element (their address ranges
  // intersect, their layouts are the same): accepted, with the result of separate buffers.
  std::vector<float> buf(20, 1.0f);
  for (std::size_t i = 0; i < buf.size(); i += 2) buf[i] = static_cast<float>(i) * 0.05f - 0.4f;
  Eigen::Map<Eigen::VectorXf, 0, Eigen::InnerStride<2>> even(buf.data(), 10), odd(buf.data() + 1, 10);
  const Eigen::VectorXf even_copy = even;
  Eigen::VectorXf odd_sep(10);
  const sr::sparse_group_lasso sgl(0.2, 0.1, sr::groups::whole());
  const auto r_sep = sr::prox(sgl, even_copy, odd_sep, 1.0);
  const auto r_int = sr::prox(sgl, even, odd, 1.0);
  CHECK(even == even_copy);
  CHECK(odd == odd_sep);  // exact float equality
  CHECK(r_int.value == r_sep.value);
  // Column 0 and column 1 of a RowMajor 4x2 matrix ([w | g] packed): disjoint, interleaved.
  Eigen::Matrix<float, 4, 2, Eigen::RowMajor> wg;
  wg << 0.5f, 0.0f, -1.5f, 0.0f, 0.0f, 0.0f, 2.0f, 0.0f;
  Eigen::Vector4f g_sep = Eigen::Vector4f::Zero();
  const Eigen::Vector4f w_sep = wg.col(0);
  sr::add_gradient(sr::squared_l2(0.5), w_sep, g_sep);
  sr::add_gradient(sr::squared_l2(0.5), wg.col(0), wg.col(1));
  CHECK(wg.col(1) == g_sep);
  CHECK(wg.col(0) == w_sep);
  sr::prox(pen, wg.col(0), wg.col(1), 1.0);
  CHECK(wg.col(1) == Eigen::Vector4f(0.4f, -1.4f, 0.0f, 1.9f));
  // Same layout, shared elements: still rejected as a partial overlap.
  CHECK_THROWS_WITH(sr::prox(pen, m.col(0).head(4), m.col(0).tail(4), 1.0), Catch::Contains("partially overlaps"));
  // A Map walking backwards has a negative stride: rejected with a clear message.
  Eigen::Map<Eigen::VectorXf, 0, Eigen::InnerStride<Eigen::Dynamic>> backwards(buf.data() + 9, 10,
                                                                              Eigen::InnerStride<Eigen::Dynamic>(-1));
  CHECK_THROWS_WITH(sr::as_view(backwards), Catch::Contains("negative stride"));
  // Groupings check their rank against the Eigen view (a vector is rank 1).
  Eigen::VectorXf v = Eigen::VectorXf::Ones(4);
  CHECK_THROWS_AS(sr::value(sr::group_lasso(1.0, sr::groups::output_neurons()), v), std::invalid_argument);
}

namespace {
/// A user class derived from Eigen::Matrix, the "inheriting from Matrix" pattern of Eigen's docs.
class weight_matrix : public Eigen::MatrixXf {
 public:
  weight_matrix(Eigen::Index rows, Eigen::Index cols) : Eigen::MatrixXf(rows, cols) {}
  template <class Other>
  weight_matrix(const Eigen::MatrixBase<Other>& other) : Eigen::MatrixXf(other) {}
};
}  // namespace

static_assert(std::is_same_v<view_type_of<decltype(std::declval<Eigen::VectorXf&>().head(3))>, sr::view<float>>);
static_assert(std::is_same_v<view_type_of<weight_matrix>, sr::view<float>>);
static_assert(std::is_same_v<view_type_of<const weight_matrix>, sr::view<const float>>);
static_assert(sr::detail::eigen_owns_storage<weight_matrix>::value);  // as_view(weight_matrix(..)) must not compile

TEST_CASE("Eigen VectorBlocks (head, tail, segment) and classes derived from Matrix are views", "[adapters][eigen]") {
  Eigen::VectorXf v(8);
  v << 3.0f, -0.2f, 1.0f, 0.1f, -2.0f, 0.4f, 5.0f, -0.3f;
  CHECK(misplaced_1d(sr::as_view(v.head(3)), v.head(3)) == 0);
  CHECK(misplaced_1d(sr::as_view(v.tail(2)), v.tail(2)) == 0);
  CHECK(misplaced_1d(sr::as_view(v.segment(2, 4)), v.segment(2, 4)) == 0);
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(5, 4);
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> r = Eigen::MatrixXf::Random(5, 4);
  CHECK(misplaced_1d(sr::as_view(a.col(1).segment(1, 3)), a.col(1).segment(1, 3)) == 0);
  CHECK(misplaced_1d(sr::as_view(r.col(1).segment(1, 3)), r.col(1).segment(1, 3)) == 0);  // stride 4
  CHECK(sr::as_view(r.col(1).segment(1, 3)).stride(0) == 4);
  CHECK(misplaced_1d(sr::as_view(a.row(2).tail(2)), a.row(2).tail(2)) == 0);  // stride 5
  // In place on a head, nothing else changes.
  const Eigen::VectorXf before = v;
  sr::prox(sr::l1(1.0), v.head(3), v.head(3), 0.5);
  CHECK(v.head(3) == Eigen::Vector3f(2.5f, 0.0f, 0.5f));
  CHECK(v.tail(5) == before.tail(5));
  CHECK(sr::value(sr::l1(1.0), v.segment(3, 2)) == Approx(2.1));
  // A class derived from Matrix.
  weight_matrix w(3, 4);
  w.setConstant(2.0f);
  CHECK(misplaced_2d(sr::as_view(w), w) == 0);
  const weight_matrix& cw = w;
  CHECK(misplaced_2d(sr::as_view(cw), cw) == 0);
  sr::prox(sr::l1(1.0), w, w, 0.5);
  CHECK((w.array() == 1.5f).all());
}

TEST_CASE("Eigen broadcasts (stride 0) cannot be written; a const map of one can be read", "[adapters][eigen]") {
  float cell = 3.0f;
  using any_inner = Eigen::InnerStride<Eigen::Dynamic>;
  Eigen::Map<Eigen::VectorXf, 0, any_inner> bcast(&cell, 4, any_inner(0));
  REQUIRE_THROWS_MATCHES(sr::as_view(bcast), std::invalid_argument,
                         Catch::Matchers::Message("sparsereg::as_view: Eigen object of 4x1 elements has a stride 0 "
                                                  "(rowStride 0, colStride 0): several elements share one memory "
                                                  "location, so it cannot be written; map it as const "
                                                  "(Map<const ...>) to read it"));
  CHECK_THROWS_WITH(sr::prox(sr::l1(1.0), bcast, bcast, 0.5), Catch::Contains("stride 0"));
  CHECK(cell == 3.0f);
  Eigen::Map<Eigen::MatrixXf, 0, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>> rows_bcast(
      &cell, 3, 2, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(1, 0));  // outer 1, inner 0
  CHECK_THROWS_WITH(sr::as_view(rows_bcast), Catch::Contains("stride 0"));
  // Read-only: a broadcast input is fine.
  Eigen::Map<const Eigen::VectorXf, 0, any_inner> read(&cell, 4, any_inner(0));
  CHECK(sr::as_view(read).stride(0) == 0);
  Eigen::Vector4f y;
  sr::prox(sr::l1(1.0), read, y, 0.5);
  CHECK(y == Eigen::Vector4f::Constant(2.5f));
  CHECK(sr::value(sr::l1(1.0), read) == Approx(12.0));
  // An extent-1 axis may have stride 0.
  Eigen::Map<Eigen::VectorXf, 0, any_inner> single(&cell, 1, any_inner(0));
  CHECK_NOTHROW(sr::as_view(single));
  // So may an empty one (Eigen reports colStride 0 for a 0 x n matrix).
  Eigen::MatrixXf empty(0, 4);
  CHECK(sr::as_view(empty).size() == 0);
}
