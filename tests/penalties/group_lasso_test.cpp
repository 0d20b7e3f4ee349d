// Property tests of group_lasso (include/sparsereg/penalties/group_lasso.hpp): prox optimality,
// Moreau decomposition with an independently computed projection onto the dual balls, agreement
// with the long-double reference, reported result, nonexpansiveness, exact identities, golden
// values, finite-difference gradient, kinks, NaN, zero size, and identity with
// sparse_group_lasso(lambda, 0). Tolerance model: tests/support/reference.hpp (prox_tolerance).
#include <catch2/catch.hpp>

#include <sparsereg/penalties/group_lasso.hpp>
#include <support/properties.hpp>
#include <support/reference.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace sparsereg_test;
using sparsereg::group_lasso;
using sparsereg::grouping;
namespace groups = sparsereg::groups;

namespace {

template <class T>
std::size_t zero_count(const std::vector<T>& y) {
  std::size_t n = 0;
  for (T v : y) n += v == T(0);
  return n;
}

}  // namespace

TEMPLATE_TEST_CASE("group_lasso prox: optimality, Moreau decomposition, reference, reported result",
                   "[group_lasso][prox]", float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  // (step, lambda, unweighted): small and large thresholds, and unit weights.
  const auto combo = GENERATE(range(0, 3));
  const double step = std::array<double, 3>{0.5, 2.0, 1.0}[static_cast<std::size_t>(combo)];
  const double lambda = std::array<double, 3>{0.1, 0.4, 0.3}[static_cast<std::size_t>(combo)];
  const bool unweighted = combo == 2;
  const preset p = all_presets()[preset_index];
  CAPTURE(p.name, layout_name(lay), step, lambda, unweighted);
  std::mt19937 rng(7000u + static_cast<unsigned>(preset_index));
  grouping grp = p.grouping();
  const auto members = p.members();
  std::vector<ld> weights = default_weights(members);
  if (unweighted) {
    grp.unweighted();
    weights.assign(members.size(), 1);
  }
  const group_lasso pen(lambda, grp);
  tensor<T> x(p.shape, lay);
  const auto xv = random_grouped_values<T>(members, x.size(), rng);
  x.assign(xv);
  tensor<T> y(p.shape, lay == layout::reversed ? layout::padded : layout::reversed);
  const auto r = sparsereg::prox(pen, x.cview(), y.view(), step);
  const auto yv = y.values();
  CHECK(bitwise_equal(x.values(), xv));
  CHECK(y.touched_padding() == 0);

  // 1. Optimality.
  const auto opt = check_sgl_optimality(xv, yv, step, lambda, 0, members, weights);
  INFO(opt.detail);
  CHECK(opt.ok);

  // 2. Moreau: x = prox_{step R}(x) + step * P_g(x/step), P_g the projection onto the ball of
  // radius lambda*c_g (R* is the indicator of the product of those balls), computed here.
  for (std::size_t g = 0; g < members.size(); ++g) {
    ld sq = 0, xmax = 0;
    for (std::size_t f : members[g]) {
      const ld v = static_cast<ld>(xv[f]) / step;
      sq += v * v;
      xmax = std::max(xmax, std::fabs(static_cast<ld>(xv[f])));
    }
    const ld radius = lambda * weights[g];
    const ld scale = std::sqrt(sq) <= radius ? ld(1) : radius / std::sqrt(sq);
    const ld tol = prox_tolerance<T>(members[g].size(), xmax + step * radius);
    for (std::size_t f : members[g]) {
      CAPTURE(g, f);
      const ld proj = static_cast<ld>(xv[f]) / step * scale;
      CHECK(std::fabs(static_cast<ld>(xv[f]) - (static_cast<ld>(yv[f]) + step * proj)) <= tol);
    }
  }

  // 3. Reference.
  const auto ref = ref_prox_sgl(xv, step, lambda, 0, members, weights);
  std::vector<ld> tg;
  for (ld c : weights) tg.push_back(step * lambda * c);
  const auto close = check_close_to_reference(yv, ref, xv, 0, members, tg);
  INFO(close.detail);
  CHECK(close.ok);

  // 4. Reported value (tolerance as for sparse_group_lasso) and counts.
  const double v = sparsereg::value(pen, y.cview());
  const ld ref_value = ref_sgl_value<T>(lambda, 0, members, weights, yv);
  const ld vtol = static_cast<ld>(x.size() + 6) * static_cast<ld>(std::numeric_limits<T>::epsilon()) * ref_value;
  CHECK(std::fabs(static_cast<ld>(r.value) - static_cast<ld>(v)) <= vtol);
  CHECK(std::fabs(static_cast<ld>(v) - ref_value) <= vtol);
  CHECK(r.zero_elements == zero_count(yv));
  std::size_t zero_groups = 0;
  for (const auto& m : members) zero_groups += std::all_of(m.begin(), m.end(), [&](std::size_t f) { return yv[f] == T(0); });
  CHECK(r.zero_groups == zero_groups);
  CHECK(r.groups == members.size());

  // group_lasso is sparse_group_lasso with lambda_l1 = 0, bit for bit.
  tensor<T> y2(p.shape, lay == layout::reversed ? layout::padded : layout::reversed);
  const auto r2 = sparsereg::prox(sparsereg::sparse_group_lasso(lambda, 0.0, grp), x.cview(), y2.view(), step);
  CHECK(bitwise_equal(y2.values(), yv));
  CHECK(r2.value == r.value);
}

