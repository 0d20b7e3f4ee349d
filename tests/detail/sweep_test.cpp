// The grouped sweep's column paths (detail/sweep.hpp): the column-tile path and the runs taken
// several at a time must give every group exactly the lanes of the one-run path, so results do
// not depend on the layout. Checked bitwise, directly and through a penalty.
#include <catch2/catch.hpp>

#include <sparsereg/detail/sweep.hpp>
#include <sparsereg/penalties/kl_to_target.hpp>
#include <sparsereg/sparsereg.hpp>

#if defined(SPARSEREG_TEST_VECTOR_WIDTH)
#if !defined(SPARSEREG_VECTOR_LANES)
#error "built to test the vector forms of detail/sweep.hpp, but they are not selected for this target"
#else
static_assert(sparsereg::detail::vec::width == SPARSEREG_TEST_VECTOR_WIDTH,
              "built to test the vector forms of detail/sweep.hpp at another width than this target selects");
#endif
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <random>
#include <vector>

namespace {

template <class T>
std::vector<T> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> z(0.0, 1.0);
  std::vector<T> v(n);
  // Some exact zeros, so the zero counts are exercised.
  for (auto& x : v) x = (rng() % 7 == 0) ? T(0) : static_cast<T>(z(rng));
  return v;
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <std::size_t M, bool Abs, bool Zeros, class T,
          sparsereg::detail::prefetch_next Prefetch = sparsereg::detail::prefetch_next::none>
void check_runs_against_run(std::size_t n) {
  using namespace sparsereg::detail;
  const auto x = random_values<T>(M * n + 3, 29u + static_cast<unsigned>(n));
  std::vector<T> xz(x);
  for (std::size_t i = 0; i < xz.size(); i += 5) xz[i] = T(0);  // zeros to count
  const auto pre = [](T v) { return v; };
  const T* xs[M];
  for (std::size_t m = 0; m < M; ++m) xs[m] = xz.data() + 3 + m * n;  // unaligned, back to back
  lane_sums<T> acc[M];
  accumulate_runs<M, Abs, Zeros, Prefetch>(xs, n, pre, acc);
  for (std::size_t m = 0; m < M; ++m) {
    INFO("M " << M << ", Abs " << Abs << ", Zeros " << Zeros << ", Prefetch " << static_cast<int>(Prefetch)
              << ", n " << n << ", run " << m);
    lane_sums<T> ref;
    accumulate_run(xs[m], 1, n, 0, pre, ref);
    for (std::size_t j = 0; j < lanes; ++j) {
      CHECK(same_bits(acc[m].sq[j], ref.sq[j]));
      CHECK(same_bits(acc[m].ab[j], Abs ? ref.ab[j] : T(0)));
    }
    CHECK(acc[m].zeros == (Zeros ? ref.zeros : 0u));
  }
}

template <std::size_t M, class T>
void check_runs_all_flags(std::size_t n) {
  check_runs_against_run<M, true, true, T>(n);
  check_runs_against_run<M, false, true, T>(n);
  check_runs_against_run<M, true, false, T>(n);
  check_runs_against_run<M, false, false, T>(n);
  using sparsereg::detail::prefetch_next;  // the next-batch prefetch of DRAM tensors
  check_runs_against_run<M, true, true, T, prefetch_next::whole>(n);
  check_runs_against_run<M, false, false, T, prefetch_next::whole>(n);
  check_runs_against_run<M, true, true, T, prefetch_next::first_half>(n);
  check_runs_against_run<M, false, true, T, prefetch_next::first_half>(n);
}

}  // namespace

TEMPLATE_TEST_CASE("accumulate_runs gives each run the lanes of accumulate_run, with or without |u| and counts",
                   "[sweep]", float, double) {
  // The batched norms of whole-run groups (4 or 8 groups interleaved): every flag combination the
  // sweeps use (value sweeps skip the counts, the group lasso's also |u|), against one run alone.
  using T = TestType;
  for (std::size_t n : {0u, 1u, 7u, 8u, 13u, 64u, 1029u}) {
    check_runs_all_flags<4, T>(n);
    check_runs_all_flags<8, T>(n);
  }
}

TEMPLATE_TEST_CASE("group norms through column tiles equal those of contiguous groups, bit for bit", "[sweep]", float,
                   double) {
  // Row-major out x in with input-neuron groups takes the column-tile path (the tile's rows eight
  // per lane); the same matrix stored column-major makes every group one contiguous run. The KL
  // gradient on group norms depends on every norm's last bit (w * table / norm), and the SGL
  // prox on every group's factor.
  using T = TestType;
  const std::size_t R = 83, C = 301;  // rows not a multiple of 8; a ragged batch of rows
  auto w = random_values<T>(R * C, 5u);
  for (std::size_t r = 0; r < R; ++r)  // every third input neuron small: its group dies
    for (std::size_t c = 0; c < C; c += 3) w[r * C + c] *= T(0.05);
  std::vector<T> cm(w.size());
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t c = 0; c < C; ++c) cm[c * R + r] = w[r * C + c];
  const sparsereg::view<const T> rm_v(w.data(), {R, C});
  const sparsereg::view<const T> cm_v(cm.data(), {R, C}, {1, static_cast<std::ptrdiff_t>(R)});

  const auto kl = sparsereg::kl_to_target::on_group_norms(0.7, sparsereg::groups::input_neurons());
  std::vector<T> g_rm(w.size(), T(0)), g_cm(w.size(), T(0));
  sparsereg::add_gradient(kl.fresh(), rm_v, sparsereg::view<T>(g_rm.data(), {R, C}));
  const std::vector<std::size_t> shape = {R, C};
  const std::vector<std::ptrdiff_t> cm_strides = {1, static_cast<std::ptrdiff_t>(R)};
  sparsereg::add_gradient(kl.fresh(), cm_v, sparsereg::view<T>(g_cm.data(), shape, cm_strides));
  std::size_t differ = 0;
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t c = 0; c < C; ++c) differ += !same_bits(g_rm[r * C + c], g_cm[c * R + r]);
  CHECK(differ == 0);

  const auto sgl = sparsereg::sparse_group_lasso(0.3, 0.05, sparsereg::groups::input_neurons());
  std::vector<T> y_rm(w.size()), y_cm(w.size());
  const auto r1 = sparsereg::prox(sgl, rm_v, sparsereg::view<T>(y_rm.data(), {R, C}), 0.5);
  const auto r2 = sparsereg::prox(sgl, cm_v, sparsereg::view<T>(y_cm.data(), shape, cm_strides), 0.5);
  differ = 0;
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t c = 0; c < C; ++c) differ += !same_bits(y_rm[r * C + c], y_cm[c * R + r]);
  CHECK(differ == 0);
  CHECK(r1.zero_elements == r2.zero_elements);
  CHECK(r1.zero_groups == r2.zero_groups);
  CHECK(r1.zero_groups > 0);  // some groups die, some survive: both branches of the decision
  CHECK(r1.zero_groups < C);
}

