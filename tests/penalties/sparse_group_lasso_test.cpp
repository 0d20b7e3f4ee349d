// Property tests of sparse_group_lasso (include/sparsereg/penalties/sparse_group_lasso.hpp):
// prox optimality via the subdifferential, agreement with an independent long-double reference,
// the prox_result it reports, nonexpansiveness, exact identities, golden cases for every grouping
// preset, finite-difference gradients, kinks, NaN and zero-size tensors. The tolerance model is
// explained once in tests/support/reference.hpp (prox_tolerance).
#include <catch2/catch.hpp>

#include <sparsereg/penalties/group_lasso.hpp>
#include <sparsereg/penalties/sparse_group_lasso.hpp>
#include <support/properties.hpp>
#include <support/reference.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

using namespace sparsereg_test;
using sparsereg::conv_layout;
using sparsereg::grouping;
using sparsereg::sparse_group_lasso;
namespace groups = sparsereg::groups;

namespace {

/// A preset with its weights: 0 = default sqrt(|g|), 1 = unweighted, 2 = given (random, one 0).
struct weighted_preset {
  preset p;
  grouping grp;
  std::vector<std::vector<std::size_t>> members;
  std::vector<ld> weights;
};

weighted_preset make_weighted(std::size_t preset_index, int weighting, std::mt19937& rng) {
  weighted_preset w{all_presets()[preset_index], {}, {}, {}};
  w.grp = w.p.grouping();
  w.members = w.p.members();
  if (weighting == 0) {
    w.weights = default_weights(w.members);
  } else if (weighting == 1) {
    w.grp.unweighted();
    w.weights.assign(w.members.size(), 1);
  } else {
    std::uniform_real_distribution<double> u(0.25, 3.0);
    std::vector<double> c(w.members.size());
    for (auto& v : c) v = u(rng);
    c[c.size() / 2] = 0.0;  // a group with no group penalty: only its l1 part acts
    w.grp.with_weights(c);
    for (double v : c) w.weights.push_back(static_cast<ld>(v));
  }
  return w;
}

template <class T>
std::size_t zero_count(const std::vector<T>& y) {
  std::size_t n = 0;
  for (T v : y) n += v == T(0);
  return n;
}

template <class T>
std::size_t zero_group_count(const std::vector<T>& y, const std::vector<std::vector<std::size_t>>& members) {
  std::size_t n = 0;
  for (const auto& m : members) {
    bool all = true;
    for (std::size_t f : m) all = all && y[f] == T(0);
    n += all;
  }
  return n;
}

// (step, lambda_group, lambda_l1): thresholds that zero some groups and some elements, an l1-heavy
// case, and a group-heavy one.
const std::array<double, 3> parameter_sets[] = {{1.0, 0.3, 0.2}, {0.5, 0.8, 0.05}, {2.0, 0.1, 0.5}, {0.75, 1.5, 0.0}};

}  // namespace