TEMPLATE_TEST_CASE("group_lasso prox is nonexpansive", "[group_lasso][prox]", float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const preset p = all_presets()[preset_index];
  CAPTURE(p.name);
  std::mt19937 rng(7100u + static_cast<unsigned>(preset_index));
  const auto members = p.members();
  const group_lasso pen(0.4, p.grouping());
  const std::size_t n = product(p.shape);
  ld cmax = 0;
  for (ld c : default_weights(members)) cmax = std::max(cmax, c);
  check_nonexpansive_trials<T>(pen, p.shape, members, rng, 10, 1.0, n, 0.4L * cmax);
}

TEMPLATE_TEST_CASE("group_lasso prox: step 0, lambda 0 and in place are exact", "[group_lasso][prox]", float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  const preset p = all_presets()[preset_index];
  CAPTURE(p.name, layout_name(lay));
  std::mt19937 rng(7200u + static_cast<unsigned>(preset_index));
  tensor<T> x(p.shape, lay);
  const auto xv = random_grouped_values<T>(p.members(), x.size(), rng);
  x.assign(xv);
  {
    tensor<T> y(p.shape, lay);
    sparsereg::prox(group_lasso(0.6, p.grouping()), x.cview(), y.view(), 0.0);
    CHECK(bitwise_equal(y.values(), xv));
  }
  {
    tensor<T> y(p.shape, lay);
    sparsereg::prox(group_lasso(0.0, p.grouping()), x.cview(), y.view(), 3.0);
    CHECK(bitwise_equal(y.values(), xv));
  }
  {
    const group_lasso pen(0.3, p.grouping());
    tensor<T> y(p.shape, lay);
    const auto r1 = sparsereg::prox(pen, x.cview(), y.view(), 1.0);
    tensor<T> z = x;
    const auto r2 = sparsereg::prox(pen, z.cview(), z.view(), 1.0);
    CHECK(bitwise_equal(z.values(), y.values()));
    CHECK(r1.value == r2.value);
    CHECK(r1.zero_groups == r2.zero_groups);
    CHECK(z.touched_padding() == 0);
  }
}

