// Contiguous groups prefetch the next batch of groups on tensors beyond the caches
// (SPARSEREG_PREFETCH_MIN_BYTES, detail/sweep.hpp). Here the threshold is 0, so every dense
// tensor takes that path (a prox writes each group in chunks, prefetching as it writes, also
// into a strided output); the same weights with padding after every group (batches that are
// not back to back) take the path without prefetches. Values, prox outputs and counts must be
// the same bits, for float and double, group sizes under, at and over a lane block and a write
// chunk, group counts that leave a partial batch, and a 4-D weight with filter groups.
//
// The separable loops without lanes (the l1 prox without statistics, the hard threshold's prox)
// run contiguous tensors beyond the caches in prefetched blocks where detail::lane_prefetch()
// says so; SPARSEREG_LANE_PREFETCH=1 makes it say so on every machine, so the blocks are tested
// here whatever the processor.
#define SPARSEREG_PREFETCH_MIN_BYTES 0
#define SPARSEREG_LANE_PREFETCH 1
#include <catch2/catch.hpp>

#include <sparsereg/sparsereg.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace {

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

}  // namespace

TEMPLATE_TEST_CASE("contiguous groups give the same bits with and without the next-batch prefetch", "[sweep]", float,
                   double) {
  using T = TestType;
  struct shape {
    std::vector<std::size_t> dims;  // groups are the slices along the first axis
  };
  for (const shape& s : {shape{{9, 7}}, shape{{16, 8}}, shape{{17, 64}}, shape{{40, 1000}}, shape{{23, 1024}},
                        shape{{8, 3}}, shape{{19, 4, 3, 3}}}) {
    std::size_t len = 1;
    for (std::size_t d = 1; d < s.dims.size(); ++d) len *= s.dims[d];
    const std::size_t groups = s.dims[0], n = groups * len, pad = len + 3;
    INFO("groups " << groups << " of " << len);
    std::mt19937 rng(static_cast<unsigned>(7 + n));
    std::normal_distribution<double> z(0.0, 1.0);
    std::vector<T> w(n);
    for (auto& v : w) v = rng() % 7 == 0 ? T(0) : static_cast<T>(z(rng));
    for (std::size_t g = 0; g < groups; g += 3)  // every third group small: it dies
      for (std::size_t k = 0; k < len; ++k) w[g * len + k] *= T(0.01);
    std::vector<T> padded(groups * pad, T(5));
    for (std::size_t g = 0; g < groups; ++g)
      for (std::size_t k = 0; k < len; ++k) padded[g * pad + k] = w[g * len + k];
    std::vector<std::ptrdiff_t> strides(s.dims.size(), 1);
    for (std::size_t d = s.dims.size() - 1; d-- > 1;)
      strides[d] = strides[d + 1] * static_cast<std::ptrdiff_t>(s.dims[d + 1]);
    strides[0] = static_cast<std::ptrdiff_t>(pad);
    const sparsereg::view<const T> dense(w.data(), s.dims);
    const sparsereg::view<const T> spaced(padded.data(), s.dims, strides);
    const auto grp = sparsereg::grouping::by_axes({0}, s.dims.size());
    const auto gl = sparsereg::group_lasso(0.5, grp);
    const auto sgl = sparsereg::sparse_group_lasso(0.4, 0.05, grp);
    CHECK(same_bits(sparsereg::value(gl, dense), sparsereg::value(gl, spaced)));
    CHECK(same_bits(sparsereg::value(sgl, dense), sparsereg::value(sgl, spaced)));
    for (int which = 0; which < 2; ++which) {
      INFO((which == 0 ? "group lasso prox" : "sparse group lasso prox"));
      std::vector<T> y_dense(n), y_spaced(padded.size(), T(5));
      const sparsereg::view<T> yd(y_dense.data(), s.dims), ys(y_spaced.data(), s.dims, strides);
      const auto r1 = which == 0 ? sparsereg::prox(gl, dense, yd, 0.5) : sparsereg::prox(sgl, dense, yd, 0.5);
      const auto r2 = which == 0 ? sparsereg::prox(gl, spaced, ys, 0.5) : sparsereg::prox(sgl, spaced, ys, 0.5);
      std::size_t differ = 0;
      for (std::size_t g = 0; g < groups; ++g)
        for (std::size_t k = 0; k < len; ++k) differ += !same_bits(y_dense[g * len + k], y_spaced[g * pad + k]);
      CHECK(differ == 0);
      // Contiguous input, every other element of the output: the prefetching write pass with an
      // output stride of 2 (an out-of-place prox into a strided buffer).
      std::vector<T> y_wide(2 * n, T(5));
      std::vector<std::ptrdiff_t> wide(s.dims.size());
      for (std::size_t d = 0; d < s.dims.size(); ++d) wide[d] = 2 * dense.stride(d);
      const sparsereg::view<T> yw(y_wide.data(), s.dims, wide);
      const auto r3 = which == 0 ? sparsereg::prox(gl, dense, yw, 0.5) : sparsereg::prox(sgl, dense, yw, 0.5);
      std::size_t differ_wide = 0, gaps_touched = 0;
      for (std::size_t i = 0; i < n; ++i) {
        differ_wide += !same_bits(y_dense[i], y_wide[2 * i]);
        gaps_touched += !same_bits(y_wide[2 * i + 1], T(5));
      }
      CHECK(differ_wide == 0);
      CHECK(gaps_touched == 0);
      CHECK(same_bits(r1.value, r3.value));
      CHECK(same_bits(r1.value, r2.value));
      CHECK(r1.zero_elements == r2.zero_elements);
      CHECK(r1.zero_groups == r2.zero_groups);
      CHECK(r1.zero_groups > 0);
      CHECK(r1.zero_groups < groups);
    }
  }
}

