// The training loop of sparsereg_train: data, epochs, proximal regularization through
// sparsereg's public API, evaluation, checkpoints, structural report, compaction and export.
//
// Per step (this is the wiring users copy; the default, --update whole-model):
//   forward -> softmax cross-entropy -> backward            (gradients in the model's buffers)
//   reg.add_gradients()      smooth penalties (KL variance regularizer) add into those buffers
//   optimizer.step(lr)       SGD-momentum or Adam
//   reg.prox_step(lr)        sparse-group-lasso prox on every conv / linear weight, in place
//   dead-unit bias reset     a unit whose incoming weights the prox zeroed gets bias 0, so it
//                            outputs exactly 0 after its ReLU and can be removed (compact.hpp)
// --update per-layer does the same for each layer inside the backward pass, as soon as the
// layer's gradient is complete (model::backward's on_layer), through sparsereg's per-parameter
// calls:
//   reg.add_gradients(w); optimizer step of w and b; reg.prox_parameter(w, lr); bias reset
// and reg.end_step() after the pass. Every layer's update reads only its own weights, gradients
// and optimizer state, which the rest of the backward pass no longer uses, so the results are
// the same bit for bit (tests/cnn/trainer_test.cpp). The hope was warm caches for the
// regularizer; on this machine the two orders measured the same (docs/results.md), so the
// simpler whole-model step stays the default.
#pragma once

#include "common/atomic_file.hpp"
#include "common/idx.hpp"
#include "compact.hpp"
#include "model.hpp"
#include "optimizer.hpp"
#include "options.hpp"
#include "regularization.hpp"
#include "serialize.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <numeric>
#include <sstream>

#include <unistd.h>

