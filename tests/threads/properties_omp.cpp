// Thread-count independence (design.md, "Determinism"): built with OpenMP, every operation is run
// with 1, 2 and 3 threads and must give bit-identical outputs and values. Tensors are large enough
// to be cut into many blocks (up to the 256-block cap), for contiguous groups (one run per group),
// strided groups (two-pass workspace path), groups that cross the innermost run, explicit lists,
// one whole-tensor group, long elementwise runs split into 16K-element chunks, and coupled groups
// (filters of one conv weight with the input channels of the next, split between threads by unit).
#include <catch2/catch.hpp>

#include <sparsereg/coupled.hpp>
#include <sparsereg/penalties/group_element_steps.hpp>
#include <sparsereg/penalties/group_lasso.hpp>
#include <sparsereg/penalties/hard_threshold.hpp>
#include <sparsereg/penalties/l1.hpp>
#include <sparsereg/penalties/sparse_group_lasso.hpp>
#include <sparsereg/penalties/squared_l2.hpp>
#include <sparsereg/sharded.hpp>
#include <support/reference.hpp>

#include <omp.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

using namespace sparsereg_test;
using sparsereg::conv_layout;
using sparsereg::grouping;
namespace groups = sparsereg::groups;

namespace {

/// Everything one penalty produces on one input.
template <class T>
struct outputs {
  std::vector<T> prox;
  std::vector<T> gradient;
  std::vector<T> prox_steps;  // per-element steps (separable penalties only)
  double prox_value = 0, value = 0;
  std::size_t zero_elements = 0, zero_groups = 0;

  bool operator==(const outputs& o) const {
    return bitwise_equal(prox, o.prox) && bitwise_equal(gradient, o.gradient) && bitwise_equal(prox_steps, o.prox_steps) &&
           bitwise_equal(prox_value, o.prox_value) && bitwise_equal(value, o.value) &&
           zero_elements == o.zero_elements && zero_groups == o.zero_groups;
  }
};

template <class T, class P>
outputs<T> run_all(const P& pen, const tensor<T>& x, const tensor<T>& steps, layout out_layout) {
  outputs<T> o;
  tensor<T> y(x.shape, out_layout);
  const auto r = sparsereg::prox(pen, x.cview(), y.view(), 0.8);
  o.prox = y.values();
  o.prox_value = r.value;
  o.zero_elements = r.zero_elements;
  o.zero_groups = r.zero_groups;
  o.value = sparsereg::value(pen, x.cview());
  if constexpr (P::has_gradient) {
    tensor<T> g(x.shape, out_layout);
    g.assign(std::vector<T>(x.size(), T(0.125)));
    sparsereg::add_gradient(pen, x.cview(), g.view());
    o.gradient = g.values();
  }
  if constexpr (P::separable) {
    tensor<T> ys(x.shape, out_layout);
    sparsereg::prox(pen, x.cview(), ys.view(), steps.cview());
    o.prox_steps = ys.values();
  }
  return o;
}

template <class T, class P>
void require_thread_independent(const P& pen, const tensor<T>& x, const tensor<T>& steps, layout out_layout) {
  omp_set_num_threads(1);
  const auto one = run_all(pen, x, steps, out_layout);
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    omp_set_num_threads(threads);
    const auto many = run_all(pen, x, steps, out_layout);
    REQUIRE(many.prox_value == one.prox_value);  // exact; reported first for a readable failure
    REQUIRE(many.value == one.value);
    REQUIRE(many == one);
  }
  omp_set_num_threads(1);
}

template <class T>
tensor<T> random_tensor(const std::vector<std::size_t>& shape, layout lay, std::mt19937& rng) {
  tensor<T> t(shape, lay);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 15);
  std::vector<T> v(t.size());
  for (auto& e : v) e = pick(rng) == 0 ? T(0) : static_cast<T>(u(rng) * (pick(rng) < 4 ? 0.02f : 1.0f));
  t.assign(v);
  return t;
}

/// A random partition of n indices into groups of 1..40 elements.
grouping random_partition(std::size_t n, std::mt19937& rng) {
  std::vector<std::size_t> perm(n);
  std::iota(perm.begin(), perm.end(), std::size_t(0));
  std::shuffle(perm.begin(), perm.end(), rng);
  std::uniform_int_distribution<std::size_t> len(1, 40);
  std::vector<std::vector<std::size_t>> lists;
  for (std::size_t i = 0; i < n;) {
    const std::size_t k = std::min(n - i, len(rng));
    lists.emplace_back(perm.begin() + static_cast<std::ptrdiff_t>(i), perm.begin() + static_cast<std::ptrdiff_t>(i + k));
    i += k;
  }
  return grouping::from_lists(lists);
}

