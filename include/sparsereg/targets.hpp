// Target densities for the KL penalties (penalties/kl_to_target.hpp, penalties/kl_gaussian.hpp).
//
// A target is a zero-mean density on the real line, described by its family and its scales:
//   spike_and_slab(pi, s0, s1)  pi * N(0, s0^2) + (1 - pi) * N(0, s1^2), 0 < s0 < s1, pi in (0, 1):
//                               most mass near zero (the spike) and a wide slab for the survivors,
//                               the "skewed" shape of Pandit & Banday's abstract (our reading).
//   laplace(b)                  exp(-|x| / b) / (2b).
//   gaussian(s)                 N(0, s^2).
//   custom(f, scale)            f(x / scale) / scale for any non-negative callable f.
// Scales are absolute, or relative: multiples of a reference scale measured on the tensor the
// first time the penalty sees it (its standard deviation; docs/math.md).
//
// What the histogram estimator needs from a target is its mass under each bin's hat function,
//   m_b = integral f(x) * hat_b(x) dx,   hat_b(x) = max(0, 1 - |x - c_b| / h),
// restricted to the support [lo, hi]: the expected linear-binning histogram of a sample drawn from
// the target. Built-in families do it in closed form from the CDF and the partial first moment;
// custom densities with 4-point Gauss-Legendre quadrature on each bin interval.
#pragma once

#include <cmath>       // std::erfc, std::exp, std::expm1, std::sqrt, std::isfinite
#include <cstddef>     // std::size_t, std::ptrdiff_t
#include <cstdint>     // std::uint8_t, std::uint64_t
#include <cstring>     // std::memcpy
#include <stdexcept>   // std::runtime_error
#include <vector>      // std::vector
#include <functional>  // std::function
#include <limits>      // std::numeric_limits
#include <string>      // std::string
#include <utility>     // std::move

#include "errors.hpp"
#include "view.hpp"
#include "detail/plan.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace sparsereg {

/// Whether a target's scales are absolute or multiples of the tensor's reference scale.
enum class scale_mode {
  absolute,  ///< scales are in the weights' units
  relative   ///< scales multiply the reference scale measured at first use (see the penalties)
};

class target {
 public:
  enum class family { spike_and_slab, laplace, gaussian, custom };

  /// pi * N(0, spike^2) + (1 - pi) * N(0, slab^2); requires 0 < spike < slab and 0 < pi < 1.
  static target spike_and_slab(double pi, double spike_scale, double slab_scale, scale_mode mode = scale_mode::relative) {
    const char* where = "target::spike_and_slab";
    if (!(pi > 0.0 && pi < 1.0)) detail::throw_argument(where, "pi must lie in (0, 1), got " + detail::number_text(pi));
    detail::require_positive(where, "spike_scale", spike_scale);
    detail::require_positive(where, "slab_scale", slab_scale);
    if (!(spike_scale < slab_scale))
      detail::throw_argument(where, "spike_scale (" + detail::number_text(spike_scale) +
                                        ") must be smaller than slab_scale (" + detail::number_text(slab_scale) + ")");
    target t(family::spike_and_slab, mode);
    t.pi_ = pi;
    t.s0_ = spike_scale;
    t.s1_ = slab_scale;
    return t;
  }

  /// Laplace density exp(-|x|/b) / (2b), b > 0.
  static target laplace(double scale, scale_mode mode = scale_mode::relative) {
    detail::require_positive("target::laplace", "scale", scale);
    target t(family::laplace, mode);
    t.s1_ = scale;
    return t;
  }

  /// N(0, scale^2).
  static target gaussian(double scale, scale_mode mode = scale_mode::relative) {
    detail::require_positive("target::gaussian", "scale", scale);
    target t(family::gaussian, mode);
    t.s1_ = scale;
    return t;
  }

  /// density(x / scale) / scale for a user density (need not be normalized: the discretized
  /// target is renormalized on the support). It must return finite values >= 0 and vary slowly
  /// on the scale of one bin (it is integrated with 4 Gauss-Legendre nodes per bin interval).
  static target custom(std::function<double(double)> density, double scale = 1.0,
                       scale_mode mode = scale_mode::absolute) {
    if (!density) detail::throw_argument("target::custom", "density is empty");
    detail::require_positive("target::custom", "scale", scale);
    target t(family::custom, mode);
    t.s1_ = scale;
    t.density_ = std::move(density);
    return t;
  }

