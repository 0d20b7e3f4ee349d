// Layers of the bundled CNN trainer: conv (im2col + GEMM: its forward in detail::conv_gemm with
// AVX-512, else Eigen; its backward in Eigen), max-pool, linear, flatten, softmax cross-entropy.
// Float only.
//
// Activation layout in the convolutional part is C x N x H x W ("CNHW"): the output of one
// GEMM over a chunk of images, W[O x C*k*k] * cols[C*k*k x m*H*W], lands directly in that layout
// and the next layer's im2col reads it without a transpose. The linear part uses N x F rows.
// Parameters use the PyTorch layouts (conv O x I x kH x kW, linear out x in, both row-major and
// contiguous in a std::vector<float>), which is what sparsereg's views look at.
//
// Parallelism: the convolutional layers split the batch into chunks and run one chunk per
// OpenMP thread (im2col, a single-threaded GEMM and col2im stay in that core's cache); weight
// gradients are accumulated per thread and summed in thread order, so results are reproducible
// for a fixed thread count. Linear layers use Eigen's own (OpenMP) GEMM threading.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>  // the conv forward GEMM's kernel (detail::conv_tile)
#endif

#if defined(_OPENMP)
#include <omp.h>
#define SPARSEREG_CNN_OMP(x) _Pragma(#x)
#else
#define SPARSEREG_CNN_OMP(x)
#endif

