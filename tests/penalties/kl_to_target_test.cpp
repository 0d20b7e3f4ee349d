// kl_to_target: the histogram KL to a skewed target. Properties: validation, KL >= 0, ~0 on a
// sample of the target, exact gradient (central differences, on and between bin centres, at the
// support edge, group norms), gradient descent moves a Gaussian toward the target, invariance to
// order and layout, degenerate inputs, state sharing, and use through the regularizer façade;
// the target's discretization (long-double reference, the negligible-spike skip bit for bit) and
// the supports (max_abs wherever the largest |w| lies, its rounded form against fixed).
#include <catch2/catch.hpp>

#include <sparsereg/penalties/kl_to_target.hpp>
#include <sparsereg/regularizer.hpp>
#include <support/penalty_calls.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using sparsereg::kl_support;
using sparsereg::kl_to_target;
using sparsereg::scale_mode;
using sparsereg::target;
using sparsereg::view;
using sparsereg_test::gradient_of;
using sparsereg_test::normal_sample;
using sparsereg_test::require_throws_naming;
using sparsereg_test::value_of;

namespace {

/// Draws n samples from pi*N(0, s0^2) + (1-pi)*N(0, s1^2).
std::vector<double> spike_and_slab_sample(std::size_t n, double pi, double s0, double s1, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0.0, 1.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> w(n);
  for (auto& x : w) x = (u(rng) < pi ? s0 : s1) * z(rng);
  return w;
}

}  // namespace

#if defined(SPARSEREG_TEST_VECTOR_WIDTH) && !defined(__AVX2__)
#error "the *_native and *_avx2 builds of this test must compile the AVX2 forms of kl_to_target.hpp"
#endif
#if defined(SPARSEREG_TEST_VECTOR_WIDTH) && SPARSEREG_TEST_VECTOR_WIDTH == 16 && \
    !(defined(__AVX512F__) && defined(__AVX512DQ__))
#error "the *_native build of this test must compile the AVX-512 histogram form of kl_to_target.hpp"
#endif
#if defined(SPARSEREG_TEST_VECTOR_WIDTH) && SPARSEREG_TEST_VECTOR_WIDTH == 8 && defined(__AVX512F__)
#error "the 8-wide build of this test must not select the AVX-512 histogram form"
#endif

static_assert(kl_to_target::has_gradient && !kl_to_target::has_prox && kl_to_target::smooth &&
              !kl_to_target::separable && !kl_to_target::convex);

TEST_CASE("kl_to_target: hyper-parameters are validated, naming the parameter and value", "[kl_to_target]") {
  require_throws_naming([] { kl_to_target(-1.0); }, "lambda");
  require_throws_naming([] { kl_to_target(std::nan("")); }, "lambda");
  require_throws_naming([] { kl_to_target(1.0, kl_to_target::default_target(), 1); }, "bins");
  require_throws_naming([] { kl_to_target(1.0, kl_to_target::default_target(), 64, kl_support::max_abs(), 0.0); },
                        "epsilon");
  require_throws_naming([] { kl_support::fixed(0.0); }, "half_width");
  require_throws_naming([] { kl_support::max_abs(-2.0); }, "multiple");
  require_throws_naming([] { kl_support::max_abs(1.0, -0.1); }, "rounding");
  require_throws_naming([] { kl_support::max_abs(1.0, 1.5); }, "rounding");
  require_throws_naming([] { kl_support::max_abs(1.0, std::nan("")); }, "rounding");
  require_throws_naming([] { kl_support::tracked(std::nan("")); }, "multiple");
  require_throws_naming([] { target::spike_and_slab(0.0, 0.1, 1.0); }, "pi");
  require_throws_naming([] { target::spike_and_slab(1.0, 0.1, 1.0); }, "pi");
  require_throws_naming([] { target::spike_and_slab(0.5, -0.1, 1.0); }, "spike_scale");
  require_throws_naming([] { target::spike_and_slab(0.5, 0.1, INFINITY); }, "slab_scale");
  require_throws_naming([] { target::spike_and_slab(0.5, 2.0, 1.0); }, "smaller");
  require_throws_naming([] { target::laplace(0.0); }, "scale");
  require_throws_naming([] { target::custom({}); }, "density");
  require_throws_naming([] { kl_to_target(1.0).scaled(-1.0); }, "lambda");
}

namespace {
// N(0, s^2) on [a, b] in long double, interval by interval: mass and integral (x - a) phi_s,
// erfc on the side of zero the interval lies on (no cancellation in the tails).
std::pair<long double, long double> gauss_moments_ld(long double a, long double b, long double s) {
  const long double r = 1.0L / (s * std::sqrt(2.0L));
  long double mass;
  if (a >= 0) mass = 0.5L * (std::erfc(a * r) - std::erfc(b * r));
  else if (b <= 0) mass = 0.5L * (std::erfc(-b * r) - std::erfc(-a * r));
  else mass = 1.0L - 0.5L * std::erfc(-a * r) - 0.5L * std::erfc(b * r);
  const long double pi = 3.14159265358979323846264338327950288L;
  const auto phi = [&](long double x) { return std::exp(-0.5L * (x / s) * (x / s)) / (s * std::sqrt(2.0L * pi)); };
  return {mass, s * s * (phi(a) - phi(b)) - a * mass};
}
}  // namespace

