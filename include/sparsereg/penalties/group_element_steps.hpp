// Per-element steps for group_lasso and sparse_group_lasso: the exact prox in the diagonal metric
// of Adam-like optimizers.
//
// After an Adam step w <- w - lr * m / (sqrt(v) + eps) the natural proximal step is taken in the
// same metric, D = diag(d), d_i = lr / (sqrt(v_i) + eps):
//   y = argmin_z  R(z) + sum_i (z_i - x_i)^2 / (2 d_i).
// For separable penalties that is the per-element prox already offered by prox(p, x, y, steps).
// For the sparse group lasso R = lambda_1 ||z||_1 + sum_g tau_g ||z_g||, tau_g = lambda_group c_g,
// the optimality conditions per element are
//   (z_i - x_i) / d_i + lambda_1 s_i + tau_g z_i / ||z_g|| = 0,  s_i in sign(z_i)
// which give (derivation in docs/math.md):
//   u_i = soft_threshold(x_i, d_i lambda_1)                  (the l1 part still decouples)
//   group zero  iff  sum_i (u_i / d_i)^2 <= tau_g^2          (0 is in the subdifferential)
//   otherwise   z_i = u_i * r / (r + d_i tau_g),  where r = ||z_g|| > 0 is the unique root of
//               F(r) = sum_i u_i^2 / (r + d_i tau_g)^2 - 1.
// F is decreasing and convex on r > 0, with r in [max(0, ||u|| - d_max tau_g), ||u||]; Newton's
// method started from the left end of that bracket increases monotonically to the root (a convex
// decreasing function lies above its tangents), and we safeguard it by bisection. With equal
// steps d_i = s the root is r = ||u|| - s tau_g and this reduces to the closed-form scalar prox.
//
// Choice documented: we compute this exact prox rather than the cheaper approximation "scalar
// prox with the group's mean step", which is not a prox in any fixed metric (it shrinks elements
// with small d_i too much and large d_i too little) and so does not give the proximal-gradient
// guarantees in Adam's metric.
//
// Cost: one pass writing u, one pass for the bracket, one pass per Newton iteration (typically
// 3 to 6 to reach double rounding, at most 100), one final writing pass; the root finding runs
// for all groups in lockstep, so each pass is one sequential sweep over the tensor, and the only
// workspace is a few doubles per group. It is single-threaded and its result depends on nothing
// but the inputs (deterministic).
//
// Elements with d_i = 0 cannot move (infinite weight in the metric): if such an element has
// u_i != 0 its group is never zero, and it keeps z_i = u_i = x_i. NaN in a group makes the group
// NaN, as for the scalar prox.
#pragma once

#include <algorithm>  // std::max
#include <array>      // std::array
#include <cmath>      // std::sqrt, std::fabs, std::isnan, std::isfinite
#include <cstddef>    // std::size_t, std::ptrdiff_t
#include <limits>     // std::numeric_limits
#include <vector>     // std::vector

#include "../detail/runs.hpp"
#include "../detail/sweep.hpp"
#include "../groups.hpp"
#include "../penalty.hpp"
#include "group_lasso.hpp"
#include "sparse_group_lasso.hpp"

