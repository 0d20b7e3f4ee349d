// Sharded two-phase prox: shards along a group-identifying axis AND along a reduced axis (so a
// group is split across shards), the all-reduce simulated by summing the shards' buffers, must
// give the unsharded prox up to summation rounding, and replicas must stay bit-identical.
#include <sparsereg/sharded.hpp>
#include <sparsereg/sparsereg.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

namespace sr = sparsereg;

namespace {

// A 6x4x3x3 tensor cut into a 3x2 grid of blocks: axis 0 at {0, 2, 3, 6}, axis 1 at {0, 1, 4}.
template <class T>
struct sharded_tensor {
  static constexpr std::size_t O = 6, I = 4, H = 3, W = 3;
  std::vector<std::size_t> cut0 = {0, 2, 3, 6}, cut1 = {0, 1, 4};
  std::vector<std::vector<T>> blocks;
  std::vector<sr::shard<T>> shards;

  explicit sharded_tensor(const std::vector<T>& full) {
    for (std::size_t a = 0; a + 1 < cut0.size(); ++a)
      for (std::size_t b = 0; b + 1 < cut1.size(); ++b) {
        const std::size_t o0 = cut0[a], o1 = cut0[a + 1], i0 = cut1[b], i1 = cut1[b + 1];
        std::vector<T> blk;
        for (std::size_t o = o0; o < o1; ++o)
          for (std::size_t i = i0; i < i1; ++i)
            for (std::size_t k = 0; k < H * W; ++k) blk.push_back(full[(o * I + i) * H * W + k]);
        blocks.push_back(std::move(blk));
        shards.push_back({sr::view<T>(nullptr, {0}), {O, I, H, W}, {o0, i0, 0, 0}});
      }
    for (std::size_t s = 0; s < shards.size(); ++s) {
      const std::size_t a = s / 2, b = s % 2;
      shards[s].local = sr::view<T>(blocks[s].data(), {cut0[a + 1] - cut0[a], cut1[b + 1] - cut1[b], H, W});
    }
  }
  std::vector<T> gather() const {
    std::vector<T> full(O * I * H * W);
    for (std::size_t s = 0; s < shards.size(); ++s) {
      const auto& v = shards[s].local;
      std::size_t n = 0;
      for (std::size_t o = 0; o < v.extent(0); ++o)
        for (std::size_t i = 0; i < v.extent(1); ++i)
          for (std::size_t k = 0; k < H * W; ++k)
            full[((o + shards[s].offset[0]) * I + i + shards[s].offset[1]) * H * W + k] = blocks[s][n++];
    }
    return full;
  }
  // Phase 1 on every shard, "all-reduce" (sum in rank order), phase 2 on every shard.
  template <class P>
  sr::prox_result prox(const P& p, double step) {
    const std::size_t n = sr::sharded_buffer_size(p, shards[0]);
    std::vector<std::vector<double>> bufs(shards.size(), std::vector<double>(n));
    for (std::size_t s = 0; s < shards.size(); ++s) sr::sharded_prox_partial(p, shards[s], step, bufs[s].data(), n);
    std::vector<double> reduced(n, 0.0);
    for (const auto& b : bufs)
      for (std::size_t k = 0; k < n; ++k) reduced[k] += b[k];
    sr::prox_result total;
    for (std::size_t s = 0; s < shards.size(); ++s) {
      const auto r = sr::sharded_prox_finish(p, shards[s], step, reduced.data(), n);
      if (s > 0) {
        CHECK(r.value == total.value);  // every rank gets the same global value
        CHECK(r.zero_groups == total.zero_groups);
      }
      total.value = r.value;
      total.zero_groups = r.zero_groups;
      total.groups = r.groups;
      total.zero_elements += r.zero_elements;
    }
    return total;
  }
  template <class P>
  double value(const P& p) {
    const std::size_t n = sr::sharded_buffer_size(p, shards[0]);
    std::vector<double> reduced(n, 0.0), buf(n);
    for (const auto& s : shards) {
      sr::sharded_value_partial(p, s, buf.data(), n);
      for (std::size_t k = 0; k < n; ++k) reduced[k] += buf[k];
    }
    return sr::sharded_value_finish(p, shards[0], reduced.data(), n);
  }
};

template <class T>
std::vector<T> random_tensor(std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, 0.1);
  std::vector<T> v(6 * 4 * 9);
  for (auto& x : v) x = static_cast<T>(d(rng));
  for (std::size_t k = 0; k < 36; ++k) v[2 * 36 + k] *= T(0.05);  // filter 2 is weak
  for (std::size_t o = 0; o < 6; ++o)
    for (std::size_t k = 0; k < 9; ++k) v[(o * 4 + 3) * 9 + k] *= T(0.05);  // input channel 3 is weak
  return v;
}

}  // namespace

