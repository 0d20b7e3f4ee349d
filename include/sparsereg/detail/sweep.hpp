// The two sweeps every penalty is built from.
//
// elementwise_sweep: one pass over one to three views (weights, output, per-element steps).
// grouped_sweep: per group, pass 1 accumulates sum(u^2), sum|u| and the zero count of a
// pre-transformed value u = pre(x); a per-group decision turns them into a factor; pass 2
// writes out = apply(x, factor). Groups that are one contiguous run are finished while hot
// (norm, then write); other groupings use one accumulation pass and one writing pass.
//
// Determinism: work is cut into a fixed number of blocks that does not depend on the thread
// count; per-block partial results are combined in block order. Squared norms use 8 lanes keyed
// by the element's position inside its group (lane = position mod 8), combined in a fixed tree,
// so a group's norm is bit-identical for any thread count, any adapter, and any layout that
// visits each group's elements in the same relative order (e.g. row- vs column-major matrices).
#pragma once

#include <algorithm>  // std::min, std::max
#include <cmath>      // std::sqrt, std::isnan
#include <cstddef>    // std::size_t, std::ptrdiff_t
#include <limits>     // std::numeric_limits
#include <string>     // std::to_string
#include <vector>     // std::vector (workspace of strided groupings only)

#include "../groups.hpp"
#include "../view.hpp"
#include "plan.hpp"

#if defined(_OPENMP)
#include <omp.h>
#define SPARSEREG_PRAGMA_OMP_FOR _Pragma("omp parallel for schedule(static)")
#else
#define SPARSEREG_PRAGMA_OMP_FOR
#endif