namespace sparsereg_cnn {

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using matrix_map = Eigen::Map<row_matrix>;
using const_matrix_map = Eigen::Map<const row_matrix>;
using strided_map = Eigen::Map<row_matrix, 0, Eigen::OuterStride<>>;
using const_strided_map = Eigen::Map<const row_matrix, 0, Eigen::OuterStride<>>;

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_id() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline Eigen::Index ix(std::size_t v) { return static_cast<Eigen::Index>(v); }

namespace detail {
/// For len >= B: copies [0, len) in blocks of B floats, a partial last block as an overlapping
/// full block ending at len; returns false (and copies nothing) when len < B.
template <std::size_t B>
inline bool copy_blocks(float* dst, const float* src, std::size_t len) {
  if (len < B) return false;
  std::size_t i = 0;
  for (; i + B <= len; i += B) std::memcpy(dst + i, src + i, B * sizeof(float));
  if (i < len) std::memcpy(dst + len - B, src + len - B, B * sizeof(float));
  return true;
}

/// dst[0, B) += src[0, B) through local arrays, which GCC turns into vector loads, adds and stores.
template <std::size_t B>
inline void add_block(float* dst, const float* src) {
  float a[B], b[B];
  std::memcpy(a, dst, sizeof a);
  std::memcpy(b, src, sizeof b);
  for (std::size_t j = 0; j < B; ++j) a[j] += b[j];
  std::memcpy(dst, a, sizeof a);
}

/// sums[o] += d[o * stride + i] summed over i < len in index order, for o < channels: each
/// channel's sum is one in-order chain of float adds, as a loop over one channel after the other
/// would add them (so the same bits), but eight channels' chains run side by side, so the adds'
/// latency overlaps (one chain at a time was about 40% of the conv layers' backward pass outside
/// the GEMMs).
inline void add_channel_sums(const float* d, std::size_t stride, std::size_t len, std::size_t channels, float* sums) {
  constexpr std::size_t B = 8;
  std::size_t o = 0;
  for (; o + B <= channels; o += B) {
    float s[B] = {};
    const float* row = d + o * stride;
    for (std::size_t i = 0; i < len; ++i)
      for (std::size_t j = 0; j < B; ++j) s[j] += row[j * stride + i];
    for (std::size_t j = 0; j < B; ++j) sums[o + j] += s[j];
  }
  for (; o < channels; ++o) {
    float s = 0.f;
    for (std::size_t i = 0; i < len; ++i) s += d[o * stride + i];
    sums[o] += s;
  }
}

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)  // __builtin_shufflevector: GCC 12
#define SPARSEREG_CNN_POOL2_VECTOR 1
/// W outputs of a 2x2 max-pool in GNU vector lanes: the windows of input rows a and a + row at
/// columns 2j, 2j + 1 (j < W), whose first element is input index `first`. Each output is what
/// pool_plane's scan of (a, 2j), (a, 2j + 1), (b, 2j), (b, 2j + 1) picks: a candidate c replaces
/// the current v when c > v or c is a NaN and v is not, as lane-wise float compares (ordered, so
/// false for NaNs; +0 and -0 compare equal) and selects. (Scalar ternaries became branches in
/// GCC 12, which random data mispredict.)
template <std::size_t W>
struct pool2_lanes;  // GCC drops a vector_size that depends on a template parameter
template <>
struct pool2_lanes<4> {
  using fv = float __attribute__((vector_size(16)));
  using iv = std::int32_t __attribute__((vector_size(16)));
  using uv = std::uint32_t __attribute__((vector_size(16)));
};
template <>
struct pool2_lanes<8> {
  using fv = float __attribute__((vector_size(32)));
  using iv = std::int32_t __attribute__((vector_size(32)));
  using uv = std::uint32_t __attribute__((vector_size(32)));
};
template <std::size_t W>
inline void pool2_block(const float* a, std::size_t row, std::uint32_t first, float* dst, std::uint32_t* am) {
  using fv = typename pool2_lanes<W>::fv;
  using iv = typename pool2_lanes<W>::iv;
  using uv = typename pool2_lanes<W>::uv;
  fv a0, a1, b0, b1;
  std::memcpy(&a0, a, sizeof a0);
  std::memcpy(&a1, a + W, sizeof a1);
  std::memcpy(&b0, a + row, sizeof b0);
  std::memcpy(&b1, a + row + W, sizeof b1);
  // Lambdas take and give vectors by reference: by value they would change the ABI without AVX.
  fv ea, oa, eb, ob;  // the even and odd columns of rows a and b
  if constexpr (W == 8) {
    ea = __builtin_shufflevector(a0, a1, 0, 2, 4, 6, 8, 10, 12, 14);
    oa = __builtin_shufflevector(a0, a1, 1, 3, 5, 7, 9, 11, 13, 15);
    eb = __builtin_shufflevector(b0, b1, 0, 2, 4, 6, 8, 10, 12, 14);
    ob = __builtin_shufflevector(b0, b1, 1, 3, 5, 7, 9, 11, 13, 15);
  } else {
    ea = __builtin_shufflevector(a0, a1, 0, 2, 4, 6);
    oa = __builtin_shufflevector(a0, a1, 1, 3, 5, 7);
    eb = __builtin_shufflevector(b0, b1, 0, 2, 4, 6);
    ob = __builtin_shufflevector(b0, b1, 1, 3, 5, 7);
  }
  uv lane;  // the offsets 2j as a constant, then + first (a broadcast, not W inserts)
  for (std::size_t j = 0; j < W; ++j) lane[j] = static_cast<std::uint32_t>(2 * j);
  lane += first;
  fv v = ea;
  uv at = lane;
  const auto take = [&](const fv& c, std::uint32_t offset) {
    const iv larger = (c > v) | ((c != c) & (v == v));
    v = larger ? c : v;
    at = larger ? lane + offset : at;
  };
  take(oa, 1);
  take(eb, static_cast<std::uint32_t>(row));
  take(ob, static_cast<std::uint32_t>(row) + 1);
  std::memcpy(dst, &v, sizeof v);
  std::memcpy(am, &at, sizeof at);
}
#endif

/// The conv layers' forward GEMM, y = W * cols, with the bias and the ReLU: W is rows x K (a
/// conv's O x C*k*k), row k of cols the n floats at c + koff[k] (rows may overlap: the conv
/// passes the shifted planes of conv2d::shifted_planes), y rows x n with row stride ldy.
/// Every output is one chain of fused multiply-adds in k order from 0, then + bias, then the
/// ReLU as std::max(v, 0.f) (a NaN stays, -0 stays): the same bits as the plain loop
/// conv_gemm_reference, whatever the tiling. Eigen's GEMM ran conv layers whose filter count is
/// not a multiple of 4 (compacted models: 30, 38) at 51-55 GMAC/s against 64-66 at 64 filters on
/// the Intel Xeon of the thirty-third session, and a 5x5 conv over one channel (K = 25) at 48-50:
/// it packs both operands for every chunk and runs the filters in blocks of 4. Here W is packed
/// once per call, K-major in blocks of 8 filters, and cols is read where it was written.
inline constexpr std::size_t conv_rows = 8;   // filters per register tile
inline constexpr std::size_t conv_kc = 128;   // k per pass over a tile (cols strip and W block in L1)

/// wt = W packed for conv_gemm: blocks of conv_rows filters, each K x conv_rows, filters past
/// `rows` zero.
inline void pack_conv_weights(const float* w, std::size_t rows, std::size_t K, std::vector<float>& wt) {
  const std::size_t blocks = (rows + conv_rows - 1) / conv_rows;
  wt.assign(blocks * K * conv_rows, 0.f);
  for (std::size_t r = 0; r < rows; ++r) {
    float* dst = wt.data() + (r / conv_rows) * K * conv_rows + r % conv_rows;
    for (std::size_t k = 0; k < K; ++k) dst[k * conv_rows] = w[r * K + k];
  }
}

/// The definition of conv_gemm's results, one output at a time (tests compare against it).
inline void conv_gemm_reference(const float* w, std::size_t rows, std::size_t K, const float* c,
                                const std::ptrdiff_t* koff, std::size_t n, float* y, std::size_t ldy,
                                const float* bias, bool relu) {
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t p = 0; p < n; ++p) {
      float a = 0.f;
      for (std::size_t k = 0; k < K; ++k) a = std::fma(w[r * K + k], c[koff[k] + static_cast<std::ptrdiff_t>(p)], a);
      a += bias[r];
      y[r * ldy + p] = relu ? std::max(a, 0.f) : a;
    }
}

