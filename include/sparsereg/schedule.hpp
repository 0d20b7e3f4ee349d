// schedule: a factor s(step) >= 0 that multiplies a penalty's lambda(s) at training step `step`
// (the regularizer applies it through `penalty.scaled(s(step))`).
//
//   constant()                 s(t) = 1 (or the given value)
//   linear_warmup(n)           s(t) = min(1, (t + 1) / n): the first prox step already uses 1/n of
//                              the penalty and step n-1 the full penalty; n = 0 means no warm-up.
//                              Ramping lambda up lets the network fit before weights are pushed
//                              to zero (a fixed lambda from step 0 zeroes groups that only look
//                              small because the network has not learned yet).
//   step_decay(every, f)       s(t) = f^floor(t / every): e.g. halve lambda every 10k steps.
//                              f > 1 (growth) is allowed; a step at which f^k overflows throws
//                              std::invalid_argument naming schedule::step_decay, the step and f
//                              (it does not saturate: a lambda of DBL_MAX is no more meaningful).
//   custom(fn)                 any user function; its values are checked (finite, >= 0) when used.
//   a * b                      pointwise product, e.g. linear_warmup(1000) * step_decay(50000, 0.5);
//                              a product that overflows throws, naming the product and both factors.
//
// A schedule is configuration, not state: the regularizer's step counter is the only state, so a
// restored checkpoint reproduces the same factors.
#pragma once

#include <cmath>       // std::pow, std::isinf
#include <cstddef>     // std::size_t
#include <functional>  // std::function
#include <string>      // std::to_string
#include <utility>     // std::move

#include "errors.hpp"

namespace sparsereg {

class schedule {
 public:
  /// s(t) = 1 (the default schedule).
  schedule() = default;

  /// s(t) = value for every step (value finite, >= 0).
  static schedule constant(double value = 1.0) {
    detail::require_nonnegative("schedule::constant", "value", value);
    schedule s;
    s.kind_ = kind::constant;
    s.a_ = value;
    return s;
  }

  /// s(t) = min(1, (t + 1) / steps); steps = 0 is the constant 1.
  static schedule linear_warmup(std::size_t steps) {
    schedule s;
    if (steps == 0) return s;
    s.kind_ = kind::warmup;
    s.n_ = steps;
    return s;
  }

  /// s(t) = factor^floor(t / every). every > 0, factor finite and >= 0.
  static schedule step_decay(std::size_t every, double factor) {
    if (every == 0) detail::throw_argument("schedule::step_decay", "every must be > 0, got 0");
    detail::require_nonnegative("schedule::step_decay", "factor", factor);
    schedule s;
    s.kind_ = kind::decay;
    s.n_ = every;
    s.a_ = factor;
    return s;
  }

  /// Any function of the step; each value it returns must be finite and >= 0 (checked when used).
  static schedule custom(std::function<double(std::size_t)> fn) {
    if (!fn) detail::throw_argument("schedule::custom", "fn is empty");
    schedule s;
    s.kind_ = kind::function;
    s.fn_ = std::move(fn);
    return s;
  }

  /// Pointwise product of two schedules. Each operand checks its own factor (so an error names
  /// the operand's kind); the product itself is only checked for overflow.
  friend schedule operator*(const schedule& a, const schedule& b) {
    if (a.kind_ == kind::constant && a.a_ == 1.0) return b;
    if (b.kind_ == kind::constant && b.a_ == 1.0) return a;
    schedule s;
    s.kind_ = kind::product;
    s.fn_ = [a, b](std::size_t t) {
      const double x = a(t), y = b(t);
      const double v = x * y;
      if (std::isinf(v))
        detail::throw_argument("schedule::operator*", "the product of two schedules overflows at step " +
                                                          std::to_string(t) + ": " + detail::number_text(x) + " * " +
                                                          detail::number_text(y));
      return v;
    };
    return s;
  }

  /// The factor at step `step`.
  double operator()(std::size_t step) const {
    switch (kind_) {
      case kind::constant: return a_;
      // n_ >= 1, so n_ - 1 does not wrap (step + 1 would at SIZE_MAX, which set_step can reach).
      case kind::warmup: return step >= n_ - 1 ? 1.0 : static_cast<double>(step + 1) / static_cast<double>(n_);
      case kind::decay: {
        const double v = std::pow(a_, static_cast<double>(step / n_));
        if (std::isinf(v))
          detail::throw_argument("schedule::step_decay",
                                 "factor^k overflows at step " + std::to_string(step) + " (factor " +
                                     detail::number_text(a_) + ", k = floor(step / every) = " +
                                     std::to_string(step / n_) + "); factors must be finite");
        return v;
      }
      case kind::product: return fn_(step);
      case kind::function: {
        const double v = fn_(step);
        if (!(v >= 0.0) || std::isinf(v))
          detail::throw_argument("schedule", "custom schedule returned " + detail::number_text(v) + " at step " +
                                                 std::to_string(step) + "; factors must be finite and >= 0");
        return v;
      }
    }
    return 1.0;
  }

  /// True for the constant-1 schedule (the regularizer skips scaling then).
  bool is_identity() const noexcept { return kind_ == kind::constant && a_ == 1.0; }

 private:
  enum class kind { constant, warmup, decay, function, product };
  kind kind_ = kind::constant;
  double a_ = 1.0;
  std::size_t n_ = 0;
  std::function<double(std::size_t)> fn_;
};

}  // namespace sparsereg
