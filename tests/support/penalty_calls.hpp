// Small helpers shared by the non-separable penalty tests (kl_gaussian, kl_to_target): value and
// gradient of a flat vector, normal samples, and "throws std::invalid_argument naming X".
#pragma once

#include <catch2/catch.hpp>

#include <sparsereg/view.hpp>

#include <cstddef>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace sparsereg_test {

template <class P, class T>
double value_of(const P& p, const std::vector<T>& w) {
  return sparsereg::value(p, sparsereg::view<const T>(w.data(), {w.size()}));
}

template <class P, class T>
std::vector<T> gradient_of(const P& p, const std::vector<T>& w) {
  std::vector<T> g(w.size(), T(0));
  sparsereg::add_gradient(p, sparsereg::view<const T>(w.data(), {w.size()}), sparsereg::view<T>(g.data(), {g.size()}));
  return g;
}

/// n draws of N(mu, sigma^2) from mt19937_64(seed).
inline std::vector<double> normal_sample(std::size_t n, double mu, double sigma, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(mu, sigma);
  std::vector<double> w(n);
  for (auto& x : w) x = z(rng);
  return w;
}

inline bool message_has(const std::invalid_argument& e, const std::string& s) {
  return std::string(e.what()).find(s) != std::string::npos;
}

template <class F>
void require_throws_naming(F&& f, const std::string& name) {
  try {
    f();
    FAIL("expected std::invalid_argument naming " << name);
  } catch (const std::invalid_argument& e) {
    INFO(e.what());
    CHECK(message_has(e, name));
  }
}

}  // namespace sparsereg_test
