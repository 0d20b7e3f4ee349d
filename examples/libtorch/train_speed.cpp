// sparsereg_train_speed: training throughput of the bundled Eigen trainer (examples/cnn) against the
// same model written in libtorch, measured in one run on the same data, batch, threads and optimizer.
//
// Model (both): conv 1->32 5x5 pad 2, ReLU, max-pool 2, conv 32->64 5x5 pad 2, ReLU, max-pool 2,
// linear 3136->80, ReLU, linear 80->10; 303,866 parameters. SGD with momentum 0.9, lr 0.01,
// softmax cross-entropy, shuffled mini-batches.
//
// The two trainers take turns: each round trains `--steps` steps with ours (no regularizer), then
// `--steps` with libtorch, then `--steps` with ours plus the sparse-group-lasso prox and the KL
// variance regularizer (lambda_group 0.002, lambda_l1 1e-5, variance weight 0.002, no warm-up, so
// both act from the first step); the medians over `--rounds` rounds are
// reported, so a change of machine load hits all of them alike. Also measured: inference (forward
// only, batch 500) of both on the test set.
//
//   sparsereg_train_speed [--data DIR] [--steps N] [--rounds R] [--batch B] [--threads T]
//                         [--markdown FILE]
// Defaults: --data /usr/share/datasets/fashion-mnist --steps 200 --rounds 3 --batch 64 --threads 2
#include <torch/torch.h>

#include "cnn/trainer.hpp"
#include "libtorch/torch_cnn.hpp"

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <functional>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

namespace {

struct speed_options {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::size_t steps = 200, rounds = 3, batch = 64;
  int threads = 2;
  std::string markdown;
};

[[noreturn]] void usage(const std::string& why, int code = 2) {
  (code == 0 ? std::cout : std::cerr)
      << (code == 0 ? "" : "sparsereg_train_speed: " + why + "\n")
      << "usage: sparsereg_train_speed [--data DIR] [--steps N] [--rounds R] [--batch B] [--threads T] [--markdown FILE]\n"
         "  --data DIR       IDX data set directory (default /usr/share/datasets/fashion-mnist)\n"
         "  --steps N        training steps per measurement (default 200)\n"
         "  --rounds R       rounds of (ours, libtorch, ours + regularizers); medians reported (default 3)\n"
         "  --batch B        mini-batch size (default 64)\n"
         "  --threads T      threads for both (Eigen/OpenMP and torch intra-op; default 2)\n"
         "  --markdown FILE  also write the result table to FILE\n";
  std::exit(code);
}

speed_options parse(int argc, char** argv) {
  speed_options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") usage("", 0);
    if (i + 1 >= argc) usage("missing value after " + a);
    const std::string v = argv[++i];
    try {
      std::size_t used = 0;
      if (a == "--data") {
        o.data = v;
        continue;
      }
      if (a == "--markdown") {
        o.markdown = v;
        continue;
      }
      const long long n = std::stoll(v, &used);
      if (used != v.size() || n < 1) usage(a + " must be a positive integer, got '" + v + "'");
      if (a == "--steps") o.steps = static_cast<std::size_t>(n);
      else if (a == "--rounds") o.rounds = static_cast<std::size_t>(n);
      else if (a == "--batch") o.batch = static_cast<std::size_t>(n);
      else if (a == "--threads") o.threads = static_cast<int>(n);
      else usage("unknown option " + a);
    } catch (const std::logic_error&) {
      usage(a + " must be a positive integer, got '" + v + "'");
    }
  }
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  using namespace sparsereg_cnn;
  const speed_options so = parse(argc, argv);

  options o;  // the bundled trainer's defaults (SGD, momentum 0.9, lr 0.01), as the main job uses them
  o.data_dir = so.data;
  o.batch = so.batch;
  o.threads = so.threads;
  set_threads(so.threads);
  at::set_num_threads(so.threads);
  torch::manual_seed(1);

  const data_bundle data = load_data(o);
  if (data.train.rows != 28 || data.train.cols != 28)
    throw std::runtime_error("this comparison's model expects 28x28 images, got " + std::to_string(data.train.rows) + "x" +
                             std::to_string(data.train.cols));
  const std::size_t n = std::min(so.steps * so.batch, data.train.count);
  const std::size_t steps = (n + so.batch - 1) / so.batch;

  // Ours: the default architecture, plain and with the main job's regularizers.
  std::mt19937 rng(1);
  model ours(architecture::parse(o.arch, 1, 28, 28));
  ours.init(rng);
  model ours_reg = ours;
  optimizer opt(optimizer_kind::sgd), opt_reg(optimizer_kind::sgd);
  opt.attach(ours.parameters());
  opt_reg.attach(ours_reg.parameters());
  options oreg = o;
  oreg.lambda_group = 0.002;
  oreg.lambda_l1 = 0.00001;
  oreg.var_weight = 0.002;
  oreg.warmup_epochs = 0;
  sparsereg::regularizer<float> reg;
  configure_regularizer(reg, ours_reg, oreg, steps);