TEMPLATE_TEST_CASE("group_lasso golden values: FC 3x4 per output neuron", "[group_lasso][golden]", float, double) {
  using T = TestType;
  // x[f] = ((7 f) mod 11 - 5)/4, rows {-1.25, 0.5, -0.5, 1.25}, {0.25, -0.75, 1, 0}, {-1, 0.75, -0.25, -1.25}
  // with squared norms 3.625, 1.625, 3.1875 -> norms 1.9039432764659772, 1.2747548783981961,
  // 1.7853571071357126. lambda = 0.5, c_g = sqrt(4) = 2, so lambda*c_g = 1:
  //   value = sum of norms = 4.964055261999886, gradient = x_g / ||x_g||,
  //   prox with step 1.3: row 1 (norm < 1.3) is zeroed, others scaled by 1 - 1.3/||x_g||;
  //   value of the output = (1.9039... - 1.3) + (1.7853... - 1.3) = 1.0893003836016897.
  std::vector<T> x{-1.25, 0.5, -0.5, 1.25, 0.25, -0.75, 1.0, 0, -1.0, 0.75, -0.25, -1.25};
  const std::vector<double> grad{-0.6565321642986127,  0.2626128657194451,  -0.2626128657194451, 0.6565321642986127,
                                 0.19611613513818404,  -0.5883484054145521, 0.7844645405527362,  0.0,
                                 -0.5601120336112039,  0.42008402520840293, -0.14002800840280097, -0.7001400420140048};
  const std::vector<double> prox{-0.39650818641180335, 0.15860327456472134, -0.15860327456472134, 0.39650818641180335,
                                 0, 0, 0, 0,
                                 -0.271854356305435,   0.20389076722907623, -0.06796358907635874, -0.3398179453817937};
  const group_lasso pen(0.5, groups::output_neurons());
  const sparsereg::view<const T> xv(x.data(), {3, 4});
  const double tol = 32 * static_cast<double>(std::numeric_limits<T>::epsilon());  // see the SGL golden test
  CHECK(sparsereg::value(pen, xv) == Approx(4.964055261999886).epsilon(tol));
  std::vector<T> g(12, T(0)), y(12);
  sparsereg::add_gradient(pen, xv, sparsereg::view<T>(g.data(), {3, 4}));
  const auto r = sparsereg::prox(pen, xv, sparsereg::view<T>(y.data(), {3, 4}), 1.3);
  for (std::size_t f = 0; f < 12; ++f) {
    CAPTURE(f);
    CHECK(std::fabs(static_cast<double>(g[f]) - grad[f]) <= tol);
    CHECK(std::fabs(static_cast<double>(y[f]) - prox[f]) <= tol);
  }
  CHECK(r.value == Approx(1.0893003836016897).epsilon(tol));
  CHECK(r.zero_groups == 1);
  CHECK(r.zero_elements == 4);  // row 1, which already held the only zero of x
  CHECK(r.groups == 3);
}

TEST_CASE("group_lasso gradient matches central finite differences", "[group_lasso][gradient]") {
  // As for sparse_group_lasso: ||w_g|| >= 0.1, h = 1e-6, relative error < 1e-6.
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const preset p = all_presets()[preset_index];
  CAPTURE(p.name);
  std::mt19937 rng(7300u + static_cast<unsigned>(preset_index));
  const group_lasso pen(0.9, p.grouping());
  const std::size_t n = product(p.shape);
  const auto x = random_away_from_zero<double>(n, 0.1f, 1.0f, rng);
  CHECK(central_difference_error(pen, x, p.shape, 1e-6) < 1e-6);
}

TEMPLATE_TEST_CASE("group_lasso gradient: zero groups get exactly 0", "[group_lasso][gradient]", float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const preset p = all_presets()[preset_index];
  CAPTURE(p.name);
  std::mt19937 rng(7400u + static_cast<unsigned>(preset_index));
  const auto members = p.members();
  const std::size_t n = product(p.shape);
  auto x = random_away_from_zero<T>(n, 0.1f, 1.0f, rng);
  for (std::size_t f : members.back()) x[f] = T(0);
  std::vector<T> g(n, T(0));
  sparsereg::add_gradient(group_lasso(0.5, p.grouping()), sparsereg::view<const T>(x.data(), p.shape),
                          sparsereg::view<T>(g.data(), p.shape));
  for (std::size_t f : members.back()) CHECK(bitwise_equal(g[f], T(0)));
  for (std::size_t f = 0; f < n; ++f)
    if (x[f] != T(0)) CHECK(g[f] != T(0));
}

