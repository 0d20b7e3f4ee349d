// Independent slow reference implementations and property helpers for the penalty tests.
//
// Nothing here calls into sparsereg's kernels: element offsets, group membership, penalty values
// and proximal points are recomputed from the definitions, in long double, by methods that do not
// reuse the library's closed forms (bisection on monotone subdifferentials instead of the
// soft-threshold / block-shrink formulas). The only sparsereg types used are view (to hand
// tensors to the library) and grouping (built from the same description the reference uses).
//
// API (namespace sparsereg_test):
//   layout, tensor<T>            storage with a chosen memory layout (+ sentinel padding)
//   preset, all_presets()        grouping presets with their shape and independent membership
//   ref_*                        reference values and proximal points (long double)
//   prox_tolerance<T>(...)       the tolerance model of every prox property, explained below
//   verdict, check_*             property checks that report the first violation in words
#pragma once

#include <sparsereg/groups.hpp>
#include <sparsereg/view.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace sparsereg_test {

using ld = long double;

// ---------------------------------------------------------------------------------------------
// Tensors with a chosen memory layout.

enum class layout {
  contiguous,  ///< row-major, dense
  padded,      ///< row-major, but every axis' stride is larger than dense (gaps between rows)
  reversed     ///< column-major (Fortran order): the first axis varies fastest
};

inline const char* layout_name(layout l) {
  switch (l) {
    case layout::contiguous: return "contiguous";
    case layout::padded: return "padded";
    default: return "reversed";
  }
}

/// Row-major flat index -> memory offset, recomputed here (not view::offset_of_flat).
inline std::ptrdiff_t offset_of(const std::vector<std::size_t>& shape, const std::vector<std::ptrdiff_t>& strides,
                                std::size_t flat) {
  std::ptrdiff_t off = 0;
  for (std::size_t i = shape.size(); i-- > 0;) {
    off += static_cast<std::ptrdiff_t>(flat % shape[i]) * strides[i];
    flat /= shape[i];
  }
  return off;
}

inline std::size_t product(const std::vector<std::size_t>& shape) {
  std::size_t n = 1;
  for (std::size_t e : shape) n *= e;
  return n;
}

/// A tensor stored with `layout`; memory not reachable through the view holds a sentinel, so a
/// test can prove that nothing outside the view was written.
template <class T>
struct tensor {
  std::vector<std::size_t> shape;
  std::vector<std::ptrdiff_t> strides;
  std::vector<T> storage;
  static constexpr T sentinel = T(-777.25);

  tensor() = default;
  tensor(std::vector<std::size_t> shape_, layout l) : shape(std::move(shape_)), strides(shape.size()) {
    const std::size_t r = shape.size();
    std::ptrdiff_t s = 1;
    if (l == layout::reversed) {
      for (std::size_t i = 0; i < r; ++i) {
        strides[i] = s;
        s *= static_cast<std::ptrdiff_t>(shape[i]);
      }
    } else {
      const std::ptrdiff_t pad = l == layout::padded ? 1 : 0;
      for (std::size_t i = r; i-- > 0;) {
        strides[i] = s;
        s = s * static_cast<std::ptrdiff_t>(shape[i]) + pad;
      }
    }
    storage.assign(static_cast<std::size_t>(std::max<std::ptrdiff_t>(s, 1)) + 3, sentinel);
  }
  std::size_t size() const { return product(shape); }
  T& operator[](std::size_t flat) { return storage[static_cast<std::size_t>(offset_of(shape, strides, flat))]; }
  const T& operator[](std::size_t flat) const {
    return storage[static_cast<std::size_t>(offset_of(shape, strides, flat))];
  }
  sparsereg::view<T> view() { return sparsereg::view<T>(storage.data(), shape, strides); }
  sparsereg::view<const T> cview() const { return sparsereg::view<const T>(storage.data(), shape, strides); }
  /// Logical (row-major) values.
  std::vector<T> values() const {
    std::vector<T> v(size());
    for (std::size_t f = 0; f < v.size(); ++f) v[f] = (*this)[f];
    return v;
  }
  void assign(const std::vector<T>& v) {
    for (std::size_t f = 0; f < v.size(); ++f) (*this)[f] = v[f];
  }
  /// Count of storage cells that are not reachable through the view and lost their sentinel.
  std::size_t touched_padding() const {
    std::vector<bool> reachable(storage.size(), false);
    for (std::size_t f = 0; f < size(); ++f) reachable[static_cast<std::size_t>(offset_of(shape, strides, f))] = true;
    std::size_t n = 0;
    for (std::size_t k = 0; k < storage.size(); ++k)
      if (!reachable[k] && std::memcmp(&storage[k], &sentinel, sizeof(T)) != 0) ++n;
    return n;
  }
};

