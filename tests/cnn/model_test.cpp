// Layers and model of the bundled CNN trainer: architecture strings, parameter counts and
// finite-difference gradient checks of conv (with and without padding), max-pool, flatten
// (including a compacted flatten gather) and linear layers; conv and max-pool against direct loops;
// the im2col / col2im row helpers against plain loops with guard zones; optimizer steps against a
// double reference and across thread counts.
#include <catch2/catch.hpp>

#include "cnn/model.hpp"
#include "cnn/optimizer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

// Built a second time with -march=native where that has AVX-512 (SPARSEREG_TEST_VECTOR_WIDTH 16):
// then the conv forward GEMM's kernel must be the one tested.
#if defined(SPARSEREG_TEST_VECTOR_WIDTH) && SPARSEREG_TEST_VECTOR_WIDTH == 16 && !defined(SPARSEREG_CNN_CONV_KERNEL)
#error "built with AVX-512, but detail::conv_gemm (SPARSEREG_CNN_CONV_KERNEL) is not compiled"
#endif

using namespace sparsereg_cnn;

TEST_CASE("architecture strings and presets", "[cnn]") {
  model def(architecture::parse("default"));
  CHECK(def.parameter_count() == 303866);
  CHECK(def.arch.str() == "c32k5-p2-c64k5-p2-f80-f10");
  CHECK(def.fcs[0].in == 3136);
  model lenet(architecture::parse("lenet5-caffe"));
  CHECK(lenet.parameter_count() == 431080);
  CHECK(lenet.fcs[0].in == 800);
  CHECK(lenet.fcs[0].out == 500);
  CHECK(architecture::parse("c20k5p0-p2-c50k5p0-p2-f500-f10").str() == "c20k5p0-p2-c50k5p0-p2-f500-f10");
  CHECK(model(architecture::parse("f300-f100-f10")).parameter_count() == 784 * 300 + 300 + 300 * 100 + 100 + 1010);
  for (const char* bad : {"x3", "c32", "c32k", "f10-c3k3", "c3k3-p2", "c0k3-f10", "c3k3q-f10", "f10--f10"})
    CHECK_THROWS_AS(model(architecture::parse(bad)), std::invalid_argument);
}

TEST_CASE("architecture numbers are bounded and errors name the token and value", "[cnn]") {
  const std::vector<std::pair<std::string, std::string>> bad{
      {"c99999999999999999999999k5-f10", "filter count 99999999999999999999999"},
      {"c65537k5-f10", "filter count 65537"},
      {"c8k1025-f10", "kernel size 1025"},
      {"c8k5p4000000000-f10", "padding 4000000000"},
      {"c8k5p1025-f10", "padding 1025"},
      {"p1025-f10", "pooling window 1025"},
      {"f18446744073709551617", "neuron count 18446744073709551617"},
      {"f65537", "neuron count 65537"}};
  for (const auto& [arch, what] : bad) {
    INFO(arch);
    CHECK_THROWS_AS(architecture::parse(arch), std::invalid_argument);
    const std::string token = arch.substr(0, arch.find('-'));
    CHECK_THROWS_WITH(architecture::parse(arch), Catch::Contains("--arch '" + arch + "'") &&
                                                     Catch::Contains("token '" + token + "'") &&
                                                     Catch::Contains(what + " is too large"));
  }
  // The bounds themselves, zero padding and leading zeros still parse.
  const auto a = architecture::parse("c65536k1024p1024-p1024-f65536", 1, 4096, 4096);
  CHECK(a.layers[0].out == 65536);
  CHECK(a.layers[0].kernel == 1024);
  CHECK(a.layers[0].pad == 1024);
  CHECK(a.layers[1].kernel == 1024);
  CHECK(a.layers[2].out == 65536);
  CHECK(architecture::parse("c08k5p0-f010").str() == "c8k5p0-f10");
  CHECK_THROWS_WITH(architecture::parse("c8k5p-f10"), Catch::Contains("bad padding"));
  CHECK_THROWS_WITH(architecture::parse("c8k5p2x-f10"), Catch::Contains("bad padding"));
}