TEMPLATE_TEST_CASE("sparse_group_lasso prox: optimality, reference, reported result", "[sparse_group_lasso][prox]",
                   float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  // Six (parameter set, weighting) pairs covering every parameter set and every weighting.
  const auto combo = GENERATE(range(0, 6));
  const int params = combo % 4;
  const int weighting = combo % 3;
  std::mt19937 rng(1000u + static_cast<unsigned>(preset_index * 97 + static_cast<std::size_t>(weighting) * 13 +
                                                  static_cast<std::size_t>(params)));
  auto w = make_weighted(preset_index, weighting, rng);
  const double step = parameter_sets[params][0], lg = parameter_sets[params][1], l1 = parameter_sets[params][2];
  CAPTURE(w.p.name, layout_name(lay), weighting, step, lg, l1);

  const sparse_group_lasso pen(lg, l1, w.grp);
  tensor<T> x(w.p.shape, lay);
  const auto xv = random_grouped_values<T>(w.members, x.size(), rng);
  x.assign(xv);
  // The output uses another layout than the input: the prox must follow both.
  tensor<T> y(w.p.shape, lay == layout::contiguous ? layout::reversed : layout::contiguous);
  const auto r = sparsereg::prox(pen, x.cview(), y.view(), step);
  const auto yv = y.values();

  CHECK(bitwise_equal(x.values(), xv));  // x is read-only
  CHECK(y.touched_padding() == 0);
  CHECK(x.touched_padding() == 0);

  // 1. r = (x - y)/step lies in the subdifferential of R at y.
  const auto opt = check_sgl_optimality(xv, yv, step, lg, l1, w.members, w.weights);
  INFO(opt.detail);
  CHECK(opt.ok);

  // 3. The independent reference agrees within the tolerance model.
  const auto ref = ref_prox_sgl(xv, step, lg, l1, w.members, w.weights);
  std::vector<ld> tg;
  for (ld c : w.weights) tg.push_back(step * lg * c);
  const auto close = check_close_to_reference(yv, ref, xv, step * l1, w.members, tg);
  INFO(close.detail);
  CHECK(close.ok);

  // 4. The reported value is R(y) and the counts are direct counts on y. The value is computed
  // from the pre-shrink norms times the factor while value() reads the rounded y: they differ by
  // the rounding of y and of the norms, at most (n + 6) eps relative for the largest group n.
  const double v = sparsereg::value(pen, y.cview());
  const ld ref_value = ref_sgl_value<T>(lg, l1, w.members, w.weights, yv);
  const ld vtol = static_cast<ld>(x.size() + 6) * static_cast<ld>(std::numeric_limits<T>::epsilon()) * ref_value;
  CHECK(std::fabs(static_cast<ld>(r.value) - static_cast<ld>(v)) <= vtol);
  CHECK(std::fabs(static_cast<ld>(v) - ref_value) <= vtol);
  CHECK(r.zero_elements == zero_count(yv));
  CHECK(r.zero_groups == zero_group_count(yv, w.members));
  CHECK(r.groups == w.members.size());
  CHECK(w.grp.group_count(x.cview()) == w.members.size());
}

TEMPLATE_TEST_CASE("sparse_group_lasso prox is nonexpansive", "[sparse_group_lasso][prox]", float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto params = GENERATE(range(0, 4));
  std::mt19937 rng(2000u + static_cast<unsigned>(preset_index * 31 + static_cast<std::size_t>(params)));
  auto w = make_weighted(preset_index, 0, rng);
  const double step = parameter_sets[params][0], lg = parameter_sets[params][1], l1 = parameter_sets[params][2];
  CAPTURE(w.p.name, step, lg, l1);
  const sparse_group_lasso pen(lg, l1, w.grp);
  const ld cmax = *std::max_element(w.weights.begin(), w.weights.end());
  check_nonexpansive_trials<T>(pen, w.p.shape, w.members, rng, 10, step, product(w.p.shape),
                               step * (l1 + lg * cmax));
}

TEMPLATE_TEST_CASE("sparse_group_lasso prox: step 0, lambda 0 and in place are exact", "[sparse_group_lasso][prox]",
                   float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  std::mt19937 rng(3000u + static_cast<unsigned>(preset_index));
  auto w = make_weighted(preset_index, 0, rng);
  CAPTURE(w.p.name, layout_name(lay));
  tensor<T> x(w.p.shape, lay);
  const auto xv = random_grouped_values<T>(w.members, x.size(), rng);  // includes -0.0
  x.assign(xv);

  SECTION("step = 0 is the identity, bit for bit") {
    tensor<T> y(w.p.shape, lay);
    const auto r = sparsereg::prox(sparse_group_lasso(0.7, 0.3, w.grp), x.cview(), y.view(), 0.0);
    CHECK(bitwise_equal(y.values(), xv));
    CHECK(r.zero_elements == zero_count(xv));
  }
  SECTION("lambda_group = lambda_l1 = 0 is the identity, bit for bit") {
    tensor<T> y(w.p.shape, lay);
    sparsereg::prox(sparse_group_lasso(0.0, 0.0, w.grp), x.cview(), y.view(), 1.5);
    CHECK(bitwise_equal(y.values(), xv));
  }
  SECTION("in place equals out of place, bit for bit") {
    for (const auto& prm : parameter_sets) {
      const sparse_group_lasso pen(prm[1], prm[2], w.grp);
      tensor<T> y(w.p.shape, lay);
      const auto r1 = sparsereg::prox(pen, x.cview(), y.view(), prm[0]);
      tensor<T> z = x;
      const auto r2 = sparsereg::prox(pen, z.cview(), z.view(), prm[0]);
      CHECK(bitwise_equal(z.values(), y.values()));
      CHECK(r1.value == r2.value);
      CHECK(r1.zero_elements == r2.zero_elements);
      CHECK(r1.zero_groups == r2.zero_groups);
      CHECK(z.touched_padding() == 0);
    }
  }
}

