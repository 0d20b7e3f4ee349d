// grouping (include/sparsereg/groups.hpp): group counts, axes and weights of every preset,
// explicit lists, and the library's group numbering and membership against the independent
// description in tests/support/reference.hpp.
#include <catch2/catch.hpp>

#include <sparsereg/groups.hpp>
#include <sparsereg/penalties/group_lasso.hpp>
#include <support/reference.hpp>

#include <cmath>
#include <vector>

using namespace sparsereg_test;
using sparsereg::conv_layout;
using sparsereg::group_weighting;
using sparsereg::grouping;
namespace groups = sparsereg::groups;

TEST_CASE("group counts and identifying axes of every preset", "[groups]") {
  struct expectation {
    const char* name;
    std::size_t count;
    unsigned mask;
    std::size_t rank;
  };
  // OIHW 3x2x2x3, HWIO 2x3x2x3, FC 4x5, explicit (4 lists), whole 2x3x4: see all_presets().
  const expectation e[] = {{"oihw filters", 3, 0b0001, 4},       {"oihw input_channels", 2, 0b0010, 4},
                           {"oihw kernels", 6, 0b0011, 4},       {"oihw shapes", 12, 0b1110, 4},
                           {"hwio filters", 3, 0b1000, 4},       {"hwio input_channels", 2, 0b0100, 4},
                           {"hwio kernels", 6, 0b1100, 4},       {"hwio shapes", 12, 0b0111, 4},
                           {"fc output_neurons", 4, 0b01, 2},    {"fc input_neurons", 5, 0b10, 2},
                           {"explicit lists", 4, 0, 0},          {"whole", 1, 0, 0}};
  const auto presets = all_presets();
  REQUIRE(presets.size() == 12);
  for (std::size_t k = 0; k < presets.size(); ++k) {
    const auto& p = presets[k];
    CAPTURE(p.name);
    CHECK(p.name == e[k].name);
    std::vector<float> buf(product(p.shape));
    const sparsereg::view<const float> v(buf.data(), p.shape);
    const grouping g = p.grouping();
    CHECK_NOTHROW(g.check("test", v));
    CHECK(g.group_count(v) == e[k].count);
    CHECK(p.members().size() == e[k].count);
    CHECK(g.axis_mask() == e[k].mask);
    CHECK(g.required_rank() == e[k].rank);
    CHECK(g.is_explicit() == p.is_explicit);
    CHECK(g.weighting() == group_weighting::sqrt_size);
  }
}

TEST_CASE("group weights: sqrt(size) by default, 1 when unweighted, or given", "[groups]") {
  grouping g = groups::filters();
  CHECK(g.weight(0, 18) == std::sqrt(18.0));
  CHECK(g.weight(5, 1) == 1.0);
  CHECK(g.weight(2, 9) == 3.0);
  g.unweighted();
  CHECK(g.weighting() == group_weighting::unit);
  CHECK(g.weight(0, 18) == 1.0);
  g.with_weights({0.5, 0.0, 2.0});
  CHECK(g.weighting() == group_weighting::given);
  CHECK(g.weight(0, 18) == 0.5);
  CHECK(g.weight(1, 18) == 0.0);
  CHECK(g.weight(2, 1) == 2.0);
  std::vector<float> buf(3 * 2 * 2 * 2);
  CHECK_NOTHROW(g.check("test", sparsereg::view<const float>(buf.data(), {3, 2, 2, 2})));
}

TEST_CASE("explicit lists keep their order and offsets", "[groups]") {
  const grouping g = grouping::from_lists({{4, 1}, {0}, {2, 3, 5}});
  CHECK(g.is_explicit());
  CHECK(g.explicit_offsets() == std::vector<std::size_t>{0, 2, 3, 6});
  CHECK(g.explicit_indices() == std::vector<std::size_t>{4, 1, 0, 2, 3, 5});
  std::vector<float> buf(6);
  CHECK(g.group_count(sparsereg::view<const float>(buf.data(), {2, 3})) == 3);
  CHECK_NOTHROW(g.check("test", sparsereg::view<const float>(buf.data(), {6})));
  CHECK_THROWS(g.check("test", sparsereg::view<const float>(buf.data(), {7})));  // element 6 in no group
  const grouping none = grouping::from_lists({});
  CHECK(none.group_count(sparsereg::view<const float>()) == 0);
  CHECK_NOTHROW(none.check("test", sparsereg::view<const float>()));
}

TEST_CASE("by_axes without a rank accepts any tensor that has the axes", "[groups]") {
  const grouping g = grouping::by_axes({1});
  std::vector<float> buf(60);
  CHECK(g.group_count(sparsereg::view<const float>(buf.data(), {3, 4})) == 4);
  CHECK(g.group_count(sparsereg::view<const float>(buf.data(), {3, 5, 4})) == 5);
  CHECK_NOTHROW(g.check("test", sparsereg::view<const float>(buf.data(), {2, 5, 2, 3})));
  CHECK_THROWS(g.check("test", sparsereg::view<const float>(buf.data(), {60})));
  CHECK(groups::whole().group_count(sparsereg::view<const float>(buf.data(), {3, 4, 5})) == 1);
}

TEMPLATE_TEST_CASE("the library's group numbering and membership match the independent description", "[groups]", float,
                   double) {
  using T = TestType;
  // With weights c_g = g + 1 and x the indicator of one reference group k, the group lasso value
  // is (k + 1) * sqrt(|k|) exactly when the library puts exactly those elements in its group k.
  const auto presets = all_presets();
  const auto k_preset = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto lay = GENERATE(layout::contiguous, layout::padded, layout::reversed);
  const auto& p = presets[k_preset];
  CAPTURE(p.name, layout_name(lay));
  const auto members = p.members();
  std::vector<double> c(members.size());
  for (std::size_t g = 0; g < c.size(); ++g) c[g] = static_cast<double>(g + 1);
  grouping grp = p.grouping();
  grp.with_weights(c);
  const sparsereg::group_lasso pen(1.0, grp);
  for (std::size_t k = 0; k < members.size(); ++k) {
    CAPTURE(k);
    tensor<T> x(p.shape, lay);
    x.assign(std::vector<T>(x.size(), T(0)));
    for (std::size_t f : members[k]) x[f] = T(1);
    const double expect = static_cast<double>(k + 1) * std::sqrt(static_cast<double>(members[k].size()));
    CHECK(sparsereg::value(pen, x.cview()) == Approx(expect).epsilon(1e-6));
    // The prox writes through the same membership: with step = sqrt(|k|) / (2 (k + 1)) group k's
    // threshold is half its norm, so its elements become exactly 1/2 and every other group stays 0.
    tensor<T> y(p.shape, layout::contiguous);
    const double step = std::sqrt(static_cast<double>(members[k].size())) / (2.0 * static_cast<double>(k + 1));
    const auto r = sparsereg::prox(pen, x.cview(), y.view(), step);
    CHECK(r.zero_groups == members.size() - 1);
    std::vector<T> expect_y(x.size(), T(0));
    for (std::size_t f : members[k]) expect_y[f] = T(0.5);
    const auto yv = y.values();
    for (std::size_t f = 0; f < yv.size(); ++f) CHECK(yv[f] == Approx(expect_y[f]).margin(1e-6));
  }
}