TEST_CASE("kl_to_target: Gaussian hat masses agree with a long-double evaluation interval by interval",
          "[kl_to_target]") {
  // hat_masses evaluates erfc / exp once per grid point and rebuilds every interval from its two
  // ends (mirrored left of zero, split where an interval straddles it): a wrong end or sign shows
  // here as an error far above rounding.
  struct grid {
    double lo, hi;
    std::size_t bins;
  };
  const std::vector<grid> grids = {{-3.0, 3.0, 257}, {-3.0, 3.0, 256}, {0.0, 4.0, 64}, {-1.0, 3.0, 33},
                                   {-2.5, -0.5, 16}, {-0.3, 0.0, 9}};
  const double unit = 1.3;
  for (const target& t : {target::spike_and_slab(0.3, 0.05, 1.0, scale_mode::relative),
                          target::gaussian(0.7, scale_mode::relative)}) {
    const bool spike = t.describe().rfind("spike", 0) == 0;
    for (const grid& gr : grids) {
      INFO(t.describe() << " on [" << gr.lo << ", " << gr.hi << "], " << gr.bins << " bins");
      const double h = (gr.hi - gr.lo) / static_cast<double>(gr.bins - 1);
      std::vector<double> got(gr.bins);
      std::vector<double> scratch;
      t.hat_masses(gr.lo, h, gr.bins, unit, got.data(), scratch);
      std::vector<long double> want(gr.bins, 0.0L);
      for (std::size_t k = 0; k + 1 < gr.bins; ++k) {
        const long double a = gr.lo + static_cast<double>(k) * h, b = gr.lo + static_cast<double>(k + 1) * h;
        long double mass = 0, first = 0;
        if (spike) {
          const auto m0 = gauss_moments_ld(a, b, 0.05L * unit), m1 = gauss_moments_ld(a, b, 1.0L * unit);
          mass = 0.3L * m0.first + 0.7L * m1.first;
          first = 0.3L * m0.second + 0.7L * m1.second;
        } else {
          const auto m = gauss_moments_ld(a, b, 0.7L * unit);
          mass = m.first;
          first = m.second;
        }
        want[k] += mass - first / h;
        want[k + 1] += first / h;
      }
      for (std::size_t k = 0; k < gr.bins; ++k)
        CHECK(got[k] == Approx(static_cast<double>(want[k])).epsilon(1e-10).margin(1e-15));
      // The overload without a scratch buffer gives the same values.
      std::vector<double> plain(gr.bins);
      t.hat_masses(gr.lo, h, gr.bins, unit, plain.data());
      CHECK(plain == got);
    }
  }
}

TEST_CASE("kl_to_target: skipping a negligible spike leaves every bit of the hat masses unchanged", "[kl_to_target]") {
  // hat_masses leaves out the spike of a spike-and-slab where it is proven below half a unit in
  // the last place of the slab's share; the result must equal, bit for bit, the evaluation of the
  // spike on every point. Spike / slab ratios from 0.01 to 0.9, mixing weights from 1e-6 to
  // 0.999, grids from half a slab scale to 30 of them, on one side of zero, across it and
  // off-centre, 9 to 1024 bins. The skip must also happen (NaN spike points in the scratch) on a
  // good share of them, or this test would prove nothing.
  std::size_t configs = 0, skipping = 0;
  for (const double pi : {1e-6, 0.3, 0.9, 0.999}) {
    const std::vector<std::pair<double, double>> scales{{0.01, 1.0}, {0.1, 2.0}, {0.5, 1.0}, {0.9, 1.0}, {0.05, 20.0}};
    for (const auto& [s0, s1] : scales) {
      const target t = target::spike_and_slab(pi, s0, s1, scale_mode::relative);
      for (const double unit : {1.0, 0.37}) {
        for (const double span : {0.5, 2.0, 6.0, 30.0}) {
          for (const double from : {0.0, -1.0, -1.0 / 3}) {
            for (const std::size_t bins : {std::size_t(9), std::size_t(64), std::size_t(256), std::size_t(1024)}) {
              const double width = span * s1 * unit;
              const double lo = from * width, h = width / static_cast<double>(bins - 1);
              INFO(t.describe() << ", unit " << unit << ", grid [" << lo << ", " << lo + width << "], " << bins
                                << " bins");
              std::vector<double> fast(bins), every(bins), scratch, scratch_every;
              t.hat_masses(lo, h, bins, unit, fast.data(), scratch);
              t.hat_masses(lo, h, bins, unit, every.data(), scratch_every, true);
              ++configs;
              std::size_t differ = 0, nan_points = 0, nan_every = 0;
              for (std::size_t b = 0; b < bins; ++b) differ += std::memcmp(&fast[b], &every[b], sizeof(double)) != 0;
              for (const double v : scratch) nan_points += std::isnan(v);
              for (const double v : scratch_every) nan_every += std::isnan(v);
              CHECK(differ == 0);
              CHECK(nan_every == 0);
              skipping += nan_points > 0;
            }
          }
        }
      }
    }
  }
  INFO(skipping << " of " << configs << " grids skipped part of the spike");
  CHECK(skipping * 4 > configs);
}

TEST_CASE("kl_to_target: the discretized targets carry the right mass", "[kl_to_target]") {
  // Over a support of +-40 scales, the hat masses of a density sum to its total mass 1.
  const std::size_t B = 257;
  std::vector<double> m(B);
  for (const target& t : {target::spike_and_slab(0.3, 0.05, 1.0, scale_mode::absolute),
                          target::laplace(1.0, scale_mode::absolute), target::gaussian(1.0, scale_mode::absolute)}) {
    t.hat_masses(-40.0, 80.0 / (B - 1), B, 1.0, m.data());
    INFO(t.describe());
    CHECK(std::accumulate(m.begin(), m.end(), 0.0) == Approx(1.0).epsilon(1e-12));
    for (double x : m) CHECK(x >= 0.0);
    // Symmetric target, symmetric grid: symmetric masses.
    for (std::size_t b = 0; b < B; ++b) CHECK(m[b] == Approx(m[B - 1 - b]).margin(1e-15));
  }
  // Closed forms agree with the quadrature used for custom densities (bins much narrower than
  // the scales, where 4-point Gauss-Legendre is accurate to ~1e-10).
  std::vector<double> a(B), b(B);
  const double lap_pi = 1.0;
  target::laplace(lap_pi, scale_mode::absolute).hat_masses(-6.0, 12.0 / (B - 1), B, 1.0, a.data());
  target::custom([](double x) { return 0.5 * std::exp(-std::fabs(x)); }).hat_masses(-6.0, 12.0 / (B - 1), B, 1.0, b.data());
  for (std::size_t k = 0; k < B; ++k) CHECK(a[k] == Approx(b[k]).epsilon(1e-6).margin(1e-12));
  target::spike_and_slab(0.5, 0.5, 2.0, scale_mode::absolute).hat_masses(-6.0, 12.0 / (B - 1), B, 1.0, a.data());
  target::custom([](double x) {
    return 0.5 * std::exp(-2.0 * x * x) / (0.5 * std::sqrt(2 * M_PI)) + 0.5 * std::exp(-x * x / 8.0) / (2.0 * std::sqrt(2 * M_PI));
  }).hat_masses(-6.0, 12.0 / (B - 1), B, 1.0, b.data());
  for (std::size_t k = 0; k < B; ++k) CHECK(a[k] == Approx(b[k]).epsilon(1e-6).margin(1e-12));
  // A custom density returning a negative value is a clear error.
  const kl_to_target bad(1.0, target::custom([](double x) { return x; }), 16, kl_support::fixed(1.0));
  const std::vector<double> w = {0.1, 0.2};
  require_throws_naming([&] { value_of(bad, w); }, "density");
}