#if defined(__AVX512F__)
#define SPARSEREG_CNN_CONV_KERNEL 1
/// One register tile: R filters x V vectors of 16 outputs, k in [k0, k1). `first`: the chains
/// start at 0 (else from y); `finish`: bias and ReLU applied before the store. Masked: the last
/// vector holds only the lanes in `last`.
template <int R, int V, bool Masked>
__attribute__((noinline)) void conv_tile(const float* wt, const float* c, const std::ptrdiff_t* koff, std::size_t k0,
                                         std::size_t k1, float* y, std::size_t ldy, __mmask16 last, bool first,
                                         bool finish, const float* bias, bool relu) {
  const __mmask16 full = 0xffff, tail = Masked ? last : full;
  __m512 acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v)
      acc[r][v] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(v == V - 1 ? tail : full, y + r * ldy + 16 * v);
  for (std::size_t k = k0; k < k1; ++k) {
    __m512 cv[V];
    const float* ck = c + koff[k];
    for (int v = 0; v < V; ++v)
      cv[v] = Masked && v == V - 1 ? _mm512_maskz_loadu_ps(tail, ck + 16 * v) : _mm512_loadu_ps(ck + 16 * v);
    const float* wk = wt + k * conv_rows;
    for (int r = 0; r < R; ++r) {
      const __m512 b = _mm512_set1_ps(wk[r]);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(b, cv[v], acc[r][v]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) {
      __m512 a = acc[r][v];
      if (finish) {
        a = _mm512_add_ps(a, _mm512_set1_ps(bias[r]));
        // std::max(a, 0.f): 0 only where a < 0 (a NaN and -0 stay, unlike maxps).
        if (relu) a = _mm512_mask_mov_ps(a, _mm512_cmp_ps_mask(a, zero, _CMP_LT_OQ), zero);
      }
      _mm512_mask_storeu_ps(y + r * ldy + 16 * v, v == V - 1 ? tail : full, a);
    }
}

template <int V, bool Masked>
inline void conv_tile_rows(std::size_t R, const float* wt, const float* c, const std::ptrdiff_t* koff, std::size_t k0,
                           std::size_t k1, float* y, std::size_t ldy, __mmask16 last, bool first, bool finish,
                           const float* bias, bool relu) {
  static_assert(conv_rows == 8, "one case per tile height below");
  switch (R) {
    case 8: return conv_tile<8, V, Masked>(wt, c, koff, k0, k1, y, ldy, last, first, finish, bias, relu);
    case 7: return conv_tile<7, V, Masked>(wt, c, koff, k0, k1, y, ldy, last, first, finish, bias, relu);
    case 6: return conv_tile<6, V, Masked>(wt, c, koff, k0, k1, y, ldy, last, first, finish, bias, relu);
    case 5: return conv_tile<5, V, Masked>(wt, c, koff, k0, k1, y, ldy, last, first, finish, bias, relu);
    case 4: return conv_tile<4, V, Masked>(wt, c, koff, k0, k1, y, ldy, last, first, finish, bias, relu);
    case 3: return conv_tile<3, V, Masked>(wt, c, koff, k0, k1, y, ldy, last, first, finish, bias, relu);
    case 2: return conv_tile<2, V, Masked>(wt, c, koff, k0, k1, y, ldy, last, first, finish, bias, relu);
    default: return conv_tile<1, V, Masked>(wt, c, koff, k0, k1, y, ldy, last, first, finish, bias, relu);
  }
}

/// conv_gemm_reference's results with W packed by pack_conv_weights (wt): for each block of
/// conv_kc k, each block of 8 filters, tiles of 48 outputs (the last 1-3 vectors, masked).
inline void conv_gemm(const float* wt, std::size_t rows, std::size_t K, const float* c, const std::ptrdiff_t* koff,
                      std::size_t n, float* y, std::size_t ldy, const float* bias, bool relu) {
  constexpr std::size_t tile_n = 48;
  for (std::size_t k0 = 0; k0 < K; k0 += conv_kc) {
    const std::size_t k1 = std::min(K, k0 + conv_kc);
    const bool first = k0 == 0, finish = k1 == K;
    for (std::size_t r0 = 0; r0 < rows; r0 += conv_rows) {
      const std::size_t R = std::min(conv_rows, rows - r0);
      const float* wb = wt + r0 * K;
      for (std::size_t p = 0; p < n; p += tile_n) {
        const std::size_t width = std::min(tile_n, n - p), V = (width + 15) / 16, rem = width - 16 * (V - 1);
        const auto last = static_cast<__mmask16>((1u << rem) - 1u);
        float* yt = y + r0 * ldy + p;
        const float* ct = c + p;
        const float* bt = bias + r0;
        const auto run = [&](auto masked) {
          constexpr bool M = decltype(masked)::value;
          if (V == 3) conv_tile_rows<3, M>(R, wb, ct, koff, k0, k1, yt, ldy, last, first, finish, bt, relu);
          else if (V == 2) conv_tile_rows<2, M>(R, wb, ct, koff, k0, k1, yt, ldy, last, first, finish, bt, relu);
          else conv_tile_rows<1, M>(R, wb, ct, koff, k0, k1, yt, ldy, last, first, finish, bt, relu);
        };
        if (rem == 16) run(std::false_type{});
        else run(std::true_type{});
      }
    }
  }
}
#endif
}  // namespace detail