namespace sparsereg_cnn {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

inline void set_threads(int threads) {
#if defined(_OPENMP)
  omp_set_num_threads(threads);
#endif
  Eigen::setNbThreads(threads);
}

struct data_bundle {
  sparsereg_examples::dataset train, test;
};

/// The model is built for the training images' size and evaluated on the test images: both must be
/// the same size. Throws idx_error naming both image files (or splits) and both sizes.
inline void check_same_image_size(const data_bundle& d) {
  if (d.test.rows == d.train.rows && d.test.cols == d.train.cols) return;
  const auto name = [](const sparsereg_examples::dataset& s, const char* split) {
    return s.images_source.empty() ? std::string(split) + " images" : "'" + s.images_source + "'";
  };
  throw sparsereg_examples::idx_error("idx: " + name(d.test, "test") + " has " + std::to_string(d.test.rows) + "x" +
                                      std::to_string(d.test.cols) + " images but " + name(d.train, "train") + " has " +
                                      std::to_string(d.train.rows) + "x" + std::to_string(d.train.cols) +
                                      "; train and test images must have the same size");
}

inline data_bundle load_data(const options& o) {
  data_bundle d;
  const std::string dir = o.effective_data_dir();
  d.train = sparsereg_examples::load_split(dir, "train");
  d.test = sparsereg_examples::load_split(dir, "t10k");
  check_same_image_size(d);
  return d;
}

/// Every label must be a class of the model (an output of its last layer); a damaged or wrong
/// labels file would otherwise index past the logits. Throws std::runtime_error naming the split,
/// the labels file, the index and the value of the first bad label.
inline void check_labels(const sparsereg_examples::dataset& d, const char* split, std::size_t classes) {
  for (std::size_t i = 0; i < d.labels.size(); ++i)
    if (d.labels[i] >= classes)
      throw std::runtime_error(std::string(split) + " labels" +
                               (d.labels_source.empty() ? std::string() : " '" + d.labels_source + "'") + ": label " +
                               std::to_string(d.labels[i]) + " at index " + std::to_string(i) +
                               " is not a class of the model (it has " + std::to_string(classes) +
                               " outputs, labels 0.." + std::to_string(classes - 1) + ")");
}

/// Checks of `o` that need no data, so that sparsereg_train and sparsereg_compare report them as
/// usage errors before loading it (run_training repeats them): the numeric bounds of
/// parse_options (for options set in code), the --arch syntax, the number of --lambda-group-scale
/// factors (unless --resume, whose checkpoint has the architecture), and distinct files for
/// --save, --export, --metrics and --resume (--resume may be --save: a run continues in place).
inline void check_options(const options& o) {
  if (o.batch == 0 || o.batch > max_batch)
    throw usage_error("--batch must be in [1, " + std::to_string(max_batch) + "], got " + std::to_string(o.batch));
  if (!(o.warmup_epochs >= 0 && o.warmup_epochs <= max_warmup_epochs))
    throw usage_error("--warmup-epochs must be in [0, 1e6], got " + std::to_string(o.warmup_epochs));
  if (o.seed > max_seed)
    throw usage_error("--seed must be at most " + std::to_string(max_seed) + " (std::mt19937 takes 32 bits), got " +
                      std::to_string(o.seed));
  architecture a;
  try {
    a = architecture::parse(o.arch);
  } catch (const std::invalid_argument& e) {
    throw usage_error(e.what());  // names --arch, the value and the token
  }
  if (o.resume.empty() && !o.lambda_group_scale.empty()) {
    std::size_t weighted = 0;  // conv and linear layers
    for (const auto& l : a.layers) weighted += l.type != layer_spec::kind::pool;
    if (o.lambda_group_scale.size() != weighted)
      throw usage_error("--lambda-group-scale: " + std::to_string(o.lambda_group_scale.size()) +
                        " factors given, but --arch '" + o.arch + "' has " + std::to_string(weighted) +
                        " conv and linear layers");
  }
  namespace fs = std::filesystem;
  const auto canonical = [](const std::string& p) {
    std::error_code ec;
    const fs::path c = fs::weakly_canonical(p, ec);
    return ec ? fs::absolute(p, ec).lexically_normal() : c;
  };
  const std::pair<const char*, const std::string*> files[] = {
      {"--save", &o.save}, {"--export", &o.export_path}, {"--metrics", &o.metrics}, {"--resume", &o.resume}};
  for (std::size_t i = 0; i < std::size(files); ++i)
    for (std::size_t j = i + 1; j < std::size(files); ++j) {
      if (files[i].second->empty() || files[j].second->empty()) continue;
      if (std::string(files[i].first) == "--save" && std::string(files[j].first) == "--resume") continue;
      if (canonical(*files[i].second) == canonical(*files[j].second))
        throw usage_error(std::string(files[i].first) + " '" + *files[i].second + "' and " + files[j].first + " '" +
                          *files[j].second + "' name the same file");
    }
}

struct eval_result {
  double loss = 0, accuracy = 0;
  double images_per_second = 0;
};

/// Loss and accuracy of m on the first `limit` (0 = all) images of d.
inline eval_result evaluate(model& m, const sparsereg_examples::dataset& d, std::size_t limit = 0,
                            std::vector<std::uint8_t>* predictions = nullptr) {
  const std::size_t n = limit == 0 ? d.count : std::min(limit, d.count);
  const std::size_t B = 500, image = d.rows * d.cols;
  double loss = 0;
  std::size_t correct = 0;
  if (predictions) predictions->resize(n);
  const auto t0 = clock_type::now();
  for (std::size_t s = 0; s < n; s += B) {
    const std::size_t b = std::min(B, n - s);
    const float* logits = m.forward(d.images.data() + s * image, b);
    loss += softmax_cross_entropy(logits, d.labels.data() + s, b, m.classes(), nullptr, &correct);
    if (predictions)
      for (std::size_t r = 0; r < b; ++r) {
        const float* z = logits + r * m.classes();
        (*predictions)[s + r] = static_cast<std::uint8_t>(std::max_element(z, z + m.classes()) - z);
      }
  }
  eval_result e;
  const double secs = seconds_since(t0);
  e.loss = n ? loss / static_cast<double>(n) : 0;
  e.accuracy = n ? static_cast<double>(correct) / static_cast<double>(n) : 0;
  e.images_per_second = secs > 0 ? static_cast<double>(n) / secs : 0;
  return e;
}

/// Per-layer widths "32-64-3136-80-10": conv filters, first linear layer's inputs, linear outputs.
inline std::string widths_of(const model& m) {
  std::string s;
  for (const auto& c : m.convs) s += std::to_string(c.out_c) + "-";
  s += std::to_string(m.fcs[0].in);
  for (const auto& f : m.fcs) s += "-" + std::to_string(f.out);
  return s;
}

/// Resets the bias of every conv filter / linear neuron of one layer whose incoming weights are
/// all zero (see the header comment). The last layer is left alone: its outputs are the classes.
inline void reset_dead_biases(model& m, layer_spec::kind k, std::size_t i) {
  const auto reset = [](const auto& dead, std::vector<float>& b) {
    for (std::size_t j = 0; j < dead.size(); ++j)
      if (dead[j]) b[j] = 0.f;
  };
  if (k == layer_spec::kind::conv) {
    auto& c = m.convs[i];
    reset(sparsereg::zero_slices(sparsereg::view<const float>(c.w.data(), {c.out_c, c.in_c, c.k, c.k}), 0), c.b);
  } else if (i + 1 < m.fcs.size()) {
    auto& f = m.fcs[i];
    reset(sparsereg::zero_slices(sparsereg::view<const float>(f.w.data(), {f.out, f.in}), 0), f.b);
  }
}
inline void reset_dead_biases(model& m) {
  for (std::size_t i = 0; i < m.convs.size(); ++i) reset_dead_biases(m, layer_spec::kind::conv, i);
  for (std::size_t i = 0; i < m.fcs.size(); ++i) reset_dead_biases(m, layer_spec::kind::fc, i);
}

struct sparsity_summary {
  double weight_sparsity = 0;  // zero weight elements / weight elements
  double group_sparsity = 0;   // zero groups / groups
  double removed = 0;          // fraction of parameters removed by structural compaction
};

inline sparsity_summary summarize(model& m) {
  const auto plan = plan_compaction(m);
  const auto t = sparsereg::total_of(plan.report);
  sparsity_summary s;
  s.weight_sparsity = t.elements ? static_cast<double>(t.zero_elements) / static_cast<double>(t.elements) : 0;
  s.group_sparsity = t.groups ? static_cast<double>(t.groups_zeroed) / static_cast<double>(t.groups) : 0;
  s.removed = t.removed_fraction();
  return s;
}

inline std::string format_count(std::size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

inline std::string percent(double f, int prec = 1) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(prec) << 100.0 * f << "%";
  return s.str();
}

/// The structural report table (one row per layer plus a total).
inline void print_structural_report(std::ostream& out, const std::vector<sparsereg::layer_report>& rows) {
  out << "Structural report (a removed unit also removes the next layer's matching input slice):\n";
  out << "  layer   units kept   inputs kept   zero groups   zero weights   params before -> after     MACs before -> after\n";
  auto line = [&](const sparsereg::layer_report& r) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "  %-6s %5zu/%-5zu  %6zu/%-6zu  %5zu/%-6zu  %12s  %10s -> %-10s %11s -> %-11s%s\n", r.name.c_str(),
                  r.units_kept, r.units, r.inputs_kept, r.inputs, r.groups_zeroed, r.groups,
                  percent(r.elements ? static_cast<double>(r.zero_elements) / static_cast<double>(r.elements) : 0).c_str(),
                  format_count(r.params_before).c_str(), format_count(r.params_after).c_str(),
                  format_count(r.flops_before).c_str(), format_count(r.flops_after).c_str(),
                  r.collapsed ? "  COLLAPSED (kept 1 unit)" : "");
    out << buf;
  };
  for (const auto& r : rows) line(r);
  const auto t = sparsereg::total_of(rows);
  line(t);
  out << "  parameters removed: " << percent(t.removed_fraction()) << ", MACs removed: "
      << percent(t.flops_before ? 1.0 - static_cast<double>(t.flops_after) / static_cast<double>(t.flops_before) : 0)
      << "\n";
}