namespace {

double loss_of(model& m, const std::vector<float>& x, const std::vector<std::uint8_t>& y, std::vector<float>* dlogits) {
  const std::size_t n = y.size();
  const float* logits = m.forward(x.data(), n);
  std::vector<float> d(n * m.classes());
  const double l = softmax_cross_entropy(logits, y.data(), n, m.classes(), d.data(), nullptr) / static_cast<double>(n);
  if (dlogits) *dlogits = d;
  return l;
}

void gradient_check(model& m, std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  m.init(rng);
  // Non-zero biases so ReLU kinks are not all at the same place.
  for (auto& p : m.parameters())
    if (!p.is_weight)
      for (auto& b : *p.value) b = std::uniform_real_distribution<float>(0.05f, 0.2f)(rng);
  const std::size_t image = m.arch.in_channels * m.arch.in_h * m.arch.in_w;
  std::vector<float> x(n * image);
  for (auto& v : x) v = std::uniform_real_distribution<float>(0.f, 1.f)(rng);
  std::vector<std::uint8_t> y(n);
  for (auto& v : y) v = static_cast<std::uint8_t>(rng() % m.classes());
  std::vector<float> d;
  loss_of(m, x, y, &d);
  m.backward(d.data(), n);
  auto params = m.parameters();
  std::vector<std::vector<float>> analytic;
  for (auto& p : params) analytic.push_back(*p.grad);
  std::size_t checked = 0, bad = 0;
  for (std::size_t pi = 0; pi < params.size(); ++pi) {
    auto& v = *params[pi].value;
    for (std::size_t t = 0; t < 6; ++t) {
      const std::size_t i = (t * 7919 + pi * 104729) % v.size();
      const float old = v[i];
      const double a = analytic[pi][i];
      bool ok = false;
      double last = 0;
      // A ReLU / max-pool kink inside [-h, h] spoils a central difference; a smaller h avoids it.
      for (float h : {1e-2f, 3e-3f, 1e-3f}) {
        v[i] = old + h;
        const double lp = loss_of(m, x, y, nullptr);
        v[i] = old - h;
        const double lm = loss_of(m, x, y, nullptr);
        v[i] = old;
        last = (lp - lm) / (2.0 * static_cast<double>(h));
        if (std::fabs(last - a) <= 1e-3 + 5e-2 * std::fabs(a)) ok = true;
      }
      ++checked;
      if (!ok) {
        ++bad;
        UNSCOPED_INFO(params[pi].name << "[" << i << "]: analytic " << a << " numeric " << last);
      }
    }
  }
  CHECK(bad <= checked / 12);
  // Directional derivative along random directions: all coordinates at once, so a single kink
  // matters little and the loss change is well above float noise.
  for (int dir = 0; dir < 3; ++dir) {
    std::vector<std::vector<float>> u(params.size()), base(params.size());
    double predicted = 0;
    for (std::size_t pi = 0; pi < params.size(); ++pi) {
      base[pi] = *params[pi].value;
      u[pi].resize(base[pi].size());
      for (std::size_t i = 0; i < u[pi].size(); ++i) {
        u[pi][i] = std::normal_distribution<float>(0.f, 1.f)(rng);
        predicted += static_cast<double>(u[pi][i]) * analytic[pi][i];
      }
    }
    const float h = 1e-3f;
    auto shift = [&](float s) {
      for (std::size_t pi = 0; pi < params.size(); ++pi)
        for (std::size_t i = 0; i < u[pi].size(); ++i) (*params[pi].value)[i] = base[pi][i] + s * u[pi][i];
    };
    shift(h);
    const double lp = loss_of(m, x, y, nullptr);
    shift(-h);
    const double lm = loss_of(m, x, y, nullptr);
    shift(0);
    const double numeric = (lp - lm) / (2.0 * static_cast<double>(h));
    CHECK(numeric == Approx(predicted).epsilon(0.05).margin(1e-3));
  }
}

/// body(threads) with 1, 2 and 3 OpenMP threads (once, with 1, without OpenMP); the thread count
/// is restored afterwards.
template <class Body>
void on_thread_counts(Body&& body) {
#if defined(_OPENMP)
  const int saved_threads = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    body(threads);
  }
  omp_set_num_threads(saved_threads);
#else
  body(1);
#endif
}

}  // namespace