/// dst[0, len) = src[0, len) for non-overlapping buffers, in blocks of 16, 8 or 4 floats (the
/// largest that fits), no element outside the range touched. The row copies of im2col are short
/// (7-28 floats) and of one length per layer, so the branches are predictable; a plain element
/// loop here was left scalar by GCC.
inline void copy_run(float* dst, const float* src, std::size_t len) {
  if (detail::copy_blocks<16>(dst, src, len) || detail::copy_blocks<8>(dst, src, len) ||
      detail::copy_blocks<4>(dst, src, len))
    return;
  for (std::size_t i = 0; i < len; ++i) dst[i] = src[i];
}

/// dst[0, len) += src[0, len) for non-overlapping buffers, in blocks of 8 and then 4 floats through
/// local arrays (which GCC turns into vector loads, adds and stores; the plain loop stayed scalar),
/// then the last 0-3 one by one. Each element gets one addition, so the result is the same as the
/// plain loop's.
inline void add_run(float* dst, const float* src, std::size_t len) {
  std::size_t i = 0;
  for (; i + 8 <= len; i += 8) detail::add_block<8>(dst + i, src + i);
  if (i + 4 <= len) {
    detail::add_block<4>(dst + i, src + i);
    i += 4;
  }
  for (; i < len; ++i) dst[i] += src[i];
}

/// 2-D convolution, stride 1, zero padding `pad`, square kernel `k`, with bias and optional ReLU
/// fused into the forward pass.
struct conv2d {
  std::size_t in_c = 0, out_c = 0, k = 0, pad = 0, in_h = 0, in_w = 0;
  bool relu = true;
  std::vector<float> w, b, gw, gb;  // w, gw: out_c x in_c x k x k; b, gb: out_c

  // Workspace (not part of the model's state).
  std::vector<std::vector<float>> cols_, gw_thread_, gb_thread_, plane_;
  std::vector<float> wt_;  // w packed for detail::conv_gemm (forward)
  std::vector<std::ptrdiff_t> koff_;  // shifted_offsets (forward)

  conv2d() = default;
  conv2d(std::size_t in_channels, std::size_t out_channels, std::size_t kernel, std::size_t padding,
         std::size_t height, std::size_t width, bool with_relu)
      : in_c(in_channels), out_c(out_channels), k(kernel), pad(padding), in_h(height), in_w(width),
        relu(with_relu) {
    if (in_h + 2 * pad < k || in_w + 2 * pad < k)
      throw std::invalid_argument("conv2d: kernel " + std::to_string(k) + " larger than padded input " +
                                  std::to_string(in_h) + "x" + std::to_string(in_w));
    w.assign(weight_count(), 0.f);
    gw.assign(weight_count(), 0.f);
    b.assign(out_c, 0.f);
    gb.assign(out_c, 0.f);
  }

  std::size_t out_h() const { return in_h + 2 * pad - k + 1; }
  std::size_t out_w() const { return in_w + 2 * pad - k + 1; }
  std::size_t patch() const { return in_c * k * k; }
  std::size_t weight_count() const { return out_c * in_c * k * k; }
  /// Multiply-accumulates per image of the forward pass.
  std::size_t macs() const { return out_c * patch() * out_h() * out_w(); }

  /// Images whose im2col columns fit in about 1 MiB (at least 1).
  std::size_t chunk_cap() const {
    const std::size_t per_image = std::max<std::size_t>(patch() * out_h() * out_w(), 1);
    return std::max<std::size_t>(1, (std::size_t(1) << 18) / per_image);
  }

  /// How a batch of n images is split into chunks: `count` chunks, chunk ci covering images
  /// [begin(ci), begin(ci + 1)), none larger than `largest`.
  struct batch_chunks {
    std::size_t n = 0, count = 0, fixed = 0;  // fixed > 0: chunks of `fixed` images, the last shorter
    std::size_t begin(std::size_t ci) const { return fixed ? std::min(n, ci * fixed) : ci * n / count; }
    std::size_t images(std::size_t ci) const { return begin(ci + 1) - begin(ci); }
    std::size_t largest() const { return fixed ? fixed : (n + count - 1) / count; }
  };

  /// Chunks of at most about 1 MiB of im2col columns each, as many as a multiple of the thread
  /// count so that the threads get equal shares: the first conv of the default model holds 13
  /// images in 1 MiB, which would make 5 chunks, 39 and 25 images on two threads; it gets 6 chunks
  /// of 10-11 images instead, 32 per thread. With one thread, or when the count is already a
  /// multiple, the chunks are the 1 MiB ones.
  batch_chunks chunks_for(std::size_t n, std::size_t threads = static_cast<std::size_t>(max_threads())) const {
    const std::size_t cap = chunk_cap();
    const std::size_t count = (n + cap - 1) / cap;
    if (threads <= 1 || count % threads == 0) return {n, count, cap};
    return {n, std::min(n, (count + threads - 1) / threads * threads), 0};
  }

  void ensure_workspace(std::size_t chunk) {
    const auto threads = static_cast<std::size_t>(max_threads());
    const std::size_t need = patch() * chunk * out_h() * out_w();
    if (cols_.size() != threads) {
      cols_.assign(threads, {});
      gw_thread_.assign(threads, {});
      gb_thread_.assign(threads, {});
      plane_.assign(threads, std::vector<float>(padded_h() * padded_w()));
    }
    for (std::size_t t = 0; t < threads; ++t) {
      if (cols_[t].size() < need) cols_[t].resize(need);
    }
  }