/// Wall time spent inside sparsereg calls, by kind (the overhead budget: <= 1% of the
/// training step time). Steps: add_gradients (KL variance regularizer), prox_step (SGL prox) and the
/// dead-unit scan (sparsereg::zero_slices); values: the per-epoch penalty value and sparsity report.
/// optimizer: the optimizer's own update (not a sparsereg call, not in the totals), printed next
/// to the share for scale: it streams the same weights, so a slow memory phase of the machine
/// raises both.
struct sparsereg_time {
  double gradients = 0, prox = 0, dead_scan = 0, values = 0, optimizer = 0;
  double in_steps() const { return gradients + prox + dead_scan; }
  double total() const { return in_steps() + values; }
  sparsereg_time& operator+=(const sparsereg_time& o) {
    gradients += o.gradients;
    prox += o.prox;
    dead_scan += o.dead_scan;
    values += o.values;
    optimizer += o.optimizer;
    return *this;
  }
};

/// "sparsereg calls: 0.42% of training time (prox 0.30%, ...)" -- printed after every run.
inline void print_overhead(std::ostream& out, const sparsereg_time& t, double train_seconds) {
  auto pct = [&](double x) { return 100.0 * x / train_seconds; };
  char buf[480];
  std::snprintf(buf, sizeof buf,
                "sparsereg calls: %.2f%% of training time (%.2fs of %.1fs): prox %.2f%%, KL gradients %.2f%%, "
                "dead-unit scan %.2f%%, per-epoch values and report %.2f%% "
                "(for scale, the optimizer's update: %.2f%%)\n",
                pct(t.total()), t.total(), train_seconds, pct(t.prox), pct(t.gradients), pct(t.dead_scan),
                pct(t.values), pct(t.optimizer));
  out << buf;
}