namespace sparsereg {
namespace detail {

/// One pass over the grouped elements of y (with their steps d): body(y_i, d_i, acc[g], g) for
/// each element of group g. Runs that lie inside one group accumulate into a local copy of
/// acc[g] (same arithmetic order, no store-to-load chain through memory). Groups for which
/// skip(g) is true are not visited (converged groups in the Newton passes are not even read).
template <class T, class Acc, class Body, class Skip>
void grouped_pass(const grouping& grp, const view<T>& y, const view<const T>& d, std::vector<Acc>& acc, Body&& body,
                  Skip&& skip) {
  if (y.size() == 0) return;
  if (grp.is_explicit()) {
    const auto& off = grp.explicit_offsets();
    const auto& idx = grp.explicit_indices();
    for (std::size_t g = 0; g + 1 < off.size(); ++g) {
      if (skip(g)) continue;
      Acc a = acc[g];
      for (std::size_t k = off[g]; k < off[g + 1]; ++k)
        body(y.data()[y.offset_of_flat(idx[k])], d.data()[d.offset_of_flat(idx[k])], a, g);
      acc[g] = a;
    }
    return;
  }
  const auto keys = row_major_key_strides(grp.axis_mask(), y.extents(), y.rank());
  for_each_keyed_run(y, d, keys, [&](T* yp, std::ptrdiff_t sy, const T* dp, std::ptrdiff_t sd, std::size_t g0,
                                     std::size_t gs, std::size_t n) {
    if (gs == 0) {
      if (skip(g0)) return;
      Acc a = acc[g0];
      for (std::size_t j = 0; j < n; ++j) {
        const auto k = static_cast<std::ptrdiff_t>(j);
        body(yp[k * sy], dp[k * sd], a, g0);
      }
      acc[g0] = a;
    } else {
      for (std::size_t j = 0; j < n; ++j) {
        const auto k = static_cast<std::ptrdiff_t>(j);
        const std::size_t g = g0 + j * gs;
        if (!skip(g)) body(yp[k * sy], dp[k * sd], acc[g], g);
      }
    }
  });
}

struct element_step_stats {
  double uu = 0.0;      // ||u||^2
  double scaled = 0.0;  // ||u / d||^2
  double dmax = 0.0;
  std::size_t size = 0;
};
struct element_step_newton {
  double fv = 0.0;  // sum u^2 / q^2, q = r + d tau
  double fd = 0.0;  // sum u^2 / q^3
};
struct element_step_final {
  double zz = 0.0;
  double zabs = 0.0;
  std::size_t zeros = 0;
};

/// The prox itself. The caller has checked everything: x, y and d of one shape, y equal to x or
/// disjoint from it, d disjoint from y, grp valid for x's shape, every d_i finite and >= 0.
template <class T>
prox_result group_prox_element_steps(double lambda_group, double lambda_l1, const grouping& grp, const view<const T>& x,
                                     const view<T>& y, const view<const T>& d, steps_already_checked_t) {
  if (x.size() == 0) return {};
  // Pass 1: u = soft_threshold(x, d * lambda_1), written to y (y may alias x).
  const T l1 = static_cast<T>(lambda_l1);
  elementwise_sweep(x, y, d, [l1](const T* xp, std::ptrdiff_t sx, T* yp, std::ptrdiff_t sy, const T* dp,
                                  std::ptrdiff_t sd, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const auto k = static_cast<std::ptrdiff_t>(i);
      yp[k * sy] = soft_threshold_select(xp[k * sx], dp[k * sd] * l1);
    }
    return sweep_totals{};
  });