/// Shapes and groupings of the group-penalty thread tests: contiguous, strided and crossing
/// groups, column tiles, index lists, one whole-tensor group.
struct group_setup {
  const char* name;
  std::vector<std::size_t> shape;
  grouping grp;
};

std::vector<group_setup> group_setups() {
  std::mt19937 prng(9);
  return {
      {"oihw filters (one run per group, 300 groups)", {300, 8, 3, 3}, groups::filters()},
      {"oihw input_channels (strided groups)", {16, 300, 3, 3}, groups::input_channels()},
      {"oihw kernels", {20, 30, 3, 3}, groups::kernels()},
      {"oihw shapes (groups cross the outer axis)", {20, 30, 3, 3}, groups::shapes()},
      {"hwio filters (the run crosses groups)", {3, 3, 20, 300}, groups::filters(conv_layout::hwio)},
      {"hwio input_channels", {3, 3, 300, 20}, groups::input_channels(conv_layout::hwio)},
      {"fc output_neurons", {300, 200}, groups::output_neurons()},
      {"fc input_neurons", {200, 300}, groups::input_neurons()},
      // Column tiles (rows * 256 elements fit the tile budget): several tiles per thread, tiles
      // of whole blocks that are not all the same width.
      {"fc input_neurons, several column tiles", {120, 2500}, groups::input_neurons()},
      // Too many rows for a column tile of 256: the two-pass crossing path.
      {"fc input_neurons, tall (two passes)", {600, 70}, groups::input_neurons()},
      {"explicit random partition", {100, 300}, random_partition(100 * 300, prng)},
      {"whole", {300, 200}, groups::whole()},
  };
}

/// One of group_setups() in one of two layouts (both GENERATEd) with random values.
template <class T>
struct group_case {
  group_setup setup;
  layout lay;
  tensor<T> x;
  std::size_t index;
};
template <class T>
group_case<T> generate_group_case(unsigned seed) {
  const auto setups = group_setups();
  const auto k = static_cast<std::size_t>(GENERATE(range(0, 12)));
  const auto lay = GENERATE(layout::contiguous, layout::reversed);
  std::mt19937 rng(seed + static_cast<unsigned>(k));
  auto x = random_tensor<T>(setups[k].shape, lay, rng);
  return {setups[k], lay, std::move(x), k};
}

}  // namespace

TEST_CASE("OpenMP really runs more than one thread", "[threads]") {
  omp_set_num_threads(2);
  int seen = 0;
#pragma omp parallel
  {
#pragma omp single
    seen = omp_get_num_threads();
  }
  omp_set_num_threads(1);
  REQUIRE(seen == 2);
}

TEMPLATE_TEST_CASE("group penalties give bit-identical results for 1, 2 and 3 threads", "[threads]", float, double) {
  using T = TestType;
  const auto c = generate_group_case<T>(31u);
  const auto& s = c.setup;
  const auto lay = c.lay;
  const auto& x = c.x;
  CAPTURE(s.name, layout_name(lay));
  const tensor<T> no_steps;
  require_thread_independent(sparsereg::sparse_group_lasso(0.05, 0.1, s.grp), x, no_steps, lay);
  require_thread_independent(sparsereg::group_lasso(0.3, s.grp), x, no_steps, layout::contiguous);
  // In place as well: the result must match the single-threaded in-place run.
  omp_set_num_threads(1);
  tensor<T> a = x;
  const auto ra = sparsereg::prox(sparsereg::sparse_group_lasso(0.05, 0.1, s.grp), a.cview(), a.view(), 0.8);
  omp_set_num_threads(2);
  tensor<T> b = x;
  const auto rb = sparsereg::prox(sparsereg::sparse_group_lasso(0.05, 0.1, s.grp), b.cview(), b.view(), 0.8);
  omp_set_num_threads(1);
  CHECK(bitwise_equal(a.storage, b.storage));
  CHECK(bitwise_equal(ra.value, rb.value));
}