TEMPLATE_TEST_CASE("sparse_group_lasso prox: step 0 and lambda 0 stay exact when a group's sum of squares underflows",
                   "[sparse_group_lasso][prox]", float, double) {
  using T = TestType;
  // |x| <= 2.5e-25 (float) or 2.5e-170 (double): every x^2 underflows to 0, so every group's norm
  // is 0 and only a threshold of exactly 0 tells "keep" from "zero". Every preset and layout, so
  // every grouped path (runs, strided, explicit lists) decides through the same rule.
  const T tiny = std::is_same_v<T, float> ? T(1e-25f) : T(1e-170);
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  std::mt19937 rng(3100u + static_cast<unsigned>(preset_index));
  auto w = make_weighted(preset_index, 0, rng);
  CAPTURE(w.p.name, layout_name(lay));
  tensor<T> x(w.p.shape, lay);
  auto xv = random_grouped_values<T>(w.members, x.size(), rng);  // includes -0.0
  for (auto& v : xv) v *= tiny;
  x.assign(xv);
  std::size_t zero_groups = 0;
  for (const auto& m : w.members)
    zero_groups += std::all_of(m.begin(), m.end(), [&](std::size_t f) { return xv[f] == T(0); });

  const auto identity = [&](const auto& pen, double step) {
    tensor<T> y(w.p.shape, lay);
    const auto r = sparsereg::prox(pen, x.cview(), y.view(), step);
    CHECK(bitwise_equal(y.values(), xv));
    CHECK(r.zero_elements == zero_count(xv));
    CHECK(r.zero_groups == zero_groups);  // groups of zeros are still reported as zero groups
  };
  identity(sparse_group_lasso(0.7, 0.3, w.grp), 0.0);
  identity(sparse_group_lasso(0.0, 0.0, w.grp), 1.5);
  identity(sparsereg::group_lasso(0.7, w.grp), 0.0);
  identity(sparsereg::group_lasso(0.0, w.grp), 1.5);
  // A positive threshold still zeroes them.
  tensor<T> y(w.p.shape, lay);
  const auto r = sparsereg::prox(sparse_group_lasso(1e-30, 0.0, w.grp), x.cview(), y.view(), 1.0);
  CHECK(r.zero_groups == w.members.size());
}

TEST_CASE("sparse_group_lasso::mixed is lambda*(alpha*l1 + (1-alpha)*group)", "[sparse_group_lasso]") {
  const auto p = sparse_group_lasso::mixed(2.0, 0.25, groups::whole());
  CHECK(p.lambda_l1 == 0.5);
  CHECK(p.lambda_group == 1.5);
  const auto q = sparse_group_lasso::mixed(3.0, 1.0, groups::whole());
  CHECK(q.lambda_group == 0.0);
  CHECK(q.lambda_l1 == 3.0);
  const auto s = p.scaled(2.0);
  CHECK(s.lambda_l1 == 1.0);
  CHECK(s.lambda_group == 3.0);
}

