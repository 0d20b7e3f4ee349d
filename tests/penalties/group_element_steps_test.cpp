// Per-element-step prox of the (sparse) group lasso: the exact prox in the metric diag(1/d).
// Proven by its optimality conditions, by reduction to the scalar prox for equal steps, and by
// the objective being no larger than at perturbed points.
#include <sparsereg/penalties/group_element_steps.hpp>
#include <sparsereg/regularizer.hpp>
#include <support/reference.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace sr = sparsereg;

// Built again with -march=native (tests/CMakeLists.txt): with AVX-512 the contiguous float runs
// take the AVX-512 kernels (width 16), without it (-mno-avx512f, width 8) the GNU-vector kernels
// in AVX2 registers; the default build tests the latter at SSE2.
#if defined(SPARSEREG_TEST_VECTOR_WIDTH) && SPARSEREG_TEST_VECTOR_WIDTH == 16 && \
    !(defined(__AVX512F__) && defined(__AVX512DQ__))
#error "SPARSEREG_TEST_VECTOR_WIDTH=16 needs AVX-512 F and DQ"
#endif
#if defined(SPARSEREG_TEST_VECTOR_WIDTH) && SPARSEREG_TEST_VECTOR_WIDTH == 8 && \
    (!defined(__AVX2__) || defined(__AVX512F__))
#error "SPARSEREG_TEST_VECTOR_WIDTH=8 needs AVX2 without AVX-512"
#endif
#if !defined(SPARSEREG_ES_VECTOR) && defined(__GNUC__)
#error "the per-element-step group prox has no vector kernels in this build"
#endif

namespace {

std::vector<double> normal(std::size_t n, std::uint32_t seed, double scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<double> uniform(std::size_t n, std::uint32_t seed, double lo, double hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Groups of a 6x4 matrix by rows (output neurons) as index lists.
std::vector<std::vector<std::size_t>> rows_of(std::size_t rows, std::size_t cols) {
  std::vector<std::vector<std::size_t>> g(rows);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) g[r].push_back(r * cols + c);
  return g;
}

double sgl_objective(const std::vector<double>& z, const std::vector<double>& x, const std::vector<double>& d,
                     double lg, double l1, std::size_t rows, std::size_t cols) {
  double obj = 0.0;
  for (std::size_t r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (std::size_t c = 0; c < cols; ++c) {
      const std::size_t i = r * cols + c;
      ss += z[i] * z[i];
      obj += l1 * std::fabs(z[i]) + (z[i] - x[i]) * (z[i] - x[i]) / (2.0 * d[i]);
    }
    obj += lg * std::sqrt(double(cols)) * std::sqrt(ss);
  }
  return obj;
}

}  // namespace

TEST_CASE("group per-element steps: optimality conditions in the metric diag(1/d)") {
  const std::size_t rows = 40, cols = 7;
  const double lg = 0.15, l1 = 0.05;
  auto x = normal(rows * cols, 31, 0.3);
  auto d = uniform(rows * cols, 32, 0.05, 3.0);
  for (std::size_t c = 0; c < cols; ++c) x[5 * cols + c] *= 50.0;  // one group far from zero
  std::vector<double> z(x.size());
  const sr::sparse_group_lasso p(lg, l1, sr::groups::output_neurons());
  const auto res = sr::prox_per_element_steps(p, sr::view<const double>(x.data(), {rows, cols}),
                                              sr::view<double>(z.data(), {rows, cols}),
                                              sr::view<const double>(d.data(), {rows, cols}));
  const double c = std::sqrt(double(cols));
  std::size_t zero_groups = 0, nonzero_groups = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    double zn = 0.0, vn = 0.0;
    for (std::size_t k = 0; k < cols; ++k) {
      const std::size_t i = r * cols + k;
      zn += z[i] * z[i];
      const double u = sr::detail::soft_threshold(x[i], d[i] * l1);
      vn += (u / d[i]) * (u / d[i]);
    }
    zn = std::sqrt(zn);
    INFO("group " << r);
    if (zn == 0.0) {
      ++zero_groups;
      // 0 in the subdifferential: ||soft(x, d l1) / d|| <= tau.
      CHECK(std::sqrt(vn) <= lg * c * (1.0 + 1e-12));
      continue;
    }
    ++nonzero_groups;
    for (std::size_t k = 0; k < cols; ++k) {
      const std::size_t i = r * cols + k;
      if (z[i] != 0.0) {
        const double kkt = (z[i] - x[i]) / d[i] + l1 * (z[i] > 0 ? 1.0 : -1.0) + lg * c * z[i] / zn;
        CHECK(std::fabs(kkt) <= 1e-9 * (1.0 + std::fabs(x[i] / d[i])));
      } else {
        CHECK(std::fabs(x[i]) / d[i] <= l1 * (1.0 + 1e-12));
      }
    }
  }
  CHECK(zero_groups > 0);
  CHECK(nonzero_groups > 0);
  CHECK(res.groups == rows);
  CHECK(res.zero_groups == zero_groups);
  CHECK(res.value == Approx(sr::value(p, sr::view<const double>(z.data(), {rows, cols}))).epsilon(1e-12));