TEMPLATE_TEST_CASE("kl_to_target: KL >= 0 on arbitrary data", "[kl_to_target]", float, double) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const std::size_t n = 1 + rng() % 300;
    std::vector<TestType> w(n);
    std::uniform_real_distribution<double> u(-3.0, 3.0);
    const int kind = trial % 4;
    for (auto& x : w) x = static_cast<TestType>(kind == 0 ? u(rng) : kind == 1 ? u(rng) * u(rng) * u(rng) : kind == 2 ? 0.01 * u(rng) : std::round(u(rng)));
    const std::size_t bins = 2 + rng() % 300;
    const kl_to_target p(1.0, target::laplace(0.5, scale_mode::absolute), bins,
                         trial % 2 ? kl_support::max_abs(1.0 + 0.1 * (trial % 5)) : kl_support::fixed(2.0));
    const double v = value_of(p, w);
    INFO("trial " << trial << " n " << n << " bins " << bins);
    CHECK(std::isfinite(v));
    CHECK(v >= 0.0);
  }
}

TEST_CASE("kl_to_target: a large sample of the target itself gives KL ~ 0, another distribution does not",
          "[kl_to_target]") {
  // Sampling noise sets the floor: for N draws the empirical histogram's KL to its expectation is
  // about (B - 1) / (2N) on average (chi-square with B - 1 degrees of freedom over 2N); linear
  // binning correlates neighbouring bins, which only lowers it. We allow 4x that mean.
  const std::size_t N = 200000, B = 64;
  const double tol = 4.0 * (B - 1) / (2.0 * N);
  const target t = target::spike_and_slab(0.5, 0.1, 1.0, scale_mode::absolute);
  const auto same = spike_and_slab_sample(N, 0.5, 0.1, 1.0, 11);
  const auto other = normal_sample(N, 0.0, 0.7, 12);
  for (const kl_support& s : {kl_support::fixed(6.0), kl_support::max_abs(1.0)}) {
    const kl_to_target p(1.0, t, B, s);
    const double v_same = value_of(p, same);
    const double v_other = value_of(p, other);
    INFO("same " << v_same << " other " << v_other << " tol " << tol);
    CHECK(v_same >= 0.0);
    CHECK(v_same < tol);
    CHECK(v_other > 50.0 * tol);
  }
  // Laplace: same story.
  std::mt19937_64 rng(5);
  std::exponential_distribution<double> e(1.0 / 0.3);
  std::vector<double> lap(N);
  for (std::size_t i = 0; i < N; ++i) lap[i] = (i % 2 ? 1.0 : -1.0) * e(rng);
  const kl_to_target pl(1.0, target::laplace(0.3, scale_mode::absolute), B, kl_support::fixed(6.0));
  CHECK(value_of(pl, lap) < tol);
  CHECK(value_of(pl, other) > 10.0 * tol);
  // Relative scales: a sample of the relative target, rescaled by 5, still gives ~0.
  auto scaled = spike_and_slab_sample(N, 0.5, 0.1, 1.0, 13);
  const double sd = std::sqrt(0.5 * 0.01 + 0.5 * 1.0);
  for (auto& x : scaled) x *= 5.0;
  const kl_to_target pr(1.0, target::spike_and_slab(0.5, 0.1 / sd, 1.0 / sd, scale_mode::relative), B);
  CHECK(value_of(pr, scaled) < tol);
  CHECK(pr.reference_scale() == Approx(5.0 * sd).epsilon(0.01));
}

namespace {

/// Central differences of the value in double; `skip` elements are left out.
void check_gradient_against_fd(const kl_to_target& p, std::vector<double> w, const std::vector<std::size_t>& shape,
                               const std::vector<bool>& skip = {}) {
  const view<const double> wv(w.data(), shape);
  std::vector<double> g(w.size(), 0.25);  // accumulates: start from a non-zero buffer
  sparsereg::add_gradient(p, wv, view<double>(g.data(), shape));
  const double delta = 1e-7;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (!skip.empty() && skip[i]) continue;
    const double x = w[i];
    w[i] = x + delta;
    const double up = sparsereg::value(p, wv);
    w[i] = x - delta;
    const double down = sparsereg::value(p, wv);
    w[i] = x;
    const double fd = (up - down) / (2 * delta);
    INFO("element " << i << " w " << x << " fd " << fd << " grad " << g[i] - 0.25);
    CHECK(g[i] - 0.25 == Approx(fd).epsilon(1e-5).margin(1e-7 * (1.0 + std::fabs(fd))));
  }
}

}  // namespace

TEST_CASE("kl_to_target: the gradient equals central differences", "[kl_to_target]") {
  std::mt19937 rng(3);
  // Fixed support [-2, 2] with 17 bins: centres at multiples of 0.25 (exact in binary), so
  // weights can sit exactly on centres and on the edges. A weight on a centre next to an empty
  // bin sees p log p with p ~ its own displacement: finite differences there need the step far
  // below epsilon * N * h, so the small shapes use epsilon = 1e-3 and the large one fills every bin.
  const target t = target::spike_and_slab(0.4, 0.2, 1.0, scale_mode::absolute);
  const kl_to_target p_small(0.7, t, 17, kl_support::fixed(2.0), 1e-3);
  const kl_to_target p_large(0.7, t, 17, kl_support::fixed(2.0));
  for (const auto& shape : std::vector<std::vector<std::size_t>>{{9}, {3, 5}, {2, 3, 4}, {40}, {10, 30}}) {
    std::size_t n = 1;
    for (auto e : shape) n *= e;
    std::uniform_real_distribution<double> u(-1.9, 1.9);
    std::vector<double> w(n);
    for (auto& x : w) x = u(rng);
    w[0] = 0.5;    // on a centre
    w[1 % n] = -2.0;  // on the lower edge
    if (n > 2) w[2] = 2.0;     // on the upper edge
    if (n > 3) w[3] = 0.0;     // on the centre at zero
    if (n > 4) w[4] = -1.25;   // another centre
    if (n > 5) w[5] = 2.5;     // outside the support (clamped: gradient 0)
    INFO("shape rank " << shape.size() << " n " << n);
    const kl_to_target& p = n >= 300 ? p_large : p_small;
    check_gradient_against_fd(p, w, shape);
    std::vector<double> g(n, 0.0);
    sparsereg::add_gradient(p, view<const double>(w.data(), shape), view<double>(g.data(), shape));
    if (n > 5) CHECK(g[5] == 0.0);
  }
  // Many bins, weights spread over all of them, per-call support (the max element moves the
  // support, which is not differentiated: leave it out).
  std::normal_distribution<double> z(0.0, 1.0);
  std::vector<double> w(200);
  for (auto& x : w) x = z(rng);
  const std::size_t imax = static_cast<std::size_t>(
      std::max_element(w.begin(), w.end(), [](double a, double b) { return std::fabs(a) < std::fabs(b); }) - w.begin());
  std::vector<bool> skip(w.size(), false);
  skip[imax] = true;
  for (std::size_t bins : {8u, 64u, 256u}) {
    INFO("bins " << bins);
    const kl_to_target q(1.0, target::spike_and_slab(0.5, 0.1, 2.0, scale_mode::relative), bins, kl_support::max_abs(1.5));
    check_gradient_against_fd(q, w, {20, 10}, skip);
    const kl_to_target l(2.0, target::laplace(0.5, scale_mode::relative), bins, kl_support::tracked(1.25));
    check_gradient_against_fd(l, w, {200});
  }
}

