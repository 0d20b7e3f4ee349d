// Cross-view identity: every penalty gives the same results whatever container holds the tensor.
//
// One logical tensor (fixed seed) is stored in many containers and memory layouts: a raw row-major
// sparsereg::view (the reference), Eigen row- and column-major matrices, arrays, blocks, strided
// maps and transposes, Eigen::Tensor/TensorMap in both layouts, xtensor containers and adaptors in
// both layouts, raw strided views embedded in padded buffers, and std::vector. For each penalty and
// grouping preset we run value, add_gradient (onto a non-zero gradient), prox (out of place) and
// prox in place, then compare every output element by element in LOGICAL order, reading each
// container through its own accessor (m(i, j), t(o, i, h, w), ...), never through the adapter.
//
// What must be bit-identical (sparsereg/detail/sweep.hpp): separable penalties act element by
// element, so their outputs are exact for every layout. A group's norm is accumulated in 8 lanes
// keyed by the element's position inside its group, so group outputs are exact whenever the layout
// visits each group's elements in the same relative order as row-major, i.e. when the axes a group
// extends along are nested in memory in their logical order (keeps_row_major_order_in_groups):
// every 2-D layout (a group is one row or one column, walked along a single axis either way),
// every layout whose memory order is row-major (padding and inner strides do not change the
// order), explicit group lists in any layout, a column-major 4-D tensor under `shapes` (groups
// extend along O only), OIHW weights stored I,H,W,O under `filters`, TensorFlow's H,W,I,O memory
// under `kernels`. Where the order differs (e.g. column-major 4-D under filters, input_channels,
// kernels: the group's axes are visited in reversed nesting) we check a rounding bound instead; see
// group_tolerance below. Penalty values are sums over runs and groups in memory order, so they are
// exact only for views with the reference's strides and otherwise agree to a tight relative bound.
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <sparsereg/adapters/eigen.hpp>
#include <sparsereg/adapters/xtensor.hpp>
#include <sparsereg/sparsereg.hpp>
#include <sstream>
#include <string>
#include <vector>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

namespace sr = sparsereg;

