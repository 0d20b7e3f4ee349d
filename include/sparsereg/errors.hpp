// Error reporting shared by every sparsereg header.
//
// Bad arguments throw std::invalid_argument whose message names the function, the argument and
// its value; the message is built in a cold out-of-line-style helper so hot headers stay light.
#pragma once

#include <cmath>      // std::isnan, std::isinf, std::fabs
#include <cstdio>     // std::snprintf
#include <cstddef>    // std::size_t
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string, std::to_string

namespace sparsereg {
namespace detail {

[[noreturn]] inline void throw_argument(const char* where, const std::string& what) {
  throw std::invalid_argument(std::string("sparsereg::") + where + ": " + what);
}

inline std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = std::to_string(v);
  // std::to_string prints 6 decimals; keep tiny values readable.
  if (v != 0.0 && std::fabs(v) < 1e-4) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    s = buf;
  }
  return s;
}

/// Rejects NaN, infinite and negative hyper-parameters (lambda, step, weights of groups).
inline void require_nonnegative(const char* where, const char* name, double v) {
  if (!(v >= 0.0) || std::isinf(v))
    throw_argument(where, std::string(name) + " must be finite and >= 0, got " + number_text(v));
}

inline void require_positive(const char* where, const char* name, double v) {
  if (!(v > 0.0) || std::isinf(v))
    throw_argument(where, std::string(name) + " must be finite and > 0, got " + number_text(v));
}

inline void require_in_unit_interval(const char* where, const char* name, double v) {
  if (!(v >= 0.0 && v <= 1.0))
    throw_argument(where, std::string(name) + " must lie in [0, 1], got " + number_text(v));
}

}  // namespace detail
}  // namespace sparsereg