  // No perturbation lowers the objective.
  const double best = sgl_objective(z, x, d, lg, l1, rows, cols);
  std::mt19937 rng(33);
  std::normal_distribution<double> eps(0.0, 1e-3);
  for (int trial = 0; trial < 200; ++trial) {
    auto zp = z;
    for (auto& v : zp) v += eps(rng);
    REQUIRE(sgl_objective(zp, x, d, lg, l1, rows, cols) >= best);
  }
}

TEMPLATE_TEST_CASE("group per-element steps: equal steps reduce to the scalar prox", "[group_element_steps]", float,
                   double) {
  using T = TestType;
  const auto xs = normal(8 * 3 * 3 * 3, 41, 0.2);
  std::vector<T> x(xs.begin(), xs.end());
  const double s = 0.7;
  std::vector<T> d(x.size(), static_cast<T>(s)), a(x.size()), b(x.size());
  const std::vector<sr::grouping> groupings = {sr::groups::filters(), sr::groups::input_channels(), sr::groups::kernels(),
                                               sr::grouping::from_lists(rows_of(8, 27))};
  for (std::size_t k = 0; k < groupings.size(); ++k) {
    INFO("grouping " << k);
    const sr::sparse_group_lasso p(0.1, 0.03, groupings[k]);
    const sr::view<const T> vx(x.data(), {8, 3, 3, 3});
    const auto ra = sr::prox_per_element_steps(p, vx, sr::view<T>(a.data(), {8, 3, 3, 3}),
                                               sr::view<const T>(d.data(), {8, 3, 3, 3}));
    const auto rb = sr::prox(p, vx, sr::view<T>(b.data(), {8, 3, 3, 3}), s);
    CHECK(ra.zero_groups == rb.zero_groups);
    CHECK(ra.groups == rb.groups);
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(double(a[i]) == Approx(double(b[i])).margin(1e-6));
    CHECK(ra.value == Approx(rb.value).epsilon(1e-5));
    const sr::group_lasso gl(0.2, groupings[k]);
    sr::prox_per_element_steps(gl, vx, sr::view<T>(a.data(), {8, 3, 3, 3}), sr::view<const T>(d.data(), {8, 3, 3, 3}));
    sr::prox(gl, vx, sr::view<T>(b.data(), {8, 3, 3, 3}), s);
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(double(a[i]) == Approx(double(b[i])).margin(1e-6));
  }
}