TEMPLATE_TEST_CASE("the per-element-step group prox gives bit-identical results for 1, 2 and 3 threads", "[threads]",
                   float, double) {
  // Its blocks (SPARSEREG_ELEMENT_STEPS_BLOCK elements, 512 in this build: many per thread) own
  // whole groups and are shared between threads; each group's sums keep one order.
  using T = TestType;
  const auto c = generate_group_case<T>(47u);
  const auto& s = c.setup;
  const auto lay = c.lay;
  const auto& x = c.x;
  CAPTURE(s.name, layout_name(lay));
  std::mt19937 rng(53u + static_cast<unsigned>(c.index));
  tensor<T> steps(s.shape, lay);
  std::uniform_real_distribution<float> step(0.05f, 2.0f);
  std::vector<T> sv(x.size());
  for (auto& e : sv) e = static_cast<T>(step(rng));
  steps.assign(sv);
  const sparsereg::sparse_group_lasso pen(0.05, 0.1, s.grp);
  struct result {
    tensor<T> out, in_place;
    sparsereg::prox_result r, r_in_place;
  };
  const auto run = [&](int threads) {
    omp_set_num_threads(threads);
    result o{tensor<T>(s.shape, layout::contiguous), x, {}, {}};
    o.r = sparsereg::prox_per_element_steps(pen, x.cview(), o.out.view(), steps.cview());
    o.r_in_place = sparsereg::prox_per_element_steps(pen, o.in_place.cview(), o.in_place.view(), steps.cview());
    omp_set_num_threads(1);
    return o;
  };
  const auto one = run(1);
  CHECK(one.r.zero_groups < one.r.groups);  // groups that need the root search
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    const auto many = run(threads);
    REQUIRE(bitwise_equal(many.r.value, one.r.value));
    REQUIRE(bitwise_equal(many.r_in_place.value, one.r_in_place.value));
    REQUIRE(many.r.zero_elements == one.r.zero_elements);
    REQUIRE(many.r.zero_groups == one.r.zero_groups);
    REQUIRE(bitwise_equal(many.out.storage, one.out.storage));
    REQUIRE(bitwise_equal(many.in_place.storage, one.in_place.storage));
  }
}

TEMPLATE_TEST_CASE("the sharded prox's two phases give bit-identical results for 1, 2 and 3 threads", "[threads]",
                   float, double) {
  // Both phases run the parallel sweeps on the block: a shard holding the whole tensor, and one
  // holding the second half of the groups' other axis (so every group is split), in both layouts.
  using T = TestType;
  struct setup {
    std::vector<std::size_t> shape;
    grouping grp;
  };
  const std::vector<setup> setups = {{{16, 300, 3, 3}, groups::input_channels()},
                                     {{300, 8, 3, 3}, groups::filters()},
                                     {{200, 300}, groups::input_neurons()}};
  for (std::size_t k = 0; k < setups.size(); ++k)
    for (const layout lay : {layout::contiguous, layout::reversed})
      for (const bool half : {false, true}) {
        CAPTURE(k, layout_name(lay), half);
        const auto& s = setups[k];
        std::mt19937 rng(57u + static_cast<unsigned>(k));
        const auto x = random_tensor<T>(s.shape, lay, rng);
        // Every third group weighted 40 times more: those die, the others keep most of their norm.
        grouping weighted = s.grp;
        const std::size_t group_axis = s.grp.axis_mask() & 1u ? 0 : 1;
        std::vector<double> w(s.shape[group_axis]);
        for (std::size_t g = 0; g < w.size(); ++g) w[g] = g % 3 == 0 ? 40.0 : 1.0;
        weighted.with_weights(w);
        const sparsereg::sparse_group_lasso pen(0.5, 0.1, weighted);
        // The non-group axis 0 (or 1 for filters) keeps its first half off this shard.
        const std::size_t axis = s.grp.axis_mask() & 1u ? 1 : 0;
        std::vector<std::size_t> offset(s.shape.size(), 0);
        if (half) offset[axis] = s.shape[axis] / 2;
        const auto run = [&](int threads, std::vector<double>& buf, tensor<T>& y) {
          omp_set_num_threads(threads);
          y = x;
          std::vector<std::size_t> extents = s.shape;
          extents[axis] -= offset[axis];
          T* origin = y.storage.data() + static_cast<std::ptrdiff_t>(offset[axis]) * y.strides[axis];
          const sparsereg::shard<T> sh{sparsereg::view<T>(origin, extents, y.strides), s.shape, offset};
          buf.assign(sparsereg::sharded_buffer_size(pen, sh), -1.0);
          sparsereg::sharded_prox_partial(pen, sh, 0.8, buf.data(), buf.size());
          return sparsereg::sharded_prox_finish(pen, sh, 0.8, buf.data(), buf.size());
        };
        std::vector<double> buf1, buf2;
        tensor<T> y1, y2;
        const auto r1 = run(1, buf1, y1);
        for (int threads : {2, 3}) {
          CAPTURE(threads);
          const auto r2 = run(threads, buf2, y2);
          CHECK(bitwise_equal(buf1, buf2));
          CHECK(bitwise_equal(y1.storage, y2.storage));
          CHECK(bitwise_equal(r1.value, r2.value));
          CHECK(r1.zero_elements == r2.zero_elements);
          CHECK(r1.zero_groups == r2.zero_groups);
        }
        CHECK(r1.zero_groups > 0);
        CHECK(r1.zero_groups < r1.groups);
        omp_set_num_threads(1);
      }
}