namespace sparsereg {
namespace detail {

inline constexpr std::size_t lanes = 8;
inline constexpr std::size_t max_blocks = 256;

template <class T>
struct lane_sums {
  T sq[lanes] = {};
  T ab[lanes] = {};
  std::size_t zeros = 0;
};

template <class T>
inline T combine_lanes(const T* l) noexcept {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/// sum_{i<n} f(i) in double, element i going to lane i mod 8; f may also write (it is called
/// once per i, in increasing order).
template <class F>
inline double lane_sum(std::size_t n, F&& f) {
  double a[lanes] = {};
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    for (std::size_t j = 0; j < lanes; ++j) a[j] += f(i + j);
  for (std::size_t j = 0; i < n; ++i, ++j) a[j] += f(i);
  return combine_lanes(a);
}

/// Accumulates u = pre(x[k*stride]) for k < n into lanes, element k going to lane (first + k) mod 8.
template <class T, class Pre>
inline void accumulate_run(const T* x, std::ptrdiff_t stride, std::size_t n, std::size_t first, Pre pre,
                           lane_sums<T>& acc) noexcept {
  std::size_t k = 0;
  std::size_t lane = first & (lanes - 1);
  std::size_t zeros = 0;
  for (; k < n && lane != 0; ++k, lane = (lane + 1) & (lanes - 1)) {
    const T u = pre(x[static_cast<std::ptrdiff_t>(k) * stride]);
    acc.sq[lane] += u * u;
    acc.ab[lane] += u < T(0) ? -u : u;
    zeros += (u == T(0));
  }
  T sq[lanes], ab[lanes];
  for (std::size_t j = 0; j < lanes; ++j) {
    sq[j] = acc.sq[j];
    ab[j] = acc.ab[j];
  }
  if (stride == 1) {
    const T* p = x + k;
    const std::size_t full = (n - k) / lanes;
    for (std::size_t b = 0; b < full; ++b, p += lanes) {
      for (std::size_t j = 0; j < lanes; ++j) {
        const T u = pre(p[j]);
        sq[j] += u * u;
        ab[j] += u < T(0) ? -u : u;
        zeros += (u == T(0));
      }
    }
    k += full * lanes;
  } else {
    const std::size_t full = (n - k) / lanes;
    for (std::size_t b = 0; b < full; ++b, k += lanes) {
      for (std::size_t j = 0; j < lanes; ++j) {
        const T u = pre(x[static_cast<std::ptrdiff_t>(k + j) * stride]);
        sq[j] += u * u;
        ab[j] += u < T(0) ? -u : u;
        zeros += (u == T(0));
      }
    }
  }
  for (std::size_t j = 0; k < n; ++k, ++j) {
    const T u = pre(x[static_cast<std::ptrdiff_t>(k) * stride]);
    sq[j] += u * u;
    ab[j] += u < T(0) ? -u : u;
    zeros += (u == T(0));
  }
  for (std::size_t j = 0; j < lanes; ++j) {
    acc.sq[j] = sq[j];
    acc.ab[j] = ab[j];
  }
  acc.zeros += zeros;
}

/// Outcome of one group's decision: the factor pass 2 applies, and its share of the result.
template <class T>
struct group_decision {
  T factor = T(1);
  double value = 0.0;
  std::size_t zero_elements = 0;
  bool zero_group = false;
};

/// Totals of a sweep.
struct sweep_totals {
  double value = 0.0;
  std::size_t zero_elements = 0;
  std::size_t zero_groups = 0;
  std::size_t groups = 0;

  void add(const sweep_totals& o) noexcept {
    value += o.value;
    zero_elements += o.zero_elements;
    zero_groups += o.zero_groups;
    groups += o.groups;
  }
};

inline std::size_t block_count(std::size_t n) noexcept { return std::min(n, max_blocks); }
inline std::size_t block_begin(std::size_t n, std::size_t nb, std::size_t b) noexcept { return n * b / nb; }

template <class Totals>
inline sweep_totals sum_blocks(const Totals* parts, std::size_t nb) noexcept {
  sweep_totals t;
  for (std::size_t b = 0; b < nb; ++b) t.add(parts[b]);
  return t;
}

/// One pass over x (and out, and an optional third view c). run(xp, sx, op, so, cp, sc, n)
/// processes one run and returns its sweep_totals. Blocks are fixed for a given shape.
template <class X, class O, class C, class Run>
sweep_totals elementwise_sweep(const view<X>& x, const view<O>& out, const view<C>& c, Run run) {
  const plan p = make_plan(x, out, c, 0u);
  if (p.size == 0) return {};
  sweep_totals parts[max_blocks];
  const plan_axis& r = p.run();
  if (p.rank == 1) {
    // One long run: cut it into fixed chunks (at least 16K elements each, at most max_blocks).
    const std::size_t n = r.extent;
    const std::size_t nb = std::max<std::size_t>(1, std::min(max_blocks, n / 16384));
    SPARSEREG_PRAGMA_OMP_FOR
    for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
      const std::size_t lo = block_begin(n, nb, static_cast<std::size_t>(b));
      const std::size_t hi = block_begin(n, nb, static_cast<std::size_t>(b) + 1);
      parts[b] = run(x.data() + static_cast<std::ptrdiff_t>(lo) * r.stride_a, r.stride_a,
                     out.data() + static_cast<std::ptrdiff_t>(lo) * r.stride_b, r.stride_b,
                     c.data() + static_cast<std::ptrdiff_t>(lo) * r.stride_c, r.stride_c, hi - lo);
    }
    return sum_blocks(parts, nb);
  }
  const std::size_t e0 = p.axes[0].extent;
  const std::size_t nb = block_count(e0);
  SPARSEREG_PRAGMA_OMP_FOR
  for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
    sweep_totals t;
    for_each_run(p, 0, block_begin(e0, nb, static_cast<std::size_t>(b)),
                 block_begin(e0, nb, static_cast<std::size_t>(b) + 1), [&](const run_position& pos) {
                   t.add(run(x.data() + pos.offset_a, r.stride_a, out.data() + pos.offset_b, r.stride_b,
                             c.data() + pos.offset_c, r.stride_c, r.extent));
                 });
    parts[b] = t;
  }
  return sum_blocks(parts, nb);
}

/// Pass 2 placeholder for sweeps that only read (penalty values).
struct no_apply {
  template <class T, class O>
  void operator()(const T*, std::ptrdiff_t, O*, std::ptrdiff_t, std::size_t, T) const noexcept {}
};

/// The grouped two-pass sweep. decide(g, size, sumsq, abs_sum, zeros) -> group_decision<T>;
/// apply(xp, sx, op, so, n, factor) writes one run of the output.
template <class T, class O, class Pre, class Decide, class Apply>
sweep_totals grouped_sweep(const view<const T>& x, const view<O>& out, const grouping& grp, Pre pre, Decide decide,
                           Apply apply) {
  constexpr bool writes = !std::is_same_v<Apply, no_apply>;
  if (x.size() == 0) return {};
  if (grp.is_explicit()) {
    // Irregular groups: gather through the index lists, one group at a time.
    const auto& off = grp.explicit_offsets();
    const auto& idx = grp.explicit_indices();
    const std::size_t G = off.size() - 1;
    const std::size_t nb = block_count(G);
    sweep_totals parts[max_blocks];
    const bool dense_x = x.is_contiguous();
    const bool dense_o = out.is_contiguous();
    SPARSEREG_PRAGMA_OMP_FOR
    for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
      sweep_totals t;
      for (std::size_t g = block_begin(G, nb, static_cast<std::size_t>(b));
           g < block_begin(G, nb, static_cast<std::size_t>(b) + 1); ++g) {
        lane_sums<T> acc;
        const std::size_t n = off[g + 1] - off[g];
        for (std::size_t k = 0; k < n; ++k) {
          const std::size_t f = idx[off[g] + k];
          const T v = x.data()[dense_x ? static_cast<std::ptrdiff_t>(f) : x.offset_of_flat(f)];
          accumulate_run(&v, 1, 1, k, pre, acc);
        }
        const auto d = decide(g, n, static_cast<double>(combine_lanes(acc.sq)),
                              static_cast<double>(combine_lanes(acc.ab)), acc.zeros);
        t.add({d.value, d.zero_elements, d.zero_group ? 1u : 0u, 1});
        if constexpr (writes) {
          for (std::size_t k = 0; k < n; ++k) {
            const std::size_t f = idx[off[g] + k];
            const std::ptrdiff_t ox = dense_x ? static_cast<std::ptrdiff_t>(f) : x.offset_of_flat(f);
            const std::ptrdiff_t oo = dense_o ? static_cast<std::ptrdiff_t>(f) : out.offset_of_flat(f);
            apply(x.data() + ox, 1, out.data() + oo, 1, 1, d.factor);
          }
        }
      }
      parts[b] = t;
    }
    return sum_blocks(parts, nb);
  }