  // libtorch: the same layers, its default initialization (irrelevant to speed).
  sparsereg_examples::torch_cnn net(32, 64, 80);
  torch::optim::SGD tsgd(net.parameters(), torch::optim::SGDOptions(o.effective_lr()).momentum(o.momentum));
  const auto images = torch::from_blob(const_cast<float*>(data.train.images.data()),
                                       {static_cast<std::int64_t>(data.train.count), 1, 28, 28}, torch::kFloat);
  const auto labels = torch::from_blob(const_cast<std::uint8_t*>(data.train.labels.data()),
                                       {static_cast<std::int64_t>(data.train.count)}, torch::kUInt8)
                          .to(torch::kLong);
  const auto test_images = torch::from_blob(const_cast<float*>(data.test.images.data()),
                                            {static_cast<std::int64_t>(data.test.count), 1, 28, 28}, torch::kFloat);

  std::printf("model %s, %zu parameters; %zu steps of batch %zu per measurement, %zu rounds, %d threads\n",
              ours.arch.str().c_str(), ours.parameter_count(), steps, so.batch, so.rounds, so.threads);
  std::printf("libtorch %d.%d.%d, %d intra-op threads\n", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH,
              at::get_num_threads());

  std::vector<double> ours_ips, torch_ips, ours_reg_ips, reg_share, ours_inf, torch_inf;
  std::uint64_t gstep = 0, gstep_reg = 0;
  const double lr = o.effective_lr();
  const std::function<double(std::uint64_t)> constant_lr = [lr](std::uint64_t) { return lr; };
  std::mt19937 shuffle(7);
  for (std::size_t round = 0; round < so.rounds; ++round) {
    progress_bar quiet(false, steps, "");
    const auto a = train_epoch(ours, opt, nullptr, data.train, n, so.batch, constant_lr, rng, gstep, quiet, round);
    ours_ips.push_back(static_cast<double>(a.seen) / a.seconds);

    std::vector<std::int64_t> perm(data.train.count);
    std::iota(perm.begin(), perm.end(), std::int64_t{0});
    std::shuffle(perm.begin(), perm.end(), shuffle);
    const auto order = torch::from_blob(perm.data(), {static_cast<std::int64_t>(perm.size())}, torch::kLong);
    net.train();
    const auto t0 = clock_type::now();
    for (std::size_t s = 0; s < steps; ++s) {
      const auto b0 = static_cast<std::int64_t>(s * so.batch);
      const auto b = std::min<std::int64_t>(static_cast<std::int64_t>(so.batch), static_cast<std::int64_t>(n) - b0);
      const auto idx = order.narrow(0, b0, b);
      const auto xb = images.index_select(0, idx), yb = labels.index_select(0, idx);
      tsgd.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(net.forward(xb), yb);
      loss.backward();
      tsgd.step();
    }
    torch_ips.push_back(static_cast<double>(n) / seconds_since(t0));

    const auto r = train_epoch(ours_reg, opt_reg, &reg, data.train, n, so.batch, constant_lr, rng, gstep_reg, quiet, round);
    ours_reg_ips.push_back(static_cast<double>(r.seen) / r.seconds);
    reg_share.push_back(100.0 * r.sr.in_steps() / r.seconds);

    ours_inf.push_back(evaluate(ours, data.test).images_per_second);
    {
      torch::NoGradGuard no_grad;
      net.eval();
      const auto ti = clock_type::now();
      for (std::int64_t i = 0; i < test_images.size(0); i += 500)
        (void)net.forward(test_images.narrow(0, i, std::min<std::int64_t>(500, test_images.size(0) - i))).argmax(1);
      torch_inf.push_back(static_cast<double>(test_images.size(0)) / seconds_since(ti));
    }
    std::printf("round %zu: train ours %.0f img/s, libtorch %.0f img/s, ours + regularizers %.0f img/s (sparsereg %.2f%%); "
                "inference ours %.0f, libtorch %.0f img/s\n",
                round + 1, ours_ips.back(), torch_ips.back(), ours_reg_ips.back(), reg_share.back(), ours_inf.back(),
                torch_inf.back());
    std::fflush(stdout);
  }

  char table[1600];
  std::snprintf(table, sizeof table,
                "| measurement (median of %zu rounds, batch %zu, %d threads) | images/s | vs libtorch |\n"
                "|---|---|---|\n"
                "| train, libtorch %d.%d.%d (SGD momentum) | %.0f | 1.00 |\n"
                "| train, bundled trainer (SGD momentum) | %.0f | %.2f |\n"
                "| train, bundled trainer + SGL prox + KL variance reg. (sparsereg %.2f%% of step time) | %.0f | %.2f |\n"
                "| inference, libtorch (batch 500) | %.0f | 1.00 |\n"
                "| inference, bundled trainer (batch 500) | %.0f | %.2f |\n",
                so.rounds, so.batch, so.threads, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH,
                median(torch_ips), median(ours_ips), median(ours_ips) / median(torch_ips), median(reg_share),
                median(ours_reg_ips), median(ours_reg_ips) / median(torch_ips), median(torch_inf), median(ours_inf),
                median(ours_inf) / median(torch_inf));
  std::printf("\n%s", table);
  if (!so.markdown.empty()) {
    sparsereg_examples::write_file_atomically(so.markdown, table, std::strlen(table));
    std::printf("table written to %s\n", so.markdown.c_str());
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "sparsereg_train_speed: error: " << e.what() << "\n";
  return 1;
}