  // Both directions go through one zero-padded copy of an input plane, so the inner loops are
  // branch-free contiguous runs of out_w elements.
  std::size_t padded_h() const { return in_h + 2 * pad; }
  std::size_t padded_w() const { return in_w + 2 * pad; }

  // The interior of a zero-padded plane (padded_h() x padded_w()) = one input plane.
  void pad_into(const float* src, float* plane) const {
    for (std::size_t r = 0; r < in_h; ++r)
      std::memcpy(plane + (r + pad) * padded_w() + pad, src + r * in_w, in_w * sizeof(float));
  }

  // cols[(c,kh,kw)][(j,oh,ow)] for images n0 .. n0+m of x (CNHW with batch n). `plane` is scratch
  // of padded_h() * padded_w() floats.
  void im2col(const float* x, std::size_t n, std::size_t n0, std::size_t m, float* cols, float* plane) const {
    const std::size_t oh_n = out_h(), ow_n = out_w(), ohw = oh_n * ow_n, ncol = m * ohw;
    const std::size_t PW = padded_w(), PH = padded_h();
    std::fill(plane, plane + PH * PW, 0.f);
    for (std::size_t c = 0; c < in_c; ++c)
      for (std::size_t j = 0; j < m; ++j) {
        pad_into(x + (c * n + n0 + j) * in_h * in_w, plane);
        for (std::size_t kh = 0; kh < k; ++kh)
          for (std::size_t kw = 0; kw < k; ++kw) {
            float* dst = cols + ((c * k + kh) * k + kw) * ncol + j * ohw;
            const float* sp = plane + kh * PW + kw;
            for (std::size_t oh = 0; oh < oh_n; ++oh, dst += ow_n, sp += PW) copy_run(dst, sp, ow_n);
          }
      }
  }

  // The forward kernel's input for image r of x (CNHW with batch n): for each input channel c
  // and kernel column kw, rows 0 .. padded_h() - 1 of the zero-padded plane from column kw on,
  // out_w() floats each, at s + (c * k + kw) * padded_h() * out_w(). Row (c, kh, kw) of im2col's
  // columns for this image is then the contiguous run at that block + kh * out_w()
  // (shifted_offsets). `plane` is scratch of padded_h() * padded_w() floats whose border is zero
  // (only the interior is written).
  void shifted_planes(const float* x, std::size_t n, std::size_t r, float* s, float* plane) const {
    const std::size_t ow_n = out_w(), PW = padded_w(), PH = padded_h();
    for (std::size_t c = 0; c < in_c; ++c) {
      pad_into(x + (c * n + r) * in_h * in_w, plane);
      for (std::size_t kw = 0; kw < k; ++kw) {
        float* dst = s + (c * k + kw) * PH * ow_n;
        for (std::size_t i = 0; i < PH; ++i, dst += ow_n) copy_run(dst, plane + i * PW + kw, ow_n);
      }
    }
  }
  // off[(c * k + kh) * k + kw] = where row (c, kh, kw) of one image's im2col columns starts in
  // shifted_planes' output.
  void shifted_offsets(std::vector<std::ptrdiff_t>& off) const {
    const std::size_t ow_n = out_w(), PH = padded_h();
    off.resize(patch());
    for (std::size_t c = 0; c < in_c; ++c)
      for (std::size_t kh = 0; kh < k; ++kh)
        for (std::size_t kw = 0; kw < k; ++kw)
          off[(c * k + kh) * k + kw] = static_cast<std::ptrdiff_t>(((c * k + kw) * PH + kh) * ow_n);
  }

  // dx (images n0 .. n0+m) = col2im(dcols); `plane` is scratch of padded_h() * padded_w() floats.
  void col2im(const float* dcols, std::size_t n, std::size_t n0, std::size_t m, float* dx, float* plane) const {
    const std::size_t oh_n = out_h(), ow_n = out_w(), ohw = oh_n * ow_n, ncol = m * ohw;
    const std::size_t PW = padded_w(), PH = padded_h();
    for (std::size_t c = 0; c < in_c; ++c)
      for (std::size_t j = 0; j < m; ++j) {
        std::fill(plane, plane + PH * PW, 0.f);
        for (std::size_t kh = 0; kh < k; ++kh)
          for (std::size_t kw = 0; kw < k; ++kw) {
            const float* src = dcols + ((c * k + kh) * k + kw) * ncol + j * ohw;
            float* dp = plane + kh * PW + kw;
            for (std::size_t oh = 0; oh < oh_n; ++oh, src += ow_n, dp += PW) add_run(dp, src, ow_n);
          }
        float* dst = dx + (c * n + n0 + j) * in_h * in_w;
        for (std::size_t r = 0; r < in_h; ++r) std::memcpy(dst + r * in_w, plane + (r + pad) * PW + pad, in_w * sizeof(float));
      }
  }

