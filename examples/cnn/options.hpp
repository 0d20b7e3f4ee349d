// Command-line options of sparsereg_train / sparsereg_compare.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sparsereg_cnn {

struct options {
  std::string dataset = "fashion";  // fashion | mnist
  std::string data_dir;             // empty: /usr/share/datasets/<fashion-mnist|mnist>
  std::size_t epochs = 10;
  std::size_t batch = 64;
  double lr = -1.0;  // < 0: 0.01 for sgd, 0.001 for adam
  std::string optimizer = "sgd";
  std::string lr_schedule = "constant";  // constant | cosine
  std::string update = "whole-model";    // whole-model | per-layer (same results; see trainer.hpp)
  double momentum = 0.9;
  double lambda_group = 0.0;
  double lambda_l1 = 0.0;
  std::vector<double> lambda_group_scale;  // per weighted layer (convs, then linears); empty: all 1
  double var_weight = 0.0;
  double target = 0.9;            // spike-and-slab target: fraction of the mass in the spike near zero
  std::string var_on = "groups";  // groups | weights
  double var_support_rounding = 0.0;  // kl_support::max_abs's rounding of the histogram support (0: exact)
  double warmup_epochs = 1.0;
  std::uint64_t seed = 42;
  int threads = 0;  // 0: all hardware threads
  std::string save, resume, export_path, metrics;
  std::string arch = "default";
  std::size_t max_train = 0;  // 0: all
  std::size_t max_test = 0;   // 0: all
  std::size_t finetune_epochs = 0;
  double finetune_lr = -1.0;  // < 0: fine-tuning continues the main schedule
  bool quiet = false;
  bool progress = true;       // progress bar when stdout is a TTY

  double effective_lr() const { return lr >= 0 ? lr : (optimizer == "adam" ? 0.001 : 0.01); }
  int effective_threads() const {
    if (threads > 0) return threads;
    const unsigned h = std::thread::hardware_concurrency();
    return h == 0 ? 1 : static_cast<int>(h);
  }
  std::string effective_data_dir() const {
    if (!data_dir.empty()) return data_dir;
    return dataset == "mnist" ? "/usr/share/datasets/mnist" : "/usr/share/datasets/fashion-mnist";
  }
  /// Learning rate of step `step` (0-based) of a schedule of `total_steps` steps starting at
  /// `base`: constant, or cosine decay from base towards 0. The main schedule spans the
  /// regularized and the fine-tuning epochs, unless --finetune-lr gives fine-tuning its own.
  double lr_at(std::uint64_t step, std::uint64_t total_steps, double base) const {
    if (lr_schedule != "cosine" || total_steps == 0) return base;
    const double t = static_cast<double>(step) / static_cast<double>(total_steps);
    return base * 0.5 * (1.0 + std::cos(3.14159265358979323846 * std::min(t, 1.0)));
  }
  bool regularized() const { return lambda_group > 0 || lambda_l1 > 0 || var_weight > 0; }

  /// The settings that determine a run's trajectory; stored in checkpoints and compared on resume.
  std::string trajectory_settings() const {
    std::ostringstream s;
    s.precision(17);
    s << "dataset=" << dataset << " batch=" << batch << " lr=" << effective_lr() << " optimizer=" << optimizer
      << " lr_schedule=" << lr_schedule
      << " momentum=" << momentum << " lambda_group=" << lambda_group << " lambda_l1=" << lambda_l1
      << " var_weight=" << var_weight << " var_on=" << var_on << " target=" << target << " warmup_epochs=" << warmup_epochs
      << " seed=" << seed << " threads=" << effective_threads() << " arch=" << arch << " max_train=" << max_train;
    if (!lambda_group_scale.empty()) {  // only when given, so checkpoints from before the flag still resume
      s << " lambda_group_scale=";
      for (std::size_t i = 0; i < lambda_group_scale.size(); ++i) s << (i ? "," : "") << lambda_group_scale[i];
    }
    // A cosine schedule's rate at a step depends on the run's length.
    if (lr_schedule == "cosine") s << " epochs=" << epochs << " finetune_epochs=" << finetune_epochs << " finetune_lr=" << finetune_lr;
    return s.str();
  }
};

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Bounds of numeric flags, checked by parse_options and again by check_options (trainer.hpp).
inline constexpr std::size_t max_batch = std::size_t{1} << 20;
inline constexpr double max_warmup_epochs = 1e6;  // warmup_epochs x steps per epoch must fit a size_t
inline constexpr std::uint64_t max_seed = 4294967295u;  // std::mt19937 takes a 32-bit seed