TEMPLATE_TEST_CASE("sharded prox equals the unsharded prox", "[sharded]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 2e-7 : 1e-15;
  const std::vector<sr::grouping> groupings = {sr::groups::filters(), sr::groups::input_channels(), sr::groups::kernels(),
                                               sr::groups::whole()};
  for (std::size_t k = 0; k < groupings.size(); ++k) {
    INFO("grouping " << k);
    const sr::sparse_group_lasso p(0.03, 0.01, groupings[k]);
    auto full = random_tensor<T>(61 + std::uint32_t(k));
    sharded_tensor<T> st(full);
    const sr::view<T> v(full.data(), {6, 4, 3, 3});

    CHECK(st.value(p) == Approx(sr::value(p, v)).epsilon(1e-6));
    const double step = 0.7;
    const auto rs = st.prox(p, step);
    const auto ru = sr::prox(p, v, v, step);
    const auto out = st.gather();
    for (std::size_t i = 0; i < full.size(); ++i)
      REQUIRE(double(out[i]) == Approx(double(full[i])).margin(tol * 4).epsilon(tol * 8));
    CHECK(rs.groups == ru.groups);
    CHECK(rs.zero_groups == ru.zero_groups);
    CHECK(rs.zero_elements == ru.zero_elements);
    CHECK(rs.value == Approx(ru.value).epsilon(1e-5));
    if (k < 2) CHECK(ru.zero_groups >= 1);

    const sr::group_lasso gl(0.05, groupings[k]);
    st.prox(gl, step);
    sr::prox(gl, v, v, step);
    const auto out2 = st.gather();
    for (std::size_t i = 0; i < full.size(); ++i)
      REQUIRE(double(out2[i]) == Approx(double(full[i])).margin(tol * 4).epsilon(tol * 8));
  }
}

TEST_CASE("sharded prox: replicas stay bit-identical") {
  // Two data-parallel replicas of the same sharded model run the same proxes.
  auto full = random_tensor<float>(71);
  sharded_tensor<float> a(full), b(full);
  const sr::sparse_group_lasso p(0.01, 0.002, sr::groups::input_channels());
  for (int it = 0; it < 5; ++it) {
    a.prox(p, 0.3);
    b.prox(p, 0.3);
  }
  const auto ga = a.gather(), gb = b.gather();
  CHECK(std::memcmp(ga.data(), gb.data(), ga.size() * sizeof(float)) == 0);
  // And two unsharded replicas, the data-parallel default.
  auto r1 = full, r2 = full;
  for (int it = 0; it < 5; ++it) {
    sr::prox(p, sr::view<float>(r1.data(), {6, 4, 3, 3}), sr::view<float>(r1.data(), {6, 4, 3, 3}), 0.3);
    sr::prox(p, sr::view<float>(r2.data(), {6, 4, 3, 3}), sr::view<float>(r2.data(), {6, 4, 3, 3}), 0.3);
  }
  CHECK(std::memcmp(r1.data(), r2.data(), r1.size() * sizeof(float)) == 0);
}