namespace {

struct golden_case {
  const char* name;
  grouping grp;
  std::vector<std::size_t> shape;
  double value;
  std::vector<double> gradient;
  std::vector<double> prox;
};

// x[f] = ((7 f) mod 11 - 5) / 4 (row-major flat index f; values in {-1.25, ..., 1.25}, exact in
// float), lambda_group = 0.5, lambda_l1 = 0.25, step = 1, c_g = sqrt(|g|). Expected numbers were
// computed with a calculator (Python 3 floats) straight from the definitions:
//   value    = sum_g 0.5 sqrt(|g|) ||x_g|| + 0.25 ||x||_1
//   gradient = 0.25 sign(x_i) + 0.5 sqrt(|g|) x_i / ||x_g||            (0 where x_i = 0)
//   prox     = u_i max(0, 1 - 0.5 sqrt(|g|)/||u_g||), u = sign(x) max(|x| - 0.25, 0)
// Shapes: OIHW 2x3x2x2, HWIO 2x2x3x2, FC 3x4, explicit 3x4, whole 2x3.
std::vector<golden_case> golden_cases() {
  return {
  // oihw_filters: 2 groups, ||x_g|| = 2.90474, 2.66927
  {"oihw_filters", groups::filters(conv_layout::oihw), {2, 3, 2, 2}, 13.84196345160126,
   {-0.9953559924999299, 0.5481423969999719, -0.5481423969999719, 0.9953559924999299, 0.39907119849998596, -0.697213595499958, 0.8462847939999439, 0.0, -0.8462847939999439, 0.697213595499958, -0.39907119849998596, -0.9953559924999299, 0.5744428422615251, -0.5744428422615251, 1.0611071056538126, 0.41222142113076254, -0.7366642633922876, 0.8988856845230501, 0.0, -0.8988856845230501, 0.7366642633922876, -0.41222142113076254, -1.0611071056538126, 0.5744428422615251},
   {-0.20528058576097385, 0.051320146440243464, -0.051320146440243464, 0.20528058576097385, 0.0, -0.10264029288048693, 0.1539604393207304, 0.0, -0.1539604393207304, 0.10264029288048693, -0.0, -0.20528058576097385, 0.028233618713628145, -0.028233618713628145, 0.11293447485451258, 0.0, -0.05646723742725629, 0.08470085614088443, 0.0, -0.08470085614088443, 0.05646723742725629, -0.0, -0.11293447485451258, 0.028233618713628145}},
  // oihw_input_channels: 3 groups, ||x_g|| = 2.39792, 2.04634, 2.37171
  {"oihw_input_channels", groups::input_channels(conv_layout::oihw), {2, 3, 2, 2}, 13.826726183509876,
   {-0.9872097807744857, 0.5448839123097944, -0.5448839123097944, 0.9872097807744857, 0.422773685116272, -0.7683210553488161, 0.9410947404650881, 0.0, -0.8462847939999439, 0.697213595499958, -0.39907119849998596, -0.9953559924999299, 0.5448839123097944, -0.5448839123097944, 0.9872097807744857, 0.3974419561548972, -0.7683210553488161, 0.9410947404650881, 0.0, -0.9410947404650881, 0.697213595499958, -0.39907119849998596, -0.9953559924999299, 0.5481423969999719},
   {-0.21553545944726382, 0.053883864861815955, -0.053883864861815955, 0.21553545944726382, 0.0, -0.021908556266242496, 0.032862834399363744, 0.0, -0.14999999999999997, 0.09999999999999998, -0.0, -0.19999999999999996, 0.053883864861815955, -0.053883864861815955, 0.21553545944726382, 0.0, -0.021908556266242496, 0.032862834399363744, 0.0, -0.032862834399363744, 0.09999999999999998, -0.0, -0.19999999999999996, 0.04999999999999999}},
  // oihw_kernels: 6 groups, ||x_g|| = 1.90394, 1.27475, 1.78536, 1.45774, 1.60078, 1.56125
  {"oihw_kernels", groups::kernels(conv_layout::oihw), {2, 3, 2, 2}, 13.771323794669023,
   {-0.9065321642986127, 0.5126128657194451, -0.5126128657194451, 0.9065321642986127, 0.44611613513818404, -0.8383484054145521, 1.0344645405527362, 0.0, -0.8101120336112039, 0.6700840252084029, -0.39002800840280094, -0.9501400420140048, 0.5929971702850176, -0.5929971702850176, 1.107492925712544, 0.4214985851425088, -0.7185212856658182, 0.8746950475544243, 0.0, -0.8746950475544243, 0.7303844614152614, -0.41012815380508716, -1.0506407690254358, 0.5702563076101743},
   {-0.3140056594299647, 0.07850141485749118, -0.07850141485749118, 0.3140056594299647, 0.0, -0.0, 0.0, 0.0, -0.19291398546884442, 0.12860932364589628, -0.0, -0.25721864729179256, 0.014297739604484133, -0.014297739604484133, 0.05719095841793653, 0.0, -0.07359856728877917, 0.11039785093316876, 0.0, -0.11039785093316876, 0.06356421952801522, -0.0, -0.12712843905603044, 0.03178210976400761}},
  // oihw_shapes: 12 groups, ||x_g|| = 1.34629, 0.707107, 1.34629, 1.27475, 0.790569, 1.25, 1, 1, 1.25, 0.790569, 1.27475, 1.34629
  {"oihw_shapes", groups::shapes(conv_layout::oihw), {2, 3, 2, 2}, 13.64620505652032,
   {-0.9065321642986128, 0.75, -0.5126128657194451, 0.9433752452815365, 0.47360679774997894, -0.6742640687119286, 0.9571067811865476, 0.0, -0.815685424949238, 0.9208203932499369, -0.3886750490563073, -0.9065321642986128, 0.5126128657194451, -0.75, 0.9065321642986128, 0.3886750490563073, -0.9208203932499369, 0.815685424949238, 0.0, -0.9571067811865476, 0.6742640687119286, -0.47360679774997894, -0.9433752452815365, 0.5126128657194451},
   {-0.3140056594299646, 0.0, -0.07850141485749115, 0.2928932188134524, 0.0, -0.10776772972363191, 0.0428932188134524, 0.0, -0.16165159458544787, 0.0, -0.0, -0.3140056594299646, 0.07850141485749115, -0.0, 0.3140056594299646, 0.0, -0.0, 0.16165159458544787, 0.0, -0.0428932188134524, 0.10776772972363191, -0.0, -0.2928932188134524, 0.07850141485749115}},
  // hwio_filters: 2 groups, ||x_g|| = 2.90474, 2.66927
  {"hwio_filters", groups::filters(conv_layout::hwio), {2, 2, 3, 2}, 13.84196345160126,
   {-0.9953559924999299, 0.5744428422615251, -0.5481423969999719, 1.0611071056538126, 0.39907119849998596, -0.7366642633922876, 0.8462847939999439, 0.0, -0.8462847939999439, 0.7366642633922876, -0.39907119849998596, -1.0611071056538126, 0.5481423969999719, -0.5744428422615251, 0.9953559924999299, 0.41222142113076254, -0.697213595499958, 0.8988856845230501, 0.0, -0.8988856845230501, 0.697213595499958, -0.41222142113076254, -0.9953559924999299, 0.5744428422615251},
   {-0.20528058576097385, 0.028233618713628145, -0.051320146440243464, 0.11293447485451258, 0.0, -0.05646723742725629, 0.1539604393207304, 0.0, -0.1539604393207304, 0.05646723742725629, -0.0, -0.11293447485451258, 0.051320146440243464, -0.028233618713628145, 0.20528058576097385, 0.0, -0.10264029288048693, 0.08470085614088443, 0.0, -0.08470085614088443, 0.10264029288048693, -0.0, -0.20528058576097385, 0.028233618713628145}},
  // hwio_input_channels: 3 groups, ||x_g|| = 2.07666, 2.37171, 2.37171
  {"hwio_input_channels", groups::input_channels(conv_layout::hwio), {2, 2, 3, 2}, 13.832538963617052,
   {-1.1012565307587487, 0.5905026123034995, -0.5481423969999719, 0.9953559924999299, 0.39907119849998596, -0.697213595499958, 0.931005224606999, 0.0, -0.8462847939999439, 0.697213595499958, -0.39907119849998596, -0.9953559924999299, 0.5905026123034995, -0.5905026123034995, 0.9953559924999299, 0.39907119849998596, -0.697213595499958, 0.8462847939999439, 0.0, -0.931005224606999, 0.697213595499958, -0.39907119849998596, -0.9953559924999299, 0.5481423969999719},
   {-0.07001889004944561, 0.017504722512361404, -0.04999999999999999, 0.19999999999999996, 0.0, -0.09999999999999998, 0.05251416753708421, 0.0, -0.14999999999999997, 0.09999999999999998, -0.0, -0.19999999999999996, 0.017504722512361404, -0.017504722512361404, 0.19999999999999996, 0.0, -0.09999999999999998, 0.14999999999999997, 0.0, -0.05251416753708421, 0.09999999999999998, -0.0, -0.19999999999999996, 0.04999999999999999}},
  // hwio_kernels: 6 groups, ||x_g|| = 1.67705, 1.22474, 1.83712, 1.5, 1.5, 1.83712
  {"hwio_kernels", groups::kernels(conv_layout::hwio), {2, 2, 3, 2}, 13.763530468691199,
   {-0.9953559924999299, 0.6582482904638631, -0.5221655269759087, 1.0833333333333335, 0.41666666666666663, -0.658248290463863, 0.8462847939999439, 0.0, -0.7943310539518174, 0.75, -0.41666666666666663, -0.9304138174397717, 0.5481423969999719, -0.6582482904638631, 0.9304138174397717, 0.41666666666666663, -0.75, 0.7943310539518174, 0.0, -1.0664965809277263, 0.658248290463863, -0.41666666666666663, -1.0833333333333335, 0.5221655269759087},
   {-0.21553545944726382, 0.0, -0.06742581416494464, 0.10557280900008414, 0.0, -0.13485162832988928, 0.16165159458544787, 0.0, -0.20227744249483393, 0.05278640450004207, -0.0, -0.26970325665977857, 0.053883864861815955, -0.0, 0.26970325665977857, 0.0, -0.05278640450004207, 0.20227744249483393, 0.0, -0.0, 0.13485162832988928, -0.0, -0.10557280900008414, 0.06742581416494464}},
  // hwio_shapes: 12 groups, ||x_g|| = 1.34629, 1.34629, 0.790569, 1, 1.25, 1.27475, 0.707107, 1.27475, 1.25, 1, 0.790569, 1.34629
  {"hwio_shapes", groups::shapes(conv_layout::hwio), {2, 2, 3, 2}, 13.646205056520321,
   {-0.9065321642986128, 0.5126128657194451, -0.5126128657194451, 0.9065321642986128, 0.47360679774997894, -0.9208203932499369, 0.9571067811865476, 0.0, -0.815685424949238, 0.6742640687119286, -0.3886750490563073, -0.9433752452815365, 0.75, -0.75, 0.9433752452815365, 0.3886750490563073, -0.6742640687119286, 0.815685424949238, 0.0, -0.9571067811865476, 0.9208203932499369, -0.47360679774997894, -0.9065321642986128, 0.5126128657194451},
   {-0.3140056594299646, 0.07850141485749115, -0.07850141485749115, 0.3140056594299646, 0.0, -0.0, 0.0428932188134524, 0.0, -0.16165159458544787, 0.10776772972363191, -0.0, -0.2928932188134524, 0.0, -0.0, 0.2928932188134524, 0.0, -0.10776772972363191, 0.16165159458544787, 0.0, -0.0428932188134524, 0.0, -0.0, -0.3140056594299646, 0.07850141485749115}},
  // fc_output_neurons: 3 groups, ||x_g|| = 1.90394, 1.27475, 1.78536
  {"fc_output_neurons", groups::output_neurons(), {3, 4}, 7.151555261999887,
   {-0.9065321642986127, 0.5126128657194451, -0.5126128657194451, 0.9065321642986127, 0.44611613513818404, -0.8383484054145521, 1.0344645405527362, 0.0, -0.8101120336112039, 0.6700840252084029, -0.39002800840280094, -0.9501400420140048},
   {-0.3140056594299647, 0.07850141485749118, -0.07850141485749118, 0.3140056594299647, 0.0, -0.0, 0.0, 0.0, -0.19291398546884442, 0.12860932364589628, -0.0, -0.25721864729179256}},
  // fc_input_neurons: 4 groups, ||x_g|| = 1.62019, 1.1726, 1.14564, 1.76777
  {"fc_input_neurons", groups::input_neurons(), {3, 4}, 7.129214151508432,
   {-0.9181531047810608, 0.6192744729379982, -0.6279644730092272, 0.8623724356957945, 0.38363062095621214, -0.8039117094069973, 1.0059289460184544, 0.0, -0.7845224838248487, 0.8039117094069973, -0.4389822365046136, -0.8623724356957945},
   {-0.3071796769724491, 0.0, -0.0, 0.38762756430420553, 0.0, -0.0, 0.0, 0.0, -0.2303847577293368, 0.0, -0.0, -0.38762756430420553}},
  // explicit_lists: 4 groups, ||x_g|| = 1.47902, 1.43614, 0.25, 2.03101
  {"explicit_lists", grouping::from_lists({{0, 5, 10}, {1, 2, 3}, {4}, {6, 7, 8, 9, 11}}), {3, 4}, 7.107840907701344,
   {-0.9819250547113998, 0.5515113445777636, -0.5515113445777636, 1.0037783614444091, 0.75, -0.6891550328268399, 0.8004818825631803, 0.0, -0.8004818825631803, 0.6628614119223852, -0.39638501094227996, -0.9381023532039754},
   {-0.2254033307585167, 0.04587585476806849, -0.04587585476806849, 0.18350341907227397, 0.0, -0.11270166537925835, 0.20589281241749122, 0.0, -0.20589281241749122, 0.13726187494499414, -0.0, -0.2745237498899883}},
  // whole: 1 groups, ||x_g|| = 2.06155
  {"whole", groups::whole(), {2, 3}, 3.6498762345905194,
   {-0.9926106572325057, 0.5470442628930023, -0.5470442628930023, 0.9926106572325057, 0.39852213144650117, -0.6955663943395034},
   {-0.20528058576097374, 0.051320146440243436, -0.051320146440243436, 0.20528058576097374, 0.0, -0.10264029288048687}},
  };
}

}  // namespace