/// What the programs print when std::bad_alloc escapes a run: the memory of a run grows with
/// --batch (activations, im2col columns), so the message names it.
inline std::string out_of_memory_message(const options& o) {
  return "out of memory (std::bad_alloc) with --batch " + std::to_string(o.batch) +
         ": the activations and im2col buffers of a batch grow with it; try a smaller --batch";
}

namespace detail {
inline double parse_double(const std::string& flag, const std::string& v, bool nonneg = true) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  // strtod skips leading blanks; the integer flags do not accept them either.
  const bool blank = v.find_first_of(" \t\n\v\f\r") != std::string::npos;
  if (v.empty() || blank || *end != '\0' || errno == ERANGE || !std::isfinite(d))
    throw usage_error(flag + " expects a finite number, got '" + v + "'");
  if (nonneg && d < 0) throw usage_error(flag + " must be >= 0, got '" + v + "'");
  return d;
}
/// "a,b,c" as numbers >= 0; an empty list or an empty item is an error naming the flag and value.
inline std::vector<double> parse_double_list(const std::string& flag, const std::string& v) {
  std::vector<double> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = v.find(',', start);
    const std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const std::string what = flag + " expects numbers >= 0 separated by commas, got '" + v + "'";
    if (item.empty()) throw usage_error(what);
    try {
      out.push_back(parse_double(flag, item));
    } catch (const usage_error&) {
      throw usage_error(what + " (item '" + item + "')");
    }
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}
inline std::uint64_t parse_uint(const std::string& flag, const std::string& v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
    throw usage_error(flag + " expects a non-negative integer, got '" + v + "'");
  errno = 0;
  const auto x = std::strtoull(v.c_str(), nullptr, 10);
  if (errno == ERANGE) throw usage_error(flag + " is out of range: '" + v + "'");
  return x;
}
}  // namespace detail