TEST_CASE("group per-element steps: zero steps pin elements, NaN stays in its group, errors") {
  std::vector<double> x = {3.0, 0.01, -0.02, /**/ 0.01, 0.02, 0.0, /**/ 1.0, std::nan(""), 2.0};
  std::vector<double> d = {0.0, 1.0, 1.0, /**/ 1.0, 1.0, 1.0, /**/ 1.0, 1.0, 1.0};
  std::vector<double> z(9);
  const sr::group_lasso p(10.0, sr::groups::output_neurons());
  const auto res = sr::prox_per_element_steps(p, sr::view<const double>(x.data(), {3, 3}), sr::view<double>(z.data(), {3, 3}),
                                              sr::view<const double>(d.data(), {3, 3}));
  CHECK(z[0] == 3.0);  // d = 0: cannot move, so the group cannot be zero
  CHECK(std::fabs(z[1]) < 0.01);
  CHECK(z[3] == 0.0);
  CHECK(z[4] == 0.0);
  CHECK(std::isnan(z[6]));
  CHECK(std::isnan(z[8]));
  CHECK(res.zero_groups == 1);
  // In place.
  auto y = x;
  sr::prox_per_element_steps(p, sr::view<const double>(y.data(), {3, 3}), sr::view<double>(y.data(), {3, 3}),
                             sr::view<const double>(d.data(), {3, 3}));
  for (std::size_t i = 0; i < 9; ++i)
    if (!std::isnan(z[i])) CHECK(y[i] == z[i]);
  d[4] = -1.0;
  CHECK_THROWS_WITH(sr::prox_per_element_steps(p, sr::view<const double>(x.data(), {3, 3}), sr::view<double>(z.data(), {3, 3}),
                                               sr::view<const double>(d.data(), {3, 3})),
                    Catch::Contains("steps[4]"));
  CHECK_THROWS_WITH(sr::prox_per_element_steps(p, sr::view<const double>(x.data(), {3, 3}), sr::view<double>(z.data(), {3, 3}),
                                               sr::view<const double>(d.data(), {9})),
                    Catch::Contains("steps"));
}

TEST_CASE("group per-element steps: through the regularizer (Adam-aware prox_step)") {
  auto x = normal(6 * 5, 51, 0.2);
  auto y = x;
  auto d = uniform(x.size(), 52, 0.1, 2.0);
  const sr::sparse_group_lasso p(0.2, 0.05, sr::groups::output_neurons());
  sr::regularizer<double> reg;
  reg.add_parameter("fc", sr::view<double>(x.data(), {6, 5}));
  reg.add_penalty("fc", p, sr::schedule::linear_warmup(2));
  reg.set_element_steps("fc", sr::view<const double>(d.data(), {6, 5}));
  reg.prox_step(0.3);
  sr::prox_per_element_steps(p.scaled(0.3 * 0.5), sr::view<const double>(y.data(), {6, 5}), sr::view<double>(y.data(), {6, 5}),
                             sr::view<const double>(d.data(), {6, 5}));
  CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);

  // group_lasso is found too; a penalty without such a prox is refused when the steps are set.
  sr::regularizer<double> r2;
  r2.add_parameter("fc", sr::view<double>(x.data(), {6, 5}));
  r2.add_penalty("fc", sr::group_lasso(0.2, sr::groups::output_neurons()));
  r2.set_element_steps("fc", sr::view<const double>(d.data(), {6, 5}));
  r2.prox_step(0.3);
  CHECK_THROWS_WITH(r2.add_coupled("fc.rows", sr::coupled_group_lasso(0.1), {{"fc", 0}}),
                    Catch::Contains("'fc'") && Catch::Contains("per-element"));
}