// Lengths around the 1 KiB blocks (256 floats, 128 doubles), contiguous and with a stride of 2
// (which takes no blocks); NaN, infinities, zeros of both signs and values at the threshold. The
// output must be the element-by-element definition, nothing written past the end or between the
// strided elements, and the l1 output that of the prox with statistics (another loop).
TEMPLATE_TEST_CASE("separable proxes give the same bits in prefetched blocks", "[sweep]", float, double) {
  using T = TestType;
  static_assert(SPARSEREG_LANE_PREFETCH == 1, "the blocks must be taken");
  const T t = T(0.5);  // step 1 * lambda 0.5 for l1; sqrt(2 * 1 * 0.125) = 0.5 for the hard threshold
  const sparsereg::l1 l1(0.5);
  const sparsereg::hard_threshold hard(0.125);
  for (std::size_t n : {1, 31, 127, 128, 129, 255, 256, 257, 1000, 4097}) {
    INFO("n " << n);
    std::mt19937 rng(static_cast<unsigned>(3 + n));
    std::normal_distribution<double> z(0.0, 1.0);
    std::vector<T> w(n);
    for (std::size_t i = 0; i < n; ++i) {
      const unsigned kind = rng() % 11;
      w[i] = kind == 0 ? T(0) : kind == 1 ? -T(0) : kind == 2 ? (rng() % 2 ? t : -t) : static_cast<T>(z(rng));
    }
    if (n > 100) {
      w[n - 1] = std::numeric_limits<T>::quiet_NaN();
      w[n / 2] = -std::numeric_limits<T>::infinity();
      w[n / 3] = std::numeric_limits<T>::infinity();
    }
    std::vector<T> wide(2 * n, T(7));
    for (std::size_t i = 0; i < n; ++i) wide[2 * i] = w[i];
    const sparsereg::view<const T> dense(w.data(), {n});
    const sparsereg::view<const T> spaced(wide.data(), {n}, {2});
    const T sentinel = T(9);
    for (int which = 0; which < 2; ++which) {
      INFO((which == 0 ? "l1 prox without statistics" : "hard threshold prox"));
      std::vector<T> out(n + 300, sentinel), out_spaced(2 * n, sentinel);
      const sparsereg::view<T> yd(out.data(), {n}), ys(out_spaced.data(), {n}, {2});
      std::size_t zeros = 0, zeros_spaced = 0;
      if (which == 0) {
        sparsereg::prox(l1, dense, yd, 1.0, sparsereg::without_stats);
        sparsereg::prox(l1, spaced, ys, 1.0, sparsereg::without_stats);
      } else {
        zeros = sparsereg::prox(hard, dense, yd, 1.0).zero_elements;
        zeros_spaced = sparsereg::prox(hard, spaced, ys, 1.0).zero_elements;
      }
      std::size_t wrong = 0, differ = 0, touched = 0, expect_zeros = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const T v = w[i], a = v < T(0) ? -v : v;
        T expect;
        if (which == 0) {
          const T m = std::isnan(v) ? v : (a - t > T(0) ? a - t : T(0));
          expect = v < T(0) ? -m : m;  // -0.0 gives +0.0, as soft_threshold_positive does
        } else {
          expect = a <= t && v != T(0) ? T(0) : v;
        }
        expect_zeros += expect == T(0);
        wrong += !same_bits(out[i], expect) && !(std::isnan(out[i]) && std::isnan(expect));
        differ += !same_bits(out[i], out_spaced[2 * i]);
        touched += !same_bits(out_spaced[2 * i + 1], sentinel);
      }
      for (std::size_t i = n; i < out.size(); ++i) touched += !same_bits(out[i], sentinel);
      CHECK(wrong == 0);
      CHECK(differ == 0);
      CHECK(touched == 0);
      if (which == 1) {
        CHECK(zeros == expect_zeros);
        CHECK(zeros_spaced == expect_zeros);
      } else {
        std::vector<T> with_stats(n);
        sparsereg::prox(l1, dense, sparsereg::view<T>(with_stats.data(), {n}), 1.0);
        std::size_t differ_stats = 0;
        for (std::size_t i = 0; i < n; ++i) differ_stats += !same_bits(out[i], with_stats[i]);
        CHECK(differ_stats == 0);
      }
    }
  }
}

