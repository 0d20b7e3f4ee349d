// sparsereg/adapters/torch.hpp: at::Tensor views must behave exactly like hand-built raw views of
// the same memory layout (bit for bit, for every penalty and every operation), keep the tensor's
// real strides (transposed, permuted, sliced tensors are never copied), plug into a libtorch
// training loop, and reject what they cannot see correctly (wrong dtype, sparse layout, expanded
// axes) with an error that names the problem.
//
// Built only when libtorch is found (tests/torch/CMakeLists.txt); not a *_test.cpp so the
// torch-free glob of tests/CMakeLists.txt skips it.
#include <torch/torch.h>

#include <sparsereg/adapters/torch.hpp>
#include <sparsereg/sparsereg.hpp>

// Debian's libtorch logs through glog, whose CHECK macro would replace Catch's: include every
// torch header first, drop glog's CHECK, then Catch.
#undef CHECK
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace {

using sparsereg::view;

/// A tensor under test together with a hand-written description of where its elements live in
/// its base tensor's memory: the raw view is built from these numbers, never from torch's.
struct layout_case {
  std::string name;
  std::vector<std::int64_t> base_shape;  // contiguous base tensor
  std::vector<std::size_t> extents;      // what the test tensor looks like
  std::vector<std::ptrdiff_t> strides;   // ... and where its elements are in the base's memory
  std::ptrdiff_t offset;
  at::Tensor (*make)(const at::Tensor& base);
};

std::vector<layout_case> layout_cases() {
  return {
      {"contiguous fc 12x20", {12, 20}, {12, 20}, {20, 1}, 0, [](const at::Tensor& b) { return b; }},
      {"transposed fc (b.t())", {12, 20}, {20, 12}, {1, 20}, 0, [](const at::Tensor& b) { return b.t(); }},
      {"contiguous conv 6x5x3x3", {6, 5, 3, 3}, {6, 5, 3, 3}, {45, 9, 3, 1}, 0, [](const at::Tensor& b) { return b; }},
      {"conv permuted to HWIO", {6, 5, 3, 3}, {3, 3, 5, 6}, {3, 1, 9, 45}, 0,
       [](const at::Tensor& b) { return b.permute({2, 3, 1, 0}); }},
      {"every third column from 2 (slice)", {16, 30}, {16, 10}, {30, 3}, 2,
       [](const at::Tensor& b) { return b.slice(1, 2, 30, 3); }},
      {"narrowed conv (storage offset)", {8, 4, 3, 3}, {5, 4, 3, 3}, {36, 9, 3, 1}, 72,
       [](const at::Tensor& b) { return b.narrow(0, 2, 5); }},
  };
}

/// Random weights with exact zeros and a spread of magnitudes, so thresholds zero some elements
/// and some groups.
at::Tensor random_base(const std::vector<std::int64_t>& shape, std::uint64_t seed) {
  at::manual_seed(seed);
  auto b = at::randn(shape, at::kFloat) * 0.3;
  b.masked_fill_(at::rand(shape) < 0.1, 0.0);
  // Scale some leading slices down so whole groups fall under a group threshold.
  b.select(0, 0).mul_(0.01);
  return b.contiguous();
}

bool same_bytes(const at::Tensor& a, const std::vector<float>& raw) {
  REQUIRE(a.is_contiguous());
  REQUIRE(static_cast<std::size_t>(a.numel()) == raw.size());
  return std::memcmp(a.data_ptr(), raw.data(), raw.size() * sizeof(float)) == 0;
}

bool same_double(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void require_same_result(const sparsereg::prox_result& a, const sparsereg::prox_result& b) {
  CHECK(same_double(a.value, b.value));
  CHECK(a.zero_elements == b.zero_elements);
  CHECK(a.zero_groups == b.zero_groups);
  CHECK(a.groups == b.groups);
}

/// Runs value / add_gradient / prox (in place and out of place) through the torch adapter on
/// `t`, and through a raw view on a copy of the base memory, and requires identical bits.
template <class P>
void check_penalty_on_layout(const P& penalty, const layout_case& c, std::uint64_t seed) {
  INFO("layout: " << c.name);
  const at::Tensor base = random_base(c.base_shape, seed);
  std::vector<float> raw(static_cast<std::size_t>(base.numel()));
  std::memcpy(raw.data(), base.data_ptr(), raw.size() * sizeof(float));
  const at::Tensor t = c.make(base);
  const view<float> rv(raw.data() + c.offset, c.extents, c.strides);

  // The adapter keeps torch's layout: same extents, strides and first element.
  const view<float> tv = sparsereg::torch_view<float>(t);
  REQUIRE(tv.rank() == c.extents.size());
  for (std::size_t i = 0; i < tv.rank(); ++i) {
    CHECK(tv.extent(i) == c.extents[i]);
    CHECK(tv.stride(i) == c.strides[i]);
  }
  CHECK(tv.data() == static_cast<float*>(base.data_ptr()) + c.offset);

  // value
  CHECK(same_double(sparsereg::value(penalty, t), sparsereg::value(penalty, rv)));

  // add_gradient into a separate contiguous buffer of the tensor's shape
  if constexpr (P::has_gradient) {
    std::vector<std::int64_t> shape(c.extents.begin(), c.extents.end());
    at::Tensor g = at::full(shape, 0.25f, at::kFloat);
    std::vector<float> graw(static_cast<std::size_t>(g.numel()), 0.25f);
    sparsereg::add_gradient(penalty, t, g);
    sparsereg::add_gradient(penalty, rv, view<float>(graw.data(), c.extents));
    CHECK(same_bytes(g, graw));
  }

  // out-of-place prox into a fresh tensor
  {
    std::vector<std::int64_t> shape(c.extents.begin(), c.extents.end());
    at::Tensor y = at::zeros(shape, at::kFloat);
    std::vector<float> yraw(static_cast<std::size_t>(y.numel()), 0.0f);
    const auto a = sparsereg::prox(penalty, t, y, 0.7);
    const auto b = sparsereg::prox(penalty, rv, view<float>(yraw.data(), c.extents), 0.7);
    require_same_result(a, b);
    CHECK(same_bytes(y, yraw));
  }

  // in-place prox on the strided tensor itself: the whole base memory must match, which also
  // proves that elements outside the view (a slice's gaps) were not touched.
  const auto a = sparsereg::prox(penalty, t, t, 0.7);
  const auto b = sparsereg::prox(penalty, rv, rv, 0.7);
  require_same_result(a, b);
  CHECK(same_bytes(base, raw));
  // Sanity: the prox did something on this data (so equality is not vacuous).
  CHECK(a.zero_elements > 0);
}

}  // namespace

TEST_CASE("torch views equal raw views bit for bit, for every penalty and layout", "[torch][adapter]") {
  const auto c = GENERATE(from_range(layout_cases()));
  const std::size_t rank = c.extents.size();
  SECTION("l1") { check_penalty_on_layout(sparsereg::l1(0.1), c, 11); }
  SECTION("squared_l2 (baseline, no zeros of its own)") {
    const at::Tensor base = random_base(c.base_shape, 12);
    std::vector<float> raw(static_cast<std::size_t>(base.numel()));
    std::memcpy(raw.data(), base.data_ptr(), raw.size() * sizeof(float));
    const at::Tensor t = c.make(base);
    const view<float> rv(raw.data() + c.offset, c.extents, c.strides);
    const sparsereg::squared_l2 p(0.3);
    CHECK(same_double(sparsereg::value(p, t), sparsereg::value(p, rv)));
    require_same_result(sparsereg::prox(p, t, t, 0.5), sparsereg::prox(p, rv, rv, 0.5));
    CHECK(same_bytes(base, raw));
  }
  SECTION("hard_threshold") { check_penalty_on_layout(sparsereg::hard_threshold(0.05), c, 13); }
  SECTION("group_lasso, groups on axis 0") {
    check_penalty_on_layout(sparsereg::group_lasso(0.2, sparsereg::grouping::by_axes({0}, rank)), c, 14);
  }
  SECTION("group_lasso, groups on axis 1 (strided groups)") {
    check_penalty_on_layout(sparsereg::group_lasso(0.2, sparsereg::grouping::by_axes({1}, rank)), c, 15);
  }
  SECTION("sparse_group_lasso, groups on axis 0") {
    check_penalty_on_layout(sparsereg::sparse_group_lasso(0.2, 0.05, sparsereg::grouping::by_axes({0}, rank)), c, 16);
  }
  SECTION("sparse_group_lasso, groups on the last axis") {
    check_penalty_on_layout(
        sparsereg::sparse_group_lasso(0.1, 0.05, sparsereg::grouping::by_axes({rank - 1}, rank)).scaled(2.0), c, 17);
  }
}

TEST_CASE("torch views: per-element steps of separable penalties", "[torch][adapter]") {
  const auto c = GENERATE(from_range(layout_cases()));
  INFO("layout: " << c.name);
  const at::Tensor base = random_base(c.base_shape, 21);
  std::vector<float> raw(static_cast<std::size_t>(base.numel()));
  std::memcpy(raw.data(), base.data_ptr(), raw.size() * sizeof(float));
  const at::Tensor t = c.make(base);
  const view<float> rv(raw.data() + c.offset, c.extents, c.strides);
  // Steps as a transposed-then-contiguous tensor would be too easy; use the tensor's own layout
  // family: a fresh tensor of the same shape, filled from a fixed sequence.
  std::vector<std::int64_t> shape(c.extents.begin(), c.extents.end());
  const at::Tensor steps = at::rand(shape, at::kFloat) * 2.0;
  std::vector<float> sraw(static_cast<std::size_t>(steps.numel()));
  std::memcpy(sraw.data(), steps.data_ptr(), sraw.size() * sizeof(float));
  const sparsereg::l1 p(0.08);
  require_same_result(sparsereg::prox(p, t, t, steps), sparsereg::prox(p, rv, rv, view<const float>(sraw.data(), c.extents)));
  CHECK(same_bytes(base, raw));
}

TEST_CASE("torch views: float64 through torch_view<double> and visit_torch", "[torch][adapter]") {
  at::manual_seed(3);
  at::Tensor w = (at::randn({32, 16}, at::kDouble) * 0.2).t();  // transposed, 16x32
  w.narrow(1, 0, 4).mul_(0.05);                                  // four weak columns (groups)
  at::Tensor copy = w.clone();                                   // contiguous 16x32
  const sparsereg::sparse_group_lasso p(0.15, 0.05, sparsereg::groups::input_neurons());
  const auto v = sparsereg::torch_view<double>(w);
  CHECK(v.stride(0) == 1);
  CHECK(v.stride(1) == 16);
  const auto r1 = sparsereg::prox(p, v, v, 0.5);
  const auto r2 = sparsereg::visit_torch(copy, [&](auto cv) { return sparsereg::prox(p, cv, cv, 0.5); });
  require_same_result(r1, r2);
  CHECK(at::equal(w, copy));
  CHECK(r1.zero_groups > 0);
  // The generic adapter is float32 only and says how to pass a float64 tensor.
  CHECK_THROWS_WITH(sparsereg::value(p, w), Catch::Contains("Double") && Catch::Contains("torch_view<double>"));
  // visit_torch dispatches float32 too.
  at::Tensor f = w.to(at::kFloat);
  const double vf = sparsereg::visit_torch(f, [&](auto fv) { return sparsereg::value(p, fv); });
  CHECK(vf == sparsereg::value(p, f));
}

TEST_CASE("torch views: rejected tensors name the problem", "[torch][adapter][errors]") {
  const sparsereg::l1 p(0.1);
  SECTION("integer dtype") {
    at::Tensor t = at::ones({4, 4}, at::kInt);
    CHECK_THROWS_AS(sparsereg::value(p, t), std::invalid_argument);
    CHECK_THROWS_WITH(sparsereg::value(p, t), Catch::Contains("sparsereg::torch_view") && Catch::Contains("Int"));
  }
  SECTION("half and bfloat16") {
    CHECK_THROWS_WITH(sparsereg::torch_view<float>(at::ones({3}, at::kHalf)), Catch::Contains("float16"));
    CHECK_THROWS_WITH(sparsereg::visit_torch(at::ones({3}, at::kBFloat16), [](auto v) { return v.size(); }),
                      Catch::Contains("bfloat16"));
  }
  SECTION("float32 tensor asked for as double") {
    CHECK_THROWS_WITH(sparsereg::torch_view<double>(at::ones({3}, at::kFloat)),
                      Catch::Contains("Float") && Catch::Contains("float64"));
  }
  SECTION("sparse COO layout") {
    at::Tensor s = at::eye(4, at::kFloat).to_sparse();
    CHECK_THROWS_WITH(sparsereg::value(p, s), Catch::Contains("layout") && Catch::Contains("Sparse"));
  }
  SECTION("undefined tensor") {
    at::Tensor u;
    CHECK_THROWS_WITH(sparsereg::value(p, u), Catch::Contains("undefined"));
  }
  SECTION("expanded (stride 0) tensors are readable but not writable") {
    at::Tensor e = at::ones({1, 5}, at::kFloat).expand({4, 5});
    CHECK(sparsereg::value(p, sparsereg::torch_view<const float>(e)) == Approx(0.1 * 20));
    CHECK_THROWS_WITH(sparsereg::prox(p, e, e, 1.0), Catch::Contains("stride 0"));
  }
  SECTION("rank above 8") {
    at::Tensor r9 = at::ones({1, 1, 1, 1, 1, 1, 1, 1, 2}, at::kFloat);
    CHECK_THROWS_WITH(sparsereg::value(p, r9), Catch::Contains("rank") && Catch::Contains("9"));
  }
  SECTION("empty and 0-d tensors are fine") {
    at::Tensor e = at::empty({0, 7}, at::kFloat);
    CHECK(sparsereg::value(p, e) == 0.0);
    CHECK(sparsereg::prox(p, e, e, 1.0).zero_elements == 0);
    at::Tensor s = at::full({}, -2.0f, at::kFloat);
    CHECK(sparsereg::prox(p, s, s, 1.0).value == Approx(0.1 * 1.9));
    CHECK(s.item<float>() == Approx(-1.9f));
  }
}

namespace {

struct tiny_net : torch::nn::Module {
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  tiny_net() {
    fc1 = register_module("fc1", torch::nn::Linear(8, 16));
    fc2 = register_module("fc2", torch::nn::Linear(16, 3));
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::relu(fc1(x))); }
};

/// A few SGD steps on fixed data; after every optimizer.step(), an l1 gradient (added into
/// .grad() before the step) and an SGL prox are applied either through the torch adapter or
/// through raw views of the same parameter memory.
std::vector<at::Tensor> train(bool through_adapter, std::size_t* zero_groups) {
  torch::manual_seed(5);
  tiny_net net;
  torch::manual_seed(6);
  const torch::Tensor x = torch::randn({32, 8});
  const torch::Tensor target = torch::randint(0, 3, {32}, torch::kLong);
  torch::optim::SGD opt(net.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  const double lr = 0.1;
  // fc1.weight is 16 out x 8 in: prune input features (columns, strided groups) ...
  const sparsereg::sparse_group_lasso in_sgl(0.3, 0.01, sparsereg::groups::input_neurons());
  // ... and fc2.weight.t() (a transposed tensor, 16 x 3) by rows = fc2's input features.
  const sparsereg::group_lasso out_gl(0.2, sparsereg::grouping::by_axes({0}, 2));
  const sparsereg::l1 decay(1e-3);
  for (int step = 0; step < 8; ++step) {
    opt.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(net.forward(x), target);
    loss.backward();
    {
      torch::NoGradGuard no_grad;
      at::Tensor g = net.fc1->weight.grad();
      if (through_adapter) {
        sparsereg::add_gradient(decay, net.fc1->weight, g);
      } else {
        sparsereg::add_gradient(decay, view<const float>(net.fc1->weight.data_ptr<float>(), {16, 8}),
                                view<float>(g.data_ptr<float>(), {16, 8}));
      }
    }
    opt.step();
    torch::NoGradGuard no_grad;
    std::size_t zg = 0;
    if (through_adapter) {
      zg += sparsereg::prox(in_sgl, net.fc1->weight, net.fc1->weight, lr).zero_groups;
      at::Tensor w2t = net.fc2->weight.t();  // the same memory, transposed
      zg += sparsereg::prox(out_gl, w2t, w2t, lr).zero_groups;
    } else {
      const view<float> w1(net.fc1->weight.data_ptr<float>(), {16, 8});
      zg += sparsereg::prox(in_sgl, w1, w1, lr).zero_groups;
      const view<float> w2t(net.fc2->weight.data_ptr<float>(), {16, 3}, {1, 16});
      zg += sparsereg::prox(out_gl, w2t, w2t, lr).zero_groups;
    }
    *zero_groups = zg;
  }
  std::vector<at::Tensor> out;
  for (const auto& p : net.parameters()) out.push_back(p.detach().clone());
  return out;
}

}  // namespace

TEST_CASE("torch views: a few training steps with the prox give identical weights either way", "[torch][training]") {
  at::set_num_threads(1);
  std::size_t zg_adapter = 0, zg_raw = 0;
  const auto a = train(true, &zg_adapter);
  const auto b = train(false, &zg_raw);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("parameter " << i);
    REQUIRE(a[i].numel() == b[i].numel());
    CHECK(std::memcmp(a[i].data_ptr(), b[i].data_ptr(), static_cast<std::size_t>(a[i].numel()) * sizeof(float)) == 0);
  }
  CHECK(zg_adapter == zg_raw);
  // The penalties did act: some input features of fc1 or fc2 are exactly zero by now.
  CHECK(zg_adapter > 0);
  CHECK(zg_adapter < 8 + 16);  // ... but not all of them
  CHECK(a[0].eq(0).sum().item<std::int64_t>() > 0);
}