  family kind() const noexcept { return family_; }
  scale_mode mode() const noexcept { return mode_; }
  bool is_relative() const noexcept { return mode_ == scale_mode::relative; }
  double pi() const noexcept { return pi_; }
  double spike_scale() const noexcept { return s0_; }
  /// The slab scale (spike_and_slab) or the only scale (other families).
  double scale() const noexcept { return s1_; }

  /// Density at x, scales multiplied by `unit` (1 for absolute targets).
  double density(double x, double unit = 1.0) const {
    switch (family_) {
      case family::spike_and_slab:
        return pi_ * normal_pdf(x, s0_ * unit) + (1.0 - pi_) * normal_pdf(x, s1_ * unit);
      case family::laplace: {
        const double b = s1_ * unit;
        return std::exp(-std::fabs(x) / b) / (2.0 * b);
      }
      case family::gaussian: return normal_pdf(x, s1_ * unit);
      default: {
        const double s = s1_ * unit;
        return density_(x / s) / s;
      }
    }
  }

  /// out[b] = integral over [lo, lo + (bins-1)*h] of density(x) * hat_b(x) dx for the grid
  /// c_b = lo + b*h (b < bins), scales multiplied by `unit`. Not normalized.
  void hat_masses(double lo, double h, std::size_t bins, double unit, double* out) const {
    std::vector<double> scratch;
    hat_masses(lo, h, bins, unit, out, scratch);
  }
  /// The same, with a caller-owned scratch buffer (no allocation once it has grown). Gaussian
  /// families evaluate erfc and exp once per grid point and scale (neighbouring intervals share
  /// an end), half of what interval by interval costs; the values are the same. A spike-and-slab
  /// also skips the spike on intervals where it is provably below half a unit in the last place
  /// of the slab's share (negligible_spike_from), which leaves every output bit unchanged;
  /// `every_spike_point` = true evaluates it everywhere (the tests compare the two).
  void hat_masses(double lo, double h, std::size_t bins, double unit, double* out, std::vector<double>& scratch,
                  bool every_spike_point = false) const {
    for (std::size_t b = 0; b < bins; ++b) out[b] = 0.0;
    const auto add = [&](std::size_t k, const moments& m) {
      // integral f * (x - a)/h goes to the right centre, the rest of integral f to the left one.
      const double right = m.first / h;
      out[k] += m.mass - right;
      out[k + 1] += right;
    };
    if (family_ != family::spike_and_slab && family_ != family::gaussian) {
      for (std::size_t k = 0; k + 1 < bins; ++k)
        add(k, interval(lo + static_cast<double>(k) * h, lo + static_cast<double>(k + 1) * h, unit));
      return;
    }
    // Point k (k < bins) holds gauss_at(|c_k|, s_j) for each component j; point `bins` holds |0|.
    const std::size_t nc = family_ == family::spike_and_slab ? 2 : 1;
    const double sc[2] = {(nc == 2 ? s0_ : s1_) * unit, s1_ * unit};
    scratch.resize(2 * nc * (bins + 1));
    const auto pt = [&](std::size_t k, std::size_t j) {
      return gauss_point{scratch[2 * (k * nc + j)], scratch[2 * (k * nc + j) + 1]};
    };
    // Intervals whose end nearer zero is at |x| >= cut take no spike term; a point then needs the
    // spike only if it is the far end of an interval that does (|c| < cut + h; the margin covers
    // the rounding of the grid points). Points left out are NaN, so a use of one would show.
    const double cut = nc == 2 && !every_spike_point ? negligible_spike_from(lo, h, bins, unit)
                                                     : std::numeric_limits<double>::infinity();
    const double far = cut + 2.0 * h + 1e-12 * ((lo < 0.0 ? -lo : lo) + static_cast<double>(bins) * h);
    for (std::size_t k = 0; k <= bins; ++k) {
      const double c = k < bins ? lo + static_cast<double>(k) * h : 0.0;
      const double x = c < 0.0 ? -c : c;
      for (std::size_t j = 0; j < nc; ++j) {
        const bool skip = nc == 2 && j == 0 && x >= far;
        const gauss_point g = skip ? gauss_point{std::numeric_limits<double>::quiet_NaN(),
                                                 std::numeric_limits<double>::quiet_NaN()}
                                   : gauss_at(x, sc[j]);
        scratch[2 * (k * nc + j)] = g.e;
        scratch[2 * (k * nc + j) + 1] = g.p;
      }
    }
    // right_side(a, b) with a, b the points ia, ib (a >= 0 or a = -0.0, as interval() passes them).
    const auto right = [&](double a, std::size_t ia, std::size_t ib) {
      if (nc == 1) return gauss_between(a, sc[0], pt(ia, 0), pt(ib, 0));
      // pi * 0 + x is x exactly: the same sum as with the spike's (negligible) moments.
      const moments m0 = a >= cut ? moments{} : gauss_between(a, sc[0], pt(ia, 0), pt(ib, 0));
      const moments m1 = gauss_between(a, sc[1], pt(ia, 1), pt(ib, 1));
      return moments{pi_ * m0.mass + (1.0 - pi_) * m1.mass, pi_ * m0.first + (1.0 - pi_) * m1.first};
    };
    const std::size_t zero = bins;
    for (std::size_t k = 0; k + 1 < bins; ++k) {
      // interval(a, b) case by case, with the points instead of fresh erfc / exp calls.
      const double a = lo + static_cast<double>(k) * h;
      const double b = lo + static_cast<double>(k + 1) * h;
      if (a >= 0.0) {
        add(k, right(a, k, k + 1));
      } else if (b <= 0.0) {
        const moments m = right(-b, k + 1, k);
        add(k, {m.mass, (b - a) * m.mass - m.first});
      } else {
        const moments ml = right(-0.0, zero, k);
        const moments l{ml.mass, (0.0 - a) * ml.mass - ml.first};
        const moments r = right(0.0, zero, k + 1);
        add(k, {l.mass + r.mass, l.first + r.first - a * r.mass});
      }
    }
  }