TEMPLATE_TEST_CASE("abs_lane_sum(_zeros): contiguous runs give the bits of the element-by-element form", "[sweep]",
                   float, double) {
  // Unit strides as compile-time constants take the vector form where the target has it (float on
  // AVX; this file is also built with -march=native); a run-time stride of 1 takes the scalar
  // lane_sum_zeros. Same outputs, same double, same count. Magnitudes spread over 2^-30..2^50,
  // more than a double's 53 bits, so that a changed order of additions changes the last bits of
  // the sum (over a narrower spread every order gives the exact sum); values at exactly +-t,
  // signed zeros and infinities exercise the threshold's edge cases.
  using T = TestType;
  using namespace sparsereg::detail;
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  const T t = T(0.25);
  std::mt19937 rng(11);
  for (std::size_t n : {0u, 1u, 31u, 32u, 33u, 95u, 1000u, 4099u}) {
    INFO("n = " << n);
    auto x = random_values<T>(n, 23u + static_cast<unsigned>(n));
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = std::ldexp(x[i], static_cast<int>(rng() % 81) - 30);
      if (i % 13 == 5) x[i] = (i % 2) ? t : -t;
      if (i % 97 == 50) x[i] = T(-0.0);
    }
    const bool with_inf = n == 95;  // one size only: elsewhere the sum must be finite to compare its bits
    if (with_inf) {
      x[40] = std::numeric_limits<T>::infinity();
      x[41] = -std::numeric_limits<T>::infinity();
    }
    // The l1 value's sum of |x_i| (no output, no count): the same lanes in both forms; the squared
    // l2 value's sum of x_i^2 likewise (with the infinities: inf in both).
    CHECK(same_bits(abs_lane_sum(x.data(), unit{}, n), abs_lane_sum(x.data(), std::ptrdiff_t(1), n)));
    CHECK(same_bits(abs_lane_sum<true>(x.data(), unit{}, n), abs_lane_sum<true>(x.data(), std::ptrdiff_t(1), n)));
    {
      // The squared l2 prox: y = x * f with sum_i y_i^2 and the zero count, in place in both forms.
      const T f = T(0.75);
      const auto scale = [f](auto v) { return v * f; };
      std::vector<T> y_vec(x), y_ref(x);
      std::size_t z_vec = 0, z_ref = 0;
      const double s_vec = abs_lane_sum_zeros<true>(y_vec.data(), unit{}, y_vec.data(), unit{}, n, scale, z_vec);
      const double s_ref =
          abs_lane_sum_zeros<true>(y_ref.data(), std::ptrdiff_t(1), y_ref.data(), std::ptrdiff_t(1), n, scale, z_ref);
      std::size_t differ = 0, zeros = 0;
      long double sum = 0;
      for (std::size_t i = 0; i < n; ++i) {
        differ += !same_bits(y_vec[i], y_ref[i]);
        zeros += (y_ref[i] == T(0));
        sum += static_cast<long double>(y_ref[i]) * static_cast<long double>(y_ref[i]);
      }
      CHECK(differ == 0);
      CHECK(same_bits(s_vec, s_ref));
      CHECK(z_vec == z_ref);
      CHECK(z_ref == zeros);
      if (!with_inf)  // the sum itself, against one in long double
        CHECK(std::fabs(static_cast<long double>(s_ref) - sum) <=
              static_cast<long double>(n) * std::numeric_limits<double>::epsilon() * sum);
    }
    for (const bool identity : {false, true}) {
      INFO("identity " << identity);
      std::vector<T> y_vec(n, T(7)), y_ref(n, T(7));
      std::size_t z_vec = 3, z_ref = 3;  // counts are added to what was there
      double v_vec = 0, v_ref = 0;
      if (identity) {
        const auto op = [](auto v) { return v; };
        v_vec = abs_lane_sum_zeros(x.data(), unit{}, y_vec.data(), unit{}, n, op, z_vec);
        v_ref = abs_lane_sum_zeros(x.data(), std::ptrdiff_t(1), y_ref.data(), std::ptrdiff_t(1), n, op, z_ref);
      } else {
        const auto op = [t](auto v) { return soft_threshold_positive(v, t); };
        v_vec = abs_lane_sum_zeros(x.data(), unit{}, y_vec.data(), unit{}, n, op, z_vec);
        v_ref = abs_lane_sum_zeros(x.data(), std::ptrdiff_t(1), y_ref.data(), std::ptrdiff_t(1), n, op, z_ref);
      }
      std::size_t differ = 0, zeros = 0;
      long double sum = 0;
      for (std::size_t i = 0; i < n; ++i) {
        differ += !same_bits(y_vec[i], y_ref[i]);
        zeros += (y_ref[i] == T(0));
        sum += std::fabs(static_cast<long double>(y_ref[i]));
      }
      CHECK(differ == 0);
      CHECK(same_bits(v_vec, v_ref));
      CHECK(z_vec == z_ref);
      CHECK(z_ref == 3 + zeros);  // the count is the outputs' zeros, checked independently
      if (!identity) {
        // The l1 prox's own form (its AVX-512 or AVX2 lanes), out of place and in place.
        for (const bool in_place : {false, true}) {
          INFO("soft_threshold_lane_sum_zeros, in place " << in_place);
          std::vector<T> y_soft(in_place ? x : std::vector<T>(n, T(7)));
          std::size_t z_soft = 3;
          const T* src = in_place ? y_soft.data() : x.data();
          const double v_soft = soft_threshold_lane_sum_zeros(src, unit{}, y_soft.data(), unit{}, n, t, z_soft);
          std::size_t differ_soft = 0;
          for (std::size_t i = 0; i < n; ++i) differ_soft += !same_bits(y_soft[i], y_ref[i]);
          CHECK(differ_soft == 0);
          CHECK(same_bits(v_soft, v_ref));
          CHECK(z_soft == z_ref);
        }
      }
      if (with_inf) {
        CHECK(std::isinf(v_ref));
      } else {
        CHECK(std::fabs(static_cast<long double>(v_ref) - sum) <=
              static_cast<long double>(n) * std::numeric_limits<double>::epsilon() * sum);
      }
    }
  }
}

