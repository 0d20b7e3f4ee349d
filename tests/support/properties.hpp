// Catch2 property checks shared by the penalty tests of every kind (separable or grouped).
//
// API (namespace sparsereg_test):
//   check_nonexpansive_trials<T>(pen, ...)  ||prox(a) - prox(b)|| <= ||a - b|| on random pairs
//   central_difference_error(pen, x, shape, h) relative gradient error against central differences
#pragma once

#include <catch2/catch.hpp>

#include <sparsereg/penalty.hpp>
#include <support/reference.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace sparsereg_test {

/// Nonexpansiveness of pen's prox (step `step`) on `trials` random pairs: a from
/// random_grouped_values(members), b = a + normal noise of scale 1 (even trials) or 0.01 (odd:
/// nearby points, where rounding matters most). Each output carries at most prox_tolerance of
/// error and the errors of both add: slack 2 sqrt(n) prox_tolerance<T>(tol_group_size,
/// max|a|,|b| + extra_scale).
template <class T, class P>
void check_nonexpansive_trials(const P& pen, const std::vector<std::size_t>& shape,
                               const std::vector<std::vector<std::size_t>>& members, std::mt19937& rng, int trials,
                               double step, std::size_t tol_group_size, ld extra_scale) {
  const std::size_t n = product(shape);
  for (int trial = 0; trial < trials; ++trial) {
    CAPTURE(trial);
    const auto a = random_grouped_values<T>(members, n, rng);
    auto b = a;
    std::normal_distribution<float> d(0.0f, trial % 2 ? 0.01f : 1.0f);
    for (auto& v : b) v = static_cast<T>(static_cast<float>(v) + d(rng));
    std::vector<T> pa(n), pb(n);
    sparsereg::prox(pen, sparsereg::view<const T>(a.data(), shape), sparsereg::view<T>(pa.data(), shape), step);
    sparsereg::prox(pen, sparsereg::view<const T>(b.data(), shape), sparsereg::view<T>(pb.data(), shape), step);
    const ld slack =
        2 * std::sqrt(static_cast<ld>(n)) * prox_tolerance<T>(tol_group_size, std::max(max_abs(a), max_abs(b)) + extra_scale);
    CHECK(distance(pa, pb) <= distance(a, b) + slack);
  }
}

/// Relative error ||g - fd|| / ||g + fd|| of pen's gradient g at x (row-major values of a tensor
/// of `shape`, in double) against central differences fd_i = (R(x + h e_i) - R(x - h e_i)) / 2h.
template <class P>
ld central_difference_error(const P& pen, const std::vector<double>& x, const std::vector<std::size_t>& shape,
                            double h) {
  const std::size_t n = x.size();
  std::vector<double> g(n, 0.0);
  sparsereg::add_gradient(pen, sparsereg::view<const double>(x.data(), shape), sparsereg::view<double>(g.data(), shape));
  ld num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    const double fd = (sparsereg::value(pen, sparsereg::view<const double>(xp.data(), shape)) -
                       sparsereg::value(pen, sparsereg::view<const double>(xm.data(), shape))) /
                      (2 * h);
    num += (g[i] - fd) * (g[i] - fd);
    den += (g[i] + fd) * (g[i] + fd);
  }
  return std::sqrt(num / den);
}

}  // namespace sparsereg_test
