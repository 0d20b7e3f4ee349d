// A tiny synthetic, learnable 10-class image set (28x28, values in [0,1]) for tests and the CTest
// smoke test, so they run on machines without (Fashion-)MNIST. Class k is a bright 6x6 square at
// one of ten fixed positions plus uniform noise.
#pragma once

#include "common/atomic_file.hpp"
#include "common/idx.hpp"

#include <random>
#include <string>
#include <vector>

namespace sparsereg_cnn {

inline sparsereg_examples::dataset synthetic_dataset(std::size_t count, std::uint32_t seed, std::size_t side = 28) {
  sparsereg_examples::dataset d;
  d.count = count;
  d.rows = side;
  d.cols = side;
  d.images.assign(count * side * side, 0.f);
  d.labels.resize(count);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> noise(0.f, 0.3f);
  for (std::size_t i = 0; i < count; ++i) {
    const auto k = static_cast<std::uint8_t>(rng() % 10);
    d.labels[i] = k;
    float* img = d.images.data() + i * side * side;
    for (std::size_t p = 0; p < side * side; ++p) img[p] = noise(rng);
    const std::size_t r0 = 2 + (k / 5) * (side / 2), c0 = 1 + (k % 5) * ((side - 6) / 5);
    for (std::size_t r = r0; r < std::min(side, r0 + 6); ++r)
      for (std::size_t c = c0; c < std::min(side, c0 + 6); ++c) img[r * side + c] = 1.f;
  }
  return d;
}

/// Writes d as raw (uncompressed) IDX files <dir>/<split>-images-idx3-ubyte and -labels-idx1-ubyte.
inline void write_idx_split(const sparsereg_examples::dataset& d, const std::string& dir, const std::string& split) {
  auto be32 = [](std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
  };
  std::vector<std::uint8_t> img, lab;
  be32(img, 0x00000803u);
  be32(img, static_cast<std::uint32_t>(d.count));
  be32(img, static_cast<std::uint32_t>(d.rows));
  be32(img, static_cast<std::uint32_t>(d.cols));
  for (float v : d.images) img.push_back(static_cast<std::uint8_t>(std::lround(std::min(1.f, std::max(0.f, v)) * 255.f)));
  be32(lab, 0x00000801u);
  be32(lab, static_cast<std::uint32_t>(d.count));
  lab.insert(lab.end(), d.labels.begin(), d.labels.end());
  sparsereg_examples::write_file_atomically(dir + "/" + split + "-images-idx3-ubyte", img.data(), img.size());
  sparsereg_examples::write_file_atomically(dir + "/" + split + "-labels-idx1-ubyte", lab.data(), lab.size());
}

}  // namespace sparsereg_cnn