TEMPLATE_TEST_CASE("group per-element steps: a group of zeros keeps its signed zeros, as the scalar prox does",
                   "[group_element_steps]", float, double) {
  using T = TestType;
  // Rows 0 and 1 are zeros (some -0.0), row 2 ordinary values. A zero group is written u * 0,
  // the scalar prox's pre(x) * 0: at zero steps (and at step 0 of the scalar prox) that is x.
  const T z = T(-0.0);
  std::vector<T> x = {z, T(0), z, z, z, z, T(0.5), T(-0.25), T(1)};
  const std::vector<T> d(x.size(), T(0));
  const sr::sparse_group_lasso p(0.3, 0.1, sr::groups::output_neurons());
  std::vector<T> y(x.size()), s(x.size());
  const auto r = sr::prox_per_element_steps(p, sr::view<const T>(x.data(), {3, 3}), sr::view<T>(y.data(), {3, 3}),
                                            sr::view<const T>(d.data(), {3, 3}));
  sr::prox(p, sr::view<const T>(x.data(), {3, 3}), sr::view<T>(s.data(), {3, 3}), 0.0);
  CHECK(std::memcmp(y.data(), x.data(), 6 * sizeof(T)) == 0);
  CHECK(std::memcmp(y.data(), s.data(), 6 * sizeof(T)) == 0);
  CHECK(r.zero_groups == 2);
  // The same through the regularizer at lr = 0.
  std::vector<T> w = x;
  sr::regularizer<T> reg;
  reg.add_parameter("fc", sr::view<T>(w.data(), {3, 3}));
  reg.add_penalty("fc", p);
  reg.set_element_steps("fc", sr::view<const T>(d.data(), {3, 3}));
  reg.prox_step(0.0);
  CHECK(std::memcmp(w.data(), x.data(), 6 * sizeof(T)) == 0);
}

TEST_CASE("group per-element steps: lambda_group 0 is exact when ||u / d||^2 underflows") {
  // Row 0 holds values of 1e-170: (u / d)^2 underflows to 0 for d = 1, which must not read as
  // "the group is zero" when there is no group penalty at all.
  const std::vector<double> x = {1e-170, -2e-170, 3e-170, 0.5, -0.25, 1.0};
  const std::vector<double> d(x.size(), 1.0);
  for (const auto& p : {sr::sparse_group_lasso(0.0, 0.0, sr::groups::output_neurons()),
                        sr::sparse_group_lasso(0.0, 1e-300, sr::groups::output_neurons())}) {
    std::vector<double> y(x.size());
    const auto r = sr::prox_per_element_steps(p, sr::view<const double>(x.data(), {2, 3}),
                                              sr::view<double>(y.data(), {2, 3}),
                                              sr::view<const double>(d.data(), {2, 3}));
    CHECK(std::memcmp(y.data(), x.data(), x.size() * sizeof(double)) == 0);
    CHECK(r.zero_groups == 0);
  }
  std::vector<double> y(x.size());
  sr::prox_per_element_steps(sr::group_lasso(0.0, sr::groups::output_neurons()),
                             sr::view<const double>(x.data(), {2, 3}), sr::view<double>(y.data(), {2, 3}),
                             sr::view<const double>(d.data(), {2, 3}));
  CHECK(std::memcmp(y.data(), x.data(), x.size() * sizeof(double)) == 0);
}

TEST_CASE("group per-element steps: a group whose steps are all 0 is kept bit for bit, even of tiny values") {
  // Row 0: values of 1e-170 (||u||^2 underflows to 0) with every step 0; row 1 ordinary values
  // and steps, which must be proxed as before.
  const std::vector<double> x = {1e-170, -2e-170, 3e-170, 0.5, -0.25, 1.0};
  const std::vector<double> d = {0.0, 0.0, 0.0, 1.0, 1.0, 1.0};
  const auto p = sr::sparse_group_lasso(0.1, 0.01, sr::groups::output_neurons());
  std::vector<double> y(x.size()), ref(3);
  const auto r = sr::prox_per_element_steps(p, sr::view<const double>(x.data(), {2, 3}),
                                            sr::view<double>(y.data(), {2, 3}),
                                            sr::view<const double>(d.data(), {2, 3}));
  CHECK(std::memcmp(y.data(), x.data(), 3 * sizeof(double)) == 0);
  sr::prox(p, sr::view<const double>(x.data() + 3, {1, 3}), sr::view<double>(ref.data(), {1, 3}), 1.0);
  for (std::size_t i = 0; i < 3; ++i) CHECK(y[3 + i] == Approx(ref[i]).epsilon(1e-12));
  CHECK(r.zero_groups == 0);
}

