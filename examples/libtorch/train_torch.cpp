// sparsereg in a plain libtorch training loop: a torch::nn CNN on Fashion-MNIST (or MNIST, any
// directory of the four IDX files), trained with SGD + momentum, with a sparse group lasso on every
// weight applied as a proximal step right after optimizer.step():
//
//   loss.backward();
//   optimizer.step();
//   { torch::NoGradGuard no_grad; sparsereg::prox(penalty, weight, weight, lr); }
//
// The prox is the exact proximal operator of lr * R, so groups reach exact zeros (a subgradient
// term added to the loss would only make them small). At the end the program prints accuracy,
// the structural report (zero groups per layer: removable filters and neurons) and timing,
// including the share of the step spent in sparsereg.
//
//   train_torch [--data DIR] [--steps N] [--batch B] [--lr LR] [--lambda L] [--alpha A]
//               [--threads T] [--seed S]
//
// Defaults: --data /usr/share/datasets/fashion-mnist --steps 400 --batch 64 --lr 0.05
//           --lambda 0.004 --alpha 0.1 --threads 1 --seed 1
#include <torch/torch.h>

#include <sparsereg/adapters/torch.hpp>
#include <sparsereg/analysis/report.hpp>
#include <sparsereg/sparsereg.hpp>

#include "common/idx.hpp"
#include "libtorch/torch_cnn.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct options {
  std::string data = "/usr/share/datasets/fashion-mnist";
  int steps = 400;
  int batch = 64;
  double lr = 0.05;
  double lambda = 0.004;
  double alpha = 0.1;
  int threads = 1;
  std::uint64_t seed = 1;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "train_torch: " << why
            << "\nusage: train_torch [--data DIR] [--steps N] [--batch B] [--lr LR] [--lambda L] [--alpha A] "
               "[--threads T] [--seed S]\n";
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") usage("help");
    if (i + 1 >= argc) usage("missing value after " + a);
    const std::string v = argv[++i];
    try {
      if (a == "--data") o.data = v;
      else if (a == "--steps") o.steps = std::stoi(v);
      else if (a == "--batch") o.batch = std::stoi(v);
      else if (a == "--lr") o.lr = std::stod(v);
      else if (a == "--lambda") o.lambda = std::stod(v);
      else if (a == "--alpha") o.alpha = std::stod(v);
      else if (a == "--threads") o.threads = std::stoi(v);
      else if (a == "--seed") o.seed = std::stoull(v);
      else usage("unknown option " + a);
    } catch (const std::logic_error&) {
      usage("bad value '" + v + "' for " + a);
    }
  }
  if (o.steps < 1 || o.batch < 1 || o.threads < 1 || !(o.lr > 0)) usage("steps, batch, threads and lr must be positive");
  return o;
}

/// One regularized weight: the penalty and what a zero group means for the network.
struct regularized {
  std::string name;
  torch::Tensor weight;
  sparsereg::sparse_group_lasso penalty;
  std::size_t unit_axis;  // zero groups are zero slices along this axis
  std::string unit;       // what one group is
};

/// Images [N, 1, rows, cols] and labels [N] as tensors sharing nothing with `d` (copied once).
std::pair<torch::Tensor, torch::Tensor> to_tensors(const sparsereg_examples::dataset& d) {
  if (d.rows != 28 || d.cols != 28)
    throw std::runtime_error("this example's network expects 28x28 images, got " + std::to_string(d.rows) + "x" +
                             std::to_string(d.cols));
  auto x = torch::from_blob(const_cast<float*>(d.images.data()),
                            {static_cast<std::int64_t>(d.count), 1, static_cast<std::int64_t>(d.rows),
                             static_cast<std::int64_t>(d.cols)},
                            torch::kFloat)
               .clone();
  auto y = torch::from_blob(const_cast<std::uint8_t*>(d.labels.data()), {static_cast<std::int64_t>(d.count)},
                            torch::kUInt8)
               .to(torch::kLong);
  if (y.min().item<std::int64_t>() < 0 || y.max().item<std::int64_t>() > 9)
    throw std::runtime_error("labels must be 0..9 for this 10-class example");
  // The usual Fashion-MNIST/MNIST normalization keeps SGD's step size meaningful.
  x = (x - 0.5) / 0.5;
  return {x, y};
}

