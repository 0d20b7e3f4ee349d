// Machine ceilings for the kernels' own sizes, measured inside each benchmark binary so every
// kernel number can be reported as a ratio measured in the same run.
//
//   sum    read-only reduction of n floats (n*4 bytes): the floor of a penalty value.
//   copy   b[i] = a[i] (2*n*4 bytes: one read, one write): the floor of an out-of-place prox.
//   scale  a[i] *= s in place (2*n*4 bytes): the floor of an in-place prox.
//
// The loops are written so the compiler can neither drop nor fold them (benchmark::DoNotOptimize
// on the result, ClobberMemory after every pass) and so they vectorize without -ffast-math: the
// sum keeps four independent 8-float vector accumulators, which hides the add latency the way a
// SIMD reduction does. scale alternates s = 2 and s = 0.5, which is exact, so the data
// never drifts to zero, infinity or denormals.
//
// Every kernel benchmark also times, in each iteration and right before the kernel, one pass of
// its matching ceiling on the same buffer with the same threads; `ratio` is the kernel's
// bandwidth over that ceiling's. Interleaving the two at the millisecond scale makes the ratio
// robust on a shared machine, where other jobs take the cores for seconds at a time and a
// ceiling measured once would be compared with a kernel measured under a different load.
// The ceilings are also registered as benchmarks of their own (ceiling/...), printed first.
#pragma once

#include <benchmark/benchmark.h>
#include <sparsereg/sparsereg.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace bench {

enum class ceiling_kind { sum, copy, scale };

inline const char* name_of(ceiling_kind k) {
  switch (k) {
    case ceiling_kind::sum: return "sum";
    case ceiling_kind::copy: return "copy";
    default: return "scale";
  }
}

/// Bytes one pass of a ceiling kernel moves over n floats.
inline double bytes_of(ceiling_kind k, std::size_t n) {
  return (k == ceiling_kind::sum ? 1.0 : 2.0) * static_cast<double>(n) * sizeof(float);
}

inline void set_threads(int threads) {
#if defined(_OPENMP)
  omp_set_num_threads(threads);
#else
  (void)threads;
#endif
}

/// 64-byte aligned float buffer, first touched by the same static partition the kernels use.
struct buffer {
  struct free_deleter {
    void operator()(float* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<float[], free_deleter> data;
  std::size_t size = 0;

  explicit buffer(std::size_t n) : size(n) {
    const std::size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
    data.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    float* p = data.get();
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(n); ++i)
      p[i] = static_cast<float>((i * 7919) % 2001 - 1000) * 1e-3f;  // in [-1, 1], about 0.05% zeros
  }
  float* get() const noexcept { return data.get(); }
};

/// Sum of a[lo, hi) in four independent 8-float vector accumulators, written with GCC/clang
/// vector extensions so the loop's shape does not depend on the auto-vectorizer, whose own
/// choices here read DRAM ~20% slower or kept the accumulators in memory (58 instead of 100 GB/s
/// from L3). Of the forms measured (4 or 8 accumulators, 8- or 16-float vectors) this one was
/// the fastest from L3 (101 GB/s) and within noise of the fastest from DRAM (23-25 GB/s).
/// The loads go through an unaligned, may_alias vector type (what _mm256_loadu_ps is): a memcpy
/// of the 4 vectors into a local array, the earlier form, GCC 12 tuned for Zen 3 (-march=native
/// on an AMD EPYC here) compiles to 16-byte stores to the stack and 32-byte reloads, a failed
/// store-to-load forward per vector: 5.4 GB/s from L2 instead of 86.
inline float sum_range(const float* a, std::size_t lo, std::size_t hi) {
  typedef float v8 __attribute__((vector_size(32)));
  typedef float v8_unaligned __attribute__((vector_size(32), aligned(4), may_alias));
  v8 s0 = {}, s1 = {}, s2 = {}, s3 = {};
  std::size_t i = lo;
  for (; i + 32 <= hi; i += 32) {
    const v8_unaligned* x = reinterpret_cast<const v8_unaligned*>(a + i);
    s0 += x[0];
    s1 += x[1];
    s2 += x[2];
    s3 += x[3];
  }
  const v8 v = (s0 + s1) + (s2 + s3);
  float s = 0.0f;
  for (int j = 0; j < 8; ++j) s += v[j];
  for (; i < hi; ++i) s += a[i];
  return s;
}

inline float sum_pass(const float* a, std::size_t n) {
  float total = 0.0f;
#pragma omp parallel reduction(+ : total)
  {
    std::size_t lo = 0, hi = n;
#if defined(_OPENMP)
    const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
    const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads());
    lo = n * t / nt;
    hi = n * (t + 1) / nt;
#endif
    total += sum_range(a, lo, hi);
  }
  return total;
}