TEMPLATE_TEST_CASE("soft_threshold_lane_sum_zeros: NaN of either sign, infinite thresholds, every lane",
                   "[sweep]", float, double) {
  // The AVX-512 and AVX2 forms clamp by one comparison and take |y| from the clamped magnitude instead
  // of from the output; these are the inputs where that could differ from the generic form:
  // NaNs (either sign bit), x = +-t, signed zeros, an infinite threshold (|x| - inf is -inf, and
  // inf - inf a NaN that must be kept), and the big-element probe of the lane layout.
  using T = TestType;
  using namespace sparsereg::detail;
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T inf = std::numeric_limits<T>::infinity();
  std::mt19937 rng(17);
  std::size_t differ = 0, count_differ = 0, value_differ = 0;
  for (const T t : {T(0.25), T(3), inf}) {
    for (std::size_t p = 0; p < 32; ++p) {
      const std::size_t n = 32 * 5 + p;  // every tail length
      std::vector<T> x(n);
      for (auto& v : x) v = static_cast<T>(static_cast<int>(rng() % 9) - 4) * T(0.25) * ((rng() % 2) ? T(1) : T(-1));
      x[32 * 2 + p] = static_cast<T>(std::ldexp(1.0, 53));  // the lane probe
      const bool finite = p % 4 == 0 || p % 4 == 3;
      if (p % 4 == 1) {
        x[p] = nan;
        x[(p + 7) % n] = -nan;
        x[(p + 40) % n] = std::copysign(nan, T(-1));
      } else if (p % 4 == 2) {
        x[(p + 3) % n] = inf;
        x[(p + 5) % n] = -inf;
      }
      std::vector<T> y_soft(n, T(7)), y_ref(n, T(7));
      std::size_t z_soft = 0, z_ref = 0;
      const double v_soft = soft_threshold_lane_sum_zeros(x.data(), unit{}, y_soft.data(), unit{}, n, t, z_soft);
      const double v_ref = abs_lane_sum_zeros(x.data(), std::ptrdiff_t(1), y_ref.data(), std::ptrdiff_t(1), n,
                                              [t](auto v) { return soft_threshold_positive(v, t); }, z_ref);
      for (std::size_t i = 0; i < n; ++i) differ += !same_bits(y_soft[i], y_ref[i]);
      count_differ += z_soft != z_ref;
      // A NaN or an infinite output makes both sums NaN or inf; the sign of a NaN sum is not
      // specified, so NaN sums are compared as NaN, everything else bit for bit.
      value_differ += std::isnan(v_ref) ? !std::isnan(v_soft) : !same_bits(v_soft, v_ref);
      CHECK(std::isfinite(v_ref) == finite);
    }
  }
  CHECK(differ == 0);
  CHECK(count_differ == 0);
  CHECK(value_differ == 0);
}

TEMPLATE_TEST_CASE("count_zeros counts +0 and -0 only, contiguous and strided alike", "[sweep]", float, double) {
  // The l0 value's count. Subnormals, NaNs and infinities are not zero; every tail length of the
  // vector loop is visited; a stride of 3 reads every third element.
  using T = TestType;
  using namespace sparsereg::detail;
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  std::mt19937 rng(29);
  const T specials[] = {T(0), T(-0.0), std::numeric_limits<T>::denorm_min(), -std::numeric_limits<T>::denorm_min(),
                        std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(), T(1), T(-2.5)};
  std::size_t wrong = 0;
  for (std::size_t n = 0; n < 200; ++n) {
    std::vector<T> x(3 * n + 1);
    for (auto& v : x) v = specials[rng() % 8];
    std::size_t contiguous = 0, strided = 0;
    for (std::size_t i = 0; i < n; ++i) {
      contiguous += (x[i] == T(0));
      strided += (x[3 * i] == T(0));
    }
    wrong += count_zeros(x.data(), unit{}, n) != contiguous;
    wrong += count_zeros(x.data(), std::ptrdiff_t(1), n) != contiguous;
    wrong += count_zeros(x.data(), std::ptrdiff_t(3), n) != strided;
  }
  CHECK(wrong == 0);
}

TEMPLATE_TEST_CASE("abs_lane_sum: an infinity or a NaN anywhere gives inf or NaN", "[sweep]", float, double) {
  // The float vector form widens by bit placement, which maps inf and NaN to finite doubles, and
  // catches them afterwards; every lane of a block, the tail, and NaNs of either sign, alone or
  // with an infinity, are probed against the element-by-element form.
  using T = TestType;
  using namespace sparsereg::detail;
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T inf = std::numeric_limits<T>::infinity();
  const std::size_t n = 32 * 4 + 5;
  std::size_t wrong = 0;
  for (std::size_t at = 0; at < n; ++at) {
    for (int kind = 0; kind < 4; ++kind) {
      std::vector<T> x(n);
      for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<T>(static_cast<int>(i % 7) - 3) * T(0.5);
      x[at] = kind == 0 ? inf : kind == 1 ? -inf : kind == 2 ? nan : -nan;
      if (kind >= 2) x[(at + 33) % n] = inf;  // a NaN wins over an infinity elsewhere
      const double vec_form = abs_lane_sum(x.data(), unit{}, n);
      const double ref = abs_lane_sum(x.data(), std::ptrdiff_t(1), n);
      wrong += kind >= 2 ? !(std::isnan(vec_form) && std::isnan(ref))
                         : !(std::isinf(vec_form) && vec_form > 0 && same_bits(vec_form, ref));
    }
  }
  CHECK(wrong == 0);
}