  /// y (out_c x n x out_h x out_w) = relu?(conv(x) + b), x is in_c x n x in_h x in_w.
  void forward(const float* x, float* y, std::size_t n) {
    const batch_chunks bc = chunks_for(n);
    ensure_workspace(bc.largest());
    const std::size_t ohw = out_h() * out_w();
    const auto chunks = static_cast<std::ptrdiff_t>(bc.count);
#if defined(SPARSEREG_CNN_CONV_KERNEL)
    detail::pack_conv_weights(w.data(), out_c, patch(), wt_);
    shifted_offsets(koff_);
#else
    const_matrix_map W(w.data(), ix(out_c), ix(patch()));
#endif
    SPARSEREG_CNN_OMP(omp parallel for schedule(static))
    for (std::ptrdiff_t ci = 0; ci < chunks; ++ci) {
      const std::size_t n0 = bc.begin(static_cast<std::size_t>(ci)), m = bc.images(static_cast<std::size_t>(ci));
      float* cols = cols_[static_cast<std::size_t>(thread_id())].data();
      float* plane = plane_[static_cast<std::size_t>(thread_id())].data();
#if defined(SPARSEREG_CNN_CONV_KERNEL)
      // Image by image from the shifted planes: k copies of each input plane, not im2col's k * k
      // (in_c * k * padded_h() * out_w() floats, which fit in the workspace of one image's columns).
      std::fill(plane, plane + padded_h() * padded_w(), 0.f);
      for (std::size_t j = n0; j < n0 + m; ++j) {
        shifted_planes(x, n, j, cols, plane);
        detail::conv_gemm(wt_.data(), out_c, patch(), cols, koff_.data(), ohw, y + j * ohw, n * ohw, b.data(), relu);
      }
#else
      im2col(x, n, n0, m, cols, plane);
      const_matrix_map C(cols, ix(patch()), ix(m * ohw));
      strided_map Y(y + n0 * ohw, ix(out_c), ix(m * ohw), Eigen::OuterStride<>(ix(n * ohw)));
      Y.noalias() = W * C;
      for (std::size_t o = 0; o < out_c; ++o) {
        float* r = y + o * n * ohw + n0 * ohw;
        const float bo = b[o];
        if (relu) {
          for (std::size_t i = 0; i < m * ohw; ++i) r[i] = std::max(r[i] + bo, 0.f);
        } else {
          for (std::size_t i = 0; i < m * ohw; ++i) r[i] += bo;
        }
      }
#endif
    }
  }

  /// Sets gw, gb; dy is modified (ReLU mask applied) ; dx may be null (first layer).
  void backward(const float* x, const float* y, float* dy, float* dx, std::size_t n) {
    const batch_chunks bc = chunks_for(n);
    ensure_workspace(bc.largest());
    const std::size_t ohw = out_h() * out_w();
    const auto threads = static_cast<std::size_t>(max_threads());
    for (std::size_t t = 0; t < threads; ++t) {
      gw_thread_[t].assign(weight_count(), 0.f);
      gb_thread_[t].assign(out_c, 0.f);
    }
    const auto chunks = static_cast<std::ptrdiff_t>(bc.count);
    const_matrix_map W(w.data(), ix(out_c), ix(patch()));
    SPARSEREG_CNN_OMP(omp parallel for schedule(static))
    for (std::ptrdiff_t ci = 0; ci < chunks; ++ci) {
      const auto t = static_cast<std::size_t>(thread_id());
      const std::size_t n0 = bc.begin(static_cast<std::size_t>(ci)), m = bc.images(static_cast<std::size_t>(ci));
      float* gbt = gb_thread_[t].data();
      // Eight channels at a time: their ReLU masks, then their bias sums while they are in cache.
      for (std::size_t o0 = 0; o0 < out_c; o0 += 8) {
        const std::size_t nb = std::min<std::size_t>(8, out_c - o0);
        if (relu)
          for (std::size_t o = o0; o < o0 + nb; ++o) {
            float* d = dy + o * n * ohw + n0 * ohw;
            const float* yo = y + o * n * ohw + n0 * ohw;
            for (std::size_t i = 0; i < m * ohw; ++i) d[i] = yo[i] > 0.f ? d[i] : 0.f;
          }
        detail::add_channel_sums(dy + o0 * n * ohw + n0 * ohw, n * ohw, m * ohw, nb, gbt + o0);
      }
      float* cols = cols_[t].data();
      im2col(x, n, n0, m, cols, plane_[static_cast<std::size_t>(thread_id())].data());
      const_matrix_map C(cols, ix(patch()), ix(m * ohw));
      const_strided_map DY(dy + n0 * ohw, ix(out_c), ix(m * ohw), Eigen::OuterStride<>(ix(n * ohw)));
      matrix_map GW(gw_thread_[t].data(), ix(out_c), ix(patch()));
      GW.noalias() += DY * C.transpose();
      if (dx) {
        // The columns are no longer needed once GW has them: their gradient overwrites them (one
        // buffer less per thread: 627 KB for the default model's second conv).
        matrix_map DC(cols, ix(patch()), ix(m * ohw));
        DC.noalias() = W.transpose() * DY;
        col2im(cols, n, n0, m, dx, plane_[t].data());
      }
    }
    std::copy(gw_thread_[0].begin(), gw_thread_[0].end(), gw.begin());
    std::copy(gb_thread_[0].begin(), gb_thread_[0].end(), gb.begin());
    for (std::size_t t = 1; t < threads; ++t) {
      for (std::size_t i = 0; i < gw.size(); ++i) gw[i] += gw_thread_[t][i];
      for (std::size_t i = 0; i < gb.size(); ++i) gb[i] += gb_thread_[t][i];
    }
  }
};