inline void copy_pass(const float* a, float* b, std::size_t n) {
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(n); ++i) b[i] = a[i];
}

inline void scale_pass(float* a, std::size_t n, float s) {
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(n); ++i) a[i] *= s;
}

/// Registers the three ceiling kernels on n floats as ordinary benchmarks, so they appear in the
/// report (and its JSON) next to the kernels: "ceiling/<kind>/<shape>/threads:<t>".
inline void register_ceilings(const std::string& shape, std::size_t n) {
  for (ceiling_kind kind : {ceiling_kind::sum, ceiling_kind::copy, ceiling_kind::scale}) {
    benchmark::RegisterBenchmark(("ceiling/" + std::string(name_of(kind)) + "/" + shape).c_str(),
                                 [kind, n](benchmark::State& state) {
                                   const int threads = static_cast<int>(state.range(0));
                                   set_threads(threads);
                                   static std::map<std::size_t, std::unique_ptr<buffer>> as, bs;
                                   auto& a = as[n];
                                   if (!a) a = std::make_unique<buffer>(n);
                                   auto& b = bs[n];
                                   if (kind == ceiling_kind::copy && !b) b = std::make_unique<buffer>(n);
                                   std::size_t pass = 0;
                                   for (auto _ : state) {
                                     switch (kind) {
                                       case ceiling_kind::sum: {
                                         float s = sum_pass(a->get(), n);
                                         benchmark::DoNotOptimize(s);
                                         break;
                                       }
                                       case ceiling_kind::copy: copy_pass(a->get(), b->get(), n); break;
                                       default: scale_pass(a->get(), n, (pass & 1) ? 0.5f : 2.0f); break;
                                     }
                                     benchmark::ClobberMemory();
                                     ++pass;
                                   }
                                   state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                                                           static_cast<std::int64_t>(bytes_of(kind, n)));
                                   state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                                                           static_cast<std::int64_t>(n));
                                   state.SetLabel("threads=" + std::to_string(threads));
                                   // Release the buffers of the biggest shapes between uses.
                                   if (n * sizeof(float) > (std::size_t(64) << 20)) {
                                     a.reset();
                                     b.reset();
                                   }
                                 })
        ->ArgName("threads")
        ->Arg(1)
        ->Arg(2)
        ->UseRealTime();
  }
}

}  // namespace bench

