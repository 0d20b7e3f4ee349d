// Calls that must not allocate. This file replaces the global operator new (every form, including
// the nothrow one std::stable_sort's temporary buffer uses) with one that counts, so a kernel that
// starts allocating per call fails here: iteration plans and keyed runs (detail/plan.hpp,
// detail/runs.hpp), the grouped prox, value and gradient over contiguous groups, and a steady-state
// regularizer::prox_step with one of them. Coupled groups allocate exactly one workspace per call
// (coupled.hpp, docs/api.md "Memory"); that count is pinned too.
#include <sparsereg/coupled.hpp>
#include <sparsereg/detail/plan.hpp>
#include <sparsereg/detail/runs.hpp>
#include <sparsereg/regularizer.hpp>
#include <sparsereg/sparsereg.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace {

std::size_t allocations = 0;

void* counted(std::size_t n, std::size_t align) noexcept {
  ++allocations;
  if (n == 0) n = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
void* counted_or_throw(std::size_t n, std::size_t align) {
  if (void* p = counted(n, align)) return p;
  throw std::bad_alloc();
}

// free through a pointer the compiler cannot see through: GCC's -Wmismatched-new-delete would
// otherwise flag the replaced operator delete freeing what the replaced operator new malloc'ed.
void (*volatile release)(void*) = std::free;

/// Allocations made by f().
template <class F>
std::size_t allocations_in(F&& f) {
  const std::size_t before = allocations;
  f();
  return allocations - before;
}

}  // namespace

void* operator new(std::size_t n) { return counted_or_throw(n, 0); }
void* operator new[](std::size_t n) { return counted_or_throw(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }

namespace sr = sparsereg;

TEST_CASE("the allocation counter sees std::stable_sort's temporary buffer") {
  // What detail::make_plan used before its insertion sort: if this stops counting, the plan test
  // below would pass without proving anything.
  std::vector<std::size_t> v = {3, 1, 2, 0, 5, 4};
  CHECK(allocations_in([&] { std::stable_sort(v.begin(), v.end()); }) > 0);
}

TEST_CASE("iteration plans and keyed runs allocate nothing") {
  std::vector<float> a(2 * 3 * 4 * 5, 1.0f);
  // Column-major strides: the axes must be reordered (a sort of 4 axes), and transposed ones.
  const sr::view<float> col(a.data(), {2, 3, 4, 5}, {1, 2, 6, 24});
  const sr::view<float> row(a.data(), {2, 3, 4, 5});
  const sr::view<float> odd(a.data(), {2, 3, 4, 5}, {1, 40, 2, 8});
  std::size_t runs = 0;
  const auto walk = [&](const sr::view<float>& v) {
    runs += sr::detail::make_plan(v, v, 0b1001u).runs();
    sr::detail::for_each_keyed_run(v, v, sr::detail::unit_key_strides(1),
                                   [&](float*, std::ptrdiff_t, float*, std::ptrdiff_t, std::size_t, std::size_t,
                                       std::size_t) { ++runs; });
  };
  for (const auto& v : {col, row, odd}) CHECK(allocations_in([&] { walk(v); }) == 0);
  CHECK(runs > 0);
}

TEMPLATE_TEST_CASE("grouped prox, value and gradient over contiguous groups allocate nothing", "[no_alloc]", float,
                   double) {
  using T = TestType;
  std::vector<T> w(16 * 8 * 3 * 3), g(w.size(), T(0));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<T>(static_cast<double>(i % 7) * 0.01 - 0.03);
  const sr::view<T> wv(w.data(), {16, 8, 3, 3});
  const sr::view<T> gv(g.data(), {16, 8, 3, 3});
  const sr::sparse_group_lasso sgl(1e-2, 1e-3, sr::groups::filters());
  const sr::group_lasso gl(1e-2, sr::groups::filters());
  const sr::l1 l1(1e-3);
  double sink = 0.0;
  CHECK(allocations_in([&] { sink += sr::prox(sgl, wv, wv, 0.1).value; }) == 0);
  CHECK(allocations_in([&] { sink += sr::prox(gl, wv, wv, 0.1).value; }) == 0);
  CHECK(allocations_in([&] { sink += sr::prox(sgl, wv, wv, 0.0).value; }) == 0);
  CHECK(allocations_in([&] { sink += sr::prox(l1, wv, wv, 0.1).value; }) == 0);
  CHECK(allocations_in([&] { sink += sr::value(sgl, wv); }) == 0);
  CHECK(allocations_in([&] { sr::add_gradient(sgl, wv, gv); }) == 0);
  // Explicit index lists: every other element, two groups.
  std::vector<std::vector<std::size_t>> lists(2);
  for (std::size_t i = 0; i < w.size(); ++i) lists[i % 2].push_back(i);
  const sr::sparse_group_lasso ex(1e-2, 1e-3, sr::grouping::from_lists(lists));
  CHECK(allocations_in([&] { sink += sr::prox(ex, wv, wv, 0.1).value; }) == 0);
  CHECK(allocations_in([&] { sink += sr::value(ex, wv); }) == 0);
  CHECK(allocations_in([&] { sr::add_gradient(ex, wv, gv); }) == 0);
  CHECK(sink == sink);
}

TEST_CASE("a steady-state prox_step with a filter-wise sparse group lasso and an l1 allocates nothing") {
  std::vector<float> w(8 * 3 * 3 * 3, 0.1f), b(8, 0.1f);
  sr::regularizer<float> reg;
  reg.add_parameter("c1", sr::view<float>(w.data(), {8, 3, 3, 3}));
  reg.add_parameter("b1", sr::view<float>(b.data(), {8}));
  reg.add_penalty("c1", sr::sparse_group_lasso(1e-4, 1e-5, sr::groups::filters()),
                  sr::schedule::linear_warmup(10) * sr::schedule::step_decay(5, 0.5));
  reg.add_penalty("b1", sr::l1(1e-4));
  reg.prox_step(0.1);
  CHECK(allocations_in([&] { reg.prox_step(0.1); }) == 0);
}

TEST_CASE("a coupled group allocates one workspace per call") {
  std::vector<double> w1(8 * 3 * 3 * 3, 0.1), b1(8, 0.1), w2(4 * 8 * 3 * 3, 0.1);
  const std::vector<sr::coupled_part<double>> parts = {{sr::view<double>(w1.data(), {8, 3, 3, 3}), 0},
                                                       {sr::view<double>(b1.data(), {8}), 0},
                                                       {sr::view<double>(w2.data(), {4, 8, 3, 3}), 1}};
  const sr::coupled_sparse_group_lasso p(1e-4, 1e-5);
  double sink = 0.0;
  CHECK(allocations_in([&] { sink += p.prox(parts, 0.1).value; }) == 1);
  CHECK(allocations_in([&] { sink += p.value(parts); }) == 1);
  CHECK(allocations_in([&] { sink += static_cast<double>(p.count_zero_units(parts).zero_groups); }) == 1);
  CHECK(sink == sink);
}