TEMPLATE_TEST_CASE("the coupled prox, value and zero count give bit-identical results for 1, 2 and 3 threads",
                   "[threads]", float, double) {
  // Unit k = filter k of w1 (37 x 5 x 3 x 3) and input channel k of w2 (6 x 37 x 3 x 3): dense
  // parts, split between threads by unit; 37 units do not divide evenly between 2 or 3 threads.
  using T = TestType;
  std::mt19937 rng(91);
  std::normal_distribution<double> d(0.0, 0.1);
  std::vector<T> w1(37 * 45), w2(6 * 37 * 9);
  for (auto* v : {&w1, &w2})
    for (auto& x : *v) x = static_cast<T>(d(rng));
  for (std::size_t k = 0; k < 37; k += 4) {  // every fourth unit weak: it dies
    for (std::size_t i = 0; i < 45; ++i) w1[k * 45 + i] *= T(0.01);
    for (std::size_t o = 0; o < 6; ++o)
      for (std::size_t i = 0; i < 9; ++i) w2[(o * 37 + k) * 9 + i] *= T(0.01);
  }
  const sparsereg::coupled_sparse_group_lasso pen(0.05, 0.02);
  const auto run = [&](int threads, std::vector<T>& a, std::vector<T>& b) {
    omp_set_num_threads(threads);
    a = w1;
    b = w2;
    const std::vector<sparsereg::coupled_part<T>> parts = {{sparsereg::view<T>(a.data(), {37, 5, 3, 3}), 0},
                                                           {sparsereg::view<T>(b.data(), {6, 37, 3, 3}), 1}};
    const double v = pen.value(parts);
    const auto z = pen.count_zero_units(parts);
    const auto r = pen.prox(parts, 0.5);
    return std::make_tuple(v, z.zero_elements, r);
  };
  std::vector<T> a1, b1, a2, b2;
  const auto [v1, z1, r1] = run(1, a1, b1);
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    const auto [v2, z2, r2] = run(threads, a2, b2);
    CHECK(bitwise_equal(v1, v2));
    CHECK(z1 == z2);
    CHECK(bitwise_equal(a1, a2));
    CHECK(bitwise_equal(b1, b2));
    CHECK(bitwise_equal(r1.value, r2.value));
    CHECK(r1.zero_elements == r2.zero_elements);
    CHECK(r1.zero_groups == r2.zero_groups);
  }
  CHECK(r1.zero_groups == 10);  // units 0, 4, ..., 36
  omp_set_num_threads(1);
}

TEMPLATE_TEST_CASE("separable penalties give bit-identical results for 1, 2 and 3 threads", "[threads]", float, double) {
  using T = TestType;
  // 1 << 18 elements as one contiguous run: 16 chunks of 16K. The 3-D shape with a padded layout
  // exercises the outer-axis split instead.
  const bool long_run = GENERATE(true, false);
  const auto shape = long_run ? std::vector<std::size_t>{1u << 18} : std::vector<std::size_t>{300, 20, 30};
  const auto lay = long_run ? layout::contiguous : layout::padded;
  CAPTURE(shape, layout_name(lay));
  std::mt19937 rng(77);
  const auto x = random_tensor<T>(shape, lay, rng);
  tensor<T> steps(shape, lay);
  std::uniform_real_distribution<float> u(0.0f, 2.0f);
  std::vector<T> sv(steps.size());
  for (auto& v : sv) v = static_cast<T>(u(rng));
  steps.assign(sv);
  require_thread_independent(sparsereg::l1(0.3), x, steps, lay);
  require_thread_independent(sparsereg::squared_l2(0.3), x, steps, layout::contiguous);
  require_thread_independent(sparsereg::hard_threshold(0.1), x, steps, lay);
}