double accuracy(sparsereg_examples::torch_cnn& model, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  model.eval();
  std::int64_t correct = 0;
  const std::int64_t n = x.size(0);
  for (std::int64_t i = 0; i < n; i += 1000) {
    const std::int64_t m = std::min<std::int64_t>(1000, n - i);
    correct += model.forward(x.narrow(0, i, m)).argmax(1).eq(y.narrow(0, i, m)).sum().item<std::int64_t>();
  }
  model.train();
  return static_cast<double>(correct) / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) try {
  const options opt = parse(argc, argv);
  torch::manual_seed(opt.seed);
  at::set_num_threads(opt.threads);

  std::printf("loading %s ...\n", opt.data.c_str());
  const auto [train_x, train_y] = to_tensors(sparsereg_examples::load_split(opt.data, "train"));
  const auto [test_x, test_y] = to_tensors(sparsereg_examples::load_split(opt.data, "t10k"));
  std::printf("train %lld images, test %lld images, %d threads\n", static_cast<long long>(train_x.size(0)),
              static_cast<long long>(test_x.size(0)), opt.threads);

  sparsereg_examples::torch_cnn model(16, 32, 128);  // 1->16->32 convs, fc 1568->128->10
  torch::optim::SGD optimizer(model.parameters(), torch::optim::SGDOptions(opt.lr).momentum(0.9));

  // Sparse group lasso in Simon et al.'s (lambda, alpha) form on every weight: conv filters
  // (O x I x H x W, one group per output filter) and linear neurons (out x in, one group per
  // output neuron). fc2's outputs are the 10 classes, so it gets groups per input instead.
  namespace g = sparsereg::groups;
  const double L = opt.lambda, A = opt.alpha;
  std::vector<regularized> layers = {
      {"conv1", model.conv1->weight, sparsereg::sparse_group_lasso::mixed(L, A, g::filters()), 0, "filters"},
      {"conv2", model.conv2->weight, sparsereg::sparse_group_lasso::mixed(L, A, g::filters()), 0, "filters"},
      {"fc1", model.fc1->weight, sparsereg::sparse_group_lasso::mixed(L, A, g::output_neurons()), 0, "neurons"},
      {"fc2", model.fc2->weight, sparsereg::sparse_group_lasso::mixed(L, A, g::input_neurons()), 1, "inputs"},
  };

  using clock = std::chrono::steady_clock;
  double prox_seconds = 0.0;
  const auto start = clock::now();
  const std::int64_t n_train = train_x.size(0);
  torch::Tensor order = torch::randperm(n_train, torch::kLong);
  std::int64_t cursor = 0;
  for (int step = 1; step <= opt.steps; ++step) {
    if (cursor + opt.batch > n_train) {
      order = torch::randperm(n_train, torch::kLong);
      cursor = 0;
    }
    const torch::Tensor idx = order.narrow(0, cursor, opt.batch);
    cursor += opt.batch;
    const torch::Tensor xb = train_x.index_select(0, idx), yb = train_y.index_select(0, idx);

    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model.forward(xb), yb);
    loss.backward();
    optimizer.step();

    // The proximal step of lr * R, in place on the parameters' own memory.
    const auto p0 = clock::now();
    double penalty = 0.0;
    std::size_t zero_groups = 0;
    {
      torch::NoGradGuard no_grad;
      for (auto& l : layers) {
        const sparsereg::prox_result r = sparsereg::prox(l.penalty, l.weight, l.weight, opt.lr);
        penalty += r.value;
        zero_groups += r.zero_groups;
      }
    }
    prox_seconds += std::chrono::duration<double>(clock::now() - p0).count();

    if (step % 50 == 0 || step == opt.steps)
      std::printf("step %4d  loss %.4f  penalty %.4f  zero groups %zu\n", step, loss.item<double>(), penalty,
                  zero_groups);
  }
  const double train_seconds = std::chrono::duration<double>(clock::now() - start).count();

  const double acc = accuracy(model, test_x, test_y);
  std::printf("\ntest accuracy %.2f%% after %d steps of batch %d\n\n", 100.0 * acc, opt.steps, opt.batch);

  // Structural report: which groups are exactly zero, per layer.
  std::printf("%-6s %-16s %-8s %12s %14s\n", "layer", "shape", "groups", "zero groups", "zero elements");
  std::size_t total_groups = 0, total_zero_groups = 0;
  for (const auto& l : layers) {
    const auto v = sparsereg::torch_view<const float>(l.weight);
    const std::size_t groups = v.extent(l.unit_axis);
    const std::size_t zg = sparsereg::count_zero_slices(v, l.unit_axis);
    const auto s = sparsereg::sparsity(v);
    std::string shape;
    for (std::size_t i = 0; i < v.rank(); ++i) shape += (i ? "x" : "") + std::to_string(v.extent(i));
    std::printf("%-6s %-16s %-8s %5zu / %-5zu %7.2f%%  (%s)\n", l.name.c_str(), shape.c_str(), l.unit.c_str(), zg,
                groups, 100.0 * s.fraction(), l.unit.c_str());
    total_groups += groups;
    total_zero_groups += zg;
  }
  std::printf("total: %zu of %zu groups are exactly zero\n\n", total_zero_groups, total_groups);

  std::printf("time: %.2f s training (%.2f ms/step), of which sparsereg prox %.3f ms/step (%.2f%%)\n",
              train_seconds, 1e3 * train_seconds / opt.steps, 1e3 * prox_seconds / opt.steps,
              100.0 * prox_seconds / train_seconds);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "train_torch: " << e.what() << "\n";
  return 1;
}
