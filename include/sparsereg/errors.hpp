// Error reporting shared by every sparsereg header.
//
// Bad arguments throw std::invalid_argument whose message names the function, the argument and
// its value; the message is built in a cold out-of-line-style helper so hot headers stay light.
#pragma once

#include <cmath>      // std::isnan, std::isinf, std::fabs, std::floor
#include <cstdio>     // std::snprintf
#include <cstddef>    // std::size_t
#include <cstdlib>    // std::strtod
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string, std::to_string

namespace sparsereg {
namespace detail {

[[noreturn]] inline void throw_argument(const char* where, const std::string& what) {
  throw std::invalid_argument(std::string("sparsereg::") + where + ": " + what);
}

/// The shortest text that reads back as v: -1 -> "-1", 0.1 -> "0.1", 1e20 -> "1e+20",
/// -1e-09 -> "-1e-09". Whole numbers below 1e15 are written out (100, not %g's "1e+02").
inline std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  if (std::fabs(v) < 1e15 && v == std::floor(v)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  for (int digits = 1; digits <= 17; ++digits) {  // 17 significant digits always read back
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
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
