// kl_gaussian: closed-form KL(N(mu, sigma^2) || N(0, s^2)). Properties: the formula on known
// moments, KL >= 0, ~0 on a sample of the target, exact gradient (central differences), gradient
// descent moves mean and variance to the target, layout invariance, degenerate inputs, state.
#include <catch2/catch.hpp>

#include <sparsereg/penalties/kl_gaussian.hpp>
#include <sparsereg/regularizer.hpp>
#include <support/penalty_calls.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

using sparsereg::kl_gaussian;
using sparsereg::scale_mode;
using sparsereg::view;
using sparsereg_test::gradient_of;
using sparsereg_test::normal_sample;
using sparsereg_test::require_throws_naming;
using sparsereg_test::value_of;

#if defined(SPARSEREG_TEST_VECTOR_WIDTH) && !defined(SPARSEREG_VECTOR_LANES)
#error "the *_native and *_avx2 builds of this test must compile the vector moments of kl_gaussian.hpp"
#endif
#if defined(SPARSEREG_TEST_VECTOR_WIDTH) && defined(SPARSEREG_VECTOR_LANES)
static_assert(sparsereg::detail::vec::width == SPARSEREG_TEST_VECTOR_WIDTH, "the vector width this build was made for");
#endif

static_assert(kl_gaussian::has_gradient && !kl_gaussian::has_prox && kl_gaussian::smooth && !kl_gaussian::separable &&
              !kl_gaussian::convex);

TEST_CASE("kl_gaussian: validation", "[kl_gaussian]") {
  require_throws_naming([] { kl_gaussian(-1.0); }, "lambda");
  require_throws_naming([] { kl_gaussian(1.0, 0.0); }, "target_scale");
  require_throws_naming([] { kl_gaussian(1.0, std::nan("")); }, "target_scale");
  require_throws_naming([] { kl_gaussian(1.0, 1.0, scale_mode::absolute, 0.0); }, "epsilon");
  require_throws_naming([] { kl_gaussian(1.0).scaled(-2.0); }, "lambda");
}

TEMPLATE_TEST_CASE("kl_gaussian: the closed form on known moments", "[kl_gaussian]", float, double) {
  // {1, 3}: mu = 2, sigma^2 = 1; s = 2: log 2 + (1 + 4) / 8 - 1/2.
  const std::vector<TestType> w = {TestType(1), TestType(3)};
  const kl_gaussian p(0.5, 2.0, scale_mode::absolute);
  const double expect = 0.5 * (std::log(2.0) + 5.0 / 8.0 - 0.5);
  CHECK(value_of(p, w) == Approx(expect).epsilon(1e-6));
  // Gradient: lambda [mu/(N s^2) + (1/s^2 - 1/sigma^2)(w - mu)/N] = 0.5 [0.25 + (0.25 - 1)(-1 or 1)/2].
  const auto g = gradient_of(p, w);
  CHECK(g[0] == Approx(0.5 * (0.25 + 0.375)).epsilon(1e-6));
  CHECK(g[1] == Approx(0.5 * (0.25 - 0.375)).epsilon(1e-6));
}

TEST_CASE("kl_gaussian: KL >= 0, ~0 on a sample of the target, larger for another distribution", "[kl_gaussian]") {
  // For N draws of N(0, s^2), KL of the fitted Gaussian is ~ (1/2)(mu^2/s^2) + (1/4)(dv/v)^2,
  // whose mean is about 1/N; we allow 5/N.
  const std::size_t N = 100000;
  const kl_gaussian p(1.0, 1.5, scale_mode::absolute);
  CHECK(value_of(p, normal_sample(N, 0.0, 1.5, 1)) < 5.0 / N);
  CHECK(value_of(p, normal_sample(N, 0.0, 1.0, 2)) > 0.05);
  CHECK(value_of(p, normal_sample(N, 0.5, 1.5, 3)) > 0.05);
  std::mt19937 rng(4);
  for (int trial = 0; trial < 50; ++trial) {
    const auto w = normal_sample(1 + rng() % 50, (rng() % 7) - 3.0, 0.01 + (rng() % 100) * 0.1, rng());
    CHECK(value_of(kl_gaussian(1.0, 0.1 + (rng() % 10), scale_mode::absolute), w) >= 0.0);
  }
}