template <class T>
bool bitwise_equal(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// ---------------------------------------------------------------------------------------------
// Grouping presets, described independently of the library.

struct preset {
  std::string name;
  std::vector<std::size_t> shape;
  std::vector<std::size_t> axes;                  ///< identifying axes (empty + !is_explicit = whole)
  bool is_explicit = false;
  std::vector<std::vector<std::size_t>> lists;   ///< explicit groups (row-major flat indices)
  sparsereg::grouping (*make)() = nullptr;        ///< the library's named preset

  sparsereg::grouping grouping() const {
    if (is_explicit) return sparsereg::grouping::from_lists(lists);
    return make();
  }

  /// Members of every group (row-major flat indices in increasing order), groups numbered
  /// row-major over the identifying axes, or in list order for explicit groups.
  std::vector<std::vector<std::size_t>> members() const {
    if (is_explicit) return lists;
    std::size_t count = 1;
    for (std::size_t a : axes) count *= shape[a];
    std::vector<std::vector<std::size_t>> m(count);
    const std::size_t n = product(shape);
    std::vector<std::size_t> idx(shape.size());
    for (std::size_t f = 0; f < n; ++f) {
      std::size_t rest = f;
      for (std::size_t i = shape.size(); i-- > 0;) {
        idx[i] = rest % shape[i];
        rest /= shape[i];
      }
      std::size_t g = 0;
      for (std::size_t a : axes) g = g * shape[a] + idx[a];  // axes listed in increasing order
      m[g].push_back(f);
    }
    return m;
  }
};

/// Every preset on a small shape. Shapes are chosen with distinct extents so that a wrong axis
/// gives a wrong group count or membership.
inline std::vector<preset> all_presets() {
  using sparsereg::conv_layout;
  namespace G = sparsereg::groups;
  std::vector<preset> p;
  // OIHW: O=3, I=2, H=2, W=3.
  p.push_back({"oihw filters", {3, 2, 2, 3}, {0}, false, {}, [] { return G::filters(conv_layout::oihw); }});
  p.push_back({"oihw input_channels", {3, 2, 2, 3}, {1}, false, {}, [] { return G::input_channels(conv_layout::oihw); }});
  p.push_back({"oihw kernels", {3, 2, 2, 3}, {0, 1}, false, {}, [] { return G::kernels(conv_layout::oihw); }});
  p.push_back({"oihw shapes", {3, 2, 2, 3}, {1, 2, 3}, false, {}, [] { return G::shapes(conv_layout::oihw); }});
  // HWIO: H=2, W=3, I=2, O=3.
  p.push_back({"hwio filters", {2, 3, 2, 3}, {3}, false, {}, [] { return G::filters(conv_layout::hwio); }});
  p.push_back({"hwio input_channels", {2, 3, 2, 3}, {2}, false, {}, [] { return G::input_channels(conv_layout::hwio); }});
  p.push_back({"hwio kernels", {2, 3, 2, 3}, {2, 3}, false, {}, [] { return G::kernels(conv_layout::hwio); }});
  p.push_back({"hwio shapes", {2, 3, 2, 3}, {0, 1, 2}, false, {}, [] { return G::shapes(conv_layout::hwio); }});
  // FC out x in = 4 x 5.
  p.push_back({"fc output_neurons", {4, 5}, {0}, false, {}, [] { return G::output_neurons(); }});
  p.push_back({"fc input_neurons", {4, 5}, {1}, false, {}, [] { return G::input_neurons(); }});
  // Explicit irregular groups of a 3 x 4 tensor (sizes 1, 3, 5, 3; unordered indices).
  preset e{"explicit lists", {3, 4}, {}, true, {{7}, {0, 11, 5}, {3, 1, 9, 2, 10}, {4, 6, 8}}, nullptr};
  p.push_back(e);
  p.push_back({"whole", {2, 3, 4}, {}, false, {}, [] { return G::whole(); }});
  return p;
}

/// Per-group weights c_g = sqrt(|g|) (the default), from the independent membership.
inline std::vector<ld> default_weights(const std::vector<std::vector<std::size_t>>& members) {
  std::vector<ld> c;
  for (const auto& m : members) c.push_back(std::sqrt(static_cast<ld>(m.size())));
  return c;
}

// ---------------------------------------------------------------------------------------------
// Random data.

/// Values with a mix of scales per group (so some groups are shrunk to zero and some are not),
/// about 10% exact zeros and a few negative zeros. Every value is exactly representable in float.
template <class T>
std::vector<T> random_grouped_values(const std::vector<std::vector<std::size_t>>& members, std::size_t n,
                                     std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 9);
  const float scales[] = {0.05f, 0.4f, 1.0f, 2.5f};
  std::vector<T> v(n, T(0));
  for (const auto& m : members) {
    const float s = scales[pick(rng) % 4];
    for (std::size_t f : m) {
      const int k = pick(rng);
      v[f] = k == 0 ? T(0) : k == 1 && pick(rng) < 3 ? T(-0.0) : static_cast<T>(s * u(rng));
    }
  }
  return v;
}

