// Structural compaction of the CNN: the compacted model computes the same function as the masked
// full model, one optimizer step on it equals the same step on the masked full model (optimizer
// state sliced along), and a collapsed layer keeps one unit.
#include <catch2/catch.hpp>

#include "cnn/compact.hpp"

#include <random>
#include <vector>

using namespace sparsereg_cnn;

namespace {

struct fixture {
  model m;
  std::vector<float> x;
  std::vector<std::uint8_t> y;
  std::size_t n = 6;
  explicit fixture(const std::string& arch = "c6k3-p2-c8k3-p2-f12-f10", std::size_t side = 12) : m(architecture::parse(arch, 1, side, side)) {
    std::mt19937 rng(7);
    m.init(rng);
    for (auto& p : m.parameters())
      if (!p.is_weight)
        for (auto& b : *p.value) b = std::uniform_real_distribution<float>(0.01f, 0.1f)(rng);
    x.resize(n * side * side);
    for (auto& v : x) v = std::uniform_real_distribution<float>(0.f, 1.f)(rng);
    y.resize(n);
    for (auto& v : y) v = static_cast<std::uint8_t>(rng() % 10);
  }
};

// Zeroes conv1 filter 1 (+ its bias), conv2 input channel 4, conv2 filter 2, every fc1 column of
// conv2 channel 5, single fc1 columns 3 and 40, fc1 row 7 (+ bias) and fc2 column 9.
void sparsify(model& m) {
  auto& c1 = m.convs[0];
  std::fill(c1.w.begin() + 1 * 9, c1.w.begin() + 2 * 9, 0.f);
  c1.b[1] = 0.f;
  auto& c2 = m.convs[1];
  for (std::size_t o = 0; o < c2.out_c; ++o)
    for (std::size_t k = 0; k < 9; ++k) c2.w[(o * c2.in_c + 4) * 9 + k] = 0.f;
  std::fill(c2.w.begin() + 2 * c2.in_c * 9, c2.w.begin() + 3 * c2.in_c * 9, 0.f);
  c2.b[2] = -0.5f;  // dead: zero weights, bias <= 0
  auto& f1 = m.fcs[0];
  const std::size_t hw = m.flat.hw;
  for (std::size_t r = 0; r < f1.out; ++r) {
    for (std::size_t p = 0; p < hw; ++p) f1.w[r * f1.in + 5 * hw + p] = 0.f;
    f1.w[r * f1.in + 3] = 0.f;
    f1.w[r * f1.in + 40] = 0.f;
  }
  std::fill(f1.w.begin() + 7 * f1.in, f1.w.begin() + 8 * f1.in, 0.f);
  f1.b[7] = 0.f;
  auto& f2 = m.fcs[1];
  for (std::size_t r = 0; r < f2.out; ++r) f2.w[r * f2.in + 9] = 0.f;
}

std::vector<float> logits(model& m, const fixture& f) {
  const float* z = m.forward(f.x.data(), f.n);
  return std::vector<float>(z, z + f.n * m.classes());
}

void sgd_step(model& m, optimizer& opt, const fixture& f, bool mask_grads, const compaction_plan* plan) {
  const float* z = m.forward(f.x.data(), f.n);
  std::vector<float> d(f.n * m.classes());
  softmax_cross_entropy(z, f.y.data(), f.n, m.classes(), d.data(), nullptr);
  m.backward(d.data(), f.n);
  if (mask_grads) apply_mask(m, *plan, true);
  opt.step(m.parameters(), 0.05);
  if (mask_grads) apply_mask(m, *plan, false);
}

}  // namespace

TEST_CASE("compaction removes dead and unread units and keeps the function", "[cnn][compaction]") {
  fixture f;
  sparsify(f.m);
  const auto before = logits(f.m, f);
  const auto plan = plan_compaction(f.m);
  CHECK(plan.keep_out[0] == std::vector<std::size_t>{0, 2, 3, 5});  // filter 1 dead; channel 4 unread
  CHECK(plan.keep_out[1] == std::vector<std::size_t>{0, 1, 3, 4, 6, 7});  // filter 2 dead; channel 5 unread
  CHECK(plan.keep_out[2].size() == 10);                                    // fc1 row 7 dead, column 9 of fc2 unread
  CHECK(plan.keep_out[3].size() == 10);
  CHECK(plan.report[0].units_kept == 4);
  CHECK_FALSE(plan.report[0].collapsed);
  model c = compact(f.m, plan);
  CHECK(c.arch.str() == "c4k3-p2-c6k3-p2-f10-f10");
  // fc1 inputs: 6 channels x 9 features, minus single columns 3 and 40 (both in kept channels).
  CHECK(c.fcs[0].in == 6 * 9 - 2);
  CHECK(c.parameter_count() == plan.report[0].params_after + plan.report[1].params_after + plan.report[2].params_after +
                                   plan.report[3].params_after);
  const auto after = logits(c, f);
  REQUIRE(after.size() == before.size());
  for (std::size_t i = 0; i < before.size(); ++i) CHECK(after[i] == Approx(before[i]).margin(1e-5));
}

TEST_CASE("one optimizer step on the compacted model equals the step on the masked full model", "[cnn][compaction]") {
  const auto kind = GENERATE(optimizer_kind::sgd, optimizer_kind::adam);
  fixture f;
  sparsify(f.m);
  optimizer opt(kind);
  opt.attach(f.m.parameters());
  // Give the optimizer some history (momentum / moments) on the masked model first.
  const auto plan0 = plan_compaction(f.m);
  for (int s = 0; s < 3; ++s) sgd_step(f.m, opt, f, true, &plan0);
  const auto plan = plan_compaction(f.m);
  optimizer copt;
  model c = compact(f.m, plan, &opt, &copt);
  CHECK(copt.steps == opt.steps);
  sgd_step(f.m, opt, f, true, &plan);
  sgd_step(c, copt, f, false, nullptr);
  model full_compacted = compact(f.m, plan);
  auto a = full_compacted.parameters();
  auto b = c.parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t p = 0; p < a.size(); ++p) {
    REQUIRE(a[p].value->size() == b[p].value->size());
    for (std::size_t i = 0; i < a[p].value->size(); ++i) CHECK((*b[p].value)[i] == Approx((*a[p].value)[i]).margin(1e-5));
  }
}

TEST_CASE("a collapsed layer keeps one unit and is reported", "[cnn][compaction]") {
  fixture f;
  auto& c2 = f.m.convs[1];
  std::fill(c2.w.begin(), c2.w.end(), 0.f);
  std::fill(c2.b.begin(), c2.b.end(), 0.f);
  const auto before = logits(f.m, f);
  const auto plan = plan_compaction(f.m);
  CHECK(plan.report[1].collapsed);
  CHECK(plan.keep_out[1].size() == 1);
  model c = compact(f.m, plan);
  const auto after = logits(c, f);
  for (std::size_t i = 0; i < before.size(); ++i) CHECK(after[i] == Approx(before[i]).margin(1e-5));
  // Everything zero: still a valid model.
  for (auto& p : f.m.parameters()) std::fill(p.value->begin(), p.value->end(), 0.f);
  const auto plan2 = plan_compaction(f.m);
  model c2m = compact(f.m, plan2);
  CHECK(c2m.convs[0].out_c == 1);
  CHECK(c2m.fcs[0].in == 1);
  const auto z = logits(c2m, f);
  for (float v : z) CHECK(v == 0.f);
}