TEMPLATE_TEST_CASE("abs_lane_sum(_zeros): finite magnitudes summing past 2^128 stay finite, with a NaN still NaN",
                   "[sweep]", float, double) {
  // The float vector form tells an infinity or a NaN (placed at 2^128 or above) from finite
  // elements by a lane reaching 2^128, then reads the magnitudes again. Elements near FLT_MAX
  // (2^128 - 2^104) put every lane past 2^128 with finite elements only: the sums must be the
  // finite doubles of the element-by-element form, for the l1 value and for a prox that writes
  // its outputs (identity and soft threshold, where what is read again is the output). A NaN or
  // an infinity among them, placed in each lane in turn, must still give NaN or inf.
  using T = TestType;
  using namespace sparsereg::detail;
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  const T big = std::numeric_limits<float>::max();
  const std::size_t n = 32 * 6 + 3;
  std::size_t wrong = 0;
  for (int kind = 0; kind < 3; ++kind) {
    for (std::size_t at = 0; at < (kind == 0 ? 1 : 32); ++at) {
      std::vector<T> x(n);
      for (std::size_t i = 0; i < n; ++i) x[i] = (i % 3 == 1) ? -big : big * T(i % 2 ? 0.75 : 1);
      if (kind == 1) x[64 + at] = std::numeric_limits<T>::quiet_NaN();
      if (kind == 2) x[64 + at] = -std::numeric_limits<T>::infinity();
      const double value = abs_lane_sum(x.data(), unit{}, n);
      const double value_ref = abs_lane_sum(x.data(), std::ptrdiff_t(1), n);
      const auto check = [&](double v, double ref) {
        if (kind == 0) return std::isfinite(v) && v > 1e38 * static_cast<double>(n) / 2 && same_bits(v, ref);
        if (kind == 1) return std::isnan(v) && std::isnan(ref);
        return std::isinf(v) && v > 0 && same_bits(v, ref);
      };
      wrong += !check(value, value_ref);
      for (const bool identity : {true, false}) {
        std::vector<T> y(x), y_ref(n);
        std::size_t z = 0, z_ref = 0;
        const T t = T(1);
        const auto soft = [t](auto v) { return soft_threshold_positive(v, t); };
        const auto same = [](auto u) { return u; };
        const double v = identity ? abs_lane_sum_zeros(y.data(), unit{}, y.data(), unit{}, n, same, z)
                                  : soft_threshold_lane_sum_zeros(y.data(), unit{}, y.data(), unit{}, n, t, z);
        const double ref =
            identity ? abs_lane_sum_zeros(x.data(), std::ptrdiff_t(1), y_ref.data(), std::ptrdiff_t(1), n, same, z_ref)
                     : abs_lane_sum_zeros(x.data(), std::ptrdiff_t(1), y_ref.data(), std::ptrdiff_t(1), n, soft, z_ref);
        wrong += !check(v, ref);
        wrong += z != z_ref;
      }
    }
  }
  CHECK(wrong == 0);
}

TEMPLATE_TEST_CASE("abs_lane_sum(_zeros), of |x| and of x^2: every lane and the tree's pairing match the scalar form",
                   "[sweep]", float, double) {
  // A sharper probe of the lane layout than random data: one element of 2^53 (exact in float)
  // among small odd integers. The lane holding it sums at a spacing of 2, so every later addition
  // of an odd number rounds (to even), and how the other lanes' exact sums are paired with it in
  // the tree decides the last bits: a lane filled from the wrong position, or two accumulators
  // swapped, gives another double. The big element visits each of the 32 lanes in turn.
  using T = TestType;
  using namespace sparsereg::detail;
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  const std::size_t n = 32 * 9 + 7;
  std::mt19937 rng(5);
  std::size_t differ = 0;
  for (std::size_t p = 0; p < 32; ++p) {
    std::vector<T> x(n);
    for (auto& v : x) v = static_cast<T>(1 + 2 * (rng() % 4)) * ((rng() % 2) ? T(1) : T(-1));
    x[32 * 3 + p] = static_cast<T>(std::ldexp(1.0, 53));
    differ += !same_bits(abs_lane_sum(x.data(), unit{}, n), abs_lane_sum(x.data(), std::ptrdiff_t(1), n));
    std::vector<T> y_vec(n), y_ref(n);
    std::size_t z_vec = 0, z_ref = 0;
    const auto op = [](auto v) { return v; };
    const double v_vec = abs_lane_sum_zeros(x.data(), unit{}, y_vec.data(), unit{}, n, op, z_vec);
    const double v_ref = abs_lane_sum_zeros(x.data(), std::ptrdiff_t(1), y_ref.data(), std::ptrdiff_t(1), n, op, z_ref);
    differ += !same_bits(v_vec, v_ref);
    CHECK(z_vec == z_ref);
    // Squares (the squared l2 value and prox): the big element 3 * 2^25, whose square 9 * 2^50
    // sums at a spacing of 2, so that adding an odd square (1, 9, 25, 49) is a tie, rounded to
    // even: the order of the additions decides the bits, as above.
    x[32 * 3 + p] = static_cast<T>(3.0 * std::ldexp(1.0, 25));
    differ += !same_bits(abs_lane_sum<true>(x.data(), unit{}, n), abs_lane_sum<true>(x.data(), std::ptrdiff_t(1), n));
    const double s_vec = abs_lane_sum_zeros<true>(x.data(), unit{}, y_vec.data(), unit{}, n, op, z_vec);
    const double s_ref =
        abs_lane_sum_zeros<true>(x.data(), std::ptrdiff_t(1), y_ref.data(), std::ptrdiff_t(1), n, op, z_ref);
    differ += !same_bits(s_vec, s_ref);
  }
  CHECK(differ == 0);
}