/// Values with |v| in [lo, hi] and random signs (away from the kink at zero).
template <class T>
std::vector<T> random_away_from_zero(std::size_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::bernoulli_distribution neg(0.5);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(neg(rng) ? -u(rng) : u(rng));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Reference values (long double, straight from the definitions).

template <class T>
ld ref_l1_value(ld lambda, const std::vector<T>& w) {
  ld s = 0;
  for (T v : w) s += std::fabs(static_cast<ld>(v));
  return lambda * s;
}

template <class T>
ld ref_squared_l2_value(ld lambda, const std::vector<T>& w) {
  ld s = 0;
  for (T v : w) s += static_cast<ld>(v) * static_cast<ld>(v);
  return lambda * s / 2;
}

template <class T>
ld ref_l0_value(ld lambda, const std::vector<T>& w) {
  std::size_t n = 0;
  for (T v : w) n += v != T(0);
  return lambda * static_cast<ld>(n);
}

/// R(w) = lambda_group * sum_g c_g ||w_g||_2 + lambda_l1 * ||w||_1.
template <class T>
ld ref_sgl_value(ld lambda_group, ld lambda_l1, const std::vector<std::vector<std::size_t>>& members,
                 const std::vector<ld>& weights, const std::vector<T>& w) {
  ld s = 0;
  for (std::size_t g = 0; g < members.size(); ++g) {
    ld sq = 0;
    for (std::size_t f : members[g]) sq += static_cast<ld>(w[f]) * static_cast<ld>(w[f]);
    s += lambda_group * weights[g] * std::sqrt(sq);
  }
  return s + ref_l1_value(lambda_l1, w);
}

// ---------------------------------------------------------------------------------------------
// Reference proximal points: minimisers of step*R(z) + (z - x)^2 / 2 found by bisection on the
// (monotone) subdifferential of the objective, never by the closed forms.

/// Root of a nondecreasing function phi on [lo, hi] (phi(lo) <= 0 <= phi(hi)) by bisection until
/// the interval is a few long-double ulps wide (relative 2^-62, absolute 1e-40 near zero: far
/// below the double-precision tolerances the reference is compared with).
template <class F>
ld bisect(ld lo, ld hi, F phi) {
  const ld rel = 4 * std::numeric_limits<ld>::epsilon();
  for (int it = 0; it < 400; ++it) {
    const ld mid = lo + (hi - lo) / 2;
    if (!(mid > lo && mid < hi) || hi - lo <= 1e-40L + rel * std::max(std::fabs(lo), std::fabs(hi))) break;
    const ld v = phi(mid);
    if (v == 0) return mid;  // an exact root
    (v < 0 ? lo : hi) = mid;
  }
  return lo + (hi - lo) / 2;
}

/// argmin_z t1*|z| + kappa*z^2/2 + (z - x)^2/2. The objective's subdifferential is
/// (1 + kappa) z - x + t1 * sign(z) (with [-t1, t1] at z = 0), nondecreasing in z: 0 is the
/// minimiser when 0 lies in [-x - t1, -x + t1]; otherwise the root lies on x's side.
inline ld ref_scalar_min(ld x, ld t1, ld kappa) {
  if (-x - t1 <= 0 && 0 <= -x + t1) return 0;
  const ld bound = std::fabs(x) + 1;
  if (x > 0) return bisect(0, bound, [&](ld z) { return (1 + kappa) * z - x + t1; });
  return bisect(-bound, 0, [&](ld z) { return (1 + kappa) * z - x - t1; });
}

/// l1: argmin_z t*|z| + (z - x)^2 / 2.
inline ld ref_prox_l1(ld x, ld t) { return ref_scalar_min(x, t, 0); }

/// squared l2: argmin_z t*z^2/2 + (z - x)^2/2, root of (1 + t) z - x by bisection.
inline ld ref_prox_squared_l2(ld x, ld t) {
  const ld bound = std::fabs(x) + 1;
  return bisect(-bound, bound, [&](ld z) { return (1 + t) * z - x; });
}

/// l0: argmin_z t*[z != 0] + (z - x)^2/2. Only two candidates can win: z = 0 (cost x^2/2) and
/// z = x (cost t); ties go to 0 (the library's documented choice).
inline ld ref_prox_l0(ld x, ld t) { return x * x / 2 <= t ? 0 : x; }

/// Sparse group lasso on one group: argmin_z t1*||z||_1 + tg*||z||_2 + ||z - x||^2/2, with
/// t1 = step*lambda_l1 and tg = step*lambda_group*c_g.
///
/// Method (no closed-form shrink): at a nonzero minimiser the group term is differentiable with
/// gradient kappa * z, kappa = tg / ||z||. So z = z(kappa) := argmin t1||z||_1 + kappa||z||^2/2 +
/// ||z - x||^2/2 (a separable problem, solved per element by bisection) for the kappa with
/// kappa * ||z(kappa)|| = tg.
/// kappa*||z(kappa)|| is nondecreasing in kappa and tends to its supremum as kappa -> inf; if
/// that supremum does not exceed tg no nonzero point is stationary and the minimiser is 0.
/// The outer root is found by bisection over tau = kappa / (1 + kappa) in [0, 1).
inline std::vector<ld> ref_prox_sgl_group(const std::vector<ld>& x, ld t1, ld tg) {
  const std::size_t n = x.size();
  std::vector<ld> z(n);
  auto solve = [&](ld kappa) {
    ld sq = 0;
    for (std::size_t i = 0; i < n; ++i) {
      z[i] = ref_scalar_min(x[i], t1, kappa);
      sq += z[i] * z[i];
    }
    return kappa * std::sqrt(sq);
  };
  if (tg == 0) {
    solve(0);
    return z;
  }
  const ld huge = 1e300L;
  if (solve(huge) <= tg) return std::vector<ld>(n, 0);
  const ld tau = bisect(0, 1, [&](ld t) {
    if (t >= 1) return ld(1);
    return solve(t / (1 - t)) - tg;
  });
  solve(tau / (1 - tau));
  return z;
}

/// Reference SGL prox of a whole tensor (row-major values).
template <class T>
std::vector<ld> ref_prox_sgl(const std::vector<T>& x, ld step, ld lambda_group, ld lambda_l1,
                             const std::vector<std::vector<std::size_t>>& members, const std::vector<ld>& weights) {
  std::vector<ld> y(x.size(), 0);
  for (std::size_t g = 0; g < members.size(); ++g) {
    std::vector<ld> xg;
    for (std::size_t f : members[g]) xg.push_back(static_cast<ld>(x[f]));
    const auto yg = ref_prox_sgl_group(xg, step * lambda_l1, step * lambda_group * weights[g]);
    for (std::size_t k = 0; k < members[g].size(); ++k) y[members[g][k]] = yg[k];
  }
  return y;
}

// ---------------------------------------------------------------------------------------------
// Tolerance model of the prox properties.
//
// The library computes in T (unit roundoff u = eps/2). For a group of n elements its output
// y_i = f * soft(x_i, t1) carries, relative to the exact prox of the same x: the rounding of the
// threshold t1 to T and of the soft threshold (about 2u of max(|x_i|, t1)), the relative error of
// the group norm (at most (n + 2)u with the library's lane-wise accumulation: each element takes
// part in at most n additions, plus the square root and the conversion), which the factor
// f = 1 - tg/||u|| turns into an absolute error of at most (n + 2)u in f (tg/||u|| <= 1 whenever
// the group survives), and the final product (u). So |y_i - y*_i| <= (n + 6) u * scale with
// scale = max_i |x_i| + t1 + tg over the group. We allow twice that bound, 2 (n + 6) u scale =
// (n + 6) eps scale; any bug in a formula shows up at O(1), many orders above it.
template <class T>
ld prox_tolerance(std::size_t group_size, ld scale) {
  return static_cast<ld>(group_size + 6) * static_cast<ld>(std::numeric_limits<T>::epsilon()) * scale;
}

// ---------------------------------------------------------------------------------------------
// Property checks.

struct verdict {
  bool ok = true;
  std::string detail;  ///< the first violation, in words
  void fail(const std::string& s) {
    if (ok) detail = s;
    ok = false;
  }
};

inline std::string num(ld v) {
  std::ostringstream o;
  o.precision(21);
  o << v;
  return o.str();
}

/// Sparse-group-lasso prox optimality (group lasso: lambda_l1 = 0; l1: lambda_group = 0 with
/// singleton groups). With r = (x - y)/step, y is the prox iff r lies in the subdifferential of R
/// at y, group by group:
///  - y_g != 0: r_i = lambda_l1 * s_i + lambda_group * c_g * y_i / ||y_g|| with s_i = sign(y_i) for
///    y_i != 0 and s_i in [-1, 1] for y_i = 0 (solved for s_i and checked |s_i| <= 1);
///  - y_g = 0: r_g in lambda_l1*[-1,1]^n + lambda_group*c_g*Ball, i.e. the distance from r_g to the
///    box, ||soft_threshold(r_g, lambda_l1)||, is at most lambda_group * c_g.
/// Tolerances: prox_tolerance / step (r is y's error divided by step), per element; sqrt(n) times
/// that for the norm of the zero-group residual. The direction y_g / ||y_g|| is exact to a few u
/// (every y_i of a group is the same factor times soft(x_i)), so it adds nothing visible.
template <class T>
verdict check_sgl_optimality(const std::vector<T>& x, const std::vector<T>& y, ld step, ld lambda_group,
                             ld lambda_l1, const std::vector<std::vector<std::size_t>>& members,
                             const std::vector<ld>& weights) {
  verdict v;
  for (std::size_t g = 0; g < members.size() && v.ok; ++g) {
    const auto& m = members[g];
    const ld tg = step * lambda_group * weights[g];
    const ld t1 = step * lambda_l1;
    ld xmax = 0, ysq = 0;
    for (std::size_t f : m) {
      xmax = std::max(xmax, std::fabs(static_cast<ld>(x[f])));
      ysq += static_cast<ld>(y[f]) * static_cast<ld>(y[f]);
    }
    const ld tol = prox_tolerance<T>(m.size(), xmax + t1 + tg) / step;
    const ld ynorm = std::sqrt(ysq);
    if (ynorm > 0) {
      for (std::size_t f : m) {
        const ld r = (static_cast<ld>(x[f]) - static_cast<ld>(y[f])) / step;
        const ld group_part = lambda_group * weights[g] * static_cast<ld>(y[f]) / ynorm;
        const ld rest = r - group_part;  // must equal lambda_l1 * s
        if (y[f] != T(0)) {
          const ld expect = lambda_l1 * (y[f] > T(0) ? 1 : -1);
          if (std::fabs(rest - expect) > tol)
            v.fail("group " + std::to_string(g) + " element " + std::to_string(f) + ": r - group term = " + num(rest) +
                   " but lambda_l1*sign(y) = " + num(expect) + " (tol " + num(tol) + ")");
        } else if (std::fabs(rest) > lambda_l1 + tol) {
          v.fail("group " + std::to_string(g) + " zero element " + std::to_string(f) + ": |s| = |" + num(rest) +
                 "| / lambda_l1 exceeds 1 (lambda_l1 " + num(lambda_l1) + ", tol " + num(tol) + ")");
        }
      }
    } else {
      ld sq = 0;
      for (std::size_t f : m) {
        const ld r = static_cast<ld>(x[f]) / step;
        const ld excess = std::max<ld>(std::fabs(r) - lambda_l1, 0);
        sq += excess * excess;
      }
      const ld dist = std::sqrt(sq);
      const ld radius = lambda_group * weights[g];
      if (dist > radius + tol * std::sqrt(static_cast<ld>(m.size())))
        v.fail("zero group " + std::to_string(g) + ": ||soft(r, lambda_l1)|| = " + num(dist) + " > lambda_group*c_g = " +
               num(radius) + " (tol " + num(tol) + " per element)");
    }
  }
  return v;
}

/// |a_i - b_i| <= tol_i elementwise, with a per-group tolerance prox_tolerance<T>(n_g, scale_g).
template <class T>
verdict check_close_to_reference(const std::vector<T>& y, const std::vector<ld>& ref, const std::vector<T>& x, ld t1,
                                 const std::vector<std::vector<std::size_t>>& members, const std::vector<ld>& tg) {
  verdict v;
  for (std::size_t g = 0; g < members.size() && v.ok; ++g) {
    ld xmax = 0;
    for (std::size_t f : members[g]) xmax = std::max(xmax, std::fabs(static_cast<ld>(x[f])));
    const ld tol = prox_tolerance<T>(members[g].size(), xmax + t1 + tg[g]);
    for (std::size_t f : members[g])
      if (!(std::fabs(static_cast<ld>(y[f]) - ref[f]) <= tol))
        v.fail("element " + std::to_string(f) + " (group " + std::to_string(g) + "): library " +
               num(static_cast<ld>(y[f])) + ", reference " + num(ref[f]) + ", tol " + num(tol));
  }
  return v;
}

/// Singleton groups {0}, {1}, ..., {n-1}: separable penalties through the grouped checks.
inline std::vector<std::vector<std::size_t>> singletons(std::size_t n) {
  std::vector<std::vector<std::size_t>> m(n);
  for (std::size_t i = 0; i < n; ++i) m[i] = {i};
  return m;
}

/// Euclidean distance in long double.
template <class A, class B>
ld distance(const std::vector<A>& a, const std::vector<B>& b) {
  ld s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const ld d = static_cast<ld>(a[i]) - static_cast<ld>(b[i]);
    s += d * d;
  }
  return std::sqrt(s);
}

template <class A>
ld max_abs(const std::vector<A>& a) {
  ld m = 0;
  for (A v : a) m = std::max(m, std::fabs(static_cast<ld>(v)));
  return m;
}

}  // namespace sparsereg_test