TEMPLATE_TEST_CASE("sparse_group_lasso golden cases for every grouping preset", "[sparse_group_lasso][golden]", float,
                   double) {
  using T = TestType;
  const auto cases = golden_cases();
  const auto k = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto& c = cases[k];
  CAPTURE(c.name);
  const std::size_t n = product(c.shape);
  std::vector<T> x(n);
  for (std::size_t f = 0; f < n; ++f) x[f] = static_cast<T>(((7 * f) % 11 - 5.0) / 4.0);
  const sparsereg::view<const T> xv(x.data(), c.shape);
  const sparse_group_lasso pen(0.5, 0.25, c.grp);
  // All numbers are O(1) sums of at most 24 O(1) terms: 32 eps of T, relative to max(1, |e|), is
  // well above rounding and far below any formula error.
  const double tol = 32 * static_cast<double>(std::numeric_limits<T>::epsilon());
  CHECK(sparsereg::value(pen, xv) == Approx(c.value).epsilon(tol));
  std::vector<T> g(n, T(0)), y(n);
  sparsereg::add_gradient(pen, xv, sparsereg::view<T>(g.data(), c.shape));
  sparsereg::prox(pen, xv, sparsereg::view<T>(y.data(), c.shape), 1.0);
  for (std::size_t f = 0; f < n; ++f) {
    CAPTURE(f);
    CHECK(std::fabs(static_cast<double>(g[f]) - c.gradient[f]) <= tol * std::max(1.0, std::fabs(c.gradient[f])));
    CHECK(std::fabs(static_cast<double>(y[f]) - c.prox[f]) <= tol * std::max(1.0, std::fabs(c.prox[f])));
    CHECK((y[f] == T(0)) == (c.prox[f] == 0.0));  // exact zeros are exact
  }
}