TEST_CASE("sharded prox: validation and NaN") {
  std::vector<double> blk(2 * 4 * 9, 1.0), buf(12);
  const sr::sparse_group_lasso p(0.1, 0.0, sr::groups::filters());
  sr::shard<double> s{sr::view<double>(blk.data(), {2, 4, 3, 3}), {6, 4, 3, 3}, {4, 0, 0, 0}};
  CHECK(sr::sharded_buffer_size(p, s) == 12);
  sr::sharded_prox_partial(p, s, 0.1, buf.data(), buf.size());
  CHECK(buf[0] == 0.0);         // group 0 is not on this shard
  CHECK(buf[2 * 4] == 36.0);    // filter 4: 36 ones
  CHECK(buf[2 * 4 + 1] == 36.0);
  CHECK_THROWS_WITH(sr::sharded_prox_partial(p, s, 0.1, buf.data(), 10), Catch::Contains("needs 12"));
  auto bad = s;
  bad.offset[0] = 5;
  CHECK_THROWS_WITH(sr::sharded_prox_partial(p, bad, 0.1, buf.data(), 12), Catch::Contains("axis 0"));
  bad = s;
  bad.global_shape = {6, 36};
  CHECK_THROWS_WITH(sr::sharded_prox_partial(p, bad, 0.1, buf.data(), 12), Catch::Contains("rank"));
  const sr::sparse_group_lasso ex(0.1, 0.0, sr::grouping::from_lists({{0}}));
  CHECK_THROWS_WITH(sr::sharded_buffer_size(ex, s), Catch::Contains("explicit"));
  CHECK_THROWS_AS(sr::sharded_prox_partial(p, s, -1.0, buf.data(), 12), std::invalid_argument);

  // A NaN reduced norm poisons only its own group.
  std::vector<double> reduced(12, 1.0);
  reduced[2 * 5] = std::nan("");
  const auto r = sr::sharded_prox_finish(p, s, 0.1, reduced.data(), 12);
  CHECK(std::isnan(r.value));
  CHECK(std::isnan(blk[36]));
  CHECK_FALSE(std::isnan(blk[0]));
}

TEST_CASE("sharded prox: step 0 and lambda 0 are exact when a group's sum of squares underflows", "[sharded]") {
  // The sums are in double, so double values of 1e-170 (squares below the smallest subnormal)
  // underflow them: input channel 0 holds such values, input channel 1 only zeros (some -0.0).
  // Both are split across shards.
  using T = double;
  const T tiny = 1e-170;
  auto full = random_tensor<T>(91);
  for (std::size_t o = 0; o < 6; ++o)
    for (std::size_t k = 0; k < 9; ++k) {
      full[(o * 4 + 0) * 9 + k] = (o + k) % 2 ? tiny : -tiny;
      full[(o * 4 + 1) * 9 + k] = (o + k) % 3 ? T(0) : T(-0.0);
    }
  for (const auto& [p, step] : {std::pair{sr::sparse_group_lasso(0.05, 0.01, sr::groups::input_channels()), 0.0},
                                std::pair{sr::sparse_group_lasso(0.0, 0.0, sr::groups::input_channels()), 0.5}}) {
    sharded_tensor<T> st(full);
    const auto r = st.prox(p, step);
    const auto out = st.gather();
    CHECK(std::memcmp(out.data(), full.data(), full.size() * sizeof(T)) == 0);
    CHECK(r.zero_groups == 1);
  }
  // A positive threshold still zeroes channel 0.
  sharded_tensor<T> st(full);
  CHECK(st.prox(sr::group_lasso(1e-30, sr::groups::input_channels()), 1.0).zero_groups == 2);
}