  /// Text for error messages and reports, e.g. "spike_and_slab(pi=0.5, 0.1, 2, relative)".
  std::string describe() const {
    const std::string m = is_relative() ? "relative" : "absolute";
    switch (family_) {
      case family::spike_and_slab:
        return "spike_and_slab(pi=" + detail::number_text(pi_) + ", spike=" + detail::number_text(s0_) +
               ", slab=" + detail::number_text(s1_) + ", " + m + ")";
      case family::laplace: return "laplace(" + detail::number_text(s1_) + ", " + m + ")";
      case family::gaussian: return "gaussian(" + detail::number_text(s1_) + ", " + m + ")";
      default: return "custom(scale=" + detail::number_text(s1_) + ", " + m + ")";
    }
  }

 private:
  target(family f, scale_mode m) : family_(f), mode_(m) {}

  /// mass = integral_a^b f, first = integral_a^b (x - a) f, for a <= b.
  struct moments {
    double mass = 0.0;
    double first = 0.0;
  };

  static double normal_pdf(double x, double s) {
    const double z = x / s;
    return 0.3989422804014327 * std::exp(-0.5 * z * z) / s;
  }

  /// Moments of a symmetric family over [a, b] with 0 <= a <= b.
  moments right_side(double a, double b, double unit) const {
    switch (family_) {
      case family::spike_and_slab: {
        const moments m0 = gauss_right(a, b, s0_ * unit), m1 = gauss_right(a, b, s1_ * unit);
        return {pi_ * m0.mass + (1.0 - pi_) * m1.mass, pi_ * m0.first + (1.0 - pi_) * m1.first};
      }
      case family::laplace: return laplace_right(a, b, s1_ * unit);
      default: return gauss_right(a, b, s1_ * unit);
    }
  }

  // N(0, s^2) on [a, b], 0 <= a <= b: mass from erfc (no cancellation in the tail); the partial
  // first moment integral x phi_s = s^2 (phi_s(a) - phi_s(b)).
  struct gauss_point {
    double e;  // erfc(x / (s sqrt 2))
    double p;  // exp(-x^2 / (2 s^2))
  };
  static gauss_point gauss_at(double x, double s) {
    const double r = 0.7071067811865476 / s;
    const double z = x / s;
    return {std::erfc(x * r), std::exp(-0.5 * z * z)};
  }
  static moments gauss_between(double a, double s, gauss_point pa, gauss_point pb) {
    moments m;
    m.mass = 0.5 * (pa.e - pb.e);
    m.first = s * 0.3989422804014327 * (pa.p - pb.p) - a * m.mass;
    if (m.first < 0.0) m.first = 0.0;  // rounding when the interval carries (almost) no mass
    return m;
  }
  static moments gauss_right(double a, double b, double s) {
    return gauss_between(a, s, gauss_at(a, s), gauss_at(b, s));
  }

