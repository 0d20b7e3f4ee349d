// End-to-end behaviour of the trainer on a tiny synthetic data set: learning, bitwise resume,
// corrupt-checkpoint rejection, export round trip, and a huge lambda that collapses layers.
#include <catch2/catch.hpp>

#include "cnn/synthetic.hpp"
#include "cnn/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

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

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "sparsereg_cnn_trainer_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
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
  const auto mode = GENERATE(std::string("groups"), std::string("weights"));
  auto o = tiny_options();
  o.var_weight = 0.01;
  o.var_on = mode;
  o.epochs = 1;
  std::ostringstream out;
  const auto r = run_training(o, tiny_data(), out);
  CHECK(r.test_accuracy > 0.2);
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
  // One factor per conv and linear layer, else an error before training starts.
  o.lambda_group_scale = {1, 1, 1};
  CHECK_THROWS_AS(run_training(o, tiny_data(), out), std::invalid_argument);
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