TEST_CASE("sharded prox: a group count or size that overflows std::size_t is rejected") {
  std::vector<float> w{1.f, 2.f};
  const std::size_t big = std::size_t(1) << 63;
  const sr::sparse_group_lasso rows(0.1, 0.0, sr::groups::output_neurons());
  // 2^63 groups need 2^64 doubles: 2 * groups would wrap to 0 and pass a null buffer.
  const sr::shard<float> s{sr::view<float>(w.data(), {1, 2}), {big, 2}, {0, 0}};
  CHECK_THROWS_AS(sr::sharded_buffer_size(rows, s), std::invalid_argument);
  CHECK_THROWS_WITH(sr::sharded_buffer_size(rows, s),
                    Catch::Contains("global_shape {9223372036854775808, 2}") && Catch::Contains("group count"));
  CHECK_THROWS_WITH(sr::sharded_prox_partial(rows, s, 1.0, nullptr, 0), Catch::Contains("global_shape"));
  // Groups of 2^63 * 4 elements: their size wraps to 0.
  const sr::sparse_group_lasso first(0.1, 0.0, sr::grouping::by_axes({0}, 3));
  CHECK_THROWS_WITH(
      sr::sharded_buffer_size(first, sr::shard<float>{sr::view<float>(w.data(), {2, 1, 1}), {2, big, 4}, {0, 0, 0}}),
      Catch::Contains("global_shape {2, 9223372036854775808, 4}") && Catch::Contains("group size"));
  // Large counts that fit are accepted.
  CHECK(sr::sharded_buffer_size(rows, sr::shard<float>{s.local, {big / 4, 2}, {0, 0}}) == big / 2);
}

TEST_CASE("sharded prox: a local block whose elements share memory is refused before it is written") {
  std::vector<double> cell{2.0}, buf(12, 1.0);
  const sr::sparse_group_lasso p(0.1, 0.5, sr::groups::filters());
  // 2 x 4 x 3 x 3 elements on a single address.
  sr::shard<double> s{sr::view<double>(cell.data(), {2, 4, 3, 3}, {0, 0, 0, 0}), {6, 4, 3, 3}, {4, 0, 0, 0}};
  CHECK_THROWS_WITH(sr::sharded_prox_finish(p, s, 0.1, buf.data(), 12),
                    Catch::Contains("shard.local") && Catch::Contains("share memory"));
  CHECK(cell == std::vector<double>{2.0});
}