  /// A spike-and-slab's spike on [a, a + h] changes no bit of hat_masses' sums when a >= the
  /// value returned (infinity if no such a is proven). With E = exp(-a^2 / (2 s0^2)), erfc(z) <=
  /// exp(-z^2) and glibc-accurate erfc / exp (relative error << 1e-3), the computed spike moments
  /// are at most mass0 <= 0.5005 E and first0 <= 0.4004 s0 E (first0 = s0 phi-terms - a mass0, the
  /// subtracted part >= 0). On every interval of the grid (ends within |x| <= x_end) the slab's
  /// computed moments are at least L_mass = h phi1(x_end) - 2^-40 and L_first = h^2 phi1(x_end) / 2
  /// - 2^-40 (s1 + x_end) (the exact moments' lower bounds minus a generous bound on the absolute
  /// rounding of the erfc / exp differences, whose terms are <= 1 resp. <= s1 + x_end, arguments
  /// included). If pi * mass0 <= 2^-60 (1 - pi) L_mass and the same for first, the spike's term
  /// is below 2^-54 of the slab's, i.e. below half a unit in the last place of the rounded sum,
  /// which therefore equals the slab's term alone: the result is bit for bit that of evaluating
  /// the spike. The spike's bounds decrease in a and the slab's hold on the whole grid, so one
  /// cut serves every interval beyond it.
  double negligible_spike_from(double lo, double h, std::size_t bins, double unit) const {
    const double inf = std::numeric_limits<double>::infinity();
    const double s0 = s0_ * unit, s1 = s1_ * unit;
    if (!(h > 0.0) || !std::isfinite(h) || !(s0 > 0.0) || !(s1 > s0) || !std::isfinite(s1)) return inf;
    const double c_first = lo < 0.0 ? -lo : lo;
    const double c_last_signed = lo + static_cast<double>(bins - 1) * h;
    const double c_last = c_last_signed < 0.0 ? -c_last_signed : c_last_signed;
    const double x_end = (c_first > c_last ? c_first : c_last) + 2.0 * h;
    const double phi1 = 0.3989422804014327 / s1 * std::exp(-0.5 * (x_end / s1) * (x_end / s1)) * (1.0 - 1e-9);
    const double l_mass = h * phi1 - 0x1p-40;
    const double l_first = 0.5 * h * h * phi1 - 0x1p-40 * (s1 + x_end);
    if (!(l_mass > 0.0) || !(l_first > 0.0)) return inf;
    const double ratio = 0x1p-60 * (1.0 - pi_) / pi_;
    const double e_mass = ratio * l_mass / 0.5005, e_first = ratio * l_first / (0.4004 * s0);
    const double e_max = e_mass < e_first ? e_mass : e_first;
    if (!(e_max > 0.0)) return inf;
    if (e_max >= 1.0) return 0.0;
    // E(a) <= e_max for a >= s0 sqrt(-2 log e_max); the factor covers the rounding of log / sqrt.
    return s0 * std::sqrt(-2.0 * std::log(e_max)) * (1.0 + 1e-9);
  }

  // Laplace(beta) on [a, b], 0 <= a <= b, d = b - a, t = d / beta:
  //   mass  = e^{-a/beta} (1 - e^{-t}) / 2
  //   first = beta e^{-a/beta} (1 - (1 + t) e^{-t}) / 2, the bracket by its series for small t.
  static moments laplace_right(double a, double b, double beta) {
    const double t = (b - a) / beta;
    const double ea = std::exp(-a / beta);
    double g;  // 1 - (1 + t) e^{-t} = sum_{n>=2} (-1)^n (n - 1) t^n / n!
    if (t < 0.05) {
      double term = t;  // t^n / n! for n = 1
      g = 0.0;
      for (int n = 2; n <= 12; ++n) {
        term *= t / n;
        g += ((n % 2 == 0) ? 1.0 : -1.0) * (n - 1) * term;
      }
    } else {
      g = 1.0 - (1.0 + t) * std::exp(-t);
    }
    return {-0.5 * ea * std::expm1(-t), 0.5 * beta * ea * g};
  }