TEMPLATE_TEST_CASE("input-channel norms of dense OIHW slabs, eight at a time, equal the run-by-run path's bits",
                   "[sweep]", float, double) {
  // A contiguous O x I x k x k weight with input-channel groups takes the slab path, which reads
  // eight output filters' slabs at a time and the last O mod 8 run by run; the same weight with
  // one padding element after every kernel (I stride k*k + 1) is walked run by run. Same lanes,
  // so the same bits: value, prox output, zero counts. Kernels 3x3 and 5x5 (copied as fixed-size
  // runs) and 2x2 and 1x3 (any length); O from 8 (one octet, nothing left over) to 17; enough
  // input channels for several stage tiles of groups (28 groups of 3x3 per tile, 10 of 5x5).
  using T = TestType;
  struct shape {
    std::size_t o, i, kh, kw;
  };
  for (const shape s : {shape{8, 61, 3, 3}, shape{9, 4, 3, 5}, shape{17, 30, 5, 5}, shape{15, 7, 2, 2},
                        shape{16, 3, 1, 3}, shape{11, 29, 3, 3}}) {
    const std::size_t len = s.kh * s.kw, n = s.o * s.i * len, pad_i = len + 1;
    INFO("shape " << s.o << "x" << s.i << "x" << s.kh << "x" << s.kw);
    auto w = random_values<T>(n, 41u + static_cast<unsigned>(n));
    for (std::size_t o = 0; o < s.o; ++o)  // every third input channel small: its group dies
      for (std::size_t c = 0; c < s.i; c += 3)
        for (std::size_t k = 0; k < len; ++k) w[(o * s.i + c) * len + k] *= T(0.02);
    std::vector<T> padded(s.o * s.i * pad_i, T(7));
    for (std::size_t o = 0; o < s.o; ++o)
      for (std::size_t c = 0; c < s.i; ++c)
        for (std::size_t k = 0; k < len; ++k) padded[(o * s.i + c) * pad_i + k] = w[(o * s.i + c) * len + k];
    const std::vector<std::size_t> dims = {s.o, s.i, s.kh, s.kw};
    const std::vector<std::ptrdiff_t> pad_strides = {static_cast<std::ptrdiff_t>(s.i * pad_i),
                                                     static_cast<std::ptrdiff_t>(pad_i),
                                                     static_cast<std::ptrdiff_t>(s.kw), 1};
    const sparsereg::view<const T> dense(w.data(), dims);
    const sparsereg::view<const T> walked(padded.data(), dims, pad_strides);
    const auto gl = sparsereg::group_lasso(0.8, sparsereg::groups::input_channels());
    const auto sgl = sparsereg::sparse_group_lasso(0.6, 0.05, sparsereg::groups::input_channels());
    CHECK(same_bits(sparsereg::value(gl, dense), sparsereg::value(gl, walked)));
    CHECK(same_bits(sparsereg::value(sgl, dense), sparsereg::value(sgl, walked)));
    for (int which = 0; which < 2; ++which) {
      INFO((which == 0 ? "group lasso prox" : "sparse group lasso prox"));
      std::vector<T> y_dense(n), y_walked(padded.size(), T(7));
      const sparsereg::view<T> yd(y_dense.data(), dims), yw(y_walked.data(), dims, pad_strides);
      const auto r1 = which == 0 ? sparsereg::prox(gl, dense, yd, 0.5) : sparsereg::prox(sgl, dense, yd, 0.5);
      const auto r2 = which == 0 ? sparsereg::prox(gl, walked, yw, 0.5) : sparsereg::prox(sgl, walked, yw, 0.5);
      std::size_t differ = 0;
      for (std::size_t oc = 0; oc < s.o * s.i; ++oc)
        for (std::size_t k = 0; k < len; ++k) differ += !same_bits(y_dense[oc * len + k], y_walked[oc * pad_i + k]);
      CHECK(differ == 0);
      CHECK(same_bits(r1.value, r2.value));
      CHECK(r1.zero_elements == r2.zero_elements);
      CHECK(r1.zero_groups == r2.zero_groups);
      CHECK(r1.zero_groups > 0);  // some groups die, some survive
      CHECK(r1.zero_groups < s.i);
    }
  }
}