struct run_result {
  std::string name;
  double test_accuracy = 0;            // dense (trained) model
  double compact_test_accuracy = 0;    // compacted model
  std::size_t params = 0, params_after = 0;
  double removed = 0;
  std::string widths_before, widths_after;
  double train_images_per_second = 0;  // mean over epochs of this session
  double dense_infer_ips = 0, compact_infer_ips = 0;
  double seconds = 0;
  double train_seconds = 0;            // wall time of the training epochs (steps only)
  sparsereg_time sr;                   // of which / besides: time inside sparsereg calls
  bool collapsed = false;
  std::vector<sparsereg::layer_report> report;
  model trained, compacted;
};

/// A terminal progress bar with ETA; does nothing when disabled.
class progress_bar {
 public:
  progress_bar(bool enabled, std::size_t total, std::string label)
      : enabled_(enabled), total_(total), label_(std::move(label)), t0_(clock_type::now()), last_(t0_) {}
  void update(std::size_t done, double loss, double acc, bool force = false) {
    if (!enabled_) return;
    const auto now = clock_type::now();
    if (!force && std::chrono::duration<double>(now - last_).count() < 0.2) return;
    last_ = now;
    const double el = std::chrono::duration<double>(now - t0_).count();
    const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    const double eta = frac > 0 ? el * (1 - frac) / frac : 0;
    const int width = 30, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(filled), '=');
    if (filled < width) bar += '>' + std::string(static_cast<std::size_t>(width - filled - 1), ' ');
    std::printf("\r%s [%s] %3.0f%% %5.1fs ETA %5.1fs loss %.4f acc %5.1f%%", label_.c_str(), bar.c_str(), 100 * frac, el, eta,
                loss, 100 * acc);
    std::fflush(stdout);
  }
  void finish() {
    if (!enabled_) return;
    std::printf("\r\033[K");
    std::fflush(stdout);
  }

 private:
  bool enabled_;
  std::size_t total_;
  std::string label_;
  clock_type::time_point t0_, last_;
};

struct epoch_stats {
  double loss_sum = 0;
  std::size_t correct = 0, seen = 0;
  double seconds = 0;
  sparsereg_time sr;
};