namespace {

constexpr double step = 0.5;

template <std::size_t R>
using index_t = std::array<std::size_t, R>;

template <std::size_t R>
std::size_t element_count(const index_t<R>& shape) {
  std::size_t n = 1;
  for (std::size_t e : shape) n *= e;
  return n;
}

template <std::size_t R>
index_t<R> unravel(std::size_t flat, const index_t<R>& shape) {
  index_t<R> idx{};
  for (std::size_t k = R; k-- > 0;) {
    idx[k] = flat % shape[k];
    flat /= shape[k];
  }
  return idx;
}

/// Row-major number of the group holding `idx` when the axes in `mask` identify groups.
template <std::size_t R>
std::size_t group_of(const index_t<R>& idx, const index_t<R>& shape, unsigned mask) {
  std::size_t g = 0;
  for (std::size_t k = 0; k < R; ++k)
    if (mask & (1u << k)) g = g * shape[k] + idx[k];
  return g;
}

/// Random weights in [-1, 1] (fixed seed), about 10% exact zeros, and the whole slice at index 1 of
/// axis 0 zero (a dead output neuron / filter: the zero-group path).
template <class T, std::size_t R>
std::vector<T> make_values(const index_t<R>& shape, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> v(element_count(shape));
  for (std::size_t f = 0; f < v.size(); ++f) {
    const double a = u(rng);
    const double b = u(rng);
    v[f] = (b > 0.8 || unravel(f, shape)[0] == 1) ? T(0) : static_cast<T>(a);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Holders: one container holding a logical tensor, with native element access `at(idx)`,
// the object handed to sparsereg `arg()`, and a check that memory outside the tensor is untouched.

template <class T>
constexpr T sentinel = T(1234.5);

/// Raw memory seen through an explicit-stride sparsereg::view; everything else in the buffer is padding.
template <class T, std::size_t R>
struct strided_holder {
  std::vector<T> buf;
  index_t<R> shape;
  std::array<std::ptrdiff_t, R> strides;
  std::ptrdiff_t base;

  strided_holder(index_t<R> shape_, std::array<std::ptrdiff_t, R> strides_, std::ptrdiff_t base_, std::size_t total)
      : buf(total, sentinel<T>), shape(shape_), strides(strides_), base(base_) {}
  std::ptrdiff_t offset(const index_t<R>& i) const {
    std::ptrdiff_t o = base;
    for (std::size_t k = 0; k < R; ++k) o += static_cast<std::ptrdiff_t>(i[k]) * strides[k];
    return o;
  }
  T& at(const index_t<R>& i) { return buf[static_cast<std::size_t>(offset(i))]; }
  sr::view<T> arg() { return sr::view<T>(buf.data() + base, shape, strides); }
  bool padding_intact() const {
    std::vector<bool> used(buf.size(), false);
    for (std::size_t f = 0; f < element_count(shape); ++f)
      used[static_cast<std::size_t>(offset(unravel(f, shape)))] = true;
    for (std::size_t k = 0; k < buf.size(); ++k)
      if (!used[k] && !(buf[k] == sentinel<T>)) return false;
    return true;
  }
};

/// Row-major strides of `shape`, each axis padded by pad[k] elements and the innermost step `inner`.
template <class T, std::size_t R>
strided_holder<T, R> padded_row_major(const index_t<R>& shape, const index_t<R>& pad, std::size_t inner,
                                      std::size_t base) {
  std::array<std::ptrdiff_t, R> st{};
  std::ptrdiff_t s = static_cast<std::ptrdiff_t>(inner);
  for (std::size_t k = R; k-- > 0;) {
    st[k] = s;
    s *= static_cast<std::ptrdiff_t>(shape[k] + pad[k]);
  }
  return strided_holder<T, R>(shape, st, static_cast<std::ptrdiff_t>(base), static_cast<std::size_t>(s) + base + 3);
}

/// Column-major strides (axis 0 innermost), each axis padded by pad[k] elements.
template <class T, std::size_t R>
strided_holder<T, R> padded_col_major(const index_t<R>& shape, const index_t<R>& pad, std::size_t inner,
                                      std::size_t base) {
  std::array<std::ptrdiff_t, R> st{};
  std::ptrdiff_t s = static_cast<std::ptrdiff_t>(inner);
  for (std::size_t k = 0; k < R; ++k) {
    st[k] = s;
    s *= static_cast<std::ptrdiff_t>(shape[k] + pad[k]);
  }
  return strided_holder<T, R>(shape, st, static_cast<std::ptrdiff_t>(base), static_cast<std::size_t>(s) + base + 3);
}

/// Any Eigen dense object or Eigen/xtensor container indexed with (i0, ..., iR-1).
template <class C, std::size_t R>
struct native_holder {
  C c;
  template <std::size_t... K>
  auto& at_impl(const index_t<R>& i, std::index_sequence<K...>) {
    return c(static_cast<Eigen::Index>(i[K])...);
  }
  auto& at(const index_t<R>& i) { return at_impl(i, std::make_index_sequence<R>{}); }
  C& arg() { return c; }
  bool padding_intact() const { return true; }
};

/// A Block of a larger column-major matrix (non-contiguous: column pitch > rows).
template <class T>
struct eigen_block_holder {
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> big;
  Eigen::Index r, c;
  eigen_block_holder(std::size_t rows, std::size_t cols)
      : big(Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>::Constant(
            static_cast<Eigen::Index>(rows) + 5, static_cast<Eigen::Index>(cols) + 2, sentinel<T>)),
        r(static_cast<Eigen::Index>(rows)),
        c(static_cast<Eigen::Index>(cols)) {}
  T& at(const index_t<2>& i) { return big(3 + static_cast<Eigen::Index>(i[0]), 1 + static_cast<Eigen::Index>(i[1])); }
  auto arg() { return big.block(3, 1, r, c); }  // a temporary Block, as users write it
  bool padding_intact() const {
    for (Eigen::Index j = 0; j < big.cols(); ++j)
      for (Eigen::Index i = 0; i < big.rows(); ++i) {
        const bool inside = i >= 3 && i < 3 + r && j >= 1 && j < 1 + c;
        if (!inside && !(big(i, j) == sentinel<T>)) return false;
      }
    return true;
  }
};

/// An Eigen::Map with runtime outer and inner strides over a padded buffer (row-major, inner stride 2).
template <class T>
struct eigen_strided_map_holder {
  using map_t = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Unaligned,
                           Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
  strided_holder<T, 2> mem;
  eigen_strided_map_holder(std::size_t rows, std::size_t cols)
      : mem(padded_row_major<T, 2>({rows, cols}, {0, 3}, 2, 1)) {}
  T& at(const index_t<2>& i) { return mem.at(i); }
  map_t arg() {
    return map_t(mem.buf.data() + mem.base, static_cast<Eigen::Index>(mem.shape[0]),
                 static_cast<Eigen::Index>(mem.shape[1]),
                 Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(mem.strides[0], mem.strides[1]));
  }
  bool padding_intact() const { return mem.padding_intact(); }
};

/// The transpose of a column-major cols x rows matrix: logically rows x cols with row-major strides.
template <class T>
struct eigen_transpose_holder {
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> mt;
  eigen_transpose_holder(std::size_t rows, std::size_t cols)
      : mt(static_cast<Eigen::Index>(cols), static_cast<Eigen::Index>(rows)) {}
  T& at(const index_t<2>& i) { return mt(static_cast<Eigen::Index>(i[1]), static_cast<Eigen::Index>(i[0])); }
  auto arg() { return mt.transpose(); }
  bool padding_intact() const { return true; }
};

/// An xtensor adaptor with explicit strides over a padded column-major buffer.
template <class T, std::size_t R>
struct xtensor_strided_adaptor_holder {
  strided_holder<T, R> mem;
  explicit xtensor_strided_adaptor_holder(strided_holder<T, R> m) : mem(std::move(m)) {}
  T& at(const index_t<R>& i) { return mem.at(i); }
  auto arg() {
    std::array<std::size_t, R> sh = mem.shape;
    std::array<std::ptrdiff_t, R> st = mem.strides;
    // xtensor sizes a strided adaptor's storage by its element count (it never reads the padding).
    return xt::adapt(mem.buf.data() + mem.base, element_count(mem.shape), xt::no_ownership(), sh, st);
  }
  bool padding_intact() const { return mem.padding_intact(); }
};

template <class Holder, std::size_t R, class T>
void fill(Holder& h, const index_t<R>& shape, const std::vector<T>& values) {
  for (std::size_t f = 0; f < values.size(); ++f) h.at(unravel(f, shape)) = values[f];
}
template <class T, class Holder, std::size_t R>
std::vector<T> read(Holder& h, const index_t<R>& shape) {
  std::vector<T> v(element_count(shape));
  for (std::size_t f = 0; f < v.size(); ++f) v[f] = h.at(unravel(f, shape));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Running a penalty through one layout.

template <class T>
struct outcome {
  double value = 0;
  std::vector<T> grad;
  std::vector<T> y;
  sr::prox_result r;
  std::vector<T> in_place;
  sr::prox_result r_in_place;
  bool x_unchanged = false;
  bool padding_intact = false;
};

template <class T, std::size_t R, class P, class Make>
outcome<T> run(const P& p, const index_t<R>& shape, const std::vector<T>& x, const std::vector<T>& g0, Make make) {
  outcome<T> o;
  auto hx = make();
  auto hg = make();
  auto hy = make();
  auto hz = make();
  fill(hx, shape, x);
  fill(hg, shape, g0);
  fill(hy, shape, std::vector<T>(x.size(), T(-7)));
  fill(hz, shape, x);
  o.value = sr::value(p, hx.arg());
  if constexpr (P::has_gradient) sr::add_gradient(p, hx.arg(), hg.arg());
  o.r = sr::prox(p, hx.arg(), hy.arg(), step);
  o.r_in_place = sr::prox(p, hz.arg(), hz.arg(), step);
  o.grad = read<T>(hg, shape);
  o.y = read<T>(hy, shape);
  o.in_place = read<T>(hz, shape);
  o.x_unchanged = read<T>(hx, shape) == x;
  o.padding_intact = hx.padding_intact() && hg.padding_intact() && hy.padding_intact() && hz.padding_intact();
  return o;
}

/// How two outcomes must agree.
struct agreement {
  bool exact_elements = true;  ///< outputs bit-identical (else within group_tolerance)
  bool exact_value = false;    ///< penalty values bit-identical (same strides as the reference)
  std::size_t group_size = 0;  ///< for the rounding bound of non-exact cases
  double lambda_l1 = 0;
};

/// Rounding bound, relative to the element's scale, between two summation orders of one group.
/// ||x_g||^2 is a sum of n non-negative terms kept in 8 lanes of ceil(n/8) terms each and combined
/// by a 3-level tree: every term takes part in at most k = ceil(n/8) + 3 additions plus 1 rounding
/// for its square, so each computed sum is within gamma_k = k*eps/(1 - k*eps) (relative) of the
/// exact one (Higham 2002, eq. 3.5, for non-negative terms), with k = ceil(n/8) + 4. Two orders
/// therefore differ by at most 2*gamma_k in the sum and about gamma_k in the norm (sqrt halves a
/// relative error). The factor 1 - thr/norm (or lambda*c/norm) inherits that relative error times
/// thr/norm <= 1, its double -> T cast adds one rounding and y = u * factor another, so
/// |y - y_ref| <= (k + 2) * eps * |u| with u = soft_threshold(x), |u| <= |x|. We allow k + 6.
/// (For n = 135: 28 eps, about 1.7e-6 in float.)
template <class T>
double group_tolerance(std::size_t n) {
  const double k = std::ceil(static_cast<double>(n) / 8.0) + 4.0;
  return (k + 6.0) * static_cast<double>(std::numeric_limits<T>::epsilon());
}

template <class T>
std::string first_difference(const char* what, const std::vector<T>& ref, const std::vector<T>& got,
                             const std::vector<double>& bound) {
  for (std::size_t f = 0; f < ref.size(); ++f) {
    const bool same = bound.empty() ? (ref[f] == got[f] || (std::isnan(ref[f]) && std::isnan(got[f])))
                                    : std::fabs(static_cast<double>(ref[f]) - static_cast<double>(got[f])) <= bound[f];
    if (!same) {
      std::ostringstream s;
      s.precision(std::numeric_limits<T>::max_digits10);
      s << what << "[" << f << "] (row-major index): reference " << ref[f] << ", got " << got[f];
      if (!bound.empty()) s << " (allowed difference " << bound[f] << ")";
      return s.str();
    }
  }
  return {};
}

template <class T>
void require_agreement(const outcome<T>& ref, const outcome<T>& got, const std::vector<T>& x, const std::vector<T>& g0,
                       const agreement& a) {
  REQUIRE(got.x_unchanged);
  REQUIRE(got.padding_intact);
  std::vector<double> y_bound, g_bound;
  if (!a.exact_elements) {
    const double tol = group_tolerance<T>(a.group_size);
    for (std::size_t f = 0; f < x.size(); ++f) {
      y_bound.push_back(tol * std::fabs(static_cast<double>(x[f])));
      // g = g0 + coef*w + l1*sign(w): |coef*w| <= |g_ref| + |g0| + l1, plus the final rounding.
      g_bound.push_back(
          tol * (std::fabs(static_cast<double>(g0[f])) + std::fabs(static_cast<double>(ref.grad[f])) + a.lambda_l1));
    }
  }
  const std::string dy = first_difference("prox y", ref.y, got.y, y_bound);
  REQUIRE(dy.empty());
  const std::string dg = first_difference("gradient", ref.grad, got.grad, g_bound);
  REQUIRE(dg.empty());
  // In place runs the same sweep with y = x: exactly the out-of-place result of the same layout.
  const std::string di = first_difference("in-place prox", got.y, got.in_place, {});
  REQUIRE(di.empty());
  REQUIRE(got.r.zero_elements == ref.r.zero_elements);
  REQUIRE(got.r.zero_groups == ref.r.zero_groups);
  REQUIRE(got.r.groups == ref.r.groups);
  REQUIRE(got.r_in_place.value == got.r.value);
  REQUIRE(got.r_in_place.zero_elements == got.r.zero_elements);
  if (a.exact_value) {
    REQUIRE(got.value == ref.value);
    REQUIRE(got.r.value == ref.r.value);
  } else {
    // Same per-element / per-group terms summed in another order: n terms of one sign in double,
    // relative difference <= 2*n*eps_double (n <= 1296 here, so 1e-12 is safe); when the group
    // norms themselves may differ, their own bound applies on top.
    const double rel = 1e-12 + (a.exact_elements ? 0.0 : group_tolerance<T>(a.group_size));
    REQUIRE(std::fabs(got.value - ref.value) <= rel * std::fabs(ref.value));
    REQUIRE(std::fabs(got.r.value - ref.r.value) <= rel * std::fabs(ref.r.value));
  }
}

// ---------------------------------------------------------------------------------------------
// Penalties and groupings.

struct grouping_spec {
  std::string name;
  sr::grouping grouping;
  unsigned mask;  ///< identifying axes (for explicit lists: of the by-axes grouping they spell out)
  std::size_t group_size;
  bool explicit_lists = false;  ///< positions inside a group are list positions, whatever the layout
};

/// The explicit-list form of a by-axes grouping: group g lists its elements in row-major order.
template <std::size_t R>
sr::grouping as_lists(const index_t<R>& shape, unsigned mask) {
  std::vector<std::vector<std::size_t>> lists;
  for (std::size_t f = 0; f < element_count(shape); ++f) {
    const std::size_t g = group_of(unravel(f, shape), shape, mask);
    if (g >= lists.size()) lists.resize(g + 1);
    lists[g].push_back(f);
  }
  return sr::grouping::from_lists(lists);
}

/// The by-axes groupings followed by their explicit-list forms.
template <std::size_t R>
std::vector<grouping_spec> with_list_forms(const index_t<R>& shape, std::vector<grouping_spec> specs) {
  const std::size_t n = specs.size();
  for (std::size_t k = 0; k < n; ++k)
    specs.push_back({specs[k].name + " as explicit lists", as_lists(shape, specs[k].mask), specs[k].mask,
                     specs[k].group_size, true});
  return specs;
}

/// lambda_group putting the decision threshold halfway between the two middle group norms (of
/// u = soft_threshold(x, step*lambda_l1)), so about half the groups are zeroed and none is near a tie.
template <class T, std::size_t R>
double middle_lambda(const std::vector<T>& x, const index_t<R>& shape, const grouping_spec& g, double lambda_l1) {
  std::vector<double> sq(element_count(shape) / g.group_size, 0.0);
  const double t1 = step * lambda_l1;
  for (std::size_t f = 0; f < x.size(); ++f) {
    const double v = static_cast<double>(x[f]);
    const double u = std::max(std::fabs(v) - t1, 0.0);
    sq[group_of(unravel(f, shape), shape, g.mask)] += u * u;
  }
  for (double& s : sq) s = std::sqrt(s);
  std::sort(sq.begin(), sq.end());
  const std::size_t m = sq.size() / 2;
  const double thr = 0.5 * (sq[m - 1] + sq[m]);
  return thr / (step * std::sqrt(static_cast<double>(g.group_size)));
}

/// Calls f(name, penalty, grouping spec or null, lambda_l1) for every penalty.
template <class T, std::size_t R, class F>
void for_each_penalty(const std::vector<T>& x, const index_t<R>& shape, const std::vector<grouping_spec>& groupings,
                      F&& f) {
  f("l1", sr::l1(0.3), nullptr, 0.3);
  f("squared_l2", sr::squared_l2(0.7), nullptr, 0.0);
  f("hard_threshold", sr::hard_threshold(0.09), nullptr, 0.0);
  for (const grouping_spec& g : groupings) {
    f("group_lasso", sr::group_lasso(middle_lambda(x, shape, g, 0.0), g.grouping), &g, 0.0);
    f("sparse_group_lasso", sr::sparse_group_lasso(middle_lambda(x, shape, g, 0.2), 0.2, g.grouping), &g, 0.2);
  }
}

/// Facts about a layout that decide which results are bit-identical to the reference.
struct layout_info {
  std::vector<std::size_t> memory_order;  ///< logical axes from outermost to innermost in memory
  bool reference_strides;                 ///< exactly the strides of a dense row-major view
};

/// The promise's condition: a group's elements are visited in row-major relative order exactly when
/// the axes along which a group extends (the non-identifying ones) are nested in memory in their
/// logical order. Every axis here has extent > 1.
bool keeps_row_major_order_in_groups(const layout_info& li, unsigned mask) {
  bool first = true;
  std::size_t last = 0;
  for (std::size_t axis : li.memory_order) {
    if (mask & (1u << axis)) continue;
    if (!first && axis < last) return false;
    first = false;
    last = axis;
  }
  return true;
}

template <class T, std::size_t R, class ForEachLayout>
void check_all_layouts(const index_t<R>& shape, const std::vector<grouping_spec>& groupings, ForEachLayout&& layouts) {
  const std::vector<T> x = make_values<T>(shape, 20261125u);
  const std::vector<T> g0 = make_values<T>(shape, 7u);
  const auto reference = [&] { return padded_row_major<T, R>(shape, index_t<R>{}, 1, 0); };
  for_each_penalty<T>(x, shape, groupings, [&](const char* pname, const auto& p, const grouping_spec* g, double l1) {
    const outcome<T> ref = run<T>(p, shape, x, g0, reference);
    REQUIRE(ref.x_unchanged);
    layouts([&](const char* lname, layout_info li, auto make) {
      INFO("penalty " << pname << ", grouping " << (g ? g->name : std::string("none")) << ", layout " << lname);
      agreement a;
      a.exact_elements = g == nullptr || g->explicit_lists || keeps_row_major_order_in_groups(li, g->mask);
      a.exact_value = li.reference_strides;
      a.group_size = g ? g->group_size : 1;
      a.lambda_l1 = l1;
      require_agreement(ref, run<T>(p, shape, x, g0, make), x, g0, a);
    });
  });
}

}  // namespace

TEMPLATE_TEST_CASE("every FC (out x in) layout gives the reference results", "[adapters][layouts]", float, double) {
  using T = TestType;
  const std::size_t rows = 10, cols = 13;  // groups of 13 and 10 elements: lanes wrap, tails are partial
  const index_t<2> shape{rows, cols};
  const std::vector<grouping_spec> groupings =
      with_list_forms(shape, {{"output_neurons", sr::groups::output_neurons(), 1u, cols},
                              {"input_neurons", sr::groups::input_neurons(), 2u, rows}});
  using col_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  using row_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto r = static_cast<Eigen::Index>(rows), c = static_cast<Eigen::Index>(cols);
  check_all_layouts<T, 2>(shape, groupings, [&](auto&& each) {
    each("Eigen row-major Matrix", layout_info{{0, 1}, true},
         [&] { return native_holder<row_major, 2>{row_major(r, c)}; });
    each("Eigen column-major Matrix", layout_info{{1, 0}, false},
         [&] { return native_holder<col_major, 2>{col_major(r, c)}; });
    each("Eigen column-major Array", layout_info{{1, 0}, false}, [&] {
      using A = Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic>;
      return native_holder<A, 2>{A(r, c)};
    });
    each("Eigen Block of a larger column-major matrix", layout_info{{1, 0}, false},
         [&] { return eigen_block_holder<T>(rows, cols); });
    each("Eigen Map with outer and inner strides", layout_info{{0, 1}, false},
         [&] { return eigen_strided_map_holder<T>(rows, cols); });
    each("Eigen Transpose of a column-major matrix", layout_info{{0, 1}, true},
         [&] { return eigen_transpose_holder<T>(rows, cols); });
    each("xtensor row-major", layout_info{{0, 1}, true}, [&] {
      using X = xt::xtensor<T, 2>;
      return native_holder<X, 2>{X::from_shape({rows, cols})};
    });
    each("xtensor column-major", layout_info{{1, 0}, false}, [&] {
      using X = xt::xtensor<T, 2, xt::layout_type::column_major>;
      return native_holder<X, 2>{X::from_shape({rows, cols})};
    });
    each("xarray row-major", layout_info{{0, 1}, true}, [&] {
      using X = xt::xarray<T>;
      return native_holder<X, 2>{X::from_shape({rows, cols})};
    });
    each("xtensor adaptor, padded column-major", layout_info{{1, 0}, false}, [&] {
      return xtensor_strided_adaptor_holder<T, 2>(padded_col_major<T, 2>(shape, {4, 0}, 1, 2));
    });
    each("strided view, padded rows", layout_info{{0, 1}, false}, [&] {
      return padded_row_major<T, 2>(shape, {0, 3}, 1, 5);
    });
    each("strided view, inner stride 3, padded rows", layout_info{{0, 1}, false}, [&] {
      return padded_row_major<T, 2>(shape, {0, 1}, 3, 2);
    });
    each("strided view, padded column-major, inner stride 2", layout_info{{1, 0}, false}, [&] {
      return padded_col_major<T, 2>(shape, {2, 0}, 2, 1);
    });
  });
}

TEMPLATE_TEST_CASE("every conv (O x I x H x W) layout gives the reference results", "[adapters][layouts]", float,
                   double) {
  using T = TestType;
  // Groups: filters 60, input channels 135, kernels 15 (3x5, not square: an H/W swap would show),
  // shapes 9 elements.
  const index_t<4> shape{9, 4, 3, 5};
  const std::vector<grouping_spec> groupings =
      with_list_forms(shape, {{"filters", sr::groups::filters(), 1u, 60},
                              {"input_channels", sr::groups::input_channels(), 2u, 135},
                              {"kernels", sr::groups::kernels(), 3u, 15},
                              {"shapes", sr::groups::shapes(), 14u, 9}});
  using tensor_col = Eigen::Tensor<T, 4>;
  using tensor_row = Eigen::Tensor<T, 4, Eigen::RowMajor>;
  check_all_layouts<T, 4>(shape, groupings, [&](auto&& each) {
    each("Eigen::Tensor RowMajor", layout_info{{0, 1, 2, 3}, true},
         [&] { return native_holder<tensor_row, 4>{tensor_row(9, 4, 3, 5)}; });
    each("Eigen::Tensor ColMajor (default)", layout_info{{3, 2, 1, 0}, false},
         [&] { return native_holder<tensor_col, 4>{tensor_col(9, 4, 3, 5)}; });
    each("xtensor row-major", layout_info{{0, 1, 2, 3}, true}, [&] {
      using X = xt::xtensor<T, 4>;
      return native_holder<X, 4>{X::from_shape({9, 4, 3, 5})};
    });
    each("xtensor column-major", layout_info{{3, 2, 1, 0}, false}, [&] {
      using X = xt::xtensor<T, 4, xt::layout_type::column_major>;
      return native_holder<X, 4>{X::from_shape({9, 4, 3, 5})};
    });
    each("xarray column-major", layout_info{{3, 2, 1, 0}, false}, [&] {
      using X = xt::xarray<T, xt::layout_type::column_major>;
      return native_holder<X, 4>{X::from_shape({9, 4, 3, 5})};
    });
    each("xtensor adaptor, padded row-major", layout_info{{0, 1, 2, 3}, false}, [&] {
      return xtensor_strided_adaptor_holder<T, 4>(padded_row_major<T, 4>(shape, {1, 0, 2, 1}, 1, 3));
    });
    each("strided view, every axis padded", layout_info{{0, 1, 2, 3}, false}, [&] {
      return padded_row_major<T, 4>(shape, {1, 1, 2, 1}, 1, 4);
    });
    each("strided view, inner stride 2, padded", layout_info{{0, 1, 2, 3}, false}, [&] {
      return padded_row_major<T, 4>(shape, {0, 1, 0, 0}, 2, 1);
    });
    each("strided view, padded column-major", layout_info{{3, 2, 1, 0}, false}, [&] {
      return padded_col_major<T, 4>(shape, {1, 0, 1, 2}, 1, 2);
    });
    // OIHW logical, filters innermost in memory (I x H x W x O): a filter's elements keep their
    // row-major relative order although the memory order is not row-major.
    each("strided view, memory order I,H,W,O", layout_info{{1, 2, 3, 0}, false}, [&] {
      return strided_holder<T, 4>(shape, {1, 5 * 3 * 9, 5 * 9, 9}, 0, 9 * 4 * 3 * 5);
    });
    // The same weights stored as TensorFlow does (H x W x I x O): kernels and shapes keep the order.
    each("strided view, memory order H,W,I,O (TensorFlow)", layout_info{{2, 3, 1, 0}, false}, [&] {
      return strided_holder<T, 4>(shape, {1, 9, 5 * 4 * 9, 4 * 9}, 0, 9 * 4 * 3 * 5);
    });
  });
}

namespace {

/// std::vector (rank 1) vs the rank-R raw view: separable penalties directly, group penalties
/// through the equivalent explicit lists (same positions inside each group, so exact norms).
template <class T, std::size_t R>
void check_std_vector(const index_t<R>& shape, const std::vector<grouping_spec>& groupings) {
  const std::vector<T> x = make_values<T>(shape, 20261125u);
  const std::vector<T> g0 = make_values<T>(shape, 7u);
  auto reference = [&] { return padded_row_major<T, R>(shape, index_t<R>{}, 1, 0); };
  const index_t<1> flat{x.size()};
  auto as_vector = [&] {
    struct holder {
      std::vector<T> v;
      T& at(const index_t<1>& i) { return v[i[0]]; }
      std::vector<T>& arg() { return v; }
      bool padding_intact() const { return true; }
    };
    return holder{std::vector<T>(x.size())};
  };
  for_each_penalty<T>(x, shape, groupings, [&](const char* pname, const auto& p, const grouping_spec* g, double l1) {
    INFO("penalty " << pname << ", grouping " << (g ? g->name : std::string("none"))
                    << " (explicit lists on std::vector)");
    const outcome<T> ref = run<T>(p, shape, x, g0, reference);
    agreement a;
    a.exact_elements = true;
    a.exact_value = g == nullptr;  // one contiguous run either way: the same sweep
    a.group_size = g ? g->group_size : 1;
    a.lambda_l1 = l1;
    using P = std::decay_t<decltype(p)>;
    if constexpr (P::separable) {
      require_agreement(ref, run<T>(p, flat, x, g0, as_vector), x, g0, a);
    } else {
      P q = p;
      q.groups = as_lists(shape, g->mask);
      require_agreement(ref, run<T>(q, flat, x, g0, as_vector), x, g0, a);
      // The same lists on the rank-R view itself agree too.
      require_agreement(ref, run<T>(q, shape, x, g0, reference), x, g0, a);
    }
  });
}

}  // namespace

TEMPLATE_TEST_CASE("std::vector and explicit group lists give the reference results", "[adapters][layouts]", float,
                   double) {
  using T = TestType;
  SECTION("FC") {
    check_std_vector<T, 2>({10, 13}, {{"output_neurons", sr::groups::output_neurons(), 1u, 13},
                                      {"input_neurons", sr::groups::input_neurons(), 2u, 10}});
  }
  SECTION("conv") {
    check_std_vector<T, 4>({9, 4, 3, 5}, {{"filters", sr::groups::filters(), 1u, 60},
                                          {"input_channels", sr::groups::input_channels(), 2u, 135},
                                          {"kernels", sr::groups::kernels(), 3u, 15},
                                          {"shapes", sr::groups::shapes(), 14u, 9}});
  }
}

namespace {

/// Raw strided view of `shape` (rank 1..4) whose memory nests the axes in `order` (outermost
/// first), with `pad[k]` unused elements after each run of axis k and inner step `inner`.
strided_holder<double, 4> permuted_holder(const index_t<4>& shape, const index_t<4>& order, const index_t<4>& pad,
                                          std::size_t inner) {
  std::array<std::ptrdiff_t, 4> st{};
  std::ptrdiff_t s = static_cast<std::ptrdiff_t>(inner);
  for (std::size_t k = 4; k-- > 0;) {
    const std::size_t axis = order[k];
    st[axis] = s;
    s *= static_cast<std::ptrdiff_t>(shape[axis] + pad[axis]);
  }
  return strided_holder<double, 4>(shape, st, 1, static_cast<std::size_t>(s) + 4);
}

}  // namespace

TEST_CASE("random layouts and groupings: exact whenever each group keeps its element order",
          "[adapters][layouts][property]") {
  // Random rank-4 shapes (extent-1 axes included), random memory nesting and padding, random
  // identifying axes; the promise decides per case whether the prox and gradient are exact.
  std::mt19937 rng(424242u);
  std::size_t exact_cases = 0, rounding_cases = 0;
  for (int trial = 0; trial < 300; ++trial) {
    index_t<4> shape{}, order{0, 1, 2, 3}, pad{};
    for (std::size_t k = 0; k < 4; ++k) {
      shape[k] = 1 + rng() % 6;
      pad[k] = rng() % 3;
    }
    std::shuffle(order.begin(), order.end(), rng);
    const unsigned mask = rng() % 16;
    const std::size_t inner = 1 + rng() % 2;
    std::size_t group_size = 1;
    for (std::size_t k = 0; k < 4; ++k)
      if (!(mask & (1u << k))) group_size *= shape[k];
    layout_info li{{}, false};
    for (std::size_t axis : order)
      if (shape[axis] > 1) li.memory_order.push_back(axis);  // extent-1 axes are never walked
    INFO("trial " << trial << ": shape " << shape[0] << "x" << shape[1] << "x" << shape[2] << "x" << shape[3]
                  << ", memory order " << order[0] << order[1] << order[2] << order[3] << ", mask " << mask
                  << ", inner stride " << inner);
    const std::vector<double> x = make_values<double>(shape, 1000u + static_cast<std::uint32_t>(trial));
    const std::vector<double> g0 = make_values<double>(shape, 2000u + static_cast<std::uint32_t>(trial));
    std::vector<std::size_t> axes;
    for (std::size_t k = 0; k < 4; ++k)
      if (mask & (1u << k)) axes.push_back(k);
    const sr::sparse_group_lasso p(0.3, 0.1, sr::grouping::by_axes(axes, 4));
    const auto reference = [&] { return padded_row_major<double, 4>(shape, index_t<4>{}, 1, 0); };
    const outcome<double> ref = run<double>(p, shape, x, g0, reference);
    agreement a;
    a.exact_elements = keeps_row_major_order_in_groups(li, mask);
    a.group_size = group_size;
    a.lambda_l1 = 0.1;
    (a.exact_elements ? exact_cases : rounding_cases) += 1;
    require_agreement(ref, run<double>(p, shape, x, g0, [&] { return permuted_holder(shape, order, pad, inner); }), x,
                      g0, a);
  }
  CHECK(exact_cases > 100);
  CHECK(rounding_cases > 30);
}