TEMPLATE_TEST_CASE("group_lasso: NaN stays in its group, zero-size is a no-op", "[group_lasso][nan]", float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const preset p = all_presets()[preset_index];
  CAPTURE(p.name);
  std::mt19937 rng(7500u + static_cast<unsigned>(preset_index));
  const auto members = p.members();
  const std::size_t n = product(p.shape);
  const group_lasso pen(0.3, p.grouping());
  auto x = random_grouped_values<T>(members, n, rng);
  std::vector<T> clean(n), g_clean(n, T(0));
  sparsereg::prox(pen, sparsereg::view<const T>(x.data(), p.shape), sparsereg::view<T>(clean.data(), p.shape), 1.0);
  sparsereg::add_gradient(pen, sparsereg::view<const T>(x.data(), p.shape), sparsereg::view<T>(g_clean.data(), p.shape));
  const std::size_t bad_group = members.size() - 1;
  x[members[bad_group][0]] = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> y(n), g(n, T(0));
  const sparsereg::view<const T> xv(x.data(), p.shape);
  CHECK(std::isnan(sparsereg::value(pen, xv)));
  CHECK(std::isnan(sparsereg::prox(pen, xv, sparsereg::view<T>(y.data(), p.shape), 1.0).value));
  sparsereg::add_gradient(pen, xv, sparsereg::view<T>(g.data(), p.shape));
  for (std::size_t k = 0; k < members.size(); ++k)
    for (std::size_t f : members[k]) {
      CAPTURE(k, f);
      if (k == bad_group) {
        CHECK(std::isnan(y[f]));
      } else {
        CHECK(bitwise_equal(y[f], clean[f]));
        CHECK(bitwise_equal(g[f], g_clean[f]));
      }
    }
  CHECK(std::isnan(g[members[bad_group][0]]));

  if (!p.is_explicit) {
    std::vector<std::size_t> empty_shape = p.shape;
    empty_shape[0] = 0;
    T cell = T(5), other = T(9);
    const sparsereg::view<T> e(&cell, empty_shape);
    CHECK(sparsereg::value(pen, e) == 0.0);
    CHECK(sparsereg::prox(pen, e, e, 1.0).value == 0.0);
    sparsereg::add_gradient(pen, e, sparsereg::view<T>(&other, empty_shape));
    CHECK(cell == T(5));
    CHECK(other == T(9));
  }
}

TEST_CASE("group lasso prox without_stats (no kernel of its own) writes the prox's output", "[group_lasso][prox]") {
  std::mt19937 rng(808);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(6 * 5 * 3 * 3);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = nd(rng) * static_cast<float>(1 + (i / 9) % 5);  // channel c: x (c+1)
  const std::vector<std::size_t> shape{6, 5, 3, 3};
  std::vector<float> with(x.size()), without(x.size(), 7.0f);
  const sparsereg::group_lasso pen(1.0, sparsereg::groups::input_channels());
  const auto r = sparsereg::prox(pen, sparsereg::view<const float>(x.data(), shape), sparsereg::view<float>(with.data(), shape), 1.5);
  sparsereg::prox(pen, sparsereg::view<const float>(x.data(), shape), sparsereg::view<float>(without.data(), shape), 1.5,
                  sparsereg::without_stats);
  CHECK(r.zero_groups > 0);  // the case exercises zeroing and shrinking, not only the identity
  CHECK(r.zero_groups < r.groups);
  CHECK(bitwise_equal(with, without));
}