/// Help text for the flags shared by both binaries (defaults shown).
inline std::string common_flags_help() {
  return R"(Data:
  --dataset fashion|mnist   which IDX dataset to use (default: fashion)
  --data DIR                directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
                            (default: /usr/share/datasets/fashion-mnist, or .../mnist for --dataset mnist)
  --max-train N             use only the first N training images, 0 = all (default: 0)
  --max-test N              evaluate on only the first N test images, 0 = all (default: 0)
Model and optimization:
  --arch SPEC               architecture: tokens c<out>k<k>[p<pad>] (conv, default pad (k-1)/2),
                            p<s> (max-pool s x s), f<out> (linear), joined by '-'; ReLU after every
                            conv and hidden linear layer. Presets: default = c32k5-p2-c64k5-p2-f80-f10,
                            lenet5-caffe = c20k5p0-p2-c50k5p0-p2-f500-f10; out <= 65536, k, pad and
                            s <= 1024 (default: default)
  --epochs N                training epochs (default: 10)
  --batch N                 mini-batch size, at most 1048576 (default: 64)
  --optimizer sgd|adam      SGD with momentum, or Adam (default: sgd)
  --lr X                    learning rate (default: 0.01 for sgd, 0.001 for adam)
  --momentum X              SGD momentum (default: 0.9)
  --lr-schedule constant|cosine
                            constant rate, or cosine decay from --lr to 0 over all steps of the run
                            (regularized epochs + fine-tuning epochs), per step (default: constant)
  --update whole-model|per-layer
                            when each layer takes its step (KL gradient, optimizer, prox): after
                            the whole backward pass, or inside it as soon as the layer's gradient
                            is ready; the results are the same bit for bit (default: whole-model)
  --seed N                  seed of the std::mt19937 used for init and shuffling, at most
                            4294967295 (default: 42)
  --threads N               OpenMP / Eigen threads, 0 = all cores (default: 0)
Regularization (through sparsereg's regularizer; all off by default):
  --lambda-group X          sparse-group-lasso group weight: conv filters + input channels, linear
                            input + output neurons, each group scaled by sqrt(group size) (default: 0)
  --lambda-l1 X             sparse-group-lasso element-wise l1 weight (default: 0)
  --lambda-group-scale LIST per-layer factors of --lambda-group, comma-separated, one per conv and
                            linear layer in order (e.g. 1,0.5,1,1 halves it for conv2); each >= 0
                            (default: 1 for every layer)
  --var-weight X            weight of the KL variance regularizer, KL(P_w || Q_target) (default: 0)
  --target X                spike-and-slab target of the variance regularizer: fraction of mass in
                            the spike near zero, in (0, 1) (default: 0.9)
  --var-on groups|weights   the variance regularizer's distribution: norms of the filter / input-
                            neuron groups, or individual weights (default: groups)
  --var-support-rounding X  the histogram support (the largest norm or |weight|) is rounded up to the
                            next power of 1 + X, so the discretized target is rebuilt only when
                            that power changes; X in [0, 1], 0 = exact (default: 0)
  --warmup-epochs X         lambdas ramp linearly from 0 over this many epochs, at most 1e6
                            (default: 1)
  --finetune-epochs N       after compaction, train the compacted model N more epochs without
                            regularization, continuing the sliced optimizer state (default: 0)
  --finetune-lr X           fine-tuning's own learning rate: it then starts at X and follows
                            --lr-schedule over the fine-tuning epochs alone (the main schedule
                            spans the regularized epochs); unset, fine-tuning continues the main
                            schedule (default: unset)
Output:
  --metrics FILE            write per-epoch metrics as CSV (default: none)
  --quiet                   no per-epoch lines or progress bar
  --no-progress             one line per epoch even on a terminal
)";
}