  moments interval(double a, double b, double unit) const {
    if (family_ == family::custom) return quadrature(a, b, unit);
    if (a >= 0.0) return right_side(a, b, unit);
    if (b <= 0.0) {
      // Mirror x -> -x: (x - a) = d - (y - (-b)) with y = -x on [-b, -a].
      const moments m = right_side(-b, -a, unit);
      return {m.mass, (b - a) * m.mass - m.first};
    }
    // Straddles 0: [a, 0] then [0, b], whose (x - a) = x + (0 - a).
    const moments l = interval(a, 0.0, unit);
    const moments r = right_side(0.0, b, unit);
    return {l.mass + r.mass, l.first + r.first - a * r.mass};
  }

  moments quadrature(double a, double b, double unit) const {
    // 4-point Gauss-Legendre on [a, b].
    static constexpr double xi[4] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526};
    static constexpr double wi[4] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538};
    const double half = 0.5 * (b - a);
    moments m;
    for (int i = 0; i < 4; ++i) {
      const double x = a + half * (1.0 + xi[i]);
      const double f = density(x, unit);
      if (!(f >= 0.0) || !std::isfinite(f))
        detail::throw_argument("target::custom", "density(" + detail::number_text(x / (s1_ * unit)) +
                                                     ") must be finite and >= 0, got " + detail::number_text(f));
      m.mass += wi[i] * half * f;
      m.first += wi[i] * half * f * (x - a);
    }
    return m;
  }

  family family_;
  scale_mode mode_;
  double pi_ = 0.0;
  double s0_ = 0.0;
  double s1_ = 1.0;
  std::function<double(double)> density_;
};

namespace detail {

/// Number of fixed chunks the KL penalties cut a tensor into: per-chunk partial results are
/// combined in chunk order, so results do not depend on the thread count.
inline constexpr std::size_t kl_chunks = 8;
/// Tensors smaller than kl_chunks * kl_min_chunk elements are one chunk.
inline constexpr std::size_t kl_min_chunk = 4096;

/// Calls f(chunk, x, stride, n) for runs of `w` in memory order; runs of one chunk are visited by
/// one thread, chunks may run in parallel (OpenMP). Returns the number of chunks used.
template <class T, class F>
std::size_t for_each_chunk(const view<T>& w, F&& f) {
  if (w.size() == 0) return 0;
  const plan p = make_plan(w, w, 0u);
  const plan_axis& r = p.run();
  if (p.rank == 1) {
    const std::size_t n = r.extent;
    const std::size_t nc = n < kl_chunks * kl_min_chunk ? 1 : kl_chunks;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if(nc > 1)
#endif
    for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(nc); ++c) {
      const std::size_t lo = n * static_cast<std::size_t>(c) / nc, hi = n * (static_cast<std::size_t>(c) + 1) / nc;
      f(static_cast<std::size_t>(c), w.data() + static_cast<std::ptrdiff_t>(lo) * r.stride_a, r.stride_a, hi - lo);
    }
    return nc;
  }
  const std::size_t e0 = p.axes[0].extent;
  const std::size_t nc = p.size < kl_chunks * kl_min_chunk ? 1 : (e0 < kl_chunks ? e0 : kl_chunks);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if(nc > 1)
#endif
  for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(nc); ++c) {
    const std::size_t lo = e0 * static_cast<std::size_t>(c) / nc, hi = e0 * (static_cast<std::size_t>(c) + 1) / nc;
    for_each_run(p, 0, lo, hi, [&](const run_position& pos) {
      f(static_cast<std::size_t>(c), w.data() + pos.offset_a, r.stride_a, r.extent);
    });
  }
  return nc;
}

/// True for finite v (false for NaN and +-inf), written so it survives vectorization.
template <class T>
inline bool finite_value(T v) noexcept {
  return (v - v) == T(0);
}

/// Writes v as 8 little-endian bytes / reads it back (save_state / load_state).
inline void kl_put(std::vector<std::uint8_t>& out, double v) {
  std::uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(b >> (8 * i)));
}
inline double kl_get(const std::vector<std::uint8_t>& in, std::size_t& pos) {
  if (pos + 8 > in.size()) throw std::runtime_error("sparsereg::load_state: KL penalty state is truncated");
  std::uint64_t b = 0;
  for (int i = 0; i < 8; ++i) b |= static_cast<std::uint64_t>(in[pos + static_cast<std::size_t>(i)]) << (8 * i);
  pos += 8;
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

}  // namespace detail
}  // namespace sparsereg