TEST_CASE("kl_gaussian: the gradient equals central differences", "[kl_gaussian]") {
  std::mt19937 rng(5);
  for (const auto& shape : std::vector<std::vector<std::size_t>>{{2}, {7}, {3, 4}, {2, 3, 5}}) {
    std::size_t n = 1;
    for (auto e : shape) n *= e;
    auto w = normal_sample(n, 0.3, 0.8, rng());
    for (const kl_gaussian& p : {kl_gaussian(0.7, 2.0, scale_mode::absolute), kl_gaussian(1.3, 0.5, scale_mode::relative)}) {
      const view<const double> wv(w.data(), shape);
      std::vector<double> g(n, -1.0);
      sparsereg::add_gradient(p, wv, view<double>(g.data(), shape));
      for (std::size_t i = 0; i < n; ++i) {
        const double x = w[i], d = 1e-6;
        w[i] = x + d;
        const double up = sparsereg::value(p, wv);
        w[i] = x - d;
        const double down = sparsereg::value(p, wv);
        w[i] = x;
        CHECK(g[i] + 1.0 == Approx((up - down) / (2 * d)).epsilon(1e-6).margin(1e-9));
      }
    }
  }
}

TEST_CASE("kl_gaussian: gradient descent moves the sample to the target's mean and variance", "[kl_gaussian]") {
  auto w = normal_sample(2000, 0.4, 0.5, 9);
  const kl_gaussian p(1.0, 3.0, scale_mode::relative);  // target std 3x the initial one
  const double kl0 = value_of(p, w);
  for (int step = 0; step < 300; ++step) {
    const auto g = gradient_of(p, w);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] -= 200.0 * g[i];
  }
  double mean = 0.0, var = 0.0;
  for (double x : w) mean += x;
  mean /= w.size();
  for (double x : w) var += (x - mean) * (x - mean);
  var /= w.size();
  CHECK(value_of(p, w) < 1e-3 * kl0);
  CHECK(std::fabs(mean) < 0.01);
  CHECK(std::sqrt(var) == Approx(p.target_scale()).epsilon(1e-3));  // 3 x the sample's initial std
  CHECK(p.target_scale() == Approx(1.5).epsilon(0.05));
}

TEMPLATE_TEST_CASE("kl_gaussian: invariant to element order and layout; float agrees with double", "[kl_gaussian]",
                   float, double) {
  using T = TestType;
  const auto wd = normal_sample(6 * 9, 1.0, 2.0, 10);
  std::vector<T> w(wd.begin(), wd.end());
  const kl_gaussian p(1.0, 1.0, scale_mode::absolute);
  const double v = sparsereg::value(p, view<const T>(w.data(), {6, 9}));
  CHECK(v == Approx(value_of(p, wd)).epsilon(std::is_same_v<T, float> ? 1e-5 : 1e-14));
  std::vector<T> cm(w.size());
  for (std::size_t r = 0; r < 6; ++r)
    for (std::size_t c = 0; c < 9; ++c) cm[c * 6 + r] = w[r * 9 + c];
  const view<const T> cmv(cm.data(), {6, 9}, {1, 6});
  CHECK(sparsereg::value(p, cmv) == Approx(v).epsilon(1e-6));
  std::vector<T> g1(w.size(), T(0)), g2(w.size(), T(0));
  sparsereg::add_gradient(p, view<const T>(w.data(), {6, 9}), view<T>(g1.data(), {6, 9}));
  sparsereg::add_gradient(p, cmv, view<T>(g2.data(), {6, 9}));  // g2 row-major, w column-major
  for (std::size_t i = 0; i < w.size(); ++i) CHECK(g2[i] == Approx(g1[i]).epsilon(1e-5));
  std::vector<T> rev(w.rbegin(), w.rend());
  CHECK(value_of(p, rev) == Approx(v).epsilon(1e-6));
}