TEST_CASE("kl_to_target: group norms, value and gradient", "[kl_to_target]") {
  std::mt19937 rng(21);
  std::normal_distribution<double> z(0.0, 1.0);
  std::vector<double> w(12 * 5);
  for (auto& x : w) x = z(rng);
  for (std::size_t j = 0; j < 5; ++j) w[3 * 5 + j] = 0.0;  // a zero group: gradient 0
  // Explicit lists: 6 irregular groups partitioning the 60 elements (element i in group 7i mod 6).
  std::vector<std::vector<std::size_t>> lists(6);
  for (std::size_t i = 0; i < w.size(); ++i) lists[(i * 7) % 6].push_back(i);
  for (const auto& grp : {sparsereg::grouping::by_axes({0}, 2), sparsereg::grouping::by_axes({1}, 2),
                          sparsereg::grouping::from_lists(lists)}) {
    const auto p = kl_to_target::on_group_norms(0.5, grp, target::spike_and_slab(0.5, 0.2, 2.0, scale_mode::absolute), 32,
                                                kl_support::fixed(6.0));
    CHECK(p.on_groups());
    check_gradient_against_fd(p, w, {12, 5});
  }
  // P is the histogram of the norms: the same KL as the element penalty on the norms' values
  // with a support [0, s] ... checked through distributions(): all mass from 12 norms.
  const auto p = kl_to_target::on_group_norms(1.0, sparsereg::grouping::by_axes({0}, 2));
  const auto d = p.distributions(view<const double>(w.data(), {12, 5}));
  CHECK(d.count == 12);
  CHECK(d.lo == 0.0);
  CHECK(std::accumulate(d.p.begin(), d.p.end(), 0.0) == Approx(1.0));
  CHECK(std::accumulate(d.q.begin(), d.q.end(), 0.0) == Approx(1.0));
  std::vector<double> g(w.size(), 0.0);
  sparsereg::add_gradient(p, view<const double>(w.data(), {12, 5}), view<double>(g.data(), {12, 5}));
  for (std::size_t j = 0; j < 5; ++j) CHECK(g[3 * 5 + j] == 0.0);
  // A grouping that does not fit is a clear error.
  require_throws_naming([&] { sparsereg::value(p, view<const double>(w.data(), {60})); }, "rank");
}

TEST_CASE("kl_to_target: gradient descent moves a Gaussian sample toward the skewed target", "[kl_to_target]") {
  // Target: 70% of the mass in a spike of 0.05 std, the rest in a slab of 2.5 std. Plain gradient
  // descent on the KL alone must raise the fraction of near-zero weights and the variance of
  // the others. The KL is a mean over N weights, so its gradient is O(1 / (N h)); the step
  // N * h0^2 moves a weight by about one bin width per unit of log-density ratio.
  const std::size_t N = 4000, B = 128;
  auto w = normal_sample(N, 0.0, 1.0, 99);
  const kl_to_target p(1.0, target::spike_and_slab(0.7, 0.05, 2.5, scale_mode::relative), B, kl_support::max_abs(1.25));
  auto near_zero = [](const std::vector<double>& v) {
    return static_cast<double>(std::count_if(v.begin(), v.end(), [](double x) { return std::fabs(x) < 0.1; })) /
           static_cast<double>(v.size());
  };
  auto var_of_others = [](const std::vector<double>& v) {
    double s = 0.0, n = 0.0;
    for (double x : v)
      if (std::fabs(x) >= 0.1) s += x * x, n += 1.0;
    return s / n;
  };
  const double f0 = near_zero(w), v0 = var_of_others(w), kl0 = value_of(p, w);
  const double h0 = 2.0 * 1.25 * 3.5 / (B - 1);
  const double lr = 0.5 * N * h0 * h0;
  for (int step = 0; step < 300; ++step) {
    const auto g = gradient_of(p, w);
    for (std::size_t i = 0; i < N; ++i) w[i] -= lr * g[i];
  }
  const double f1 = near_zero(w), v1 = var_of_others(w), kl1 = value_of(p, w);
  INFO("near-zero fraction " << f0 << " -> " << f1 << ", variance of the others " << v0 << " -> " << v1 << ", KL "
                             << kl0 << " -> " << kl1);
  CHECK(kl1 < 0.5 * kl0);
  CHECK(f1 > f0 + 0.2);
  CHECK(v1 > 1.5 * v0);
}