/// One epoch of shuffled mini-batch training on the first n_train images. reg may be null (no
/// regularization, e.g. fine-tuning a compacted model). per_layer: --update per-layer.
inline epoch_stats train_epoch(model& m, optimizer& opt, sparsereg::regularizer<float>* reg, const sparsereg_examples::dataset& train,
                               std::size_t n_train, std::size_t batch, const std::function<double(std::uint64_t)>& lr_at,
                               std::mt19937& rng, std::uint64_t& global_step, progress_bar& bar, std::size_t epoch,
                               bool per_layer = false) {
  const std::size_t image = train.rows * train.cols;
  const std::size_t steps = (n_train + batch - 1) / batch;
  std::vector<std::size_t> order(n_train);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<float> batch_x(batch * image), dlogits(batch * m.classes());
  std::vector<std::uint8_t> batch_y(batch);
  auto params = m.parameters();
  epoch_stats e;
  const auto t0 = clock_type::now();
  for (std::size_t s = 0; s < steps; ++s) {
    const std::size_t b0 = s * batch, b = std::min(batch, n_train - b0);
    for (std::size_t r = 0; r < b; ++r) {
      const std::size_t idx = order[b0 + r];
      std::memcpy(batch_x.data() + r * image, train.images.data() + idx * image, image * sizeof(float));
      batch_y[r] = train.labels[idx];
    }
    const float* logits = m.forward(batch_x.data(), b);
    const double loss = softmax_cross_entropy(logits, batch_y.data(), b, m.classes(), dlogits.data(), &e.correct);
    if (!std::isfinite(loss))
      throw std::runtime_error("loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") + " at epoch " +
                               std::to_string(epoch) + ", step " + std::to_string(global_step + 1) +
                               "; aborting (try a smaller --lr or smaller lambdas)");
    const double lr = lr_at(global_step);
    if (reg && per_layer) {
      opt.begin_step(params);
      m.backward(dlogits.data(), b, [&](layer_spec::kind k, std::size_t i) {
        // Parameters are listed conv1.weight, conv1.bias, ..., then fc1.weight, fc1.bias, ...
        const std::size_t pw = 2 * (k == layer_spec::kind::conv ? i : m.convs.size() + i);
        const auto tg = clock_type::now();
        reg->add_gradients(params[pw].name);
        const auto to = clock_type::now();
        e.sr.gradients += std::chrono::duration<double>(to - tg).count();
        opt.step_parameter(params, pw, lr);
        opt.step_parameter(params, pw + 1, lr);
        const auto tp = clock_type::now();
        e.sr.optimizer += std::chrono::duration<double>(tp - to).count();
        reg->prox_parameter(params[pw].name, lr);
        const auto td = clock_type::now();
        e.sr.prox += std::chrono::duration<double>(td - tp).count();
        reset_dead_biases(m, k, i);
        e.sr.dead_scan += seconds_since(td);
      });
      reg->end_step();
    } else {
      m.backward(dlogits.data(), b);
      if (reg) {
        const auto tg = clock_type::now();
        reg->add_gradients();
        e.sr.gradients += seconds_since(tg);
      }
      const auto to = clock_type::now();
      opt.step(params, lr);
      e.sr.optimizer += seconds_since(to);
      if (reg) {
        const auto tp = clock_type::now();
        reg->prox_step(lr);
        const auto td = clock_type::now();
        e.sr.prox += std::chrono::duration<double>(td - tp).count();
        reset_dead_biases(m);
        e.sr.dead_scan += seconds_since(td);
      }
    }
    ++global_step;
    e.loss_sum += loss;
    e.seen += b;
    bar.update(s + 1, e.loss_sum / static_cast<double>(e.seen), static_cast<double>(e.correct) / static_cast<double>(e.seen));
  }
  e.seconds = seconds_since(t0);
  bar.finish();
  return e;
}