namespace {

/// The prox in the metric diag(1/d) of one group, in long double, by bisection on the root
/// (independent of the library's Newton iteration, lanes, blocks and vector kernels). Returns
/// false when ||u / d|| / tau lies within 1e-4 of 1, where a rounding could decide either way.
bool reference_group_prox(const std::vector<sparsereg_test::ld>& x, const std::vector<sparsereg_test::ld>& d,
                          sparsereg_test::ld lg, sparsereg_test::ld l1, std::vector<sparsereg_test::ld>& z) {
  using ld = sparsereg_test::ld;
  const ld tau = lg * std::sqrt(static_cast<ld>(x.size()));
  std::vector<ld> u(x.size());
  ld uu = 0, scaled = 0, dmax = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const ld a = std::fabs(x[i]) - d[i] * l1;
    u[i] = a > 0 ? std::copysign(a, x[i]) : ld(0);
    uu += u[i] * u[i];
    if (u[i] != 0) scaled += (u[i] / d[i]) * (u[i] / d[i]);  // d = 0 only pins a moving element
    dmax = std::max(dmax, d[i]);
  }
  z.assign(x.size(), ld(0));
  const ld ratio = std::sqrt(scaled) / tau;
  if (std::fabs(ratio - 1) < 1e-4L) return false;
  if (ratio < 1) return true;
  const auto F = [&](ld r) {
    ld f = 0;
    for (std::size_t i = 0; i < u.size(); ++i)
      if (u[i] != 0) f += (u[i] / (r + d[i] * tau)) * (u[i] / (r + d[i] * tau));
    return f - 1;
  };
  ld lo = std::max(ld(0), std::sqrt(uu) - dmax * tau), hi = std::sqrt(uu);
  for (int it = 0; it < 200; ++it) {
    const ld mid = (lo + hi) / 2;
    (F(mid) > 0 ? lo : hi) = mid;
  }
  const ld r = (lo + hi) / 2;
  for (std::size_t i = 0; i < u.size(); ++i) z[i] = u[i] * r / (r + d[i] * tau);
  return true;
}

}  // namespace