namespace {

/// The same values in two layouts: row-major (runs cross groups: the batched lane path) and with
/// `ref_strides` (each group one contiguous run); value, prox output and counts, and the KL
/// gradient on group norms, must be the same bits (the total values: up to the order of the sum).
/// small(f): element f (row-major) is in a group made to die.
template <class T, class Small>
void check_crossing_against_contiguous(const std::vector<std::size_t>& dims,
                                       const std::vector<std::ptrdiff_t>& ref_strides, const sparsereg::grouping& grp,
                                       unsigned seed, Small small) {
  std::size_t n = 1;
  for (auto d : dims) n *= d;
  auto w = random_values<T>(n, seed);
  for (std::size_t f = 0; f < n; ++f)  // the groups with small(f) die
    if (small(f)) w[f] *= T(0.02);
  const sparsereg::view<const T> rm(w.data(), dims);
  std::vector<T> ref(n);
  const sparsereg::view<T> ref_w(ref.data(), dims, ref_strides);
  for (std::size_t f = 0; f < n; ++f) ref[ref_w.offset_of_flat(f)] = w[f];
  const sparsereg::view<const T> rf(ref.data(), dims, ref_strides);
  const auto gl = sparsereg::group_lasso(0.8, grp);
  const auto sgl = sparsereg::sparse_group_lasso(0.6, 0.05, grp);
  // Totals add the groups' (bit-identical) values in another order in each layout.
  CHECK(sparsereg::value(gl, rm) == Approx(sparsereg::value(gl, rf)).epsilon(1e-12));
  CHECK(sparsereg::value(sgl, rm) == Approx(sparsereg::value(sgl, rf)).epsilon(1e-12));
  const auto same_outputs = [&](const std::vector<T>& a, const std::vector<T>& b) {
    std::size_t differ = 0;
    for (std::size_t f = 0; f < n; ++f) differ += !same_bits(a[f], b[ref_w.offset_of_flat(f)]);
    return differ;
  };
  for (int which = 0; which < 2; ++which) {
    INFO((which == 0 ? "group lasso prox" : "sparse group lasso prox"));
    std::vector<T> y_rm(n), y_rf(n);
    const sparsereg::view<T> yr(y_rm.data(), dims), yf(y_rf.data(), dims, ref_strides);
    const auto r1 = which == 0 ? sparsereg::prox(gl, rm, yr, 0.5) : sparsereg::prox(sgl, rm, yr, 0.5);
    const auto r2 = which == 0 ? sparsereg::prox(gl, rf, yf, 0.5) : sparsereg::prox(sgl, rf, yf, 0.5);
    CHECK(same_outputs(y_rm, y_rf) == 0);
    CHECK(r1.value == Approx(r2.value).epsilon(1e-12));
    CHECK(r1.zero_elements == r2.zero_elements);
    CHECK(r1.zero_groups == r2.zero_groups);
    CHECK(r1.zero_groups > 0);  // some groups die, some survive
    CHECK(r1.zero_groups < grp.group_count(rm));
  }
  const auto kl = sparsereg::kl_to_target::on_group_norms(0.7, grp);
  std::vector<T> g_rm(n, T(0)), g_rf(n, T(0));
  sparsereg::add_gradient(kl.fresh(), rm, sparsereg::view<T>(g_rm.data(), dims));
  sparsereg::add_gradient(kl.fresh(), rf, sparsereg::view<T>(g_rf.data(), dims, ref_strides));
  CHECK(same_outputs(g_rm, g_rf) == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("norms of runs crossing groups, eight runs per lane at a time, equal a contiguous layout's bits",
                   "[sweep]", float, double) {
  // A row-major weight too tall for column tiles (rows x 256 columns above 256 KiB) takes the
  // two-pass path, whose runs cross groups: up to 64 runs wait and each lane takes its 8 at
  // once; the runs after the last full batch (rows mod 64, fewer than 8 per lane) go one at a
  // time. The same values stored column-major make every group one contiguous run.
  using T = TestType;
  for (const std::size_t rows : {603u, 640u}) {
    for (const std::size_t cols : {37u, 5u}) {
      INFO("fc " << rows << " x " << cols << ", input-neuron groups");
      check_crossing_against_contiguous<T>({rows, cols}, {1, static_cast<std::ptrdiff_t>(rows)},
                                           sparsereg::groups::input_neurons(),
                                           7u + static_cast<unsigned>(rows + cols),
                                           [cols](std::size_t f) { return f % cols % 3 == 0; });
    }
  }
  // More groups than blocks (256), so a block decides several groups from lanes combined a block
  // at a time (combine_lane_rows); 300 rows keep it off the column tiles.
  INFO("fc 300 x 600, input-neuron groups");
  check_crossing_against_contiguous<T>({300, 600}, {1, 300}, sparsereg::groups::input_neurons(), 17u,
                                       [](std::size_t f) { return f % 600 % 3 == 0; });
  // Groups (a, c) of an A x B x C tensor: the runs along c cross groups, and the groups they
  // cross change with a, so the waiting runs are taken before the next a's runs join.
  const std::size_t A = 3, B = 290, C = 20;
  INFO("3 x 290 x 20, groups by axes 0 and 2");
  const std::vector<std::ptrdiff_t> grouped = {static_cast<std::ptrdiff_t>(B * C), 1, static_cast<std::ptrdiff_t>(B)};
  check_crossing_against_contiguous<T>({A, B, C}, grouped, sparsereg::grouping::by_axes({0, 2}, 3), 99u,
                                       [](std::size_t f) { return (f / (B * C) + f % C) % 3 == 0; });
  // Groups (a, d, c) of an A x B x D x E x C tensor: the runs (along c) of one (a, b, d) cross
  // the same groups E times, then those of the next d, so runs are taken two at a time and
  // continue their groups' lanes where the visit one b earlier left them (lane = runs seen mod 8).
  INFO("3 x 290 x 2 x 2 x 20, groups by axes 0, 2 and 4");
  const std::size_t D = 2, E = 2;
  const auto st = [](std::size_t v) { return static_cast<std::ptrdiff_t>(v); };
  check_crossing_against_contiguous<T>({A, B, D, E, C}, {st(D * C * B * E), st(E), st(C * B * E), 1, st(B * E)},
                                       sparsereg::grouping::by_axes({0, 2, 4}, 5), 98u, [](std::size_t f) {
                                         return (f / (B * D * E * C) + f / (C * E) % D + f % C) % 3 == 0;
                                       });
}

namespace {

/// Normal values with the soft threshold's edges at t mixed in: |x| == t exactly (|x| - t = +0),
/// the floats next to it on either side, zeros of both signs, infinities, and a few NaNs of
/// either sign (rare, so most lanes and groups stay finite).
template <class T>
std::vector<T> threshold_edges(std::size_t n, T t, unsigned seed) {
  auto v = random_values<T>(n, seed);
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  const T edge[] = {t, -t, std::nextafter(t, T(0)), -std::nextafter(t, inf), T(0), -T(0), inf, -inf};
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < n; ++i) {
    const auto r = rng() % 400;
    if (r < 100) v[i] = edge[r % 8];
    if (r == 100) v[i] = nan;
    if (r == 101) v[i] = -nan;
  }
  return v;
}

template <std::size_t M, bool Abs, bool Zeros, class T,
          sparsereg::detail::prefetch_next Prefetch = sparsereg::detail::prefetch_next::none>
void check_magnitude_runs(std::size_t n, T t) {
  using namespace sparsereg::detail;
  const auto x = threshold_edges<T>(M * n + 5, t, 41u + static_cast<unsigned>(n));
  const soft_magnitude<T> pre{t};
  const T* xs[M];
  for (std::size_t m = 0; m < M; ++m) xs[m] = x.data() + 5 + m * n;  // unaligned, back to back
  lane_sums<T> acc[M];
  accumulate_runs<M, Abs, Zeros, Prefetch>(xs, n, pre, acc);
  for (std::size_t m = 0; m < M; ++m) {
    INFO("M " << M << ", Abs " << Abs << ", Zeros " << Zeros << ", Prefetch " << static_cast<int>(Prefetch) << ", n "
              << n << ", t " << t << ", run " << m);
    lane_sums<T> ref;
    accumulate_run(xs[m], 1, n, 0, pre, ref);
    // A lane that met a NaN is NaN in both, but which NaN (sign, payload) depends on the order
    // of the operands each loop's additions take, in the generic loops too (the default build
    // vectorizes accumulate_runs and not accumulate_run); no result shows it. Else the same bits.
    const auto same = [](T a, T b) { return same_bits(a, b) || (std::isnan(a) && std::isnan(b)); };
    for (std::size_t j = 0; j < lanes; ++j) {
      CHECK(same(acc[m].sq[j], ref.sq[j]));
      CHECK(same(acc[m].ab[j], Abs ? ref.ab[j] : T(0)));
    }
    CHECK(acc[m].zeros == (Zeros ? ref.zeros : 0u));
  }
}

template <class T>
T factor_at(std::size_t i) {
  const T f[] = {T(0.75), T(1), T(0), T(0.3), std::numeric_limits<T>::quiet_NaN(), T(1e-30)};
  return f[i % 6];
}

}  // namespace

TEMPLATE_TEST_CASE("accumulate_runs with the soft-threshold magnitude gives each run the lanes of accumulate_run",
                   "[sweep]", float, double) {
  // The sparse group lasso's norm pass (soft_magnitude, AVX-512 form for float): runs whose
  // length leaves every mix of 16-element steps, a lone block of 8 and a tail, values on and
  // around the threshold, zeros of both signs, infinities and NaNs.
  using T = TestType;
  using sparsereg::detail::prefetch_next;
  for (const T t : {T(0.25), std::numeric_limits<T>::infinity(), std::numeric_limits<T>::denorm_min()}) {
    for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 15u, 16u, 17u, 23u, 24u, 25u, 31u, 32u, 40u, 1029u}) {
      check_magnitude_runs<8, true, true, T>(n, t);
      check_magnitude_runs<8, false, true, T>(n, t);
      check_magnitude_runs<8, true, false, T>(n, t);
      check_magnitude_runs<8, false, false, T>(n, t);
      check_magnitude_runs<4, true, true, T>(n, t);
      check_magnitude_runs<8, true, true, T, prefetch_next::whole>(n, t);
      check_magnitude_runs<8, true, true, T, prefetch_next::first_half>(n, t);
    }
  }
}