TEST_CASE("gradients match finite differences", "[cnn]") {
  SECTION("same-padded conv, pool, conv, pool, two linear layers") {
    model m(architecture::parse("c3k3-p2-c4k3-p2-f6-f10", 1, 12, 12));
    gradient_check(m, 5, 11);
  }
  SECTION("unpadded conv, odd sizes and a flatten gather") {
    model m(architecture::parse("c2k3p0-p2-c3k2p0-f10", 1, 11, 11), {0, 2, 3, 7, 8, 11});
    CHECK(m.fcs[0].in == 6);
    gradient_check(m, 3, 2);
  }
  SECTION("padded conv alone") {
    model m(architecture::parse("c3k3-f10", 1, 6, 6));
    gradient_check(m, 3, 4);
  }
  SECTION("two padded convs") {
    model m(architecture::parse("c2k3-c3k3-f10", 1, 6, 6));
    gradient_check(m, 3, 4);
  }
  SECTION("padded conv and pool") {
    model m(architecture::parse("c2k3-p2-f10", 1, 6, 6));
    gradient_check(m, 3, 4);
  }
  SECTION("linear only") {
    model m(architecture::parse("f7-f10", 1, 5, 5));
    gradient_check(m, 4, 3);
  }
}

TEST_CASE("batch results do not depend on chunking", "[cnn]") {
  model m(architecture::parse("c4k5-p2-c8k5-p2-f16-f10"));
  std::mt19937 rng(5);
  m.init(rng);
  std::vector<float> x(7 * 784);
  for (auto& v : x) v = std::uniform_real_distribution<float>(0.f, 1.f)(rng);
  std::vector<float> all(m.forward(x.data(), 7), m.forward(x.data(), 7) + 70);
  for (std::size_t r = 0; r < 7; ++r) {
    const float* one = m.forward(x.data() + r * 784, 1);
    for (std::size_t c = 0; c < 10; ++c) CHECK(one[c] == Approx(all[r * 10 + c]).margin(1e-5));
  }
}