// ---------------------------------------------------------------------------------------------
// The kernel harness shared by bench_*.cpp: the benchmark shapes, their data, and one
// registration function that times value / prox (out of place) / prox (in place) and reports
// bytes_per_second plus `ratio` = ours / matching ceiling (sum, copy, scale) from this run.
// ---------------------------------------------------------------------------------------------
namespace bench {

struct shape_case {
  std::string name;
  std::vector<std::size_t> extents;
  std::size_t size() const {
    std::size_t n = 1;
    for (auto e : extents) n *= e;
    return n;
  }
};

/// FC out x in (4096 x 4096, 64 MiB), conv OIHW 256x256x3x3 (2.25 MiB) and 512x512x3x3 (9 MiB),
/// and a 64M-element flat tensor seen as 65536 groups of 1024 (256 MiB).
inline const std::vector<shape_case>& shapes() {
  static const std::vector<shape_case> all = {
      {"fc4096x4096", {4096, 4096}},
      {"fc80x3136", {80, 3136}},  // the bundled trainer's fc1 (1 MB: in L2/L3)
      {"conv256x256x3x3", {256, 256, 3, 3}},
      {"conv512x512x3x3", {512, 512, 3, 3}},
      {"flat65536x1024", {65536, 1024}},
  };
  return all;
}

struct grouping_case {
  std::string name;  // "rows", "filters", ...
  bool contiguous;   // each group is one contiguous run
  sparsereg::grouping groups;
};

/// The groupings benchmarked on a shape: one contiguous and (except flat) one strided.
inline std::vector<grouping_case> groupings_of(const shape_case& s) {
  namespace g = sparsereg::groups;
  if (s.extents.size() == 4)
    return {{"filters", true, g::filters()}, {"input_channels", false, g::input_channels()}};
  if (s.name.rfind("fc", 0) == 0)
    return {{"output_neurons", true, g::output_neurons()}, {"input_neurons", false, g::input_neurons()}};
  return {{"groups_of_1024", true, sparsereg::grouping::by_axes({0}, 2)}};
}

/// The input x and output y of one shape, allocated once per binary.
struct shape_data {
  buffer x, y;
  explicit shape_data(std::size_t n) : x(n), y(n) {}
};

inline shape_data& data_of(const shape_case& s) {
  static std::map<std::string, std::unique_ptr<shape_data>> all;
  auto& d = all[s.name];
  if (!d) d = std::make_unique<shape_data>(s.size());
  return *d;
}

enum class op_kind { value, prox, prox_in_place, prox_in_place_without_stats };

inline const char* name_of(op_kind k) {
  switch (k) {
    case op_kind::value: return "value";
    case op_kind::prox: return "prox";
    case op_kind::prox_in_place: return "prox_in_place";
    default: return "prox_in_place_without_stats";
  }
}

/// Registers "<penalty>/<op>/<shape>[/<grouping>]/threads:{1,2}" for the three ops, and with
/// `without_stats_too` a fourth: the in-place prox through sparsereg::prox(..., without_stats).
/// `step` is the out-of-place prox step; the in-place prox uses `step * 1e-6`, small enough that
/// repeating it thousands of times leaves the data (and so the work) essentially unchanged.
/// Counters: ceiling_GBps (the matching ceiling: sum for a value, in-place scale for a prox),
/// ratio = ours / ceiling_GBps, and for the out-of-place prox copy_GBps and ratio_vs_copy.
template <class Penalty>
void register_kernels(const std::string& penalty_name, const Penalty& penalty, const shape_case& s,
                      const std::string& grouping_name, double step, bool without_stats_too = false) {
  for (op_kind op : {op_kind::value, op_kind::prox, op_kind::prox_in_place, op_kind::prox_in_place_without_stats}) {
    if (op == op_kind::prox_in_place_without_stats && !without_stats_too) continue;
    std::string name = penalty_name + "/" + name_of(op) + "/" + s.name;
    if (!grouping_name.empty()) name += "/" + grouping_name;
    benchmark::RegisterBenchmark(name.c_str(), [penalty, s, op, step](benchmark::State& state) {
      const int threads = static_cast<int>(state.range(0));
      set_threads(threads);
      const std::size_t n = s.size();
      shape_data& d = data_of(s);
      const sparsereg::view<const float> x(d.x.get(), s.extents);
      const sparsereg::view<float> y(d.y.get(), s.extents);
      const sparsereg::view<float> xin(d.x.get(), s.extents);
      // The scale pass runs on the buffer the kernel writes (y, or x in place); s = 2 and 0.5
      // alternate, which is exact, and an even number of passes leaves the data as it was.
      float* scaled = op == op_kind::prox ? d.y.get() : d.x.get();
      using clock = std::chrono::steady_clock;
      double kernel_s = 0.0, ceiling_s = 0.0, copy_s = 0.0;
      std::size_t pass = 0;
      for (auto _ : state) {
        const auto c0 = clock::now();
        if (op == op_kind::value) {
          float sum = sum_pass(d.x.get(), n);
          benchmark::DoNotOptimize(sum);
        } else {
          scale_pass(scaled, n, (pass++ & 1) ? 0.5f : 2.0f);
        }
        benchmark::ClobberMemory();
        const auto c1 = clock::now();
        if (op == op_kind::prox) {
          copy_pass(d.x.get(), d.y.get(), n);
          benchmark::ClobberMemory();
        }
        const auto t0 = clock::now();
        switch (op) {
          case op_kind::value: {
            double v = sparsereg::value(penalty, x);
            benchmark::DoNotOptimize(v);
            break;
          }
          case op_kind::prox: {
            auto r = sparsereg::prox(penalty, x, y, step);
            benchmark::DoNotOptimize(r);
            break;
          }
          case op_kind::prox_in_place: {
            auto r = sparsereg::prox(penalty, xin, xin, step * 1e-6);
            benchmark::DoNotOptimize(r);
            break;
          }
          default: {
            sparsereg::prox(penalty, xin, xin, step * 1e-6, sparsereg::without_stats);
            benchmark::DoNotOptimize(d.x.get());
            break;
          }
        }
        benchmark::ClobberMemory();
        const auto t1 = clock::now();
        const double k = std::chrono::duration<double>(t1 - t0).count();
        state.SetIterationTime(k);
        kernel_s += k;
        ceiling_s += std::chrono::duration<double>(c1 - c0).count();
        copy_s += std::chrono::duration<double>(t0 - c1).count();
      }
      if (pass & 1) scale_pass(scaled, n, 0.5f);
      const double iters = static_cast<double>(state.iterations());
      const double bytes = (op == op_kind::value ? 1.0 : 2.0) * static_cast<double>(n) * sizeof(float) * iters;
      const double ours = bytes / kernel_s * 1e-9;
      const double ceil = bytes / ceiling_s * 1e-9;
      state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
      state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n));
      state.counters["ceiling_GBps"] = ceil;
      state.counters["ratio"] = ours / ceil;
      if (op == op_kind::prox) {
        state.counters["copy_GBps"] = bytes / copy_s * 1e-9;
        state.counters["ratio_vs_copy"] = ours / (bytes / copy_s * 1e-9);
      }
      state.SetLabel("threads=" + std::to_string(threads) + " ceiling=" + (op == op_kind::value ? "sum" : "scale"));
    })
        ->ArgName("threads")
        ->Arg(1)
        ->Arg(2)
        ->UseManualTime();
  }
}

