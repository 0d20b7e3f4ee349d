// detail::lane_prefetch() decides whether the separable lanes (abs_lanes_f32) prefetch from DRAM:
// everywhere except on AMD processors with AVX-512 (docs/benchmarks.md, "thirty-third session").
// The decision is compared with the processor as read here independently, by the cpuid and xgetbv
// instructions: vendor string, AVX-512 F in cpuid leaf 7 and its register state enabled by the OS.
#include <catch2/catch.hpp>

#include <sparsereg/detail/sweep.hpp>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>

#include <cstdint>
#include <cstring>

namespace {

struct processor {
  bool amd = false;
  bool avx512f = false;
};

processor read_processor() {
  processor p;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return p;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  p.amd = std::strcmp(vendor, "AuthenticAMD") == 0;
  const unsigned max_leaf = a;
  if (max_leaf < 7 || !__get_cpuid(1, &a, &b, &c, &d)) return p;
  const bool osxsave = (c >> 27) & 1u;
  if (!osxsave) return p;
  std::uint32_t xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  // SSE, AVX, opmask, upper halves of zmm0-15 and zmm16-31 state: bits 1, 2, 5, 6, 7.
  const bool os_saves_zmm = (xcr0_lo & 0xe6u) == 0xe6u;
  __cpuid_count(7, 0, a, b, c, d);
  p.avx512f = os_saves_zmm && ((b >> 16) & 1u);
  return p;
}

}  // namespace

TEST_CASE("the separable lanes prefetch except on AMD processors with AVX-512", "[sweep][prefetch]") {
  const processor p = read_processor();
  INFO("AMD " << p.amd << ", AVX-512 F usable " << p.avx512f);
  CHECK(sparsereg::detail::lane_prefetch() == !(p.amd && p.avx512f));
}
#else
TEST_CASE("the separable lanes prefetch on processors other than x86", "[sweep][prefetch]") {
  CHECK(sparsereg::detail::lane_prefetch());
}
#endif