TEST_CASE("max-pool forward and backward match a direct reference, ties and NaNs included", "[cnn]") {
  // Reference: the straightforward loops (first maximum in row-major window order wins, the first
  // NaN beats any number; backward adds into zeros). Outputs and input gradients are compared bit
  // for bit (which of +0 / -0, which NaN) and the argmax directly. The widths cover the 2x2 pool's vector blocks
  // of 8 and 4 outputs, exact and with an overlapping last block, and its scalar fallback (fewer
  // than 4 outputs per row); odd widths put every row at an odd offset.
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float specials[] = {0.f, -0.f, inf, -inf, nan, -nan, std::nanf("7"), 1e-40f, -1e-40f};
  for (std::size_t size : {2u, 3u}) {
    for (std::size_t h : {6u, 7u, 14u}) {
      for (std::size_t w : {7u, 8u, 9u, 10u, 16u, 17u, 28u, 29u}) {
        const std::size_t c = 3, n = 2;
        INFO("window " << size << ", input " << h << "x" << w);
        maxpool2d pool(c, size, h, w);
        std::mt19937 rng(static_cast<std::uint32_t>(size * 10000 + h * 100 + w));
        std::vector<float> x(c * n * h * w);
        for (auto& v : x) {
          const auto r = rng() % 32;
          if (r < 6)
            v = specials[rng() % std::size(specials)];
          else if (r < 26)
            v = static_cast<float>(static_cast<int>(r % 5) - 2);  // many ties
          else
            v = std::uniform_real_distribution<float>(-3.f, 3.f)(rng);
        }
        std::vector<float> y(c * n * pool.out_h() * pool.out_w());
        pool.forward(x.data(), y.data(), n);
        std::vector<float> g(y.size());
        for (auto& v : g) v = rng() % 8 == 0 ? -0.f : std::uniform_real_distribution<float>(-1.f, 1.f)(rng);
        std::vector<float> dx(x.size(), 7.f);  // garbage: backward must overwrite everything
        pool.backward(g.data(), dx.data(), n);

        std::vector<float> ref_dx(x.size(), 0.f);
        std::size_t wrong_value = 0, wrong_index = 0;
        for (std::size_t p = 0; p < c * n; ++p)
          for (std::size_t oh = 0; oh < pool.out_h(); ++oh)
            for (std::size_t ow = 0; ow < pool.out_w(); ++ow) {
              std::size_t best = oh * size * w + ow * size;  // index inside the plane
              float bv = x[p * h * w + best];
              for (std::size_t a = 0; a < size; ++a)
                for (std::size_t b = 0; b < size; ++b) {
                  const std::size_t i = (oh * size + a) * w + ow * size + b;
                  const float v = x[p * h * w + i];
                  if (v > bv || (std::isnan(v) && !std::isnan(bv))) bv = v, best = i;
                }
              const std::size_t o = (p * pool.out_h() + oh) * pool.out_w() + ow;
              wrong_value += std::memcmp(&y[o], &bv, sizeof bv) != 0;
              wrong_index += pool.argmax_[o] != best;
              ref_dx[p * h * w + best] += g[o];
            }
        CHECK(wrong_value == 0);
        CHECK(wrong_index == 0);
        CHECK(std::memcmp(dx.data(), ref_dx.data(), dx.size() * sizeof(float)) == 0);  // -0 + 0 = +0 too
      }
    }
  }
}