TEST_CASE("sparse_group_lasso gradient matches central finite differences", "[sparse_group_lasso][gradient]") {
  // In double, away from kinks: |w_i| >= 0.1 and ||w_g|| >= 0.1, h = 1e-6. Central differences
  // have truncation error h^2 |R'''| / 6 <= 1e-12 / 0.01 and rounding error eps |R| / h <= 1e-8
  // (|R| <= 100); relative error 1e-6 leaves a wide margin over both and catches any wrong term.
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const int weighting = GENERATE(0, 1, 2);
  std::mt19937 rng(4000u + static_cast<unsigned>(preset_index * 3 + static_cast<std::size_t>(weighting)));
  auto w = make_weighted(preset_index, weighting, rng);
  CAPTURE(w.p.name, weighting);
  const sparse_group_lasso pen(0.7, 0.3, w.grp);
  const std::size_t n = product(w.p.shape);
  const auto x = random_away_from_zero<double>(n, 0.1f, 1.0f, rng);
  CHECK(central_difference_error(pen, x, w.p.shape, 1e-6) < 1e-6);
}

TEMPLATE_TEST_CASE("sparse_group_lasso gradient at the kinks is the minimum-norm subgradient",
                   "[sparse_group_lasso][gradient]", float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  std::mt19937 rng(5000u + static_cast<unsigned>(preset_index));
  auto w = make_weighted(preset_index, 0, rng);
  CAPTURE(w.p.name);
  const sparse_group_lasso pen(0.7, 0.3, w.grp);
  const std::size_t n = product(w.p.shape);

  SECTION("w = 0: the gradient is exactly 0") {
    std::vector<T> x(n, T(0)), g(n, T(0));
    sparsereg::add_gradient(pen, sparsereg::view<const T>(x.data(), w.p.shape), sparsereg::view<T>(g.data(), w.p.shape));
    for (T v : g) CHECK(bitwise_equal(v, T(0)));
    CHECK(sparsereg::value(pen, sparsereg::view<const T>(x.data(), w.p.shape)) == 0.0);
  }
  SECTION("a zero group gets 0, a zero element of a live group gets 0, and the gradient accumulates") {
    auto x = random_away_from_zero<T>(n, 0.1f, 1.0f, rng);
    for (std::size_t f : w.members[0]) x[f] = T(0);
    const std::size_t zero_elem = w.members.back().back();
    if (w.members.size() > 1) x[zero_elem] = T(0);
    std::vector<T> g0(n, T(0));
    const sparsereg::view<const T> xv(x.data(), w.p.shape);
    sparsereg::add_gradient(pen, xv, sparsereg::view<T>(g0.data(), w.p.shape));
    for (std::size_t f : w.members[0]) CHECK(bitwise_equal(g0[f], T(0)));
    if (w.members.size() > 1) CHECK(bitwise_equal(g0[zero_elem], T(0)));
    // Accumulation: starting from g = 1 gives 1 + gradient.
    std::vector<T> g1(n, T(1));
    sparsereg::add_gradient(pen, xv, sparsereg::view<T>(g1.data(), w.p.shape));
    for (std::size_t f = 0; f < n; ++f) CHECK(g1[f] == T(1) + g0[f]);
  }
}