TEMPLATE_TEST_CASE("group per-element steps: long and short runs, every layout, agree with a long-double bisection",
                   "[group_element_steps]", float, double) {
  // Runs of one group of >= 16 elements accumulate in 8 lanes (AVX-512 kernels for contiguous
  // floats in the native build) with a scalar tail; shorter runs element by element; runs that
  // cross groups (columns, HWIO filters) element by element per group; index lists group by group.
  // In place, out of place with x's strides (pass 1 fused), out of place with other strides
  // (pass 1 on its own).
  using T = TestType;
  namespace G = sr::groups;
  using sparsereg_test::layout;
  using sparsereg_test::preset;
  using ld = sparsereg_test::ld;
  std::mt19937 lists_rng(71);
  std::vector<std::vector<std::size_t>> lists;
  {
    std::vector<std::size_t> perm(20 * 30);
    for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), lists_rng);
    std::uniform_int_distribution<std::size_t> len(1, 40);
    for (std::size_t i = 0; i < perm.size();) {
      const std::size_t k = std::min(perm.size() - i, len(lists_rng));
      const auto first = perm.begin() + static_cast<std::ptrdiff_t>(i);
      lists.emplace_back(first, first + static_cast<std::ptrdiff_t>(k));
      i += k;
    }
  }
  const std::vector<preset> presets = {
      {"fc rows of 37", {13, 37}, {0}, false, {}, [] { return G::output_neurons(); }},
      {"fc rows of 16", {9, 16}, {0}, false, {}, [] { return G::output_neurons(); }},
      {"fc rows of 15", {7, 15}, {0}, false, {}, [] { return G::output_neurons(); }},
      {"fc rows of 203", {5, 203}, {0}, false, {}, [] { return G::output_neurons(); }},
      {"fc columns", {37, 13}, {1}, false, {}, [] { return G::input_neurons(); }},
      {"oihw filters", {6, 5, 3, 3}, {0}, false, {}, [] { return G::filters(); }},
      {"oihw input channels", {6, 5, 3, 3}, {1}, false, {}, [] { return G::input_channels(); }},
      {"hwio filters", {3, 3, 5, 6}, {3}, false, {}, [] { return G::filters(sr::conv_layout::hwio); }},
      {"explicit lists", {20, 30}, {}, true, lists, nullptr},
      {"whole", {5, 41}, {}, false, {}, [] { return G::whole(); }},
  };
  struct placement {
    const char* name;
    layout x, y;
    bool in_place;
  };
  const std::vector<placement> placements = {
      {"in place, contiguous", layout::contiguous, layout::contiguous, true},
      {"in place, padded", layout::padded, layout::padded, true},
      {"in place, reversed", layout::reversed, layout::reversed, true},
      {"out of place, same strides", layout::contiguous, layout::contiguous, false},
      {"out of place, other strides", layout::contiguous, layout::reversed, false}};
  const double lg = 0.15, l1 = 0.05;
  std::size_t compared_groups = 0, zero_groups_seen = 0, ambiguous = 0;
  for (const auto& pre : presets) {
    const auto members = pre.members();
    const std::size_t n = sparsereg_test::product(pre.shape);
    std::mt19937 rng(73);
    const auto xv = sparsereg_test::random_grouped_values<T>(members, n, rng);
    std::uniform_real_distribution<double> step(0.05, 3.0);
    std::vector<T> dv(n);
    for (auto& e : dv) e = static_cast<T>(step(rng));
    // Zero steps: group 3 has only those (the prox is the identity there), group 5 every other one.
    if (members.size() > 5) {
      for (std::size_t f : members[3]) dv[f] = T(0);
      for (std::size_t k = 0; k < members[5].size(); k += 2) dv[members[5][k]] = T(0);
    }
    const sr::sparse_group_lasso p(lg, l1, pre.grouping());
    for (const auto& pl : placements) {
      CAPTURE(pre.name, pl.name);
      sparsereg_test::tensor<T> x(pre.shape, pl.x), y(pre.shape, pl.y), d(pre.shape, pl.x);
      x.assign(xv);
      d.assign(dv);
      sr::prox_result res;
      if (pl.in_place) {
        res = sr::prox_per_element_steps(p, x.cview(), x.view(), d.cview());
        y = x;
      } else {
        res = sr::prox_per_element_steps(p, x.cview(), y.view(), d.cview());
      }
      CHECK(y.touched_padding() == 0);
      const auto z = y.values();
      std::size_t zero_groups = 0;
      ld value = 0;
      for (const auto& m : members) {
        std::vector<ld> xg, dg, zg;
        for (std::size_t f : m) xg.push_back(static_cast<ld>(xv[f])), dg.push_back(static_cast<ld>(dv[f]));
        if (!reference_group_prox(xg, dg, lg, l1, zg)) {
          ++ambiguous;
          continue;
        }
        ++compared_groups;
        ld zz = 0, za = 0;
        bool all_zero = true;
        for (std::size_t k = 0; k < m.size(); ++k) {
          const ld got = static_cast<ld>(z[m[k]]);
          // u carries the rounding of |x| - d * l1 in T, z one more rounding.
          const ld tol = 4 * std::numeric_limits<T>::epsilon() * std::max(std::fabs(xg[k]), std::fabs(zg[k]));
          INFO("element " << m[k] << ": got " << double(got) << ", reference " << double(zg[k]));
          REQUIRE(std::fabs(got - zg[k]) <= tol);
          zz += got * got;
          za += std::fabs(got);
          all_zero = all_zero && z[m[k]] == T(0);
        }
        zero_groups += all_zero;
        value += lg * std::sqrt(static_cast<ld>(m.size())) * std::sqrt(zz) + l1 * za;
      }
      zero_groups_seen += zero_groups;
      CHECK(res.groups == members.size());
      CHECK(res.zero_groups == zero_groups);
      CHECK(res.value == Approx(static_cast<double>(value)).epsilon(1e-12 + 8 * std::numeric_limits<T>::epsilon()));
    }
  }
  CHECK(ambiguous == 0);
  CHECK(compared_groups > 400);
  CHECK(zero_groups_seen > 50);  // both cases of the prox occur
  CHECK(zero_groups_seen < compared_groups / 2);
}

