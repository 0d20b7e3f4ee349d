// Data-parallel and sharded training with sparsereg over MPI (2 or more ranks).
//
// Part 1, data parallel: every rank holds the whole model (a linear least-squares model whose
// true weight matrix has only a few non-zero rows), computes the gradient on its share of the
// data, all-reduces (averages) it, and then runs the same optimizer step and the same
// regularizer prox locally. The replicas must stay bit-identical without exchanging weights.
//
// Part 2, sharded: the weight matrix is split across ranks by columns, so every row group is
// split; the sparse-group-lasso prox runs in two phases around an all-reduce of 2 doubles per
// group (sharded.hpp) and must match the unsharded prox computed on the gathered matrix.
//
// Build: examples/mpi/run.sh (mpicxx), or CMake with find_package(MPI).
// Run:   mpirun -np 2 ./sparsereg_mpi_data_parallel       (exit status 0 = all checks passed)
#include <sparsereg/sharded.hpp>
#include <sparsereg/sparsereg.hpp>

#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace sr = sparsereg;

namespace {

constexpr std::size_t outputs = 16, inputs = 32, samples_per_rank = 256;

/// FNV-1a over the bytes: a cheap fingerprint to compare replicas.
std::uint64_t fingerprint(const std::vector<float>& v) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* b = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

int data_parallel(int rank, int size) {
  // Synthetic data: y = W_true x + noise, W_true has non-zero rows 0..3 only. Each rank draws its
  // own samples (different seeds); the model starts identical everywhere (same seed).
  std::mt19937 data_rng(1000 + static_cast<unsigned>(rank));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w_true(outputs * inputs, 0.0f);
  std::mt19937 truth_rng(7);
  for (std::size_t o = 0; o < 4; ++o)
    for (std::size_t i = 0; i < inputs; ++i) w_true[o * inputs + i] = nd(truth_rng);
  std::vector<float> x(samples_per_rank * inputs), y(samples_per_rank * outputs);
  for (auto& v : x) v = nd(data_rng);
  for (std::size_t s = 0; s < samples_per_rank; ++s)
    for (std::size_t o = 0; o < outputs; ++o) {
      float acc = 0.01f * nd(data_rng);
      for (std::size_t i = 0; i < inputs; ++i) acc += w_true[o * inputs + i] * x[s * inputs + i];
      y[s * outputs + o] = acc;
    }

  std::vector<float> w(outputs * inputs), g(w.size());
  std::mt19937 init_rng(42);
  for (auto& v : w) v = 0.1f * nd(init_rng);

  sr::regularizer<float> reg;
  reg.add_parameter("w", sr::view<float>(w.data(), {outputs, inputs}), sr::view<float>(g.data(), {outputs, inputs}));
  reg.add_penalty("w", sr::sparse_group_lasso(0.05, 0.001, sr::groups::output_neurons()), sr::schedule::linear_warmup(50));
  reg.add_penalty("w", sr::squared_l2(1e-4));

  const double lr = 0.05;
  for (int step = 0; step < 300; ++step) {
    // Local gradient of the mean squared error over this rank's samples.
    std::fill(g.begin(), g.end(), 0.0f);
    for (std::size_t s = 0; s < samples_per_rank; ++s)
      for (std::size_t o = 0; o < outputs; ++o) {
        float r = -y[s * outputs + o];
        for (std::size_t i = 0; i < inputs; ++i) r += w[o * inputs + i] * x[s * inputs + i];
        for (std::size_t i = 0; i < inputs; ++i) g[o * inputs + i] += r * x[s * inputs + i] / float(samples_per_rank);
      }
    // Average the gradients (the data-parallel all-reduce), then the same local updates everywhere.
    MPI_Allreduce(MPI_IN_PLACE, g.data(), static_cast<int>(g.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (auto& v : g) v /= static_cast<float>(size);
    reg.add_gradients();  // after the all-reduce: the penalty gradient is counted once
    for (std::size_t k = 0; k < w.size(); ++k) w[k] -= static_cast<float>(lr) * g[k];
    reg.prox_step(lr);
  }

  // Replicas must be bit-identical: compare fingerprints.
  const std::uint64_t mine = fingerprint(w);
  std::vector<std::uint64_t> all(static_cast<std::size_t>(size));
  MPI_Allgather(&mine, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  bool identical = true;
  for (auto h : all) identical = identical && h == all[0];
  const auto rep = reg.report();
  const std::size_t zero_rows = rep[0].group_penalties[0].zero_groups;
  bool recovered = true;  // rows 0..3 kept, rows 4..15 pruned
  for (std::size_t o = 0; o < outputs; ++o) {
    bool zero = true;
    for (std::size_t i = 0; i < inputs; ++i) zero = zero && w[o * inputs + i] == 0.0f;
    recovered = recovered && (zero == (o >= 4));
  }
  if (rank == 0)
    std::printf("data parallel: %d ranks, replicas %s, %zu of %zu rows pruned, support %s, penalty %.5f\n", size,
                identical ? "bit-identical" : "DIFFER", zero_rows, outputs, recovered ? "recovered" : "NOT recovered",
                reg.value());
  return identical && recovered ? 0 : 1;
}

int sharded(int rank, int size) {
  // The global 16 x 32 matrix, identical on every rank; rank r holds columns [c0, c1).
  std::vector<float> full(outputs * inputs);
  std::mt19937 rng(99);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  for (auto& v : full) v = nd(rng);
  for (std::size_t i = 0; i < inputs; ++i) full[3 * inputs + i] *= 0.01f;  // row 3 is weak
  const std::size_t c0 = inputs * static_cast<std::size_t>(rank) / static_cast<std::size_t>(size);
  const std::size_t c1 = inputs * static_cast<std::size_t>(rank + 1) / static_cast<std::size_t>(size);
  // This rank's block, stored contiguously (as a sharded optimizer would store it).
  std::vector<float> block(outputs * (c1 - c0));
  for (std::size_t o = 0; o < outputs; ++o)
    for (std::size_t i = c0; i < c1; ++i) block[o * (c1 - c0) + (i - c0)] = full[o * inputs + i];

  const sr::sparse_group_lasso p(0.02, 0.005, sr::groups::output_neurons());
  const sr::shard<float> s{sr::view<float>(block.data(), {outputs, c1 - c0}), {outputs, inputs}, {0, c0}};
  const double step = 0.5;
  std::vector<double> buf(sr::sharded_buffer_size(p, s));
  sr::sharded_prox_partial(p, s, step, buf.data(), buf.size());
  MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  const auto r = sr::sharded_prox_finish(p, s, step, buf.data(), buf.size());

  // Reference: the unsharded prox of the whole matrix (every rank can compute it here).
  sr::prox(p, sr::view<const float>(full.data(), {outputs, inputs}), sr::view<float>(full.data(), {outputs, inputs}), step);
  double max_diff = 0.0;
  for (std::size_t o = 0; o < outputs; ++o)
    for (std::size_t i = c0; i < c1; ++i)
      max_diff = std::fmax(max_diff, std::fabs(double(block[o * (c1 - c0) + (i - c0)]) - double(full[o * inputs + i])));
  MPI_Allreduce(MPI_IN_PLACE, &max_diff, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  const bool ok = max_diff <= 1e-6 && r.zero_groups >= 1;
  if (rank == 0)
    std::printf("sharded: %d column shards, %zu of %zu row groups zero, max |sharded - unsharded| = %.3g -> %s\n", size,
                r.zero_groups, r.groups, max_diff, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int failed = 0;
  try {
    failed = data_parallel(rank, size) | sharded(rank, size);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    failed = 1;
  }
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return failed;
}