/// The ceiling of a kernel that reads two arrays and writes one of them (a prox with per-element
/// steps: x, steps -> x; a gradient: w, g -> g): a[i] *= m[i] in place, 3 * n * 4 bytes, with m
/// all 2 or all 0.5 on alternate passes (exact, so a never drifts).
struct multipliers {
  buffer up, down;
  explicit multipliers(std::size_t n) : up(n), down(n) {
    std::fill(up.get(), up.get() + n, 2.0f);
    std::fill(down.get(), down.get() + n, 0.5f);
  }
};

/// The multiplier arrays for n elements, allocated once per binary.
inline multipliers& multipliers_of(std::size_t n) {
  static std::map<std::size_t, std::unique_ptr<multipliers>> all;
  auto& m = all[n];
  if (!m) m = std::make_unique<multipliers>(n);
  return *m;
}

inline void multiply_pass(float* a, const float* m, std::size_t n) {
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(n); ++i) a[i] *= m[i];
}

/// Registers fn as "<name>/threads:{1,2}", timed by hand (run_against_ceiling).
template <class Fn>
void register_manual_threads(const std::string& name, Fn&& fn) {
  benchmark::RegisterBenchmark(name.c_str(), std::forward<Fn>(fn))->ArgName("threads")->Arg(1)->Arg(2)->UseManualTime();
}

/// The loop of a hand-timed kernel benchmark: each iteration times ceiling(pass) (pass = 0, 1,
/// 2, ...), then kernel() (Google Benchmark's manual time). Reports `bytes` per iteration for
/// both, `items` items per iteration, ceiling_GBps and ratio = ours / ceiling, and labels the run
/// with the thread count and `ceiling_name`. Returns the number of ceiling passes made.
template <class Ceiling, class Kernel>
std::size_t run_against_ceiling(benchmark::State& state, double bytes, std::size_t items, const char* ceiling_name,
                                Ceiling&& ceiling, Kernel&& kernel) {
  const int threads = static_cast<int>(state.range(0));
  set_threads(threads);
  using clock = std::chrono::steady_clock;
  double kernel_s = 0.0, ceiling_s = 0.0;
  std::size_t pass = 0;
  for (auto _ : state) {
    const auto c0 = clock::now();
    ceiling(pass++);
    benchmark::ClobberMemory();
    const auto t0 = clock::now();
    kernel();
    benchmark::ClobberMemory();
    const auto t1 = clock::now();
    const double k = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(k);
    kernel_s += k;
    ceiling_s += std::chrono::duration<double>(t0 - c0).count();
  }
  const double iters = static_cast<double>(state.iterations());
  const double ours = bytes * iters / kernel_s * 1e-9, ceil = bytes * iters / ceiling_s * 1e-9;
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes * iters));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(items));
  state.counters["ceiling_GBps"] = ceil;
  state.counters["ratio"] = ours / ceil;
  state.SetLabel("threads=" + std::to_string(threads) + " ceiling=" + ceiling_name);
  return pass;
}

/// run_against_ceiling for a kernel that reads two arrays of n floats and writes the first of
/// them, `a` (3 * n * 4 bytes): the ceiling is multiply_pass over a, by 2 and 0.5 alternately, and
/// an even number of passes leaves a as it was.
template <class Kernel>
void run_against_multiply(benchmark::State& state, float* a, std::size_t n, Kernel&& kernel) {
  multipliers& m = multipliers_of(n);
  const std::size_t passes = run_against_ceiling(
      state, 3.0 * static_cast<double>(n) * sizeof(float), n, "multiply_in_place",
      [&](std::size_t pass) { multiply_pass(a, (pass & 1) ? m.down.get() : m.up.get(), n); }, kernel);
  if (passes & 1) multiply_pass(a, m.down.get(), n);
}

/// Registers the ceilings of every shape (they print first).
inline void register_all_ceilings() {
  for (const auto& s : shapes()) register_ceilings(s.name, s.size());
}

}  // namespace bench