TEMPLATE_TEST_CASE("sharded prox: shards that hold whole groups write the unsharded prox's output bit for bit",
                   "[sharded]", float, double) {
  // Both phases run the unsharded passes on each block, so when the cuts run only along
  // group-identifying axes every group's sums are the unsharded ones, and so are the factors and
  // the output. Blocks as views into the one tensor (its strides) and as contiguous copies; every
  // group its own weight.
  using T = TestType;
  constexpr std::size_t O = 16, I = 12, K = 9;
  struct split_case {
    sr::grouping groups;
    std::size_t axis;                 // the group-identifying axis that is cut
    std::vector<std::size_t> cuts;    // block boundaries along it
  };
  const std::vector<split_case> cases = {{sr::groups::filters(), 0, {0, 5, 16}},
                                         {sr::groups::input_channels(), 1, {0, 7, 12}},
                                         {sr::groups::kernels(), 0, {0, 3, 11, 16}},
                                         {sr::groups::kernels(), 1, {0, 1, 12}}};
  std::mt19937 rng(5);
  std::normal_distribution<double> d(0.0, 0.1);
  std::vector<T> w(O * I * K);
  for (auto& x : w) x = static_cast<T>(d(rng));
  for (std::size_t o = 0; o < O; ++o)
    for (std::size_t c = 0; c < I; c += 4)  // weak input channels (and filter 0): some groups die
      for (std::size_t k = 0; k < K; ++k) w[(o * I + c) * K + k] *= T(0.05);
  for (std::size_t k = 0; k < I * K; ++k) w[k] *= T(0.05);
  const std::vector<std::ptrdiff_t> strides = {static_cast<std::ptrdiff_t>(I * K), static_cast<std::ptrdiff_t>(K), 3,
                                               1};
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const auto& sc = cases[c];
    // A weight per global group, all different: a block's group mapped to another global group
    // gets another threshold.
    sr::grouping weighted = sc.groups;
    const std::size_t group_count = sc.groups.axis_mask() == 3u ? O * I : (sc.axis == 0 ? O : I);
    std::vector<double> weights(group_count);
    for (std::size_t g = 0; g < group_count; ++g) weights[g] = 2.0 + 0.01 * static_cast<double>(g);
    weighted.with_weights(weights);
    const sr::sparse_group_lasso p(0.05, 0.02, weighted);
    const double step = 0.5;
    std::vector<T> ref = w;
    const sr::view<T> rv(ref.data(), {O, I, 3, 3});
    const auto ru = sr::prox(p, rv, rv, step);
    REQUIRE(ru.zero_groups > 0);
    REQUIRE(ru.zero_groups < ru.groups);
    for (int copies = 0; copies < 2; ++copies) {
      INFO("case " << c << (copies ? ", contiguous copies" : ", views into the tensor"));
      std::vector<T> out = w;
      std::vector<std::vector<T>> blocks;
      std::vector<sr::shard<T>> shards;
      for (std::size_t b = 0; b + 1 < sc.cuts.size(); ++b) {
        std::vector<std::size_t> ext = {O, I, 3, 3}, off = {0, 0, 0, 0};
        ext[sc.axis] = sc.cuts[b + 1] - sc.cuts[b];
        off[sc.axis] = sc.cuts[b];
        T* origin = out.data() + static_cast<std::ptrdiff_t>(sc.cuts[b]) * strides[sc.axis];
        if (copies) {
          blocks.emplace_back();
          for (std::size_t o = 0; o < ext[0]; ++o)
            for (std::size_t i = 0; i < ext[1]; ++i)
              for (std::size_t k = 0; k < K; ++k)
                blocks.back().push_back(origin[static_cast<std::ptrdiff_t>(o) * strides[0] +
                                               static_cast<std::ptrdiff_t>(i) * strides[1] +
                                               static_cast<std::ptrdiff_t>(k)]);
          shards.push_back({sr::view<T>(blocks.back().data(), ext), {O, I, 3, 3}, off});
        } else {
          shards.push_back({sr::view<T>(origin, ext, strides), {O, I, 3, 3}, off});
        }
      }
      const std::size_t n = sr::sharded_buffer_size(p, shards[0]);
      std::vector<double> reduced(n, 0.0), buf(n);
      for (const auto& s : shards) {
        sr::sharded_prox_partial(p, s, step, buf.data(), n);
        for (std::size_t k = 0; k < n; ++k) reduced[k] += buf[k];  // one shard per group: exact
      }
      std::size_t zero_elements = 0;
      for (std::size_t b = 0; b < shards.size(); ++b) {
        const auto r = sr::sharded_prox_finish(p, shards[b], step, reduced.data(), n);
        CHECK(r.zero_groups == ru.zero_groups);
        CHECK(r.value == Approx(ru.value).epsilon(1e-12));
        zero_elements += r.zero_elements;
        if (!copies) continue;
        const auto& v = shards[b].local;  // copy the block back into the tensor
        T* origin = out.data() + static_cast<std::ptrdiff_t>(sc.cuts[b]) * strides[sc.axis];
        std::size_t q = 0;
        for (std::size_t o = 0; o < v.extent(0); ++o)
          for (std::size_t i = 0; i < v.extent(1); ++i)
            for (std::size_t k = 0; k < K; ++k)
              origin[static_cast<std::ptrdiff_t>(o) * strides[0] + static_cast<std::ptrdiff_t>(i) * strides[1] +
                     static_cast<std::ptrdiff_t>(k)] = blocks[b][q++];
      }
      CHECK(zero_elements == ru.zero_elements);
      CHECK(std::memcmp(out.data(), ref.data(), ref.size() * sizeof(T)) == 0);
    }
  }
}