TEMPLATE_TEST_CASE("kl_gaussian: degenerate inputs", "[kl_gaussian]", float, double) {
  using T = TestType;
  const kl_gaussian p(1.0, 2.0, scale_mode::absolute);
  CHECK(value_of(p, std::vector<T>{}) == 0.0);
  // Constant tensors and single elements: sigma = 0 -> the eps-widened Gaussian: finite value,
  // finite gradient mu / (N s^2) (the variance term's factor multiplies w - mu = 0).
  for (const std::vector<T>& w : {std::vector<T>(10, T(0)), std::vector<T>{T(0.5)}, std::vector<T>(7, T(-1.25))}) {
    const double v = value_of(p, w);
    CHECK(std::isfinite(v));
    // log(s / sqrt(eps s^2)) - 1/2 + mu^2 / (2 s^2) + eps / 2
    const double mu = static_cast<double>(w[0]);
    CHECK(v == Approx(-0.5 * std::log(1e-12) - 0.5 + mu * mu / 8.0).epsilon(1e-9));
    for (T x : gradient_of(p, w)) CHECK(static_cast<double>(x) == Approx(mu / (w.size() * 4.0)).margin(1e-12));
    require_throws_naming([&] { value_of(kl_gaussian(1.0).fresh(), w); }, "standard deviation");
  }
  // NaN / inf: value NaN; own gradient NaN; the others finite (moments of the finite elements).
  const std::vector<T> w = {T(1), std::numeric_limits<T>::quiet_NaN(), T(3), -std::numeric_limits<T>::infinity()};
  CHECK(std::isnan(value_of(p, w)));
  const auto g = gradient_of(p, w);
  CHECK(std::isnan(g[1]));
  CHECK(std::isnan(g[3]));
  const auto gf = gradient_of(p, std::vector<T>{T(1), T(3)});
  CHECK(g[0] == Approx(gf[0]));
  CHECK(g[2] == Approx(gf[1]));
}

TEST_CASE("kl_gaussian: relative scale resolved once and shared with scaled copies; façade", "[kl_gaussian]") {
  const auto w = normal_sample(500, 0.0, 0.2, 12);
  const kl_gaussian p(1.0, 2.0, scale_mode::relative);
  CHECK(std::isnan(p.target_scale()));
  const double v = value_of(p, w);
  CHECK(p.target_scale() == Approx(0.4).epsilon(0.1));
  CHECK(value_of(p.scaled(2.0), w) == Approx(2.0 * v));
  kl_gaussian q(1.0, 2.0, scale_mode::relative);
  q.load_state(p.save_state());
  CHECK(q.target_scale() == p.target_scale());

  auto wm = w;
  std::vector<double> g(w.size(), 0.0);
  sparsereg::regularizer<double> reg;
  reg.add_parameter("w", view<double>(wm.data(), {w.size()}), view<double>(g.data(), {w.size()}));
  reg.add_penalty("w", kl_gaussian(0.1, 1.0, scale_mode::absolute));
  reg.add_gradients();
  const auto direct = gradient_of(kl_gaussian(0.1, 1.0, scale_mode::absolute), w);
  for (std::size_t i = 0; i < w.size(); ++i) CHECK(g[i] == Approx(direct[i]));
}

#include <sparsereg/adapters/eigen.hpp>

TEST_CASE("kl_gaussian: an Eigen matrix gives the view result", "[kl_gaussian]") {
  const auto w = normal_sample(8 * 6, 0.2, 1.3, 14);
  Eigen::MatrixXd m(8, 6);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 6; ++c) m(r, c) = w[static_cast<std::size_t>(r * 6 + c)];
  const kl_gaussian p(1.0, 1.0, scale_mode::absolute);
  CHECK(sparsereg::value(p, m) == Approx(value_of(p, w)).epsilon(1e-12));
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(8, 6);
  sparsereg::add_gradient(p, m, g);
  const auto gr = gradient_of(p, w);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 6; ++c) CHECK(g(r, c) == Approx(gr[static_cast<std::size_t>(r * 6 + c)]).epsilon(1e-12));
}