/// Parses argv into `o`; flags not in `extra` and not common raise usage_error. `extra` maps
/// binary-specific flags to handlers (value-taking ones receive the value).
inline void parse_options(int argc, char** argv, options& o,
                          const std::map<std::string, std::pair<bool, std::function<void(const std::string&)>>>& extra = {}) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    bool has_inline = false;
    if (flag.rfind("--", 0) != 0) throw usage_error("unexpected argument '" + flag + "' (flags start with --)");
    const auto eq = flag.find('=');
    if (eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_inline = true;
    }
    auto take = [&]() -> std::string {
      if (has_inline) return value;
      if (i + 1 >= argc) throw usage_error(flag + " needs a value");
      return argv[++i];
    };
    // A flag without a value must not be given one: --quiet=no would otherwise mean --quiet.
    auto no_value = [&]() {
      if (has_inline) throw usage_error(flag + " takes no value, got '" + value + "'");
    };
    // An output or input file; empty would silently mean "none".
    auto take_path = [&]() -> std::string {
      std::string p = take();
      if (p.empty()) throw usage_error(flag + " expects a file name, got ''");
      return p;
    };
    if (auto it = extra.find(flag); it != extra.end()) {
      if (it->second.first) {
        it->second.second(take());
      } else {
        no_value();
        it->second.second("");
      }
      continue;
    }
    if (flag == "--dataset") {
      o.dataset = take();
      if (o.dataset != "fashion" && o.dataset != "mnist") throw usage_error("--dataset must be fashion or mnist, got '" + o.dataset + "'");
    } else if (flag == "--data") {
      o.data_dir = take();
    } else if (flag == "--epochs") {
      o.epochs = detail::parse_uint(flag, take());
    } else if (flag == "--batch") {
      const std::string v = take();
      o.batch = detail::parse_uint(flag, v);
      if (o.batch == 0 || o.batch > max_batch)
        throw usage_error("--batch must be in [1, " + std::to_string(max_batch) + "], got '" + v + "'");
    } else if (flag == "--lr") {
      const std::string v = take();
      o.lr = detail::parse_double(flag, v);
      if (o.lr <= 0) throw usage_error("--lr must be > 0, got '" + v + "'");
    } else if (flag == "--momentum") {
      const std::string v = take();
      o.momentum = detail::parse_double(flag, v);
      if (o.momentum >= 1) throw usage_error("--momentum must be in [0, 1), got '" + v + "'");
    } else if (flag == "--optimizer") {
      o.optimizer = take();
      if (o.optimizer != "sgd" && o.optimizer != "adam") throw usage_error("--optimizer must be sgd or adam, got '" + o.optimizer + "'");
    } else if (flag == "--lambda-group") {
      o.lambda_group = detail::parse_double(flag, take());
    } else if (flag == "--lambda-group-scale") {
      o.lambda_group_scale = detail::parse_double_list(flag, take());
    } else if (flag == "--lambda-l1") {
      o.lambda_l1 = detail::parse_double(flag, take());
    } else if (flag == "--var-weight") {
      o.var_weight = detail::parse_double(flag, take());
    } else if (flag == "--target") {
      const std::string v = take();
      o.target = detail::parse_double(flag, v);
      if (!(o.target > 0 && o.target < 1)) throw usage_error("--target must be in (0, 1), got '" + v + "'");
    } else if (flag == "--var-support-rounding") {
      const std::string v = take();
      const double r = detail::parse_double(flag, v);
      if (!(r <= 1)) throw usage_error("--var-support-rounding must be in [0, 1], got '" + v + "'");
      o.var_support_rounding = r;
    } else if (flag == "--var-on") {
      o.var_on = take();
      if (o.var_on != "groups" && o.var_on != "weights") throw usage_error("--var-on must be groups or weights, got '" + o.var_on + "'");
    } else if (flag == "--lr-schedule") {
      o.lr_schedule = take();
      if (o.lr_schedule != "constant" && o.lr_schedule != "cosine")
        throw usage_error("--lr-schedule must be constant or cosine, got '" + o.lr_schedule + "'");
    } else if (flag == "--update") {
      o.update = take();
      if (o.update != "per-layer" && o.update != "whole-model")
        throw usage_error("--update must be per-layer or whole-model, got '" + o.update + "'");
    } else if (flag == "--warmup-epochs") {
      const std::string v = take();
      o.warmup_epochs = detail::parse_double(flag, v);
      if (o.warmup_epochs > max_warmup_epochs)
        throw usage_error("--warmup-epochs must be at most 1e6, got '" + v + "'");
    } else if (flag == "--seed") {
      const std::string v = take();
      o.seed = detail::parse_uint(flag, v);
      if (o.seed > max_seed)
        throw usage_error("--seed must be at most " + std::to_string(max_seed) +
                          " (std::mt19937 takes 32 bits), got '" + v + "'");
    } else if (flag == "--threads") {
      const std::size_t t = detail::parse_uint(flag, take());
      if (t > 1024) throw usage_error("--threads must be at most 1024, got " + std::to_string(t));
      o.threads = static_cast<int>(t);
    } else if (flag == "--save") {
      o.save = take_path();
    } else if (flag == "--resume") {
      o.resume = take_path();
    } else if (flag == "--export") {
      o.export_path = take_path();
    } else if (flag == "--metrics") {
      o.metrics = take_path();
    } else if (flag == "--arch") {
      o.arch = take();
    } else if (flag == "--max-train") {
      o.max_train = detail::parse_uint(flag, take());
    } else if (flag == "--finetune-lr") {
      const std::string v = take();
      o.finetune_lr = detail::parse_double(flag, v);
      if (o.finetune_lr <= 0) throw usage_error("--finetune-lr must be > 0, got '" + v + "'");
    } else if (flag == "--finetune-epochs") {
      o.finetune_epochs = detail::parse_uint(flag, take());
    } else if (flag == "--max-test") {
      o.max_test = detail::parse_uint(flag, take());
    } else if (flag == "--quiet") {
      no_value();
      o.quiet = true;
    } else if (flag == "--no-progress") {
      no_value();
      o.progress = false;
    } else {
      throw usage_error("unknown flag '" + flag + "' (see --help)");
    }
  }
}

}  // namespace sparsereg_cnn
