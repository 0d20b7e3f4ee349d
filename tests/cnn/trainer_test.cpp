// End-to-end behaviour of the trainer on a tiny synthetic data set: learning, bitwise resume,
// corrupt-checkpoint rejection, export round trip, and a huge lambda that collapses layers.
#include <catch2/catch.hpp>

#include "cnn/compare_options.hpp"
#include "cnn/synthetic.hpp"
#include "cnn/trainer.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace sparsereg_cnn;

namespace {

const data_bundle& tiny_data() {
  static const data_bundle d{synthetic_dataset(320, 1), synthetic_dataset(160, 2)};
  return d;
}

options tiny_options() {
  options o;
  o.arch = "c4k5-p2-c8k5-p2-f16-f10";
  o.epochs = 2;
  o.batch = 32;
  o.lr = 0.05;
  o.threads = 1;
  o.quiet = true;
  o.progress = false;
  o.lambda_group = 0.002;
  o.lambda_l1 = 0.0001;
  o.warmup_epochs = 0.5;
  return o;
}

// One fresh directory per process (mkdtemp), removed at exit: a fixed name let two runs of this
// test at once (a Release and a sanitizer build, or two checkouts) overwrite each other's
// checkpoints and exports mid-test.
std::string temp_path(const std::string& name) {
  static const sparsereg_test::temp_dir dir("sparsereg_cnn_trainer_test");
  return dir / name;
}

bool same_weights(model& a, model& b) {
  auto pa = a.parameters(), pb = b.parameters();
  if (pa.size() != pb.size()) return false;
  for (std::size_t i = 0; i < pa.size(); ++i)
    if (*pa[i].value != *pb[i].value) return false;
  return true;
}

std::vector<std::uint8_t> slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("the trainer learns the synthetic task", "[cnn][trainer]") {
  auto o = tiny_options();
  o.lambda_group = 0;
  o.lambda_l1 = 0;
  std::ostringstream out;
  const auto r = run_training(o, tiny_data(), out);
  CHECK(r.test_accuracy > 0.9);
  CHECK(r.compact_test_accuracy == r.test_accuracy);
}

TEST_CASE("resuming from a checkpoint reproduces the uninterrupted run bitwise", "[cnn][trainer]") {
  const auto opt = GENERATE(std::string("sgd"), std::string("adam"));
  auto o = tiny_options();
  o.optimizer = opt;
  if (opt == "adam") o.lr = 0.003;
  std::ostringstream out;
  o.epochs = 3;
  o.save = temp_path("full_" + opt + ".ckpt");
  auto full = run_training(o, tiny_data(), out);

  o.epochs = 1;
  o.save = temp_path("part_" + opt + ".ckpt");
  run_training(o, tiny_data(), out);
  o.epochs = 3;
  o.resume = o.save;
  o.save = temp_path("resumed_" + opt + ".ckpt");
  auto resumed = run_training(o, tiny_data(), out);
  CHECK(same_weights(full.trained, resumed.trained));
  // The checkpoints themselves (weights, optimizer, RNG, steps, regularizer state) are identical.
  CHECK(slurp(temp_path("full_" + opt + ".ckpt")) == slurp(o.save));
}

TEST_CASE("a corrupt checkpoint is rejected and nothing is overwritten", "[cnn][trainer]") {
  auto o = tiny_options();
  o.epochs = 1;
  o.save = temp_path("good.ckpt");
  std::ostringstream out;
  run_training(o, tiny_data(), out);
  auto bytes = slurp(o.save);
  REQUIRE(bytes.size() > 100);
  bytes[bytes.size() / 2] ^= 0x5a;
  const std::string bad = temp_path("bad.ckpt");
  {
    std::ofstream f(bad, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  const auto good_before = slurp(o.save);
  o.resume = bad;
  o.epochs = 2;  // o.save still points at the good checkpoint
  CHECK_THROWS_WITH(run_training(o, tiny_data(), out), Catch::Contains("checksum mismatch"));
  CHECK(slurp(o.save) == good_before);
  CHECK(slurp(bad) == bytes);
  CHECK_THROWS_AS(load_checkpoint(temp_path("does_not_exist.ckpt")), std::runtime_error);
  CHECK_THROWS_WITH(load_exported_model(o.save), Catch::Contains("not a sparsereg exported model"));
}

TEST_CASE("export writes the compacted model and it reloads with identical predictions", "[cnn][trainer]") {
  auto o = tiny_options();
  o.lambda_group = 0.02;
  o.export_path = temp_path("model.bin");
  std::ostringstream out;
  auto r = run_training(o, tiny_data(), out);
  model back = load_exported_model(o.export_path);
  CHECK(back.arch.str() == r.compacted.arch.str());
  CHECK(same_weights(back, r.compacted));
  std::vector<std::uint8_t> p1, p2;
  evaluate(back, tiny_data().test, 0, &p1);
  evaluate(r.compacted, tiny_data().test, 0, &p2);
  CHECK(p1 == p2);
}

TEST_CASE("an unwritable --export or --save fails before training, not after it", "[cnn][trainer]") {
  for (const bool export_flag : {true, false}) {
    auto o = tiny_options();
    const std::string metrics = temp_path(export_flag ? "early_export.csv" : "early_save.csv");
    std::remove(metrics.c_str());
    o.metrics = metrics;
    std::filesystem::remove_all(temp_path("no_such_dir"));
    const std::string bad = temp_path("no_such_dir") + "/sub/model.bin";
    (export_flag ? o.export_path : o.save) = bad;
    std::ostringstream out;
    CHECK_THROWS_WITH(run_training(o, tiny_data(), out),
                      Catch::StartsWith(export_flag ? "--export: " : "--save: ") && Catch::Contains(bad));
    // No epoch ran: the metrics file (opened after the check) was never created.
    CHECK_FALSE(std::filesystem::exists(metrics));
  }
}

TEST_CASE("numeric flags reject non-finite and absurd values with the flag's name", "[cnn][trainer]") {
  for (const char* flag : {"--lambda-group", "--lambda-l1", "--var-weight", "--lr", "--warmup-epochs"})
    for (const char* v : {"inf", "-inf", "nan", "1e400"}) {
      options o;
      const char* argv[] = {"prog", flag, v};
      INFO(flag << " " << v);
      CHECK_THROWS_WITH(parse_options(3, const_cast<char**>(argv), o),
                        Catch::Contains(flag) && Catch::Contains(std::string("'") + v + "'"));
    }
  options o;
  const char* threads[] = {"prog", "--threads", "99999999999"};
  CHECK_THROWS_WITH(parse_options(3, const_cast<char**>(threads), o),
                    Catch::Contains("--threads") && Catch::Contains("99999999999"));
  const char* fine[] = {"prog", "--threads", "2", "--lambda-l1", "1e-5"};
  parse_options(5, const_cast<char**>(fine), o);
  CHECK(o.threads == 2);
  CHECK(o.lambda_l1 == 1e-5);
}

TEST_CASE("a huge lambda collapses layers without crashing", "[cnn][trainer]") {
  auto o = tiny_options();
  o.lambda_group = 1000;
  o.lambda_l1 = 10;
  o.epochs = 1;
  std::ostringstream out;
  o.quiet = false;
  const auto r = run_training(o, tiny_data(), out);
  CHECK(r.collapsed);
  CHECK(out.str().find("COLLAPSED") != std::string::npos);
  CHECK(r.compact_test_accuracy == r.test_accuracy);
  CHECK(r.compacted.parameter_count() < r.trained.parameter_count());
}

TEST_CASE("a diverging run stops with a clear error", "[cnn][trainer]") {
  auto o = tiny_options();
  o.lambda_group = 0;
  o.lambda_l1 = 0;
  o.lr = 1e30;
  std::ostringstream out;
  CHECK_THROWS_WITH(run_training(o, tiny_data(), out), Catch::Contains("loss is"));
}

TEST_CASE("fine-tuning continues on the compacted model", "[cnn][trainer]") {
  auto o = tiny_options();
  o.lambda_group = 0.02;
  o.finetune_epochs = 1;
  std::ostringstream out;
  o.quiet = false;
  const auto r = run_training(o, tiny_data(), out);
  CHECK(out.str().find("fine-tune 1/1") != std::string::npos);
  CHECK(r.compact_test_accuracy > 0.5);
}

TEST_CASE("the variance regularizer runs on group norms and on weights", "[cnn][trainer]") {
  // --var-on picks the statistic of the penalty the trainer registers, and the choice reaches
  // training: each mode, and no variance term at all, gives its own trained weights.
  auto o = tiny_options();
  o.var_weight = 0.01;
  o.epochs = 1;
  std::map<std::string, std::vector<float>> trained;
  for (const std::string mode : {"groups", "weights", "off"}) {
    INFO(mode);
    auto m = o;
    if (mode == "off") {
      m.var_weight = 0;
    } else {
      m.var_on = mode;
      const auto penalty = make_variance_penalty(m, sparsereg::groups::filters());
      CHECK(penalty.on_groups() == (mode == "groups"));
      CHECK(penalty.bins() == 256);
    }
    std::ostringstream out;
    const auto r = run_training(m, tiny_data(), out);
    CHECK(r.test_accuracy > 0.2);
    trained[mode] = r.trained.convs[0].w;
    const auto& fc = r.trained.fcs[0].w;
    trained[mode].insert(trained[mode].end(), fc.begin(), fc.end());
  }
  CHECK(trained["groups"] != trained["weights"]);
  CHECK(trained["groups"] != trained["off"]);
  CHECK(trained["weights"] != trained["off"]);
}

TEST_CASE("the cosine learning-rate schedule decays from --lr to 0 over the whole run", "[cnn][trainer]") {
  auto o = tiny_options();
  const std::uint64_t total = 1000;
  CHECK(o.lr_at(0, total, o.lr) == o.lr);
  CHECK(o.lr_at(500, total, o.lr) == o.lr);  // constant by default
  o.lr_schedule = "cosine";
  CHECK(o.lr_at(0, total, o.lr) == o.lr);
  CHECK(o.lr_at(500, total, o.lr) == Approx(o.lr / 2).epsilon(1e-12));
  CHECK(o.lr_at(250, total, o.lr) == Approx(o.lr * (1 + std::sqrt(0.5)) / 2).epsilon(1e-12));
  CHECK(o.lr_at(total, total, o.lr) == Approx(0.0).margin(1e-18));
  double prev = o.lr_at(0, total, o.lr);
  for (std::uint64_t s = 1; s <= total; ++s) {
    const double lr = o.lr_at(s, total, o.lr);
    REQUIRE(lr <= prev);
    REQUIRE(lr >= 0);
    prev = lr;
  }
  // The rate at a step depends on the run's length, so a resume with other epochs is flagged.
  auto longer = o;
  longer.epochs += 1;
  CHECK(longer.trajectory_settings() != o.trajectory_settings());
  o.lr_schedule = "constant";
  longer.lr_schedule = "constant";
  CHECK(longer.trajectory_settings() == o.trajectory_settings());
}

TEST_CASE("--lr-schedule is parsed and checked", "[cnn][trainer]") {
  options o;
  const char* good[] = {"prog", "--lr-schedule", "cosine"};
  parse_options(3, const_cast<char**>(good), o);
  CHECK(o.lr_schedule == "cosine");
  const char* bad[] = {"prog", "--lr-schedule", "step"};
  CHECK_THROWS_WITH(parse_options(3, const_cast<char**>(bad), o), Catch::Contains("'step'"));
}

TEST_CASE("a cosine-schedule run trains, and the schedule reaches the optimizer", "[cnn][trainer]") {
  auto o = tiny_options();
  o.lambda_group = 0;
  o.lambda_l1 = 0;
  std::ostringstream out;
  auto constant = run_training(o, tiny_data(), out);
  o.lr_schedule = "cosine";
  auto cosine = run_training(o, tiny_data(), out);
  CHECK(cosine.test_accuracy > 0.9);
  CHECK_FALSE(same_weights(constant.trained, cosine.trained));
}

TEST_CASE("--finetune-lr gives fine-tuning a schedule of its own", "[cnn][trainer]") {
  auto o = tiny_options();
  o.epochs = 1;
  o.finetune_epochs = 1;
  o.lr_schedule = "cosine";
  std::ostringstream out;
  auto shared = run_training(o, tiny_data(), out);
  o.finetune_lr = 0.02;
  auto own = run_training(o, tiny_data(), out);
  // The main schedule now spans the one regularized epoch only, so even the trained (pre-
  // compaction) weights differ; the fine-tuned compacted models differ as well.
  CHECK_FALSE(same_weights(shared.trained, own.trained));
  CHECK_FALSE(same_weights(shared.compacted, own.compacted));
  CHECK(own.compact_test_accuracy > 0.5);
  const char* bad[] = {"prog", "--finetune-lr", "0"};
  CHECK_THROWS_WITH(parse_options(3, const_cast<char**>(bad), o), Catch::Contains("--finetune-lr"));
}

TEST_CASE("per-layer updates inside the backward pass give the whole-model step's results bitwise", "[cnn][trainer]") {
  const auto opt = GENERATE(std::string("sgd"), std::string("adam"));
  const auto threads = GENERATE(1, 2);
  auto o = tiny_options();
  o.optimizer = opt;
  if (opt == "adam") o.lr = 0.003;
  o.threads = threads;
  o.var_weight = 0.01;  // KL gradients, SGL and group-lasso proxes, dead-bias resets
  o.lambda_group = opt == "adam" ? 2.0 : 0.03;  // the prox threshold is lr x lambda
  o.finetune_epochs = 1;
  INFO(opt << ", " << threads << " threads");
  std::ostringstream out;
  o.update = "whole-model";
  auto whole = run_training(o, tiny_data(), out);
  o.update = "per-layer";
  auto layered = run_training(o, tiny_data(), out);
  CHECK(same_weights(whole.trained, layered.trained));
  CHECK(same_weights(whole.compacted, layered.compacted));
  CHECK(whole.test_accuracy == layered.test_accuracy);
  CHECK(whole.removed > 0.0);  // the regularizers acted
  // --update is parsed and checked.
  const char* good[] = {"prog", "--update", "whole-model"};
  options p;
  parse_options(3, const_cast<char**>(good), p);
  CHECK(p.update == "whole-model");
  const char* bad[] = {"prog", "--update", "sometimes"};
  CHECK_THROWS_WITH(parse_options(3, const_cast<char**>(bad), p), Catch::Contains("'sometimes'"));
}

TEST_CASE("--lambda-group-scale sets lambda_group layer by layer", "[cnn][trainer]") {
  const auto zeros_of = [](const std::vector<float>& w) {
    return static_cast<std::size_t>(std::count(w.begin(), w.end(), 0.0f));
  };
  auto o = tiny_options();
  o.lambda_l1 = 0;       // only the group terms, which the factors scale
  o.lambda_group = 0.3;  // strong enough that groups die in conv2 and fc1 within the two epochs
  std::ostringstream out;
  auto plain = run_training(o, tiny_data(), out);
  o.lambda_group_scale = {1, 1, 1, 1};
  auto ones = run_training(o, tiny_data(), out);
  CHECK(same_weights(plain.trained, ones.trained));  // factors of 1 change nothing, bit for bit
  o.lambda_group_scale = {0, 0, 1, 1};
  auto fc_only = run_training(o, tiny_data(), out);
  CHECK(zeros_of(plain.trained.convs[1].w) > 0);
  CHECK(zeros_of(fc_only.trained.convs[0].w) == 0);  // no group penalty on the convs
  CHECK(zeros_of(fc_only.trained.convs[1].w) == 0);
  CHECK(zeros_of(fc_only.trained.fcs[0].w) > 0);
  // One factor per conv and linear layer, else a usage error before training starts.
  o.lambda_group_scale = {1, 1, 1};
  CHECK_THROWS_AS(run_training(o, tiny_data(), out), usage_error);
  CHECK_THROWS_WITH(run_training(o, tiny_data(), out),
                    Catch::Contains("--lambda-group-scale") && Catch::Contains("3 factors") &&
                        Catch::Contains("4 conv and linear layers"));
  // Parsing: numbers >= 0 separated by commas.
  options p;
  const char* good[] = {"prog", "--lambda-group-scale", "1,0.5,2,0"};
  parse_options(3, const_cast<char**>(good), p);
  CHECK(p.lambda_group_scale == std::vector<double>{1, 0.5, 2, 0});
  for (const char* v : {"1,,2", "1,-1", "", "1,x", "1,"}) {
    INFO("value '" << v << "'");
    const char* bad[] = {"prog", "--lambda-group-scale", v};
    CHECK_THROWS_WITH(parse_options(3, const_cast<char**>(bad), p),
                      Catch::Contains("--lambda-group-scale") && Catch::Contains(std::string("'") + v + "'"));
  }
}

namespace {

// parse_options on {"prog", args...}.
void parse(options& o, std::vector<std::string> args) {
  args.insert(args.begin(), "prog");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  parse_options(static_cast<int>(argv.size()), argv.data(), o);
}

void write_bytes(const std::string& p, const std::vector<std::uint8_t>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

TEST_CASE("labels that are no class of the model are rejected with the split, index and value", "[cnn][trainer]") {
  for (const bool in_test : {false, true}) {
    INFO((in_test ? "test" : "train") << " labels");
    auto train = synthetic_dataset(64, 1), test = synthetic_dataset(32, 2);
    (in_test ? test : train).labels[7] = 200;
    const std::string dir = temp_path(in_test ? "bad_test_labels" : "bad_train_labels");
    std::filesystem::create_directories(dir);
    write_idx_split(train, dir, "train");
    write_idx_split(test, dir, "t10k");
    auto o = tiny_options();
    o.epochs = 1;
    o.data_dir = dir;
    const data_bundle d = load_data(o);
    std::ostringstream out;
    const std::string file = dir + (in_test ? "/t10k" : "/train") + "-labels-idx1-ubyte";
    CHECK_THROWS_AS(run_training(o, d, out), std::runtime_error);
    CHECK_THROWS_WITH(run_training(o, d, out), Catch::StartsWith(std::string(in_test ? "test" : "train") + " labels '" +
                                                                 file + "'") &&
                                                   Catch::Contains("label 200 at index 7") &&
                                                   Catch::Contains("10 outputs"));
    // With 12 classes a label 11 is fine, 12 is not.
    data_bundle m = tiny_data();
    auto& split = in_test ? m.test : m.train;
    o.arch = "c4k5-p2-f12";
    split.labels[7] = 11;
    CHECK_NOTHROW(run_training(o, m, out));
    split.labels[7] = 12;
    CHECK_THROWS_WITH(run_training(o, m, out), Catch::StartsWith(in_test ? "test labels: label 12 at index 7"
                                                                         : "train labels: label 12 at index 7"));
  }
}

TEST_CASE("train and test images of different sizes are rejected, naming both files and sizes", "[cnn][trainer]") {
  const std::string dir = temp_path("mixed_sizes");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  write_idx_split(synthetic_dataset(64, 1, 28), dir, "train");
  write_idx_split(synthetic_dataset(32, 2, 14), dir, "t10k");
  options o = tiny_options();
  o.data_dir = dir;
  CHECK_THROWS_AS(load_data(o), sparsereg_examples::idx_error);
  CHECK_THROWS_WITH(load_data(o), Catch::Contains(dir + "/t10k-images-idx3-ubyte' has 14x14") &&
                                      Catch::Contains(dir + "/train-images-idx3-ubyte' has 28x28"));
  // Data built in memory is checked by run_training.
  const data_bundle mixed{synthetic_dataset(64, 1, 28), synthetic_dataset(32, 2, 14)};
  std::ostringstream out;
  CHECK_THROWS_WITH(run_training(o, mixed, out),
                    Catch::Contains("test images has 14x14") && Catch::Contains("train images has 28x28"));
}

TEST_CASE("--resume rejects a checkpoint for another image size or with implausible sizes", "[cnn][trainer]") {
  auto o = tiny_options();
  o.epochs = 1;
  o.save = temp_path("size28.ckpt");
  std::ostringstream out;
  run_training(o, tiny_data(), out);
  const data_bundle small{synthetic_dataset(64, 1, 14), synthetic_dataset(32, 2, 14)};
  o.resume = o.save;
  o.save.clear();
  o.epochs = 2;
  CHECK_THROWS_AS(run_training(o, small, out), usage_error);
  CHECK_THROWS_WITH(run_training(o, small, out), Catch::Contains("--resume '" + o.resume + "'") &&
                                                     Catch::Contains("1x28x28") && Catch::Contains("1x14x14"));
  // A crafted checkpoint (valid crc32) with 2^33 input channels: rejected before any allocation.
  auto bytes = slurp(o.resume);
  std::uint64_t arch_len;
  std::memcpy(&arch_len, bytes.data() + 8, 8);
  const std::uint64_t channels = std::uint64_t{1} << 33;
  std::memcpy(bytes.data() + 16 + arch_len, &channels, 8);
  const std::uint32_t crc = sparsereg_examples::crc32_of(bytes.data(), bytes.size() - 4);
  std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  const std::string crafted = temp_path("crafted_channels.ckpt");
  write_bytes(crafted, bytes);
  CHECK_THROWS_WITH(load_checkpoint(crafted),
                    Catch::Contains(crafted) && Catch::Contains("implausible input size 8589934592x28x28"));
}

TEST_CASE("a checkpoint whose regularizer the flags do not configure is a usage error naming it", "[cnn][trainer]") {
  auto o = tiny_options();
  o.epochs = 1;
  o.var_weight = 0.01;
  o.save = temp_path("with_var.ckpt");
  std::ostringstream out;
  run_training(o, tiny_data(), out);
  o.resume = o.save;
  o.save.clear();
  o.epochs = 2;
  o.var_weight = 0;
  CHECK_THROWS_AS(run_training(o, tiny_data(), out), usage_error);
  CHECK_THROWS_WITH(run_training(o, tiny_data(), out),
                    Catch::Contains("--resume '" + o.resume + "'") && Catch::Contains("--var-weight") &&
                        Catch::Contains("penalties"));
}

TEST_CASE("--arch errors are usage errors naming --arch and the value", "[cnn][trainer]") {
  auto o = tiny_options();
  std::ostringstream out;
  for (const char* bad : {"p99-f10", "c4k5-x-f10", "c4k5-p2-c99999999999999999999999k5-f10", "c4k5p4000000000-f10"}) {
    INFO(bad);
    o.arch = bad;
    CHECK_THROWS_AS(run_training(o, tiny_data(), out), usage_error);
    CHECK_THROWS_WITH(run_training(o, tiny_data(), out), Catch::Contains(std::string("--arch '") + bad + "'"));
  }
}

TEST_CASE("flags without a value reject an inline one; empty file names are rejected", "[cnn][trainer]") {
  options o;
  for (const char* flag : {"--quiet=no", "--no-progress=1", "--quiet="}) {
    INFO(flag);
    CHECK_THROWS_AS(parse(o, {flag}), usage_error);
    const std::string f(flag), name = f.substr(0, f.find('=')), value = f.substr(f.find('=') + 1);
    CHECK_THROWS_WITH(parse(o, {flag}),
                      Catch::Contains(name + " takes no value") && Catch::Contains("'" + value + "'"));
  }
  CHECK_FALSE(o.quiet);
  for (const char* flag : {"--save", "--export", "--metrics", "--resume"}) {
    INFO(flag);
    CHECK_THROWS_WITH(parse(o, {std::string(flag) + "="}), Catch::Contains(flag) && Catch::Contains("''"));
    CHECK_THROWS_WITH(parse(o, {flag, ""}), Catch::Contains(flag) && Catch::Contains("''"));
  }
  // The handlers of a binary's own flags get the same check.
  bool help = false;
  const std::map<std::string, std::pair<bool, std::function<void(const std::string&)>>> extra{
      {"--help", {false, [&](const std::string&) { help = true; }}}};
  char prog[] = "prog", help_no[] = "--help=no";
  char* argv[] = {prog, help_no};
  CHECK_THROWS_WITH(parse_options(2, argv, o, extra), Catch::Contains("--help takes no value, got 'no'"));
  CHECK_FALSE(help);
}

TEST_CASE("numeric flags name the value when it is out of range", "[cnn][trainer]") {
  options o;
  const std::vector<std::pair<std::string, std::string>> bad{
      {"--lr", "0"},           {"--momentum", "1"},       {"--finetune-lr", "0"},
      {"--target", "1"},       {"--batch", "0"},          {"--batch", "1152921504606846976"},
      {"--batch", "1048577"},  {"--lr", " 0.1"},          {"--lambda-group", "\t1"},
      {"--seed", "4294967296"}, {"--seed", "4294967338"}, {"--warmup-epochs", "1e300"},
      {"--warmup-epochs", "1000001"}, {"--var-support-rounding", "1.5"}, {"--var-support-rounding", "-0.1"},
      {"--var-support-rounding", "nan"}};
  for (const auto& [flag, v] : bad) {
    INFO(flag << " '" << v << "'");
    CHECK_THROWS_AS(parse(o, {flag, v}), usage_error);
    CHECK_THROWS_WITH(parse(o, {flag, v}), Catch::Contains(flag) && Catch::Contains("'" + v + "'"));
  }
  CHECK(o.var_support_rounding == 0.0);
  parse(o, {"--var-support-rounding", "0.03125"});
  CHECK(o.var_support_rounding == 1.0 / 32);
  parse(o, {"--seed", "4294967295", "--batch", "1048576", "--warmup-epochs", "1e6", "--lr", "0.1"});
  CHECK(o.seed == 4294967295u);
  CHECK(o.batch == 1048576);
  CHECK(o.warmup_epochs == 1e6);
  CHECK(o.lr == 0.1);
}

TEST_CASE("--var-on is parsed and checked", "[cnn][trainer]") {
  options o;
  CHECK(o.var_on == "groups");
  parse(o, {"--var-on", "weights"});
  CHECK(o.var_on == "weights");
  CHECK_THROWS_AS(parse(o, {"--var-on", "norms"}), usage_error);
  CHECK_THROWS_WITH(parse(o, {"--var-on", "norms"}), Catch::Contains("--var-on") && Catch::Contains("'norms'"));
}

TEST_CASE("--save, --export, --metrics and --resume must name different files", "[cnn][trainer]") {
  const std::string a = temp_path("same.bin"), a2 = temp_path("sub/../same.bin");
  std::filesystem::create_directories(temp_path("sub"));
  const std::vector<std::pair<std::string, std::string>> clashes{
      {"--save", "--export"}, {"--save", "--metrics"}, {"--export", "--metrics"}, {"--export", "--resume"},
      {"--metrics", "--resume"}};
  for (const auto& [f1, f2] : clashes) {
    INFO(f1 << " " << f2);
    auto o = tiny_options();
    o.epochs = 1;
    const auto set = [&](const std::string& flag, const std::string& p) {
      (flag == "--save" ? o.save : flag == "--export" ? o.export_path : flag == "--metrics" ? o.metrics : o.resume) = p;
    };
    set(f1, a);
    set(f2, a2);
    std::ostringstream out;
    CHECK_THROWS_AS(run_training(o, tiny_data(), out), usage_error);
    CHECK_THROWS_WITH(run_training(o, tiny_data(), out),
                      Catch::Contains(f1 + " '" + a + "'") && Catch::Contains(f2 + " '" + a2 + "'"));
  }
}

TEST_CASE("a checkpoint path that is no regular file fails at once", "[cnn][trainer]") {
  CHECK_THROWS_WITH(load_checkpoint("/dev/zero"), Catch::Contains("'/dev/zero' is not a regular file"));
  CHECK_THROWS_WITH(load_exported_model("/dev/zero"), Catch::Contains("'/dev/zero' is not a regular file"));
}

// --- checks that use the API added with them (check_options, parse_compare_options) ---

TEST_CASE("check_options finds bad --arch, --lambda-group-scale and clashing files before any data", "[cnn][trainer]") {
  options o;
  CHECK_NOTHROW(check_options(o));
  o.arch = "c4k5-p2-f10x";
  CHECK_THROWS_AS(check_options(o), usage_error);
  CHECK_THROWS_WITH(check_options(o), Catch::Contains("--arch 'c4k5-p2-f10x'") && Catch::Contains("'f10x'"));
  o.arch = "default";
  o.lambda_group_scale = {1, 2};
  CHECK_THROWS_WITH(check_options(o), Catch::Contains("--lambda-group-scale: 2 factors") &&
                                          Catch::Contains("--arch 'default' has 4 conv and linear layers"));
  o.resume = temp_path("whatever.ckpt");  // the checkpoint's architecture counts; checked after loading it
  CHECK_NOTHROW(check_options(o));
  o.save = o.resume;  // continuing a run in place is fine
  CHECK_NOTHROW(check_options(o));
  o.save.clear();
  o.metrics = o.resume;
  CHECK_THROWS_WITH(check_options(o), Catch::Contains("--metrics '" + o.metrics + "' and --resume"));
  options p;
  p.seed = std::uint64_t{1} << 32;
  CHECK_THROWS_WITH(check_options(p), Catch::Contains("--seed") && Catch::Contains("4294967296"));
  p.seed = 42;
  p.warmup_epochs = 1e300;
  CHECK_THROWS_WITH(check_options(p), Catch::Contains("--warmup-epochs"));
}

TEST_CASE("sparsereg_compare keeps an explicit --epochs 0 and fills in the other defaults", "[cnn][trainer]") {
  const auto parse_compare = [](std::vector<std::string> args) {
    args.insert(args.begin(), "sparsereg_compare");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return parse_compare_options(static_cast<int>(argv.size()), argv.data());
  };
  CHECK(parse_compare({}).o.epochs == 3);
  CHECK(parse_compare({"--full"}).o.epochs == 30);
  CHECK(parse_compare({"--epochs", "0"}).o.epochs == 0);
  CHECK(parse_compare({"--full", "--epochs=0"}).o.epochs == 0);
  CHECK(parse_compare({"--epochs", "5"}).o.epochs == 5);
  const auto full = parse_compare({"--full", "--finetune-epochs", "0"});
  CHECK(full.o.finetune_epochs == 0);
  CHECK(full.o.lambda_group == 0.00056);
  CHECK(full.var_lambda_group == 0.00075);
  CHECK_THROWS_WITH(parse_compare({"--epochs", "x"}), Catch::Contains("--epochs") && Catch::Contains("'x'"));
  CHECK_THROWS_WITH(parse_compare({"--full=no"}), Catch::Contains("--full takes no value, got 'no'"));
  CHECK_THROWS_AS(parse_compare({"--arch", "p2"}), usage_error);
}