TEMPLATE_TEST_CASE("sparse_group_lasso: NaN stays in its group, zero-size tensors are a no-op",
                   "[sparse_group_lasso][nan]", float, double) {
  using T = TestType;
  const auto preset_index = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto lay = GENERATE(layout::contiguous, layout::reversed);
  std::mt19937 rng(6000u + static_cast<unsigned>(preset_index));
  auto w = make_weighted(preset_index, 0, rng);
  CAPTURE(w.p.name, layout_name(lay));
  const sparse_group_lasso pen(0.3, 0.2, w.grp);
  tensor<T> x(w.p.shape, lay);
  auto xv = random_grouped_values<T>(w.members, x.size(), rng);
  x.assign(xv);
  tensor<T> y_clean(w.p.shape, lay);
  sparsereg::prox(pen, x.cview(), y_clean.view(), 1.0);
  tensor<T> g_clean(w.p.shape, lay);
  g_clean.assign(std::vector<T>(x.size(), T(0)));
  sparsereg::add_gradient(pen, x.cview(), g_clean.view());

  const std::size_t bad_group = w.members.size() / 2;
  const std::size_t bad = w.members[bad_group][w.members[bad_group].size() / 2];
  x[bad] = std::numeric_limits<T>::quiet_NaN();
  CHECK(std::isnan(sparsereg::value(pen, x.cview())));
  tensor<T> y(w.p.shape, lay);
  const auto r = sparsereg::prox(pen, x.cview(), y.view(), 1.0);
  CHECK(std::isnan(r.value));
  tensor<T> g(w.p.shape, lay);
  g.assign(std::vector<T>(x.size(), T(0)));
  sparsereg::add_gradient(pen, x.cview(), g.view());
  for (std::size_t k = 0; k < w.members.size(); ++k) {
    for (std::size_t f : w.members[k]) {
      CAPTURE(k, f);
      if (k == bad_group) {
        CHECK(std::isnan(y[f]));
      } else {
        CHECK(bitwise_equal(y[f], y_clean[f]));
        CHECK(bitwise_equal(g[f], g_clean[f]));
      }
    }
  }
  CHECK(std::isnan(g[bad]));
}

TEMPLATE_TEST_CASE("sparse_group_lasso on zero-size tensors", "[sparse_group_lasso][empty]", float, double) {
  using T = TestType;
  const auto shape = GENERATE(std::vector<std::size_t>{0, 2, 3, 3}, std::vector<std::size_t>{3, 0, 3, 3},
                              std::vector<std::size_t>{2, 3, 0, 1});
  const auto grp = GENERATE(0, 1, 2, 3);
  const grouping gs[] = {groups::filters(), groups::input_channels(conv_layout::hwio), groups::kernels(), groups::whole()};
  CAPTURE(shape, grp);
  const sparse_group_lasso pen(0.3, 0.2, gs[grp]);
  T cell = T(5);
  const sparsereg::view<T> v(&cell, shape);
  CHECK(sparsereg::value(pen, v) == 0.0);
  const auto r = sparsereg::prox(pen, v, v, 1.0);
  CHECK(r.value == 0.0);
  CHECK(r.zero_elements == 0);
  CHECK(r.zero_groups == 0);
  T other = T(7);
  sparsereg::add_gradient(pen, v, sparsereg::view<T>(&other, shape));
  CHECK(cell == T(5));
  CHECK(other == T(7));
}