TEST_CASE("conv bias gradient sums: every channel one in-order chain, the bits of a plain loop", "[cnn]") {
  // Values spread over many magnitudes, so that any other order of the adds (pairwise, vector
  // lanes) would round differently; channel counts around the blocks of 8, rows with a gap.
  std::mt19937 rng(11);
  for (std::size_t channels : {1u, 7u, 8u, 9u, 16u, 21u}) {
    for (std::size_t len : {0u, 1u, 5u, 333u}) {
      INFO(channels << " channels of " << len);
      const std::size_t stride = len + 3;
      std::vector<float> d(channels * stride);
      for (auto& v : d)
        v = std::ldexp(std::uniform_real_distribution<float>(-1.f, 1.f)(rng), static_cast<int>(rng() % 40) - 20);
      std::vector<float> sums(channels), ref(channels);
      for (std::size_t o = 0; o < channels; ++o) sums[o] = ref[o] = static_cast<float>(o) - 2.5f;
      for (std::size_t o = 0; o < channels; ++o) {
        float s = 0.f;
        for (std::size_t i = 0; i < len; ++i) s += d[o * stride + i];
        ref[o] += s;
      }
      detail::add_channel_sums(d.data(), stride, len, channels, sums.data());
      CHECK(std::memcmp(sums.data(), ref.data(), channels * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("conv forward GEMM: every output one fma chain in k order, the bits of the reference loop", "[cnn]") {
#if defined(SPARSEREG_CNN_CONV_KERNEL)
  // Filter counts around the tiles of 8, K around the k blocks of 128, output counts around the
  // vectors of 16 and tiles of 48; the rows of cols at padded strides, or overlapping in reverse
  // order (as conv2d's shifted planes overlap); y at padded strides whose gaps must stay
  // untouched. Row 0 gives -0 before the ReLU (tiny products round to -0, bias -0), which
  // std::max keeps and a vector max would turn into +0; row 1 has a NaN weight (a NaN that the
  // ReLU keeps).
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const float sentinel = -777.f;
  for (std::size_t rows : {1u, 3u, 7u, 8u, 9u, 17u, 30u}) {
    for (std::size_t K : {1u, 25u, 127u, 128u, 129u, 300u}) {
      for (std::size_t n : {1u, 4u, 15u, 16u, 17u, 47u, 48u, 49u, 97u, 196u}) {
        for (int mode = 0; mode < 4; ++mode) {
          const bool relu = (mode & 1) != 0, overlapping = (mode & 2) != 0;
          INFO(rows << " rows, K " << K << ", " << n << " outputs, relu " << relu << ", overlapping " << overlapping);
          const std::size_t ldc = n + 5, ldy = n + 3;
          std::vector<float> w(rows * K), c(K * ldc), bias(rows), wt;
          std::vector<std::ptrdiff_t> koff(K);
          for (std::size_t k = 0; k < K; ++k)
            koff[k] = static_cast<std::ptrdiff_t>(overlapping ? 3 * (K - 1 - k) : k * ldc);
          for (auto& v : w) v = std::ldexp(u(rng), static_cast<int>(rng() % 12) - 6);
          for (auto& v : c) v = u(rng);
          for (auto& v : bias) v = 0.5f * u(rng);
          for (std::size_t k = 0; k < K; ++k) {
            w[k] = 1e-30f;
            c[static_cast<std::size_t>(koff[k])] = -1e-30f;
          }
          bias[0] = -0.f;
          if (rows > 1) w[K] = std::numeric_limits<float>::quiet_NaN();
          std::vector<float> y(rows * ldy, sentinel), ref(rows * ldy, sentinel);
          detail::conv_gemm_reference(w.data(), rows, K, c.data(), koff.data(), n, ref.data(), ldy, bias.data(), relu);
          detail::pack_conv_weights(w.data(), rows, K, wt);
          detail::conv_gemm(wt.data(), rows, K, c.data(), koff.data(), n, y.data(), ldy, bias.data(), relu);
          REQUIRE(std::signbit(ref[0]));
          REQUIRE(std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) == 0);
        }
      }
    }
  }
  SECTION("conv2d::forward gives the reference loop's bits on 1-3 threads") {
    // Directly from the input: the chain over (channel, kh, kw) with zero padding, + bias, ReLU.
    // Same-padded 5x5 convs of the default and compacted models, unpadded and non-square ones,
    // batches of 3 and of 30 (several images per chunk for the one-channel conv).
    using geometry = std::array<std::size_t, 7>;  // in, out channels, height, width, kernel, padding, batch
    on_thread_counts([&](int threads) {
      for (const auto& [ci, co, h, wd, k, pad, n] :
           {geometry{1, 32, 28, 28, 5, 2, 30}, geometry{30, 30, 14, 14, 5, 2, 3}, geometry{3, 9, 7, 7, 5, 2, 3},
            geometry{2, 5, 6, 9, 3, 0, 3}, geometry{4, 17, 5, 8, 3, 1, 3}}) {
        INFO(threads << " threads, " << ci << " -> " << co << " channels, " << h << "x" << wd << ", kernel " << k
                     << ", padding " << pad << ", " << n << " images");
        conv2d conv(ci, co, k, pad, h, wd, true);
        for (auto& v : conv.w) v = u(rng);
        for (auto& v : conv.b) v = 0.1f * u(rng);
        const std::size_t oh = conv.out_h(), ow = conv.out_w();
        std::vector<float> x(ci * n * h * wd), y(co * n * oh * ow);
        for (auto& v : x) v = u(rng);
        conv.forward(x.data(), y.data(), n);
        std::size_t wrong = 0;
        for (std::size_t o = 0; o < co; ++o)
          for (std::size_t j = 0; j < n; ++j)
            for (std::size_t a = 0; a < oh; ++a)
              for (std::size_t b = 0; b < ow; ++b) {
                float s = 0.f;
                for (std::size_t c = 0; c < ci; ++c)
                  for (std::size_t p = 0; p < k; ++p)
                    for (std::size_t q = 0; q < k; ++q) {
                      const auto r = static_cast<std::ptrdiff_t>(a + p) - static_cast<std::ptrdiff_t>(pad);
                      const auto t = static_cast<std::ptrdiff_t>(b + q) - static_cast<std::ptrdiff_t>(pad);
                      const bool inside = r >= 0 && t >= 0 && r < static_cast<std::ptrdiff_t>(h) &&
                                          t < static_cast<std::ptrdiff_t>(wd);
                      const float xv = inside ? x[((c * n + j) * h + static_cast<std::size_t>(r)) * wd +
                                                  static_cast<std::size_t>(t)]
                                              : 0.f;
                      s = std::fma(conv.w[((o * ci + c) * k + p) * k + q], xv, s);
                    }
                const float want = std::max(s + conv.b[o], 0.f);
                const float got = y[((o * n + j) * oh + a) * ow + b];
                wrong += std::memcmp(&got, &want, sizeof want) != 0;
              }
        REQUIRE(wrong == 0);
      }
    });
  }
#else
  WARN("detail::conv_gemm is compiled only with AVX-512; conv2d::forward uses Eigen here (tested above)");
#endif
}

TEST_CASE("im2col row copies and col2im row sums touch exactly their range", "[cnn]") {
  // Every length up to 3 blocks of 16, so each branch (overlapping 16-, 8- and 4-float blocks,
  // scalar tail) runs; guard zones on both sides must stay untouched.
  constexpr std::size_t guard = 20;
  for (std::size_t len = 0; len <= 50; ++len) {
    INFO("length " << len);
    std::vector<float> src(len + 2 * guard), dst(len + 2 * guard), ref;
    for (std::size_t i = 0; i < src.size(); ++i) {
      src[i] = static_cast<float>(i) + 0.25f;
      dst[i] = -static_cast<float>(i) - 0.5f;
    }
    ref = dst;
    for (std::size_t i = 0; i < len; ++i) ref[guard + i] = src[guard + i];
    copy_run(dst.data() + guard, src.data() + guard, len);
    CHECK(dst == ref);
    for (std::size_t i = 0; i < len; ++i) ref[guard + i] += 0.125f * src[guard + i];
    for (auto& v : src) v *= 0.125f;
    add_run(dst.data() + guard, src.data() + guard, len);
    CHECK(dst == ref);
  }
}

TEST_CASE("conv chunks split a batch into equal shares per thread", "[cnn]") {
  // First and second conv of the default model (13 and 1 images per 1 MiB of columns) and one
  // whose images need more than 1 MiB each.
  const conv2d layers[] = {conv2d(1, 32, 5, 2, 28, 28, true), conv2d(32, 64, 5, 2, 14, 14, true),
                           conv2d(64, 8, 5, 2, 40, 40, true)};
  CHECK(layers[0].chunk_cap() == 13);
  CHECK(layers[1].chunk_cap() == 1);
  CHECK(layers[2].chunk_cap() == 1);
  for (const auto& c : layers)
    for (std::size_t threads = 1; threads <= 4; ++threads)
      for (std::size_t n = 0; n <= 130; ++n) {
        INFO("cap " << c.chunk_cap() << ", " << threads << " threads, batch " << n);
        const auto bc = c.chunks_for(n, threads);
        REQUIRE(bc.begin(0) == 0);
        REQUIRE(bc.begin(bc.count) == n);
        REQUIRE(bc.largest() <= c.chunk_cap());
        if (threads == 1) {  // the 1 MiB chunks, as before the split existed
          REQUIRE(bc.count == (n + c.chunk_cap() - 1) / c.chunk_cap());
          REQUIRE(bc.fixed == c.chunk_cap());
        }
        std::vector<std::size_t> per_thread(threads, 0);
        for (std::size_t i = 0; i < bc.count; ++i) {
          const std::size_t m = bc.images(i);
          REQUIRE(bc.begin(i) + m == bc.begin(i + 1));
          REQUIRE(m >= 1);
          REQUIRE(m <= bc.largest());
          // OpenMP's static schedule: contiguous blocks of count / threads chunks.
          if (bc.count % threads == 0) per_thread[i / (bc.count / threads)] += m;
        }
        if (bc.count % threads == 0) {
          const auto [lo, hi] = std::minmax_element(per_thread.begin(), per_thread.end());
          REQUIRE(*hi - *lo <= (bc.fixed ? bc.fixed : 1));
        } else {
          // Not enough images for a multiple of the thread count: one image per chunk, the
          // finest split there is.
          REQUIRE(threads > 1);
          REQUIRE(bc.count == n);
        }
      }
  // The case that motivated it: a batch of 64 on two threads, 32 images each (not 39 and 25).
  const auto bc = layers[0].chunks_for(64, 2);
  CHECK(bc.count == 6);
  CHECK(bc.begin(3) == 32);
}

TEST_CASE("conv2d forward and backward equal direct loops for every row-copy width", "[cnn]") {
  // Output widths 1 .. 20 and 28 cover every branch of copy_run / add_run; padding 0 and 2;
  // batches of 3 images so that chunks hold several images; with OpenMP, 1-3 threads (chunks of
  // 1 MiB, or the batch split evenly). Reference in double.
  on_thread_counts([](int threads) {
    for (std::size_t w : {3u, 5u, 8u, 11u, 14u, 17u, 20u, 28u})
      for (std::size_t pad : {0u, 2u}) {
        const std::size_t ci = 2, co = 3, k = 5, h = 6, n = 3;
        if (w + 2 * pad < k) continue;
        INFO(threads << " threads, input " << h << "x" << w << ", padding " << pad);
        conv2d conv(ci, co, k, pad, h, w, true);
        std::mt19937 rng(static_cast<std::uint32_t>(w * 10 + pad));
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        for (auto& v : conv.w) v = u(rng);
        for (auto& v : conv.b) v = 0.1f * u(rng);
        const std::size_t oh = conv.out_h(), ow = conv.out_w();
        std::vector<float> x(ci * n * h * w), y(co * n * oh * ow), dy(y.size()), dx(x.size(), 9.f);
        for (auto& v : x) v = u(rng);
        for (auto& v : dy) v = u(rng);
        conv.forward(x.data(), y.data(), n);
        std::vector<float> dy_masked = dy;
        conv.backward(x.data(), y.data(), dy_masked.data(), dx.data(), n);

        auto xin = [&](std::size_t c, std::size_t j, std::ptrdiff_t r, std::ptrdiff_t s) -> double {
          if (r < 0 || s < 0 || r >= static_cast<std::ptrdiff_t>(h) || s >= static_cast<std::ptrdiff_t>(w)) return 0.0;
          return x[((c * n + j) * h + static_cast<std::size_t>(r)) * w + static_cast<std::size_t>(s)];
        };
        std::vector<double> rdx(x.size(), 0.0), rgw(conv.w.size(), 0.0), rgb(co, 0.0);
        for (std::size_t o = 0; o < co; ++o)
          for (std::size_t j = 0; j < n; ++j)
            for (std::size_t a = 0; a < oh; ++a)
              for (std::size_t b = 0; b < ow; ++b) {
                double s = conv.b[o];
                for (std::size_t c = 0; c < ci; ++c)
                  for (std::size_t p = 0; p < k; ++p)
                    for (std::size_t q = 0; q < k; ++q)
                      s += conv.w[((o * ci + c) * k + p) * k + q] *
                           xin(c, j, static_cast<std::ptrdiff_t>(a + p) - static_cast<std::ptrdiff_t>(pad),
                               static_cast<std::ptrdiff_t>(b + q) - static_cast<std::ptrdiff_t>(pad));
                const std::size_t yi = ((o * n + j) * oh + a) * ow + b;
                REQUIRE(y[yi] == Approx(std::max(s, 0.0)).margin(1e-5));
                const double g = s > 0.0 ? dy[yi] : 0.0;
                rgb[o] += g;
                for (std::size_t c = 0; c < ci; ++c)
                  for (std::size_t p = 0; p < k; ++p)
                    for (std::size_t q = 0; q < k; ++q) {
                      const auto r = static_cast<std::ptrdiff_t>(a + p) - static_cast<std::ptrdiff_t>(pad);
                      const auto t = static_cast<std::ptrdiff_t>(b + q) - static_cast<std::ptrdiff_t>(pad);
                      rgw[((o * ci + c) * k + p) * k + q] += g * xin(c, j, r, t);
                      if (r >= 0 && t >= 0 && r < static_cast<std::ptrdiff_t>(h) && t < static_cast<std::ptrdiff_t>(w))
                        rdx[((c * n + j) * h + static_cast<std::size_t>(r)) * w + static_cast<std::size_t>(t)] +=
                            g * conv.w[((o * ci + c) * k + p) * k + q];
                    }
              }
        for (std::size_t i = 0; i < dx.size(); ++i) REQUIRE(dx[i] == Approx(rdx[i]).margin(1e-4));
        for (std::size_t i = 0; i < rgw.size(); ++i) REQUIRE(conv.gw[i] == Approx(rgw[i]).margin(1e-4));
        for (std::size_t o = 0; o < co; ++o) REQUIRE(conv.gb[o] == Approx(rgb[o]).margin(1e-4));
      }
  });
}

TEST_CASE("SGD and Adam steps follow their formulas and give the same bits on 1, 2 and 3 threads", "[cnn]") {
  // One parameter above optimizer::parallel_min (updated by all threads) and one below it.
  const auto kind = GENERATE(optimizer_kind::sgd, optimizer_kind::adam);
  const std::size_t sizes[] = {optimizer::parallel_min + 1001, 300};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> w0[2], g[2];
  for (int p = 0; p < 2; ++p) {
    w0[p].resize(sizes[p]);
    g[p].resize(sizes[p]);
    for (auto& x : w0[p]) x = u(rng);
    for (auto& x : g[p]) x = u(rng);
  }
  const double lr = 0.05;
  const int steps = 3;
  auto run = [&](int threads) {
#if defined(_OPENMP)
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    std::vector<float> w[2] = {w0[0], w0[1]}, gr[2] = {g[0], g[1]};
    std::vector<parameter_ref> params;
    for (int p = 0; p < 2; ++p) params.push_back({"p" + std::to_string(p), &w[p], &gr[p], {sizes[p]}, true});
    optimizer opt(kind);
    for (int s = 0; s < steps; ++s) opt.step(params, lr);
#if defined(_OPENMP)
    omp_set_num_threads(saved);
#endif
    return std::vector<std::vector<float>>{w[0], w[1]};
  };
  const auto one = run(1);
  for (int threads : {2, 3}) {
    INFO(threads << " threads");
    CHECK(run(threads) == one);
  }
  // The same steps in double with a constant gradient.
  for (int p = 0; p < 2; ++p)
    for (std::size_t i = 0; i < sizes[p]; i += 97) {
      double w = w0[p][i], m = 0, v = 0;
      const double gi = g[p][i];
      for (int t = 1; t <= steps; ++t) {
        if (kind == optimizer_kind::sgd) {
          m = 0.9 * m + gi;
          w -= lr * m;
        } else {
          m = 0.9 * m + 0.1 * gi;
          v = 0.999 * v + 0.001 * gi * gi;
          w -= lr / (1 - std::pow(0.9, t)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8);
        }
      }
      REQUIRE(one[static_cast<std::size_t>(p)][i] == Approx(w).margin(1e-5));
    }
}