TEMPLATE_TEST_CASE("kl_to_target: invariant to element order and view layout", "[kl_to_target]", float, double) {
  using T = TestType;
  std::mt19937 rng(8);
  std::normal_distribution<double> z(0.0, 1.0);
  const std::size_t R = 37, C = 29;
  std::vector<T> w(R * C);
  for (auto& x : w) x = static_cast<T>(z(rng));
  const kl_to_target p(1.0, kl_to_target::default_target(), 100);
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  const view<const T> rm(w.data(), {R, C});
  const double v = sparsereg::value(p, rm);
  std::vector<T> g(w.size(), T(0));
  sparsereg::add_gradient(p, rm, view<T>(g.data(), {R, C}));

  // Permuted elements: same value, permuted gradient.
  std::vector<std::size_t> perm(w.size());
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<T> wp(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) wp[i] = w[perm[i]];
  CHECK(value_of(p, wp) == Approx(v).epsilon(tol));
  const auto gp = gradient_of(p, wp);
  for (std::size_t i = 0; i < w.size(); ++i) CHECK(gp[i] == Approx(g[perm[i]]).epsilon(tol).margin(tol * 1e-3));

  // Column-major storage of the same matrix, seen through explicit strides.
  std::vector<T> cm(w.size());
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t c = 0; c < C; ++c) cm[c * R + r] = w[r * C + c];
  const view<const T> cmv(cm.data(), {R, C}, {1, static_cast<std::ptrdiff_t>(R)});
  CHECK(sparsereg::value(p, cmv) == Approx(v).epsilon(tol));
  std::vector<T> gc(w.size(), T(0));
  sparsereg::add_gradient(p, cmv, view<T>(gc.data(), {R, C}, {1, static_cast<std::ptrdiff_t>(R)}));
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t c = 0; c < C; ++c) CHECK(gc[c * R + r] == Approx(g[r * C + c]).epsilon(tol).margin(tol * 1e-3));

  // A strided (non-contiguous) view: every third element of a larger buffer, and a gradient
  // buffer with a different layout.
  std::vector<T> big(3 * w.size(), T(123));
  for (std::size_t i = 0; i < w.size(); ++i) big[3 * i] = w[i];
  const view<const T> sv(big.data(), {R, C}, {static_cast<std::ptrdiff_t>(3 * C), 3});
  CHECK(sparsereg::value(p, sv) == Approx(v).epsilon(tol));
  std::vector<T> gs(w.size(), T(0));
  sparsereg::add_gradient(p, sv, view<T>(gs.data(), {R, C}));
  for (std::size_t i = 0; i < w.size(); ++i) CHECK(gs[i] == Approx(g[i]).epsilon(tol).margin(tol * 1e-3));
}

TEMPLATE_TEST_CASE("kl_to_target: degenerate inputs give defined results or clear errors", "[kl_to_target]", float,
                   double) {
  using T = TestType;
  const kl_to_target abs_p(1.0, target::spike_and_slab(0.5, 0.1, 1.0, scale_mode::absolute), 33);
  const kl_to_target rel_p(1.0);
  // Empty: 0, no-op.
  const std::vector<T> empty;
  CHECK(value_of(abs_p, empty) == 0.0);
  CHECK(gradient_of(abs_p, empty).empty());
  // All zeros, a single element, a constant tensor: finite value and finite gradient.
  for (const std::vector<T>& w : {std::vector<T>(50, T(0)), std::vector<T>{T(0.3)}, std::vector<T>(20, T(-0.7))}) {
    INFO("n " << w.size() << " w0 " << w[0]);
    const double v = value_of(abs_p.fresh(), w);
    CHECK(std::isfinite(v));
    CHECK(v >= 0.0);
    for (T x : gradient_of(abs_p.fresh(), w)) CHECK(std::isfinite(x));
    // Relative scales cannot be resolved from a zero standard deviation: a clear error.
    require_throws_naming([&] { value_of(rel_p.fresh(), w); }, "standard deviation");
  }
  // NaN and inf: the value is NaN; their own gradient is NaN; every finite weight's is finite.
  std::vector<T> w = {T(0.1), T(-0.4), std::numeric_limits<T>::quiet_NaN(), T(0.9), std::numeric_limits<T>::infinity(), T(-1)};
  CHECK(std::isnan(value_of(abs_p, w)));
  CHECK(std::isnan(value_of(rel_p.fresh(), w)));
  const auto g = gradient_of(abs_p, w);
  for (std::size_t i = 0; i < w.size(); ++i) {
    INFO("i " << i);
    CHECK(std::isfinite(g[i]) == std::isfinite(w[i]));
  }
  // The finite weights' gradient is the gradient of the KL of the finite weights alone
  // (fixed support, so the support does not depend on which elements are present).
  const kl_to_target fixed_p(1.0, target::laplace(0.5, scale_mode::absolute), 33, kl_support::fixed(1.5));
  const std::vector<T> finite_only = {T(0.1), T(-0.4), T(0.9), T(-1)};
  const auto gf = gradient_of(fixed_p, finite_only);
  const auto gn = gradient_of(fixed_p, w);
  CHECK(gn[0] == Approx(gf[0]));
  CHECK(gn[1] == Approx(gf[1]));
  CHECK(gn[3] == Approx(gf[2]));
  CHECK(gn[5] == Approx(gf[3]));
  // All NaN: NaN value, NaN gradient, no crash.
  const std::vector<T> all_nan(5, std::numeric_limits<T>::quiet_NaN());
  CHECK(std::isnan(value_of(abs_p, all_nan)));
  for (T x : gradient_of(abs_p, all_nan)) CHECK(std::isnan(x));
}

TEST_CASE("kl_to_target: scaled copies share the resolved state, fresh copies do not", "[kl_to_target]") {
  const auto w = normal_sample(1000, 0.0, 2.0, 4);
  const kl_to_target p(0.5);
  CHECK(std::isnan(p.reference_scale()));
  const double v = value_of(p, w);
  const double unit = p.reference_scale();
  CHECK(unit == Approx(2.0).epsilon(0.1));
  const kl_to_target s = p.scaled(3.0);
  CHECK(s.lambda == 1.5);
  CHECK(value_of(s, w) == Approx(3.0 * v));
  CHECK(p.last_value() == Approx(3.0 * v));  // the shared state saw the scaled call
  // A later, wider tensor does not move the resolved scale (first use wins)...
  auto wide = w;
  for (auto& x : wide) x *= 10.0;
  value_of(s, wide);
  CHECK(p.reference_scale() == unit);
  // ...unless resolve() is called; fresh() starts unresolved.
  p.resolve(view<const double>(wide.data(), {wide.size()}));
  CHECK(p.reference_scale() == Approx(10.0 * unit));
  CHECK(std::isnan(p.fresh().reference_scale()));
  // value_and_add_gradient = value + add_gradient.
  std::vector<double> g1(w.size(), 0.0), g2(w.size(), 0.0);
  const kl_to_target q(0.5);
  const double both = q.value_and_add_gradient(view<const double>(w.data(), {w.size()}), view<double>(g1.data(), {w.size()}));
  sparsereg::add_gradient(q, view<const double>(w.data(), {w.size()}), view<double>(g2.data(), {w.size()}));
  CHECK(both == Approx(value_of(q, w)));
  CHECK(g1 == g2);
  // save_state / load_state carry the resolved scale.
  kl_to_target r(0.5);
  r.load_state(q.save_state());
  CHECK(r.reference_scale() == q.reference_scale());
  CHECK_THROWS_AS(r.load_state({1, 2, 3}), std::runtime_error);
}