TEST_CASE("kl_gaussian: moments of contiguous floats agree with a long-double reference at every length",
          "[kl_gaussian]") {
  // Contiguous floats take vector sums (two vectors per step, a scalar tail); a strided view the
  // scalar loop. Lengths around the vector steps, a mean far from 0 (the sums are shifted by the
  // first element), non-finite elements that must be left out of count, mean and variance, and a
  // non-finite first element (the shift is then 0).
  for (const std::size_t n : {std::size_t(1), std::size_t(2), std::size_t(15), std::size_t(16), std::size_t(17),
                              std::size_t(31), std::size_t(32), std::size_t(33), std::size_t(63), std::size_t(64),
                              std::size_t(65), std::size_t(100), std::size_t(1000), std::size_t(4099)}) {
    for (int bad = 0; bad < 3; ++bad) {  // 0: all finite; 1: NaN and +-inf inside; 2: also the first
      INFO("n " << n << ", non-finite case " << bad);
      const auto wd = normal_sample(n, 3.0, 0.5, static_cast<unsigned>(n) + 5);
      std::vector<float> w(wd.begin(), wd.end());
      if (bad >= 1 && n > 4) {
        w[1] = std::numeric_limits<float>::quiet_NaN();
        w[n / 2] = std::numeric_limits<float>::infinity();
        w[n - 1] = -std::numeric_limits<float>::infinity();
      }
      if (bad == 2) w[0] = std::numeric_limits<float>::quiet_NaN();
      long double count = 0, sum = 0;
      for (float x : w)
        if (std::isfinite(x)) count += 1, sum += x;
      const long double mean = count > 0 ? sum / count : 0;
      long double sq = 0;
      for (float x : w)
        if (std::isfinite(x)) sq += (x - mean) * (x - mean);
      const long double variance = count > 0 ? sq / count : 0;
      std::vector<float> st(2 * n, 1e30f);
      for (std::size_t i = 0; i < n; ++i) st[2 * i] = w[i];
      for (const bool strided : {false, true}) {
        INFO("strided " << strided);
        const auto m = strided ? sparsereg::detail::moments_of(view<const float>(st.data(), {n}, {2}))
                               : sparsereg::detail::moments_of(view<const float>(w.data(), {n}));
        CHECK(static_cast<long double>(m.count) == count);
        CHECK(m.non_finite == n - m.count);
        if (count == 0) continue;
        CHECK(m.mean == Approx(static_cast<double>(mean)).epsilon(1e-13));
        CHECK(m.variance == Approx(static_cast<double>(variance)).epsilon(1e-9).margin(1e-15));
      }
    }
  }
}

TEST_CASE("kl_gaussian: the gradient of contiguous floats at every length, non-finite elements included",
          "[kl_gaussian]") {
  // Contiguous floats take the vector gradient loop (a select after the affine term) and a
  // scalar tail; a strided view the scalar loop alone. Each element: g0 + a + b (w - mu) with a,
  // b, mu from the moments of the same view, NaN exactly where w is not finite, and the two
  // layouts agree.
  const kl_gaussian p(0.9, 1.5, scale_mode::absolute);
  for (const std::size_t n : {std::size_t(1), std::size_t(7), std::size_t(8), std::size_t(9), std::size_t(15),
                              std::size_t(16), std::size_t(17), std::size_t(33), std::size_t(100), std::size_t(1001)}) {
    for (const bool bad : {false, true}) {
      INFO("n " << n << ", non-finite elements " << bad);
      const auto wd = normal_sample(n, 0.4, 1.2, static_cast<unsigned>(n) + 40);
      std::vector<float> w(wd.begin(), wd.end());
      if (bad) {
        w[n / 3] = std::numeric_limits<float>::quiet_NaN();
        w[n - 1] = std::numeric_limits<float>::infinity();
        if (n > 9) w[9] = -std::numeric_limits<float>::infinity();
      }
      std::vector<float> st(2 * n, 7.0f);
      for (std::size_t i = 0; i < n; ++i) st[2 * i] = w[i];
      std::vector<float> g0(n);
      for (std::size_t i = 0; i < n; ++i) g0[i] = 0.25f * static_cast<float>(i % 5) - 0.5f;
      std::vector<float> gc = g0, gs = g0;
      const view<const float> cv(w.data(), {n}), sv(st.data(), {n}, {2});
      sparsereg::add_gradient(p, cv, view<float>(gc.data(), {n}));
      sparsereg::add_gradient(p, sv, view<float>(gs.data(), {n}));
      const auto m = sparsereg::detail::moments_of(cv);
      const double cnt = static_cast<double>(m.count), s2 = 1.5 * 1.5, v = m.variance + p.epsilon() * s2;
      const double a = 0.9 * m.mean / (cnt * s2), b = 0.9 * (1.0 / s2 - 1.0 / v) / cnt;
      for (std::size_t i = 0; i < n; ++i) {
        INFO("element " << i);
        if (!std::isfinite(w[i])) {
          CHECK(std::isnan(gc[i]));
          CHECK(std::isnan(gs[i]));
          continue;
        }
        const double want = g0[i] + a + b * (static_cast<double>(w[i]) - m.mean);
        CHECK(static_cast<double>(gc[i]) == Approx(want).epsilon(1e-5).margin(1e-6));
        CHECK(gc[i] == Approx(gs[i]).epsilon(1e-6).margin(1e-7));
      }
    }
  }
}