  const plan p = make_plan(x, out, grp.axis_mask());
  const std::size_t G = p.groups;
  const std::size_t group_size = p.size / G;
  const plan_axis& r = p.run();

  // Fast path: every group is exactly one run. Norm, decision and write while the group is hot.
  const bool one_run_per_group = !r.identifies_group && r.extent == group_size;
  if (one_run_per_group) {
    sweep_totals parts[max_blocks];
    const std::size_t split = p.rank > 1 ? 0 : p.rank;
    const std::size_t e0 = p.rank > 1 ? p.axes[0].extent : 1;
    const std::size_t nb = block_count(e0);
    SPARSEREG_PRAGMA_OMP_FOR
    for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
      sweep_totals t;
      for_each_run(p, split, block_begin(e0, nb, static_cast<std::size_t>(b)),
                   block_begin(e0, nb, static_cast<std::size_t>(b) + 1), [&](const run_position& pos) {
                     lane_sums<T> acc;
                     const T* xp = x.data() + pos.offset_a;
                     accumulate_run(xp, r.stride_a, r.extent, 0, pre, acc);
                     const auto d = decide(pos.group, group_size, static_cast<double>(combine_lanes(acc.sq)),
                                           static_cast<double>(combine_lanes(acc.ab)), acc.zeros);
                     t.add({d.value, d.zero_elements, d.zero_group ? 1u : 0u, 1});
                     if constexpr (writes) apply(xp, r.stride_a, out.data() + pos.offset_b, r.stride_b, r.extent, d.factor);
                   });
      parts[b] = t;
    }
    return sum_blocks(parts, nb);
  }

  // Strided groups: pass 1 accumulates per-group lanes in a workspace, pass 2 writes.
  // Blocks split the outermost identifying axis, so each block owns whole groups.
  std::size_t split = p.rank;
  for (std::size_t k = 0; k < p.rank; ++k)
    if (p.axes[k].identifies_group) {
      split = k;
      break;
    }
  const bool split_is_run = split == p.rank - 1;
  const std::size_t es = split < p.rank ? p.axes[split].extent : 1;
  const std::size_t nb = block_count(es);
  std::vector<T> sq(lanes * G, T(0)), ab(lanes * G, T(0));
  std::vector<std::size_t> zeros(G, 0), seen(G, 0);
  std::vector<T> factor(writes ? G : 0);

  // Calls f(pos, lo, hi): the run at pos restricted to [lo, hi) of its elements.
  auto walk_block = [&](std::size_t b, auto&& f) {
    const std::size_t lo = block_begin(es, nb, b), hi = block_begin(es, nb, b + 1);
    if (split_is_run) {
      for_each_run(p, p.rank, 0, 0, [&](const run_position& pos) { f(pos, lo, hi); });
    } else {
      for_each_run(p, split, lo, hi, [&](const run_position& pos) { f(pos, std::size_t(0), r.extent); });
    }
  };

  SPARSEREG_PRAGMA_OMP_FOR
  for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
    walk_block(static_cast<std::size_t>(b), [&](const run_position& pos, std::size_t lo, std::size_t hi) {
      const T* xp = x.data() + pos.offset_a;
      if (!r.identifies_group) {
        // The run lies inside one group: continue that group's lanes.
        const std::size_t g = pos.group;
        lane_sums<T> acc;
        for (std::size_t j = 0; j < lanes; ++j) {
          acc.sq[j] = sq[j * G + g];
          acc.ab[j] = ab[j * G + g];
        }
        accumulate_run(xp, r.stride_a, r.extent, seen[g], pre, acc);
        for (std::size_t j = 0; j < lanes; ++j) {
          sq[j * G + g] = acc.sq[j];
          ab[j * G + g] = acc.ab[j];
        }
        zeros[g] += acc.zeros;
        seen[g] += r.extent;
      } else {
        // The run crosses groups, one element each; all of them have been seen equally often.
        const std::size_t g0 = pos.group + lo * r.group_stride;
        const std::size_t lane = seen[g0] & (lanes - 1);
        T* sql = sq.data() + lane * G;
        T* abl = ab.data() + lane * G;
        const std::size_t gs = r.group_stride;
        for (std::size_t k = lo; k < hi; ++k) {
          const T u = pre(xp[static_cast<std::ptrdiff_t>(k) * r.stride_a]);
          const std::size_t g = pos.group + k * gs;
          sql[g] += u * u;
          abl[g] += u < T(0) ? -u : u;
          zeros[g] += (u == T(0));
          seen[g] += 1;
        }
      }
    });
  }

  sweep_totals parts[max_blocks];
  const std::size_t nbg = block_count(G);
  SPARSEREG_PRAGMA_OMP_FOR
  for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nbg); ++b) {
    sweep_totals t;
    for (std::size_t g = block_begin(G, nbg, static_cast<std::size_t>(b));
         g < block_begin(G, nbg, static_cast<std::size_t>(b) + 1); ++g) {
      T sl[lanes], al[lanes];
      for (std::size_t j = 0; j < lanes; ++j) {
        sl[j] = sq[j * G + g];
        al[j] = ab[j * G + g];
      }
      const auto d = decide(g, group_size, static_cast<double>(combine_lanes(sl)), static_cast<double>(combine_lanes(al)),
                            zeros[g]);
      t.add({d.value, d.zero_elements, d.zero_group ? 1u : 0u, 1});
      if constexpr (writes) factor[g] = d.factor;
    }
    parts[b] = t;
  }

  if constexpr (writes) {
    SPARSEREG_PRAGMA_OMP_FOR
    for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(nb); ++b) {
      walk_block(static_cast<std::size_t>(b), [&](const run_position& pos, std::size_t lo, std::size_t hi) {
        const T* xp = x.data() + pos.offset_a;
        auto* op = out.data() + pos.offset_b;
        if (!r.identifies_group) {
          apply(xp, r.stride_a, op, r.stride_b, r.extent, factor[pos.group]);
        } else {
          for (std::size_t k = lo; k < hi; ++k)
            apply(xp + static_cast<std::ptrdiff_t>(k) * r.stride_a, 1, op + static_cast<std::ptrdiff_t>(k) * r.stride_b, 1,
                  1, factor[pos.group + k * r.group_stride]);
        }
      });
    }
  }
  return sum_blocks(parts, nbg);
}

/// Throws std::invalid_argument naming the first per-element step that is negative, NaN or infinite.
template <class T>
void require_valid_steps(const char* where, const view<const T>& steps) {
  const auto bad = elementwise_sweep(steps, steps, steps, [](const T* s, std::ptrdiff_t ss, const T*, std::ptrdiff_t,
                                                              const T*, std::ptrdiff_t, std::size_t n) {
    sweep_totals t;
    for (std::size_t i = 0; i < n; ++i) {
      const T v = s[static_cast<std::ptrdiff_t>(i) * ss];
      t.zero_elements += !(v >= T(0) && v <= std::numeric_limits<T>::max());
    }
    return t;
  });
  if (bad.zero_elements == 0) return;
  for (std::size_t f = 0; f < steps.size(); ++f) {
    const T v = steps.data()[steps.offset_of_flat(f)];
    if (!(v >= T(0) && v <= std::numeric_limits<T>::max()))
      throw_argument(where, "steps[" + std::to_string(f) + "] (row-major index) must be finite and >= 0, got " +
                                number_text(static_cast<double>(v)));
  }
}

}  // namespace detail
}  // namespace sparsereg