TEST_CASE("kl_to_target: tracked support equals a fixed support until the data leave it", "[kl_to_target]") {
  auto w = normal_sample(500, 0.0, 1.0, 6);
  double m = 0.0;
  for (double x : w) m = std::max(m, std::fabs(x));
  const target t = target::laplace(0.4, scale_mode::absolute);
  const kl_to_target tracked(1.0, t, 64, kl_support::tracked(1.25));
  const kl_to_target fixed(1.0, t, 64, kl_support::fixed(1.25 * m));
  CHECK(value_of(tracked, w) == Approx(value_of(fixed, w)).epsilon(1e-12));
  // Small moves keep the support.
  for (auto& x : w) x *= 1.1;
  CHECK(value_of(tracked, w) == Approx(value_of(fixed, w)).epsilon(1e-12));
  CHECK(tracked.distributions(w).hi == Approx(1.25 * m));
  // Leaving it refits to 1.25 * the new max.
  for (auto& x : w) x *= 2.0;
  CHECK(tracked.distributions(w).hi == Approx(1.25 * 2.2 * m));
}

TEST_CASE("kl_to_target: works through the regularizer façade", "[kl_to_target]") {
  auto w = normal_sample(256, 0.0, 1.0, 17);
  std::vector<double> g(w.size(), 0.0);
  sparsereg::regularizer<double> reg;
  reg.add_parameter("w", view<double>(w.data(), {16, 16}), view<double>(g.data(), {16, 16}));
  const kl_to_target p(0.25);
  reg.add_penalty("w", p);
  reg.add_gradients();
  const auto direct = gradient_of(kl_to_target(0.25), w);
  for (std::size_t i = 0; i < w.size(); ++i) CHECK(g[i] == Approx(direct[i]));
  CHECK(reg.value() == Approx(value_of(kl_to_target(0.25), w)));
}

#include <sparsereg/adapters/eigen.hpp>
#include <sparsereg/adapters/xtensor.hpp>
#include <xtensor/xtensor.hpp>

TEST_CASE("kl_to_target: Eigen (column-major) and xtensor containers give the view results", "[kl_to_target]") {
  const std::size_t R = 20, C = 15;
  const auto wv = normal_sample(R * C, 0.0, 1.0, 31);  // row-major reference
  Eigen::MatrixXf em(R, C);                          // column-major storage
  xt::xtensor<float, 2> xm = xt::zeros<float>({R, C});
  std::vector<float> wf(wv.begin(), wv.end());
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t c = 0; c < C; ++c) em(r, c) = xm(r, c) = wf[r * C + c];
  for (const kl_to_target& p : {kl_to_target(1.0, kl_to_target::default_target(), 64),
                                kl_to_target::on_group_norms(1.0, sparsereg::groups::output_neurons())}) {
    const double ref = sparsereg::value(p.fresh(), view<const float>(wf.data(), {R, C}));
    std::vector<float> gref(R * C, 0.0f);
    sparsereg::add_gradient(p.fresh(), view<const float>(wf.data(), {R, C}), view<float>(gref.data(), {R, C}));
    CHECK(sparsereg::value(p.fresh(), em) == Approx(ref).epsilon(1e-5));
    CHECK(sparsereg::value(p.fresh(), xm) == Approx(ref).epsilon(1e-5));
    Eigen::MatrixXf eg = Eigen::MatrixXf::Zero(R, C);
    xt::xtensor<float, 2> xg = xt::zeros<float>({R, C});
    sparsereg::add_gradient(p.fresh(), em, eg);
    sparsereg::add_gradient(p.fresh(), xm, xg);
    for (std::size_t r = 0; r < R; ++r)
      for (std::size_t c = 0; c < C; ++c) {
        CHECK(eg(r, c) == Approx(gref[r * C + c]).epsilon(1e-4).margin(1e-7));
        CHECK(xg(r, c) == Approx(gref[r * C + c]).epsilon(1e-4).margin(1e-7));
      }
  }
}

TEST_CASE("kl_to_target: group-norm value and gradient are the same bits in every layout", "[kl_to_target]") {
  // Large enough for the vector forms (contiguous runs of 300 floats), so a build with AVX
  // compares them with the strided scalar loops. Each gradient element is g + factor * w with
  // the group's factor, and the group norms are summed in the same lanes in every layout, so
  // the results must agree exactly, not approximately.
  const std::size_t R = 40, C = 300;
  const auto wd = normal_sample(R * C, 0.0, 0.05, 77);
  std::vector<float> rm(wd.begin(), wd.end()), cm(R * C), st(3 * R * C, 9.0f);
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t c = 0; c < C; ++c) {
      cm[c * R + r] = rm[r * C + c];
      st[3 * (r * C + c)] = rm[r * C + c];
    }
  const auto R_ = static_cast<std::ptrdiff_t>(R), C_ = static_cast<std::ptrdiff_t>(C);
  for (const auto& grp : {sparsereg::groups::input_neurons(), sparsereg::groups::output_neurons()}) {
    const auto p = kl_to_target::on_group_norms(0.01, grp, target::spike_and_slab(0.9, 0.1, 2.0, scale_mode::relative));
    std::vector<float> g_rm(R * C, 0.25f), g_cm(R * C, 0.25f), g_st(3 * R * C, 0.25f);
    const double v_rm = p.fresh().value_and_add_gradient(view<const float>(rm.data(), {R, C}),
                                                         view<float>(g_rm.data(), {R, C}));
    const double v_cm = p.fresh().value_and_add_gradient(view<const float>(cm.data(), {R, C}, {1, R_}),
                                                         view<float>(g_cm.data(), {R, C}, {1, R_}));
    const double v_st = p.fresh().value_and_add_gradient(view<const float>(st.data(), {R, C}, {3 * C_, 3}),
                                                         view<float>(g_st.data(), {R, C}, {3 * C_, 3}));
    CHECK(v_rm > 0.0);
    CHECK(v_cm == v_rm);
    CHECK(v_st == v_rm);
    std::size_t moved = 0, differ_cm = 0, differ_st = 0;
    for (std::size_t r = 0; r < R; ++r)
      for (std::size_t c = 0; c < C; ++c) {
        const float g = g_rm[r * C + c];
        moved += g != 0.25f;
        differ_cm += g_cm[c * R + r] != g;
        differ_st += g_st[3 * (r * C + c)] != g;
      }
    CHECK(moved > R * C / 2);  // the gradient did reach most elements
    CHECK(differ_cm == 0);
    CHECK(differ_st == 0);
  }
}