// A value sweep over more than 16 groups per block (more than 4096 groups) takes each block's
// groups in stripes (batch k holds group k of every stripe), so it decides the groups out of
// order; the value must still be the groups' values summed in group order inside each block and
// the blocks' totals in block order, as on every other path. The reference builds that sum from
// the value of each group alone (a one-group tensor: the same lanes, so the same bits), with the
// block partition of detail/sweep.hpp (min(G / 8, 256) blocks, block b from G*b/nb).
TEMPLATE_TEST_CASE("striped value sweeps sum the groups in group order", "[sweep]", float, double) {
  using T = TestType;
  using dims_t = std::vector<std::size_t>;
  for (const dims_t& dims :
       {dims_t{4099, 24}, dims_t{4200, 9}, dims_t{4104, 5}, dims_t{6000, 2, 3, 3}, dims_t{70000, 3}}) {
    const std::size_t groups = dims[0];
    std::size_t len = 1;
    for (std::size_t d = 1; d < dims.size(); ++d) len *= dims[d];
    INFO("groups " << groups << " of " << len);
    std::mt19937 rng(static_cast<unsigned>(11 + groups));
    std::normal_distribution<double> z(0.0, 1.0);
    std::vector<T> w(groups * len);
    for (auto& v : w) v = rng() % 5 == 0 ? T(0) : static_cast<T>(z(rng) * (1.0 + static_cast<double>(rng() % 1000)));
    const sparsereg::view<const T> x(w.data(), dims);
    const auto grp = sparsereg::grouping::by_axes({0}, dims.size());
    const auto one_group = sparsereg::grouping::by_axes({0}, 2);
    const sparsereg::group_lasso gl(0.5, grp), gl1(0.5, one_group);
    const sparsereg::sparse_group_lasso sgl(0.4, 0.05, grp), sgl1(0.4, 0.05, one_group);
    const std::size_t nb = std::min<std::size_t>(groups / 8, 256);
    const auto reference = [&](const auto& alone) {
      double total = 0.0;
      for (std::size_t b = 0; b < nb; ++b) {
        double block = 0.0;
        for (std::size_t g = groups * b / nb; g < groups * (b + 1) / nb; ++g)
          block += sparsereg::value(alone, sparsereg::view<const T>(w.data() + g * len, {1, len}));
        total += block;
      }
      return total;
    };
    const double expect_gl = reference(gl1), expect_sgl = reference(sgl1);
    CHECK(same_bits(sparsereg::value(gl, x), expect_gl));
    CHECK(same_bits(sparsereg::value(sgl, x), expect_sgl));
    // The same sums in another order differ in their last bits here, so the checks above see
    // the order (not only the set) of the additions.
    double forward = 0.0, backward = 0.0;
    for (std::size_t g = 0; g < groups; ++g) {
      forward += sparsereg::value(gl1, sparsereg::view<const T>(w.data() + g * len, {1, len}));
      backward += sparsereg::value(gl1, sparsereg::view<const T>(w.data() + (groups - 1 - g) * len, {1, len}));
    }
    CHECK(!same_bits(forward, backward));
  }
}
