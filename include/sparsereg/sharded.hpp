// Sharded (model-parallel) group prox in two phases around the user's all-reduce.
//
// When a tensor is split across ranks (tensor/model parallelism, ZeRO/FSDP-style sharding), a
// group may be split across shards, and its norm is only known after a reduction. The sparse group
// lasso prox needs nothing but each group's norm of u = soft_threshold(x, step*lambda_l1), so:
//
//   phase 1 (local):  sharded_prox_partial(p, shard, step, buf, n)   buf[2g] = sum u^2 and
//                     buf[2g+1] = sum |u| over this shard's part of global group g (0 elsewhere)
//   user:             MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, comm)
//   phase 2 (local):  sharded_prox_finish(p, shard, step, buf, n)    y = u * max(0, 1 - step*lambda_g*c_g/||u_g||)
//
// Both phases run the unsharded prox's own passes (detail/sweep.hpp: vectorized, parallel, the
// same lanes) on the block with its groups numbered locally, so a shard that holds whole groups
// (the whole tensor, or a split along group-identifying axes only) writes the unsharded prox's
// output bit for bit (the value may differ in the last bits: the groups' terms are added in
// another order), and a group split across shards differs from it only by the rounding of adding
// its shards' partial sums in the all-reduce. The buffer holds 2 doubles per global group
// (sharded_buffer_size); the all-reduce moves 16 bytes per group, never the tensor. Every rank
// computes the same factors from the same reduced buffer, so data-parallel replicas stay
// bit-identical as long as the all-reduce returns the same bits everywhere (MPI_Allreduce does
// for a fixed communicator and buffer; use a deterministic reduction if your library does not).
//
// The penalty value goes the same way with step = 0 (no shrink): sharded_value_partial, all-reduce,
// sharded_value_finish.
//
// A shard is this rank's block of the global tensor: a view (any layout) plus the global shape
// and the index of the shard's first element in the global tensor. Groupings must be by axes
// (explicit index lists are not supported); c_g uses the GLOBAL group size, and `with_weights`
// must list one weight per global group. Shards may split any axis, including group-identifying
// axes (a rank then simply contributes zeros for the groups it does not hold).
#pragma once

#include <algorithm>  // std::min
#include <array>    // std::array
#include <atomic>   // std::atomic (zero count of phase 2)
#include <cmath>    // std::sqrt, std::isnan
#include <cstddef>  // std::size_t, std::ptrdiff_t
#include <cstdint>  // std::uint32_t
#include <limits>   // std::numeric_limits
#include <string>   // std::string, std::to_string
#include <vector>   // std::vector

#include "detail/sweep.hpp"
#include "errors.hpp"
#include "groups.hpp"
#include "penalties/group_lasso.hpp"
#include "penalties/sparse_group_lasso.hpp"
#include "penalty.hpp"
#include "view.hpp"