TEST_CASE("kl_to_target: contiguous and strided float weights give the same bits at every length",
          "[kl_to_target]") {
  // The contiguous float histogram pass has a vector form that bins blocks of elements before
  // adding them to the sub-histograms; the strided scalar loop adds each element as it goes. Both
  // must put every element in the same sub-histogram in the same order, so the value and the
  // gradient agree exactly. Lengths around the vector width and the block size, with non-finite
  // elements among them (they go to the trash bin: the value is NaN, finite weights' gradients
  // must still agree). What this can catch: an element binned twice, skipped, sent to the wrong
  // bin, or paired with another element's fraction (checked by breaking the pair order). What it
  // cannot: a different sub-histogram or order of the same additions, since float weights give
  // per-bin sums that are exact in double at these sizes whatever the order.
  for (const std::size_t n : {std::size_t(1), std::size_t(7), std::size_t(8), std::size_t(9), std::size_t(255),
                              std::size_t(256), std::size_t(257), std::size_t(263), std::size_t(1000),
                              std::size_t(4103)}) {
    for (const bool with_nonfinite : {false, true}) {
      INFO("n " << n << " non-finite " << with_nonfinite);
      const auto wd = normal_sample(n, 0.0, 0.5, static_cast<unsigned>(n));
      std::vector<float> w(wd.begin(), wd.end());
      if (with_nonfinite && n > 8) {
        w[3] = std::numeric_limits<float>::quiet_NaN();
        w[n - 2] = std::numeric_limits<float>::infinity();
        w[n / 2] = -std::numeric_limits<float>::infinity();
      }
      std::vector<float> st(2 * n, 7.0f);
      for (std::size_t i = 0; i < n; ++i) st[2 * i] = w[i];
      // A tracked support is refitted from the largest finite |w| the histogram pass reports, so
      // both passes must leave non-finite weights out of it.
      for (const bool tracked : {false, true}) {
        INFO("tracked support " << tracked);
        const kl_to_target p(0.5, target::spike_and_slab(0.5, 0.1, 1.0, scale_mode::absolute), 64,
                             tracked ? kl_support::tracked(1.25) : kl_support::fixed(1.5));
        // Tracked: first use on finite weights (support 4), refitted or not by the call on w alike.
        const std::vector<float> wide(n, 3.2f);
        const kl_to_target pc = p.fresh(), ps = p.fresh();
        if (tracked) {
          pc.resolve(view<const float>(wide.data(), {n}));
          ps.resolve(view<const float>(wide.data(), {n}));
        }
        std::vector<float> g(n, 0.125f), gs(2 * n, 0.125f);
        const double v = pc.value_and_add_gradient(view<const float>(w.data(), {n}), view<float>(g.data(), {n}));
        const double vs =
            ps.value_and_add_gradient(view<const float>(st.data(), {n}, {2}), view<float>(gs.data(), {n}, {2}));
        if (tracked) {
          const double hc = pc.distributions(view<const float>(w.data(), {n})).hi;
          CHECK(std::isfinite(hc));
          CHECK(hc == ps.distributions(view<const float>(st.data(), {n}, {2})).hi);
        }
        if (with_nonfinite && n > 8) {
          CHECK(std::isnan(v));
          CHECK(std::isnan(vs));
        } else {
          CHECK(std::isfinite(v));
          CHECK(vs == v);
        }
        std::size_t differ = 0, moved = 0;
        for (std::size_t i = 0; i < n; ++i) {
          if (!std::isfinite(w[i])) {
            CHECK(std::isnan(g[i]));
            CHECK(std::isnan(gs[2 * i]));
            continue;
          }
          moved += g[i] != 0.125f;
          differ += gs[2 * i] != g[i];
        }
        CHECK(differ == 0);
        if (n > 8) CHECK(moved > 0);
      }
    }
  }
}

TEMPLATE_TEST_CASE("kl_to_target: the max_abs support is the largest finite |w| wherever it lies", "[kl_to_target]",
                   float, double) {
  // max|w| has a vector form for contiguous floats (several vector maxima, a tail); the strided
  // view takes the scalar loop. The largest element is put at every position (a sample of them
  // for the long runs), with either sign, among elements of |w| < 1 and NaN and +-inf (which must
  // not count). The support's ends come out of the bin arithmetic, within rounding of max|w|.
  using T = TestType;
  const kl_to_target p(0.5, target::laplace(0.4, scale_mode::absolute), 64, kl_support::max_abs(1.0));
  for (const std::size_t n : {std::size_t(1), std::size_t(15), std::size_t(16), std::size_t(17), std::size_t(63),
                              std::size_t(64), std::size_t(65), std::size_t(130), std::size_t(1029)}) {
    const auto base = normal_sample(n, 0.0, 0.2, static_cast<unsigned>(n) + 11);
    for (std::size_t at = 0; at < n; at += n > 130 ? 7 : 1) {
      for (const bool with_nonfinite : {false, true}) {
        INFO("n " << n << ", largest at " << at << ", non-finite " << with_nonfinite);
        std::vector<T> w(n), st(2 * n, T(9));
        for (std::size_t i = 0; i < n; ++i) w[i] = static_cast<T>(std::max(-0.9, std::min(0.9, base[i])));
        const T big = (at % 5 == 4) ? T(3.75) : T(2.5);
        w[at] = (at % 2) ? -big : big;
        if (with_nonfinite) {
          for (std::size_t i = (at + 1) % 3; i < n; i += 3) {
            if (i == at) continue;
            w[i] = i % 2 ? std::numeric_limits<T>::infinity()
                         : (i % 4 ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::quiet_NaN());
          }
        }
        for (std::size_t i = 0; i < n; ++i) st[2 * i] = w[i];
        CHECK(p.fresh().distributions(view<const T>(w.data(), {n})).hi ==
              Approx(static_cast<double>(big)).epsilon(1e-6));
        CHECK(p.fresh().distributions(view<const T>(st.data(), {n}, {2})).hi ==
              Approx(static_cast<double>(big)).epsilon(1e-6));
      }
    }
  }
}