/// Max pooling, window = stride = `size`, floor mode; per channel plane of a CNHW tensor.
struct maxpool2d {
  std::size_t channels = 0, size = 2, in_h = 0, in_w = 0;
  std::vector<std::uint32_t> argmax_;  // index of the max inside the input plane

  maxpool2d() = default;
  maxpool2d(std::size_t c, std::size_t s, std::size_t h, std::size_t w) : channels(c), size(s), in_h(h), in_w(w) {
    if (s == 0 || h < s || w < s) throw std::invalid_argument("maxpool2d: window " + std::to_string(s) + " does not fit input");
  }
  std::size_t out_h() const { return in_h / size; }
  std::size_t out_w() const { return in_w / size; }

  /// y = the window maxima; the first maximum of a window in row-major order wins, and a NaN
  /// beats any number (the first NaN), so NaNs propagate.
  void forward(const float* x, float* y, std::size_t n) {
    const std::size_t planes = channels * n, ip = in_h * in_w, op = out_h() * out_w();
    argmax_.resize(planes * op);
    const std::ptrdiff_t P = static_cast<std::ptrdiff_t>(planes);
    SPARSEREG_CNN_OMP(omp parallel for schedule(static))
    for (std::ptrdiff_t pi = 0; pi < P; ++pi) {
      const auto p = static_cast<std::size_t>(pi);
      if (size == 2)
        pool_plane2(x + p * ip, y + p * op, argmax_.data() + p * op);
      else
        pool_plane<0>(x + p * ip, y + p * op, argmax_.data() + p * op);
    }
  }

  void backward(const float* dy, float* dx, std::size_t n) const {
    const std::size_t planes = channels * n, ip = in_h * in_w, op = out_h() * out_w();
    const std::ptrdiff_t P = static_cast<std::ptrdiff_t>(planes);
    SPARSEREG_CNN_OMP(omp parallel for schedule(static))
    for (std::ptrdiff_t pi = 0; pi < P; ++pi) {
      const auto p = static_cast<std::size_t>(pi);
      float* d = dx + p * ip;
      std::fill(d, d + ip, 0.f);
      const std::uint32_t* am = argmax_.data() + p * op;
      const float* g = dy + p * op;
      for (std::size_t i = 0; i < op; ++i) d[am[i]] += g[i];
    }
  }

 private:
  /// One plane of the 2x2 pool: rows of outputs in blocks of 8 (or 4) from detail::pool2_block, a
  /// last block that would run past the row moved back to end there (it recomputes a few outputs,
  /// the same values); rows narrower than 4 outputs go through pool_plane. The same outputs and
  /// argmax as pool_plane<2> (tested); 3x faster on the default model's two pools.
  void pool_plane2(const float* src, float* dst, std::uint32_t* am) const {
#if defined(SPARSEREG_CNN_POOL2_VECTOR)
    const std::size_t oh_n = out_h(), ow_n = out_w();
    if (ow_n < 4) return pool_plane<2>(src, dst, am);
    const auto run = [&](auto width) {
      constexpr std::size_t W = decltype(width)::value;
      for (std::size_t oh = 0; oh < oh_n; ++oh) {
        const std::size_t row = 2 * oh * in_w;
        for (std::size_t ow = 0;; ow += W) {
          const std::size_t o = std::min(ow, ow_n - W);
          detail::pool2_block<W>(src + row + 2 * o, in_w, static_cast<std::uint32_t>(row + 2 * o),
                                 dst + oh * ow_n + o, am + oh * ow_n + o);
          if (o + W >= ow_n) break;
        }
      }
    };
    if (ow_n >= 8)
      run(std::integral_constant<std::size_t, 8>{});
    else
      run(std::integral_constant<std::size_t, 4>{});
#else
    pool_plane<2>(src, dst, am);
#endif
  }

  /// One plane; S = the window size when known at compile time (0: use `size`). Branch-free
  /// selects in the source, but GCC 12 makes branches of the float compares.
  template <std::size_t S>
  void pool_plane(const float* src, float* dst, std::uint32_t* am) const {
    const std::size_t k = S ? S : size;
    const std::size_t oh_n = out_h(), ow_n = out_w();
    for (std::size_t oh = 0; oh < oh_n; ++oh)
      for (std::size_t ow = 0; ow < ow_n; ++ow) {
        const std::size_t first = oh * k * in_w + ow * k;
        float bv = src[first];
        std::uint32_t best = static_cast<std::uint32_t>(first);
        for (std::size_t a = 0; a < k; ++a)
          for (std::size_t c = 0; c < k; ++c) {
            const std::size_t i = first + a * in_w + c;
            const float v = src[i];
            const bool take = v > bv || (v != v && bv == bv);  // larger, or the first NaN
            bv = take ? v : bv;
            best = take ? static_cast<std::uint32_t>(i) : best;
          }
        dst[oh * ow_n + ow] = bv;
        am[oh * ow_n + ow] = best;
      }
  }
};

/// Fully connected layer: y (n x out) = relu?(x (n x in) * W^T + b), W is out x in row-major.
struct linear {
  std::size_t in = 0, out = 0;
  bool relu = false;
  std::vector<float> w, b, gw, gb;