namespace sparsereg {

/// This rank's block of a global tensor.
template <class T>
struct shard {
  view<T> local;                          ///< the block (its extents are the block's extents)
  std::vector<std::size_t> global_shape;  ///< shape of the whole tensor
  std::vector<std::size_t> offset;        ///< global index of local(0, ..., 0)
};

namespace detail {

struct shard_map {
  std::size_t groups = 1;      // global group count
  std::size_t group_size = 1;  // global elements per group
  std::array<std::size_t, max_rank> gstride{};
  std::size_t base = 0;        // global group index of local(0, ..., 0)
};

template <class T>
shard_map check_shard(const char* where, const grouping& grp, const shard<T>& s) {
  if (grp.is_explicit())
    throw_argument(where, "sharded prox needs a grouping by axes; explicit index lists are not supported");
  const std::size_t r = s.local.rank();
  if (s.global_shape.size() != r || s.offset.size() != r)
    throw_argument(where, "shard has rank " + std::to_string(r) + " but global_shape has " +
                              std::to_string(s.global_shape.size()) + " entries and offset " + std::to_string(s.offset.size()));
  for (std::size_t a = 0; a < r; ++a)
    if (s.offset[a] > s.global_shape[a] || s.local.extent(a) > s.global_shape[a] - s.offset[a])
      throw_argument(where, "shard axis " + std::to_string(a) + ": offset " + std::to_string(s.offset[a]) + " + extent " +
                                std::to_string(s.local.extent(a)) + " exceeds the global extent " +
                                std::to_string(s.global_shape[a]));
  // The group count and size are products of global extents. Checked before anything uses them:
  // the buffer holds 2 doubles per group, and a wrapped 2 * groups would let a short (or null)
  // buffer pass check_buffer and phase 1 write past it. A zero extent makes its product 0.
  const unsigned mask = grp.axis_mask();
  bool no_groups = false, empty_groups = false;  // a zero extent along a group axis / another axis
  for (std::size_t a = 0; a < r; ++a) {
    if (s.global_shape[a] != 0) continue;
    if (mask & (1u << a)) no_groups = true;
    else empty_groups = true;
  }
  const std::size_t max_groups = std::numeric_limits<std::size_t>::max() / 2;
  const std::size_t max_size = std::numeric_limits<std::size_t>::max();
  const auto too_large = [&](const std::string& what) {
    std::string shape;
    for (std::size_t a = 0; a < r; ++a) shape += (a ? ", " : "") + std::to_string(s.global_shape[a]);
    throw_argument(where, "global_shape {" + shape + "}: " + what);
  };
  shard_map m;
  m.groups = 1;
  for (std::size_t a = r; a-- > 0;) {
    const std::size_t e = s.global_shape[a];
    if (mask & (1u << a)) {
      if (!no_groups && m.groups > max_groups / e)
        too_large("the group count exceeds " + std::to_string(max_groups) + " (2 doubles per group in the buffer)");
      m.gstride[a] = m.groups;
      m.groups *= e;
    } else {
      if (!empty_groups && m.group_size > max_size / e)
        too_large("the group size exceeds " + std::to_string(max_size) + " elements");
      m.group_size *= e;
    }
    m.base += s.offset[a] * m.gstride[a];
  }
  // Check the grouping against the global shape (rank, axes, weight count).
  std::vector<std::size_t> dummy_strides(r, 0);
  static const T probe{};
  grp.check(where, view<const T>(&probe, s.global_shape, dummy_strides));
  return m;
}

inline void check_buffer(const char* where, const shard_map& m, const double* buf, std::size_t n) {
  if (n != 2 * m.groups)
    throw_argument(where, "buffer has " + std::to_string(n) + " doubles but the tensor has " + std::to_string(m.groups) +
                              " groups (needs " + std::to_string(2 * m.groups) + ")");
  if (buf == nullptr && n != 0) throw_argument(where, "buffer is null");
}

/// The grouping of a shard's block: the same axes, groups numbered row-major over the block's own
/// extents. Without weights: the weights belong to the global groups, and phase 1 only sums.
inline grouping local_grouping(const grouping& grp, std::size_t rank) {
  std::vector<std::size_t> axes;
  for (std::size_t a = 0; a < rank; ++a)
    if (grp.axis_mask() & (1u << a)) axes.push_back(a);
  return grouping::by_axes(axes, rank);
}

/// Global group index of every local group of the block (local_grouping's numbering): the index
/// odometer runs over the group axes, the last fastest, and the global index follows it.
template <class T>
std::vector<std::size_t> global_group_of(const shard_map& m, const grouping& grp, const shard<T>& s) {
  const unsigned mask = grp.axis_mask();
  std::array<std::size_t, max_rank> axis{}, idx{};  // the group axes, and the local index on each
  std::size_t na = 0, count = 1;
  for (std::size_t a = 0; a < s.local.rank(); ++a)
    if (mask & (1u << a)) {
      axis[na++] = a;
      count *= s.local.extent(a);
    }
  std::vector<std::size_t> global(count);
  std::size_t k = m.base;
  for (std::size_t g = 0; g < count; ++g) {
    global[g] = k;
    for (std::size_t i = na; i-- > 0;) {
      const std::size_t a = axis[i];
      if (++idx[i] < s.local.extent(a)) {
        k += m.gstride[a];
        break;
      }
      k -= (s.local.extent(a) - 1) * m.gstride[a];
      idx[i] = 0;
    }
  }
  return global;
}

/// Phase 1 through the unsharded sweep (detail/sweep.hpp, parallel and vectorized) on the block
/// with its local grouping: each local group's sums of u^2 and |u| go to its global group's slot.
/// So a shard that holds whole groups gets the unsharded prox's sums bit for bit.
template <class T>
void shard_partial(const char* where, double lambda_l1, const grouping& grp, const shard<T>& s, double step, double* buf,
                   std::size_t n) {
  require_nonnegative(where, "step", step);
  const shard_map m = check_shard(where, grp, s);
  check_buffer(where, m, buf, n);
  using E = std::remove_const_t<T>;
  const E t1 = static_cast<E>(step * lambda_l1);
  for (std::size_t k = 0; k < n; ++k) buf[k] = 0.0;
  if (s.local.size() == 0) return;
  const std::vector<std::size_t> global = global_group_of(m, grp, s);
  const auto decide = [&](std::size_t g, std::size_t, double sumsq, double abs_sum, std::size_t) {
    buf[2 * global[g]] = sumsq;
    buf[2 * global[g] + 1] = abs_sum;
    return group_decision<E>{};
  };
  const view<const E> x(s.local);
  const grouping local = local_grouping(grp, s.local.rank());
  // u = soft_threshold(x, t1); its square and |u| are those of max(|x| - t1, 0), as in the
  // unsharded prox's first pass.
  if (t1 > E(0))
    grouped_sweep<true>(x, x, local, soft_magnitude<E>{t1}, decide, no_apply{});
  else
    grouped_sweep<true>(x, x, local, [](E v) { return v; }, decide, no_apply{});
}

template <class T>
prox_result shard_finish(const char* where, double lambda_group, double lambda_l1, const grouping& grp, const shard<T>& s,
                         double step, const double* buf, std::size_t n) {
  require_nonnegative(where, "step", step);
  const shard_map m = check_shard(where, grp, s);
  check_buffer(where, m, buf, n);
  require_no_self_overlap(where, "shard.local", s.local);  // written in place below
  std::vector<T> factor(m.groups);
  prox_result res;
  res.groups = m.groups;
  const double tg = step * lambda_group;
  for (std::size_t g = 0; g < m.groups; ++g) {
    const double c = grp.weight(g, m.group_size);
    const double norm = std::sqrt(buf[2 * g]);
    const double thr = tg * c;
    if (std::isnan(norm)) {
      factor[g] = std::numeric_limits<T>::quiet_NaN();
      res.value += norm;
    } else if (thr > 0.0 && norm <= thr) {
      factor[g] = T(0);
      ++res.zero_groups;
    } else {
      // thr == 0 (step 0, lambda_group 0 or c_g 0) keeps factor 1 even when the sum of squares
      // underflows to 0 (every |u| below about 1e-162 in double): step 0 stays the identity. A
      // group is all zeros exactly when its sum |u| is 0 (a sum of non-negative numbers).
      const double f = thr > 0.0 ? 1.0 - thr / norm : 1.0;
      factor[g] = static_cast<T>(f);
      res.value += f * (lambda_group * c * norm + lambda_l1 * buf[2 * g + 1]);
      res.zero_groups += buf[2 * g + 1] == 0.0;  // only when thr == 0: a group of zeros stays one
    }
  }
  if (s.local.size() == 0) return res;
  // Phase 2 through the unsharded prox's second pass (grouped_apply) with the local groups'
  // factors; the apply counts the zeros it writes, one atomic add per run.
  const std::vector<std::size_t> global = global_group_of(m, grp, s);
  std::vector<T> local_factor(global.size());
  for (std::size_t g = 0; g < global.size(); ++g) local_factor[g] = factor[global[g]];
  const T t1 = static_cast<T>(step * lambda_l1);
  std::atomic<std::size_t> zeros{0};
  const auto sweep = [&](auto pre) {
    grouped_apply(view<const T>(s.local), s.local, local_grouping(grp, s.local.rank()), local_factor.data(),
                  [&](const T* xp, std::ptrdiff_t sx, T* yp, std::ptrdiff_t sy, std::size_t len, auto factor_of) {
                    std::size_t z = 0;
                    with_unit_strides(sx, sy, [&](auto sxu, auto syu) {
                      constexpr std::size_t chunk = std::size_t(1) << 30;  // 32-bit counts vectorize
                      for (std::size_t i0 = 0; i0 < len; i0 += chunk) {
                        const std::size_t i1 = std::min(len, i0 + chunk);
                        std::uint32_t zc = 0;
                        for (std::size_t i = i0; i < i1; ++i) {
                          const auto k = static_cast<std::ptrdiff_t>(i);
                          const T v = pre(xp[k * sxu]) * factor_of(i);
                          yp[k * syu] = v;
                          zc += (v == T(0));
                        }
                        z += zc;
                      }
                    });
                    zeros.fetch_add(z, std::memory_order_relaxed);
                  });
  };
  if (t1 > T(0))
    sweep([t1](T v) { return soft_threshold_positive(v, t1); });
  else
    sweep([](T v) { return v; });
  res.zero_elements = zeros.load();
  return res;
}

inline const grouping& groups_of(const sparse_group_lasso& p) { return p.groups; }
inline const grouping& groups_of(const group_lasso& p) { return p.groups; }
inline double l1_of(const sparse_group_lasso& p) { return p.lambda_l1; }
inline double l1_of(const group_lasso&) { return 0.0; }
inline double group_lambda_of(const sparse_group_lasso& p) { return p.lambda_group; }
inline double group_lambda_of(const group_lasso& p) { return p.lambda; }

}  // namespace detail

/// Doubles needed for the partial-sum buffer: 2 per global group.
template <class P, class T>
std::size_t sharded_buffer_size(const P& p, const shard<T>& s) {
  return 2 * detail::check_shard("sharded_buffer_size", detail::groups_of(p), s).groups;
}

/// Phase 1 of the sharded prox (P = sparse_group_lasso or group_lasso): overwrites buf[0, n)
/// with this shard's partial sums. All-reduce (sum) it across the shards, then call
/// sharded_prox_finish with the same step.
template <class P, class T>
void sharded_prox_partial(const P& p, const shard<T>& s, double step, double* buf, std::size_t n) {
  detail::shard_partial("sharded_prox_partial", detail::l1_of(p), detail::groups_of(p), s, step, buf, n);
}

/// Phase 2: the in-place prox of this shard from the reduced buffer. Returns the GLOBAL penalty
/// value at the output, the global groups and zero groups (same on every rank), and this
/// shard's zero elements.
template <class P, class T>
prox_result sharded_prox_finish(const P& p, const shard<T>& s, double step, const double* reduced, std::size_t n) {
  static_assert(!std::is_const_v<T>, "sparsereg::sharded_prox_finish: the shard must be mutable");
  return detail::shard_finish("sharded_prox_finish", detail::group_lambda_of(p), detail::l1_of(p), detail::groups_of(p), s,
                              step, reduced, n);
}

/// Phase 1 of the penalty value: buf = this shard's sums of w^2 and |w| per global group.
template <class P, class T>
void sharded_value_partial(const P& p, const shard<T>& s, double* buf, std::size_t n) {
  detail::shard_partial("sharded_value_partial", 0.0, detail::groups_of(p), s, 0.0, buf, n);
}

/// Phase 2 of the penalty value: R(w) of the whole tensor from the reduced buffer.
template <class P, class T>
double sharded_value_finish(const P& p, const shard<T>& s, const double* reduced, std::size_t n) {
  const detail::shard_map m = detail::check_shard("sharded_value_finish", detail::groups_of(p), s);
  detail::check_buffer("sharded_value_finish", m, reduced, n);
  double v = 0.0;
  for (std::size_t g = 0; g < m.groups; ++g)
    v += detail::group_lambda_of(p) * detail::groups_of(p).weight(g, m.group_size) * std::sqrt(reduced[2 * g]) +
         detail::l1_of(p) * reduced[2 * g + 1];
  return v;
}

}  // namespace sparsereg