TEST_CASE("kl_to_target: on group norms, the max_abs support is the largest finite norm wherever it lies",
          "[kl_to_target]") {
  // n groups of 3 (the rows of an n x 3 weight); one group's norm is the largest, at every
  // position; with non-finite groups (a NaN or an infinity makes its group's norm NaN or inf),
  // which must not count.
  const auto p = kl_to_target::on_group_norms(0.5, sparsereg::groups::output_neurons(),
                                              target::laplace(0.4, scale_mode::absolute), 64, kl_support::max_abs(1.0));
  for (const std::size_t n : {std::size_t(1), std::size_t(7), std::size_t(8), std::size_t(9), std::size_t(33)}) {
    const auto base = normal_sample(3 * n, 0.0, 0.2, static_cast<unsigned>(n) + 5);
    for (std::size_t at = 0; at < n; ++at) {
      for (const bool with_nonfinite : {false, true}) {
        INFO("n " << n << ", largest at " << at << ", non-finite " << with_nonfinite);
        std::vector<double> w(3 * n);
        for (std::size_t i = 0; i < 3 * n; ++i) w[i] = std::max(-0.5, std::min(0.5, base[i]));
        w[3 * at] = 2.0, w[3 * at + 1] = -1.5, w[3 * at + 2] = (at % 2) ? 6.0 : 0.0;
        const double big = std::sqrt(6.25 + (at % 2 ? 36.0 : 0.0));
        if (with_nonfinite)
          for (std::size_t g = (at + 1) % 2; g < n; g += 2)
            if (g != at) w[3 * g + 1] = g % 4 == 1 ? std::numeric_limits<double>::quiet_NaN()
                                                   : std::numeric_limits<double>::infinity();
        CHECK(p.fresh().distributions(view<const double>(w.data(), {n, 3})).hi == Approx(big).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("kl_support::rounded: the next power of (1 + r) at or above s", "[kl_to_target]") {
  // Exact where the arithmetic is (powers of 2 with r = 1), else checked against the definition:
  // s <= result < (1 + r) s, and result = (1 + r)^k for an integer k (within rounding of exp/log).
  const kl_support exact = kl_support::max_abs(1.0), doubling = kl_support::max_abs(1.0, 1.0);
  CHECK(exact.rounded(3.3) == 3.3);
  CHECK(doubling.rounded(1.0) == 1.0);
  CHECK(doubling.rounded(2.0) == 2.0);
  CHECK(doubling.rounded(0.75) == 1.0);
  CHECK(doubling.rounded(2.5) == 4.0);
  CHECK(doubling.rounded(0.0) == 0.0);
  CHECK(std::isinf(doubling.rounded(std::numeric_limits<double>::infinity())));
  CHECK(doubling.rounded(std::numeric_limits<double>::max()) == std::numeric_limits<double>::max());
  for (const double r : {1.0 / 32, 0.1, 0.5, 1.0}) {
    const kl_support k = kl_support::max_abs(2.0, r);
    CHECK(k.rounding() == r);
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> e(-30.0, 30.0);
    for (int t = 0; t < 2000; ++t) {
      const double s = std::exp(e(rng));
      const double q = k.rounded(s);
      INFO("r " << r << ", s " << s << ", rounded " << q);
      REQUIRE(q >= s);
      REQUIRE(q < (1.0 + r) * s * (1.0 + 1e-12));
      const double power = std::log(q) / std::log1p(r);
      REQUIRE(std::fabs(power - std::round(power)) < 1e-9 * std::max(1.0, std::fabs(power)));
    }
  }
}

TEMPLATE_TEST_CASE("kl_to_target: a rounded max_abs support gives the value and gradient of that fixed support, "
                   "bit for bit",
                   "[kl_to_target]", float, double) {
  // Dyadic weights (multiples of 2^-12, |w| < 4): squares and single-element group norms are
  // exact, so max|z| is known exactly here and the support the penalty chooses, m max|z| rounded
  // up to a power of (1 + r), can be given to kl_support::fixed. The two must then agree to the
  // last bit (they differ only in how s is chosen), on weights and on group norms (one-element
  // rows). Also checked: the support in force lies in [m max|z|, (1 + r) m max|z|).
  using T = TestType;
  const auto base = normal_sample(96, 0.0, 0.6, 5);
  std::vector<T> w(base.size());
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = static_cast<T>(std::ldexp(std::round(std::ldexp(std::max(-3.9, std::min(3.9, base[i])), 12)), -12));
  double max_abs = 0.0;
  for (const T v : w) max_abs = std::max(max_abs, std::fabs(static_cast<double>(v)));
  const target t = target::spike_and_slab(0.8, 0.1, 2.0, scale_mode::relative);
  for (const double m : {1.0, 1.3}) {
    for (const double r : {1.0 / 32, 0.25, 1.0}) {
      const kl_support rounded = kl_support::max_abs(m, r);
      const double s = rounded.rounded(m * max_abs);
      INFO("m " << m << ", r " << r << ", support " << s);
      CHECK(s >= m * max_abs);
      CHECK(s < (1.0 + r) * m * max_abs);
      CHECK(s != m * max_abs);  // (these weights do not end on a power: the rounding acts)
      const auto compare = [&](const kl_to_target& a, const kl_to_target& b, const std::vector<std::size_t>& shape) {
        std::vector<T> ga(w.size(), T(0.25)), gb = ga;
        const double va = a.value_and_add_gradient(view<const T>(w.data(), shape), view<T>(ga.data(), shape));
        const double vb = b.value_and_add_gradient(view<const T>(w.data(), shape), view<T>(gb.data(), shape));
        CHECK(va == vb);
        CHECK(va > 0.0);
        std::size_t differ = 0, moved = 0;
        for (std::size_t i = 0; i < w.size(); ++i) differ += ga[i] != gb[i], moved += ga[i] != T(0.25);
        CHECK(differ == 0);
        CHECK(moved > 0);
        CHECK(a.distributions(view<const T>(w.data(), shape)).hi == Approx(s).epsilon(1e-6));
      };
      compare(kl_to_target(0.7, t, 64, rounded), kl_to_target(0.7, t, 64, kl_support::fixed(s)), {w.size()});
      compare(kl_to_target::on_group_norms(0.7, sparsereg::groups::output_neurons(), t, 64, rounded),
              kl_to_target::on_group_norms(0.7, sparsereg::groups::output_neurons(), t, 64, kl_support::fixed(s)),
              {w.size(), 1});
    }
  }
}