  linear() = default;
  linear(std::size_t in_features, std::size_t out_features, bool with_relu)
      : in(in_features), out(out_features), relu(with_relu), w(in * out, 0.f), b(out, 0.f), gw(in * out, 0.f), gb(out, 0.f) {}
  std::size_t weight_count() const { return in * out; }
  std::size_t macs() const { return in * out; }

  void forward(const float* x, float* y, std::size_t n) const {
    const_matrix_map X(x, ix(n), ix(in));
    const_matrix_map W(w.data(), ix(out), ix(in));
    matrix_map Y(y, ix(n), ix(out));
    Y.noalias() = X * W.transpose();
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t o = 0; o < out; ++o) {
        float& v = y[r * out + o];
        v += b[o];
        if (relu) v = std::max(v, 0.f);
      }
  }

  void backward(const float* x, const float* y, float* dy, float* dx, std::size_t n) {
    if (relu)
      for (std::size_t i = 0; i < n * out; ++i) dy[i] = y[i] > 0.f ? dy[i] : 0.f;
    const_matrix_map X(x, ix(n), ix(in));
    const_matrix_map DY(dy, ix(n), ix(out));
    matrix_map GW(gw.data(), ix(out), ix(in));
    GW.noalias() = DY.transpose() * X;
    for (std::size_t o = 0; o < out; ++o) gb[o] = 0.f;
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t o = 0; o < out; ++o) gb[o] += dy[r * out + o];
    if (dx) {
      const_matrix_map W(w.data(), ix(out), ix(in));
      matrix_map DX(dx, ix(n), ix(in));
      DX.noalias() = DY * W;
    }
  }
};

/// CNHW (c x n x hw) -> n x F rows with F = c*hw in PyTorch's flatten order (c, h, w), optionally
/// keeping only the features listed in `keep` (ascending), which is how a compacted first linear
/// layer that lost individual input features is fed.
struct flatten {
  std::size_t channels = 0, hw = 0;
  std::vector<std::uint32_t> keep;  // empty: all features

  std::size_t features() const { return keep.empty() ? channels * hw : keep.size(); }

  void forward(const float* x, float* y, std::size_t n) const {
    const std::size_t F = features();
    const std::ptrdiff_t N = static_cast<std::ptrdiff_t>(n);
    SPARSEREG_CNN_OMP(omp parallel for schedule(static))
    for (std::ptrdiff_t ri = 0; ri < N; ++ri) {
      const auto r = static_cast<std::size_t>(ri);
      float* dst = y + r * F;
      if (keep.empty()) {
        for (std::size_t c = 0; c < channels; ++c) std::memcpy(dst + c * hw, x + (c * n + r) * hw, hw * sizeof(float));
      } else {
        for (std::size_t j = 0; j < F; ++j) {
          const std::size_t f = keep[j], c = f / hw, p = f % hw;
          dst[j] = x[(c * n + r) * hw + p];
        }
      }
    }
  }
  void backward(const float* dy, float* dx, std::size_t n) const {
    const std::size_t F = features();
    if (!keep.empty()) std::fill(dx, dx + channels * n * hw, 0.f);
    const std::ptrdiff_t N = static_cast<std::ptrdiff_t>(n);
    SPARSEREG_CNN_OMP(omp parallel for schedule(static))
    for (std::ptrdiff_t ri = 0; ri < N; ++ri) {
      const auto r = static_cast<std::size_t>(ri);
      const float* src = dy + r * F;
      if (keep.empty()) {
        for (std::size_t c = 0; c < channels; ++c) std::memcpy(dx + (c * n + r) * hw, src + c * hw, hw * sizeof(float));
      } else {
        for (std::size_t j = 0; j < F; ++j) {
          const std::size_t f = keep[j], c = f / hw, p = f % hw;
          dx[(c * n + r) * hw + p] = src[j];
        }
      }
    }
  }
};

/// Mean softmax cross-entropy over the batch; writes d(loss)/d(logits) into dlogits (may be null).
/// Returns the summed (not mean) loss and adds the number of correct argmax predictions to *correct.
inline double softmax_cross_entropy(const float* logits, const std::uint8_t* labels, std::size_t n, std::size_t classes,
                                    float* dlogits, std::size_t* correct) {
  double total = 0.0;
  for (std::size_t r = 0; r < n; ++r) {
    const float* z = logits + r * classes;
    std::size_t arg = 0;
    float mx = z[0];
    for (std::size_t c = 1; c < classes; ++c)
      if (z[c] > mx) {
        mx = z[c];
        arg = c;
      }
    if (correct && arg == labels[r]) ++*correct;
    double s = 0.0;
    for (std::size_t c = 0; c < classes; ++c) s += std::exp(static_cast<double>(z[c] - mx));
    const double logsum = std::log(s) + mx;
    total += logsum - z[labels[r]];
    if (dlogits) {
      for (std::size_t c = 0; c < classes; ++c) {
        const double p = std::exp(static_cast<double>(z[c]) - logsum);
        dlogits[r * classes + c] = static_cast<float>((p - (c == labels[r] ? 1.0 : 0.0)) / static_cast<double>(n));
      }
    }
  }
  return total;
}

}  // namespace sparsereg_cnn