  const std::size_t G = grp.group_count(x);
  std::vector<element_step_stats> st(G);
  std::vector<double> tau(G, 0.0), lo(G), hi(G), r(G);
  std::vector<unsigned char> state(G, 0);  // 0 = solving, 1 = root found, 2 = zero, 3 = no shrink, 4 = NaN
  // Pass 2: ||u||^2, ||u / d||^2 (0/0 -> 0, u/0 -> inf), d_max and the group sizes.
  grouped_pass(grp, y, d, st, [](T& yv, T dv, element_step_stats& a, std::size_t) {
    const double u = static_cast<double>(yv);
    const double dd = static_cast<double>(dv);
    a.uu += u * u;
    const double q = dd > 0.0 ? (u / dd) * (u / dd) : std::numeric_limits<double>::infinity();
    a.scaled += u != 0.0 ? q : 0.0;
    a.dmax = dd > a.dmax ? dd : a.dmax;
    ++a.size;
  }, [](std::size_t) { return false; });
  std::size_t solving = 0;
  for (std::size_t g = 0; g < G; ++g) {
    tau[g] = lambda_group * grp.weight(g, st[g].size);
    const double norm = std::sqrt(st[g].uu);
    if (std::isnan(st[g].uu)) {
      state[g] = 4;
    } else if (tau[g] == 0.0) {
      // No group shrink (lambda_group 0, e.g. lr 0 in the regularizer): decided before the test
      // below, which a group of tiny u (||u / d||^2 underflowing to 0) would otherwise fail.
      state[g] = 3;
    } else if (st[g].dmax == 0.0) {
      // Every step of the group is 0: the prox is the identity there. Decided here because the
      // root search below divides by r + d_i tau, which is 0/0 when ||u|| underflows to 0.
      state[g] = 3;
    } else if (!(st[g].scaled > tau[g] * tau[g])) {
      state[g] = 2;  // includes ||u|| = 0
    } else {
      hi[g] = norm;
      lo[g] = std::max(0.0, norm - st[g].dmax * tau[g]);
      r[g] = lo[g];
      ++solving;
    }
  }
  // Newton passes, all groups in lockstep; a group leaves once its iterate stops moving.
  std::vector<element_step_newton> nw(G);
  for (int it = 0; it < 100 && solving > 0; ++it) {
    for (auto& a : nw) a = element_step_newton{};
    grouped_pass(
        grp, y, d, nw,
        [&](T& yv, T dv, element_step_newton& a, std::size_t g) {
          const double u = static_cast<double>(yv);
          const double inv = 1.0 / (r[g] + static_cast<double>(dv) * tau[g]);
          // u = 0 contributes 0 (selected, not branched: l1 zeroes elements at random; the
          // select also drops the NaN of 0 * inf when r = 0 and d = 0).
          const double t2 = u != 0.0 ? (u * inv) * (u * inv) : 0.0;
          a.fv += t2;
          a.fd += u != 0.0 ? t2 * inv : 0.0;
        },
        [&](std::size_t g) { return state[g] != 0; });
    for (std::size_t g = 0; g < G; ++g) {
      if (state[g] != 0) continue;
      const double F = nw[g].fv - 1.0;  // F(r); F'(r) = -2 fd
      if (F == 0.0) {
        state[g] = 1;
        --solving;
        continue;
      }
      if (F > 0.0) lo[g] = r[g];
      else hi[g] = r[g];
      double next = r[g] + F / (2.0 * nw[g].fd);
      if (!(next > lo[g] && next < hi[g])) next = 0.5 * (lo[g] + hi[g]);
      // Newton converges quadratically: after a step of relative size 1e-9 the remaining error
      // is about 1e-18 relative, below double rounding (and below the rounding noise of F).
      if (std::fabs(next - r[g]) <= 1e-9 * next || hi[g] - lo[g] <= 1e-15 * hi[g]) {
        state[g] = 1;
        --solving;
      }
      r[g] = next;
    }
  }
  // Final pass: z_i = u_i * r / (r + d_i tau), and the value at z.
  std::vector<element_step_final> fin(G);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  grouped_pass(grp, y, d, fin, [&](T& yv, T dv, element_step_final& a, std::size_t g) {
    T z = yv;
    switch (state[g]) {
      case 2: z = z * T(0); break;  // the signed zero of the scalar prox's pre(x) * 0 (-0.0 stays)
      case 4: z = nan; break;
      case 3: break;
      default: z = static_cast<T>(static_cast<double>(z) * r[g] / (r[g] + static_cast<double>(dv) * tau[g]));
    }
    yv = z;
    const double zd = static_cast<double>(z);
    a.zz += zd * zd;
    a.zabs += std::fabs(zd);
    a.zeros += (z == T(0));
  }, [](std::size_t) { return false; });
  prox_result res;
  res.groups = G;
  for (std::size_t g = 0; g < G; ++g) {
    res.value += tau[g] * std::sqrt(fin[g].zz) + lambda_l1 * fin[g].zabs;
    res.zero_elements += fin[g].zeros;
    res.zero_groups += (fin[g].zeros == st[g].size);
  }
  return res;
}

template <class X, class Y, class S>
prox_result group_prox_element_steps_checked(double lambda_group, double lambda_l1, const grouping& grp, const X& x,
                                             Y&& y, const S& steps) {
  const auto vx = const_view_of(x);
  const auto vy = mutable_view_of(y);
  const auto vs = const_view_of(steps);
  using T = typename decltype(vx)::value_type;
  static_assert(std::is_same_v<T, typename decltype(vy)::value_type> && std::is_same_v<T, typename decltype(vs)::value_type>,
                "sparsereg::prox_per_element_steps: x, y and steps must have the same element type");
  require_same_shape("prox_per_element_steps", "x", vx, "y", vy);
  require_same_shape("prox_per_element_steps", "x", vx, "steps", vs);
  require_alias_or_disjoint("prox_per_element_steps", vx, vy);
  require_disjoint("prox_per_element_steps", "y", vy, "steps", vs);
  grp.check("prox_per_element_steps", vx);
  require_valid_steps("prox_per_element_steps", vs);
  return group_prox_element_steps<T>(lambda_group, lambda_l1, grp, vx, view<T>(vy), vs, steps_already_checked);
}

/// prox_per_element_steps for a caller that has made every check of group_prox_element_steps
/// (the regularizer, at registration and in its pre-step check).
template <class T>
prox_result prox_per_element_steps_checked_by_caller(const sparse_group_lasso& p, const view<const T>& x,
                                                     const view<T>& y, const view<const T>& d) {
  return group_prox_element_steps<T>(p.lambda_group, p.lambda_l1, p.groups, x, y, d, steps_already_checked);
}
template <class T>
prox_result prox_per_element_steps_checked_by_caller(const group_lasso& p, const view<const T>& x, const view<T>& y,
                                                     const view<const T>& d) {
  return group_prox_element_steps<T>(p.lambda, 0.0, p.groups, x, y, d, steps_already_checked);
}

}  // namespace detail

/// y = argmin_z R(z) + sum_i (z_i - x_i)^2 / (2 steps_i) for the sparse group lasso (exact).
template <class X, class Y, class S>
prox_result prox_per_element_steps(const sparse_group_lasso& p, const X& x, Y&& y, const S& steps) {
  return detail::group_prox_element_steps_checked(p.lambda_group, p.lambda_l1, p.groups, x, y, steps);
}

/// The same for the group lasso.
template <class X, class Y, class S>
prox_result prox_per_element_steps(const group_lasso& p, const X& x, Y&& y, const S& steps) {
  return detail::group_prox_element_steps_checked(p.lambda, 0.0, p.groups, x, y, steps);
}

}  // namespace sparsereg