namespace {

/// soft_magnitude under another type: the generic loops, never the AVX-512 forms, take it.
template <class T>
struct magnitude_generic {
  T t;
  T operator()(T v) const noexcept { return sparsereg::detail::soft_threshold_magnitude(v, t); }
};

/// accumulate_crossing_runs of `runs` rows of m floats into lanes that already hold sums, with
/// soft_magnitude (the AVX-512 form where built) against the generic loop, bit for bit.
template <bool Abs, bool Zeros, class T>
void check_crossing_magnitude(std::size_t runs, std::size_t m, std::size_t first, T t) {
  using namespace sparsereg::detail;
  const std::size_t ld = m + 3;  // lane j of group k at j * ld + k
  const auto x = threshold_edges<T>(runs * (m + 1) + 1, t, 53u + static_cast<unsigned>(runs * 64 + m));
  std::vector<const T*> rows(runs);
  for (std::size_t i = 0; i < runs; ++i) rows[i] = x.data() + 1 + i * (m + 1);  // unaligned
  const auto start = random_values<T>(2 * lanes * ld, 61u + static_cast<unsigned>(m));
  std::vector<T> sq(start.begin(), start.begin() + static_cast<std::ptrdiff_t>(lanes * ld));
  std::vector<T> ab(start.begin() + static_cast<std::ptrdiff_t>(lanes * ld), start.end());
  for (auto& v : ab) v = std::fabs(v);
  std::vector<std::uint32_t> zc(m);
  for (std::size_t k = 0; k < m; ++k) zc[k] = static_cast<std::uint32_t>(7 * k);
  auto sq_ref = sq, ab_ref = ab;
  auto zc_ref = zc;
  accumulate_crossing_runs<Abs, Zeros>(rows.data(), runs, first, m, soft_magnitude<T>{t}, sq.data(),
                                       Abs ? ab.data() : nullptr, ld, Zeros ? zc.data() : nullptr);
  accumulate_crossing_runs<Abs, Zeros>(rows.data(), runs, first, m, magnitude_generic<T>{t}, sq_ref.data(),
                                       Abs ? ab_ref.data() : nullptr, ld, Zeros ? zc_ref.data() : nullptr);
  INFO("Abs " << Abs << ", Zeros " << Zeros << ", runs " << runs << ", m " << m << ", first " << first << ", t " << t);
  // Which NaN a lane that met one holds depends on the operand order of its additions (the
  // generic loop adds |u|, the AVX-512 form u itself); no result shows it. Else the same bits.
  std::size_t differ = 0;
  for (std::size_t i = 0; i < sq.size(); ++i) {
    differ += !(same_bits(sq[i], sq_ref[i]) || (std::isnan(sq[i]) && std::isnan(sq_ref[i])));
    differ += !(same_bits(ab[i], ab_ref[i]) || (std::isnan(ab[i]) && std::isnan(ab_ref[i])));
  }
  CHECK(differ == 0);
  CHECK(zc == zc_ref);
}

}  // namespace

TEMPLATE_TEST_CASE("runs crossing groups with the soft-threshold magnitude give the generic loop's lanes",
                   "[sweep]", float, double) {
  // The sparse group lasso's norm pass over column groups (soft_magnitude_lane_runs for float with
  // AVX-512): each lane takes its runs eight at a time and the rest in one call; every count of
  // runs left over (0-7 per lane), column counts that leave every 16-column tail, lanes already
  // holding sums and counts, values on and around the threshold, infinities and NaNs.
  using T = TestType;
  for (const T t : {T(0.25), std::numeric_limits<T>::infinity(), std::numeric_limits<T>::denorm_min()}) {
    for (const std::size_t runs : {1u, 7u, 9u, 17u, 63u, 64u, 70u, 80u, 83u, 135u}) {
      for (const std::size_t m : {1u, 15u, 16u, 17u, 40u}) {
        check_crossing_magnitude<true, true, T>(runs, m, runs % 8, t);
        check_crossing_magnitude<false, true, T>(runs, m, 0, t);
        check_crossing_magnitude<true, false, T>(runs, m, 5, t);
        check_crossing_magnitude<false, false, T>(runs, m, 0, t);
      }
    }
  }
}