/// Trains according to `o` on `data`, prints progress / per-epoch lines to `out`, and returns the
/// trained and compacted models with their report. Throws std::runtime_error on NaN loss, bad
/// checkpoints and I/O errors, usage_error on inconsistent flags.
inline run_result run_training(const options& o, const data_bundle& data, std::ostream& out, const std::string& name = "") {
  const auto run_start = clock_type::now();
  check_options(o);
  check_same_image_size(data);
  // Where the results will go must be writable before the run starts, not after it.
  for (const auto& [flag, path] : {std::pair<const char*, const std::string&>{"--save", o.save},
                                   std::pair<const char*, const std::string&>{"--export", o.export_path}}) {
    if (path.empty()) continue;
    try {
      sparsereg_examples::check_can_write(path);
    } catch (const sparsereg_examples::file_error& e) {
      throw sparsereg_examples::file_error(std::string(flag) + ": " + e.what());
    }
  }
  set_threads(o.effective_threads());
  training_state st;
  const optimizer_kind okind = parse_optimizer(o.optimizer);
  if (!o.resume.empty()) {
    st = load_checkpoint(o.resume);
    const auto& in = st.net.arch;
    if (in.in_channels != 1 || in.in_h != data.train.rows || in.in_w != data.train.cols)
      throw usage_error("--resume '" + o.resume + "': the checkpoint's model is for " + std::to_string(in.in_channels) +
                        "x" + std::to_string(in.in_h) + "x" + std::to_string(in.in_w) + " images, the data has 1x" +
                        std::to_string(data.train.rows) + "x" + std::to_string(data.train.cols) +
                        " (channels x height x width)");
    if (st.settings != o.trajectory_settings())
      out << "warning: --resume: the checkpoint was written with different settings; the run will not match an "
             "uninterrupted one.\n  checkpoint: "
          << st.settings << "\n  now:        " << o.trajectory_settings() << "\n";
    if (st.opt.kind != okind) throw usage_error("--resume: checkpoint optimizer is " + std::string(optimizer_name(st.opt.kind)) +
                                                ", but --optimizer is " + o.optimizer);
    if (!o.quiet)
      out << "resumed from " << o.resume << " after epoch " << st.epochs_done << " (step " << st.global_step << ")\n";
  } else {
    st.rng.seed(static_cast<std::mt19937::result_type>(o.seed));
    try {
      st.net = model(architecture::parse(o.arch, 1, data.train.rows, data.train.cols));
    } catch (const std::invalid_argument& e) {  // e.g. a pooling window larger than its input
      const std::string why = e.what();
      throw usage_error(why.rfind("--arch", 0) == 0 ? why
                                                     : "--arch '" + o.arch + "' does not fit " +
                                                           std::to_string(data.train.rows) + "x" +
                                                           std::to_string(data.train.cols) + " images: " + why);
    }
    st.net.init(st.rng);
    st.opt = optimizer(okind);
    st.opt.momentum = o.momentum;
  }
  st.settings = o.trajectory_settings();
  model& m = st.net;
  if (m.classes() < 10) throw usage_error("--arch: the last layer must have at least 10 outputs, got " + std::to_string(m.classes()));
  check_labels(data.train, "train", m.classes());
  check_labels(data.test, "test", m.classes());
  auto params = m.parameters();
  if (st.opt.state.empty()) st.opt.attach(params);

  if (!o.quiet) {
    out << "model " << m.arch.str() << ": " << format_count(m.parameter_count()) << " parameters, "
        << format_count(m.macs()) << " MACs per image\n";
    for (auto& p : params) {
      if (!p.is_weight) continue;
      std::size_t n = p.value->size();
      for (auto& q : params)
        if (!q.is_weight && q.name.substr(0, q.name.find('.')) == p.name.substr(0, p.name.find('.'))) n += q.value->size();
      std::string shape;
      for (auto s : p.shape) shape += (shape.empty() ? "" : "x") + std::to_string(s);
      out << "  " << std::left << std::setw(6) << p.name.substr(0, p.name.find('.')) << std::right << " " << std::setw(12)
          << shape << "  " << std::setw(9) << format_count(n) << " params\n";
    }
  }

  const std::size_t n_train = o.max_train ? std::min(o.max_train, data.train.count) : data.train.count;
  const std::size_t steps_per_epoch = (n_train + o.batch - 1) / o.batch;
  // The main schedule spans the regularized epochs and, unless --finetune-lr gives fine-tuning a
  // schedule of its own, the fine-tuning epochs.
  const bool own_finetune_lr = o.finetune_lr > 0;
  const auto spe = static_cast<std::uint64_t>(steps_per_epoch);
  const std::uint64_t total_steps = spe * (o.epochs + (own_finetune_lr ? 0 : o.finetune_epochs));
  const std::function<double(std::uint64_t)> lr_at = [&o, total_steps](std::uint64_t step) {
    return o.lr_at(step, total_steps, o.effective_lr());
  };

  sparsereg::regularizer<float> reg;
  configure_regularizer(reg, m, o, steps_per_epoch);
  if (!st.reg_state.empty()) {
    try {
      reg.load_state(st.reg_state);
    } catch (const std::exception& e) {
      throw usage_error("--resume '" + o.resume +
                        "': the checkpoint's regularizer does not match the one the flags configure (--lambda-group, "
                        "--lambda-l1, --lambda-group-scale, --var-weight, --var-on must be as in the run that wrote "
                        "it): " + e.what());
    }
  } else
    reg.set_step(static_cast<std::size_t>(st.reg_step));

  std::ofstream metrics;
  if (!o.metrics.empty()) {
    const bool append = !o.resume.empty() && std::ifstream(o.metrics).good();
    metrics.open(o.metrics, append ? std::ios::app : std::ios::trunc);
    if (!metrics) throw std::runtime_error("--metrics: cannot open '" + o.metrics + "' for writing");
    if (!append)
      metrics << "epoch,step,train_loss,train_accuracy,test_loss,test_accuracy,penalty,weight_sparsity,group_sparsity,"
                 "params_removed,train_images_per_second,epoch_seconds\n";
  }

  const bool tty = o.progress && !o.quiet && isatty(STDOUT_FILENO) && &out == &std::cout;
  double ips_sum = 0;
  std::size_t ips_epochs = 0;
  double train_seconds_total = 0;
  sparsereg_time sr_total;

  for (std::size_t epoch = static_cast<std::size_t>(st.epochs_done) + 1; epoch <= o.epochs; ++epoch) {
    progress_bar bar(tty, steps_per_epoch, (name.empty() ? "" : name + " ") + "epoch " + std::to_string(epoch) + "/" + std::to_string(o.epochs));
    const auto es = train_epoch(m, st.opt, &reg, data.train, n_train, o.batch, lr_at, st.rng, st.global_step, bar, epoch,
                                o.update == "per-layer");
    const double loss_sum = es.loss_sum, train_secs = es.seconds;
    const std::size_t correct = es.correct, seen = es.seen;
    st.epochs_done = epoch;
    st.reg_step = reg.step();
    st.reg_state = reg.save_state();
    const double ips = static_cast<double>(seen) / train_secs;
    ips_sum += ips;
    ++ips_epochs;
    train_seconds_total += train_secs;
    sr_total += es.sr;
    const auto ev = evaluate(m, data.test, o.max_test);
    const auto tv = clock_type::now();
    const auto sp = summarize(m);
    const double penalty = reg.value();
    sr_total.values += seconds_since(tv);
    if (!o.quiet) {
      char buf[400];
      std::snprintf(buf, sizeof buf,
                    "%sepoch %zu/%zu  loss %.4f  train acc %.2f%%  test acc %.2f%%  penalty %.4g  zero weights %.1f%%  "
                    "zero groups %.1f%%  removable params %.1f%%  %.0f img/s  %.1fs\n",
                    name.empty() ? "" : (name + " ").c_str(), epoch, o.epochs, loss_sum / static_cast<double>(seen),
                    100.0 * static_cast<double>(correct) / static_cast<double>(seen), 100 * ev.accuracy, penalty,
                    100 * sp.weight_sparsity, 100 * sp.group_sparsity, 100 * sp.removed, ips, train_secs);
      out << buf << std::flush;
    }
    if (metrics) {
      metrics << epoch << ',' << st.global_step << ',' << loss_sum / static_cast<double>(seen) << ','
              << static_cast<double>(correct) / static_cast<double>(seen) << ',' << ev.loss << ',' << ev.accuracy << ','
              << penalty << ',' << sp.weight_sparsity << ',' << sp.group_sparsity << ',' << sp.removed << ',' << ips << ','
              << train_secs << '\n'
              << std::flush;
    }
    if (!o.save.empty()) save_checkpoint(o.save, st);
  }

  run_result res;
  res.name = name;
  res.train_images_per_second = ips_epochs ? ips_sum / static_cast<double>(ips_epochs) : 0;
  std::vector<std::uint8_t> dense_pred, compact_pred;
  const auto dense_ev = evaluate(m, data.test, o.max_test, &dense_pred);
  res.test_accuracy = dense_ev.accuracy;
  res.params = m.parameter_count();
  const auto plan = plan_compaction(m);
  res.report = plan.report;
  optimizer compact_opt;
  res.compacted = compact(m, plan, &st.opt, &compact_opt);
  if (o.finetune_epochs > 0) {
    // Fine-tune the compacted (smaller, dense) model without regularization; the optimizer state
    // (momentum / Adam moments) was sliced along with the weights, so training just continues.
    std::mt19937 ft_rng = st.rng;
    std::uint64_t ft_step = st.global_step;
    const std::uint64_t ft_start = ft_step, ft_total = spe * o.finetune_epochs;
    const std::function<double(std::uint64_t)> ft_lr_at = [&](std::uint64_t step) {
      return own_finetune_lr ? o.lr_at(step - ft_start, ft_total, o.finetune_lr) : lr_at(step);
    };
    for (std::size_t e = 1; e <= o.finetune_epochs; ++e) {
      progress_bar bar(tty, steps_per_epoch, (name.empty() ? "" : name + " ") + "fine-tune " + std::to_string(e) + "/" +
                                                 std::to_string(o.finetune_epochs));
      const auto es = train_epoch(res.compacted, compact_opt, nullptr, data.train, n_train, o.batch, ft_lr_at, ft_rng, ft_step, bar, e,
                                  o.update == "per-layer");
      const auto ev = evaluate(res.compacted, data.test, o.max_test);
      if (!o.quiet) {
        char buf[300];
        std::snprintf(buf, sizeof buf, "%sfine-tune %zu/%zu (compacted model)  loss %.4f  train acc %.2f%%  test acc %.2f%%  %.0f img/s\n",
                      name.empty() ? "" : (name + " ").c_str(), e, o.finetune_epochs, es.loss_sum / static_cast<double>(es.seen),
                      100.0 * static_cast<double>(es.correct) / static_cast<double>(es.seen), 100 * ev.accuracy,
                      static_cast<double>(es.seen) / es.seconds);
        out << buf << std::flush;
      }
    }
  }
  res.params_after = res.compacted.parameter_count();
  res.removed = 1.0 - static_cast<double>(res.params_after) / static_cast<double>(res.params);
  res.widths_before = widths_of(m);
  res.widths_after = widths_of(res.compacted);
  for (const auto& r : plan.report) res.collapsed = res.collapsed || r.collapsed;
  // Inference speed, dense vs compacted, measured back to back in this run (best of 2).
  double dense_ips = 0, compact_ips = 0;
  eval_result compact_ev;
  for (int rep = 0; rep < 2; ++rep) {
    dense_ips = std::max(dense_ips, evaluate(m, data.test, o.max_test).images_per_second);
    compact_ev = evaluate(res.compacted, data.test, o.max_test, &compact_pred);
    compact_ips = std::max(compact_ips, compact_ev.images_per_second);
  }
  res.compact_test_accuracy = compact_ev.accuracy;
  res.dense_infer_ips = dense_ips;
  res.compact_infer_ips = compact_ips;
  std::size_t disagree = 0;
  for (std::size_t i = 0; i < dense_pred.size(); ++i) disagree += dense_pred[i] != compact_pred[i];

  res.train_seconds = train_seconds_total;
  res.sr = sr_total;
  const double speedup = dense_ips > 0 ? compact_ips / dense_ips : 0.0;
  const double mac_ratio = res.compacted.macs() ? static_cast<double>(m.macs()) / static_cast<double>(res.compacted.macs()) : 0.0;
  if (!o.quiet) {
    print_structural_report(out, plan.report);
    if (train_seconds_total > 0) print_overhead(out, sr_total, train_seconds_total);
    char buf[500];
    std::snprintf(buf, sizeof buf,
                  "test accuracy: dense %.2f%%, compacted %.2f%% (%zu of %zu predictions differ%s)\n"
                  "inference: dense %.0f img/s, compacted %.0f img/s (%.2fx; the compacted model needs %.2fx fewer MACs, "
                  "so the speedup is %.2f of the FLOP reduction ratio)\n",
                  100 * res.test_accuracy, 100 * res.compact_test_accuracy, disagree, dense_pred.size(),
                  o.finetune_epochs > 0 ? ", after fine-tuning" : "", dense_ips,
                  compact_ips, speedup, mac_ratio, mac_ratio > 0 ? speedup / mac_ratio : 0.0);
    out << buf;
  }
  if (!o.export_path.empty()) {
    export_model(o.export_path, res.compacted);
    model back = load_exported_model(o.export_path);
    std::vector<std::uint8_t> back_pred;
    evaluate(back, data.test, o.max_test, &back_pred);
    if (back_pred != compact_pred)
      throw std::runtime_error("--export: the model read back from '" + o.export_path +
                               "' does not reproduce the compacted model's predictions");
    if (!o.quiet)
      out << "exported compacted model (" << format_count(res.params_after) << " parameters, " << res.widths_after << ") to "
          << o.export_path << "; reloaded: identical predictions on " << back_pred.size() << " test images\n";
  }
  res.trained = std::move(st.net);
  res.seconds = seconds_since(run_start);
  return res;
}

/// The table in the paper's form: model | test accuracy | parameters | % removed | per-layer widths.
inline void print_comparison(std::ostream& out, const std::vector<run_result>& runs) {
  out << "\n| model | test accuracy | parameters | % removed | per-layer widths | train img/s | sparsereg share | time |\n"
      << "|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : runs) {
    char buf[400];
    std::snprintf(buf, sizeof buf, "| %s | %.2f%% (compacted %.2f%%) | %s -> %s | %.1f%% | %s -> %s%s | %.0f | %.2f%% | %.0fs |\n", r.name.c_str(),
                  100 * r.test_accuracy, 100 * r.compact_test_accuracy, format_count(r.params).c_str(),
                  format_count(r.params_after).c_str(), 100 * r.removed, r.widths_before.c_str(), r.widths_after.c_str(),
                  r.collapsed ? " (collapsed layer)" : "", r.train_images_per_second,
                  r.train_seconds > 0 ? 100.0 * r.sr.total() / r.train_seconds : 0.0, r.seconds);
    out << buf;
  }
}

}  // namespace sparsereg_cnn