TEMPLATE_TEST_CASE("scale_run with the soft threshold writes the bits of the element-by-element form", "[sweep]",
                   float, double) {
  // The write pass of the sparse group lasso's prox (AVX-512 form for contiguous float runs):
  // one factor for the run (zero, one, NaN, tiny) or a row of them, in place and out of place.
  using T = TestType;
  using namespace sparsereg::detail;
  using unit = std::integral_constant<std::ptrdiff_t, 1>;
  for (const T t : {T(0.25), std::numeric_limits<T>::infinity()}) {
    for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 31u, 33u, 1029u}) {
      const auto x = threshold_edges<T>(n + 3, t, 61u + static_cast<unsigned>(n));
      std::vector<T> row(n + 1);
      for (std::size_t i = 0; i < row.size(); ++i) row[i] = factor_at<T>(i);
      const soft_threshold_op<T> pre{t};
      // A NaN times a NaN may give either one's payload and sign; anything else must match.
      const auto same = [](T a, T b) { return same_bits(a, b) || (std::isnan(a) && std::isnan(b)); };
      for (std::size_t k = 0; k < 6; ++k) {
        INFO("t " << t << ", n " << n << ", factor " << factor_at<T>(k));
        std::vector<T> y(n + 3, T(7)), in_place(x);
        scale_run(pre, x.data() + 3, unit{}, y.data() + 3, unit{}, n, uniform_factor<T>{factor_at<T>(k)});
        scale_run(pre, in_place.data() + 3, unit{}, in_place.data() + 3, unit{}, n, uniform_factor<T>{factor_at<T>(k)});
        std::size_t differ = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const T want = soft_threshold_positive(x[3 + i], t) * factor_at<T>(k);
          differ += !same(y[3 + i], want) + !same(in_place[3 + i], want);
        }
        CHECK(differ == 0);
        CHECK(same_bits(y[2], T(7)));  // nothing written before the run
      }
      INFO("t " << t << ", n " << n << ", a row of factors");
      std::vector<T> y(n + 3, T(7));
      scale_run(pre, x.data() + 3, unit{}, y.data() + 3, unit{}, n, indexed_factor<T, unit>{row.data() + 1, {}});
      std::size_t differ = 0;
      for (std::size_t i = 0; i < n; ++i)
        differ += !same(y[3 + i], soft_threshold_positive(x[3 + i], t) * row[1 + i]);
      CHECK(differ == 0);
    }
  }
}

TEMPLATE_TEST_CASE("sparse group lasso prox on contiguous groups equals the strided layout's bits, edges included",
                   "[sweep]", float, double) {
  // Rows of a row-major matrix are contiguous groups (the AVX-512 norm and write passes for
  // float); the same matrix stored column-major makes them strided (the generic loops). Group
  // lengths cover 16-element steps, a lone block of 8 and tails; the values the threshold's edges.
  using T = TestType;
  const std::size_t G = 19;
  for (std::size_t L : {1u, 8u, 9u, 16u, 17u, 24u, 33u, 83u, 257u}) {
    auto w = threshold_edges<T>(G * L, T(0.02), 71u + static_cast<unsigned>(L));
    const auto small = random_values<T>(L, 3u);
    for (std::size_t g = 0; g < G; g += 3)  // every third group small and finite: it dies
      for (std::size_t k = 0; k < L; ++k) w[g * L + k] = small[k] * T(0.001);
    std::vector<T> cm(w.size());
    for (std::size_t g = 0; g < G; ++g)
      for (std::size_t k = 0; k < L; ++k) cm[k * G + g] = w[g * L + k];
    const std::vector<std::size_t> shape = {G, L};
    const std::vector<std::ptrdiff_t> cm_strides = {1, static_cast<std::ptrdiff_t>(G)};
    const sparsereg::view<const T> rm_v(w.data(), shape), cm_v(cm.data(), shape, cm_strides);
    // step * lambda_l1 = 0.02, the threshold the edges were placed at.
    const auto sgl = sparsereg::sparse_group_lasso(0.3, 0.04, sparsereg::groups::output_neurons());
    std::vector<T> y_rm(w.size()), y_cm(w.size());
    const auto r1 = sparsereg::prox(sgl, rm_v, sparsereg::view<T>(y_rm.data(), shape), 0.5);
    const auto r2 = sparsereg::prox(sgl, cm_v, sparsereg::view<T>(y_cm.data(), shape, cm_strides), 0.5);
    std::vector<T> in_place(w);
    const sparsereg::view<T> ip(in_place.data(), shape);
    const auto r3 = sparsereg::prox(sgl, sparsereg::view<const T>(ip), ip, 0.5);
    INFO("groups of " << L);
    std::size_t differ = 0;
    for (std::size_t g = 0; g < G; ++g)
      for (std::size_t k = 0; k < L; ++k) {
        const T a = y_rm[g * L + k], b = y_cm[k * G + g], c = in_place[g * L + k];
        // NaN groups: the factor is NaN, and a NaN element times it may keep either payload.
        differ += !(same_bits(a, b) || (std::isnan(a) && std::isnan(b))) + !same_bits(a, c);
      }
    CHECK(differ == 0);
    CHECK((r1.value == Approx(r2.value).epsilon(1e-12) || (std::isnan(r1.value) && std::isnan(r2.value))));
    CHECK(same_bits(r1.value, r3.value));
    CHECK(r1.zero_elements == r2.zero_elements);
    CHECK(r1.zero_elements == r3.zero_elements);
    CHECK(r1.zero_groups == r2.zero_groups);
    CHECK(r1.zero_groups >= (G + 2) / 3);  // the small groups, and some others of one element
    CHECK(r1.zero_groups < G);
  }
}
