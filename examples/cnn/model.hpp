// The trainer's model: a sequence of conv / max-pool stages followed by linear layers, described
// by a small architecture string, e.g. the default "c32k5-p2-c64k5-p2-f80-f10":
//   c<out>k<k>[p<pad>]  convolution, stride 1, `pad` zero padding (default (k-1)/2, "same")
//   p<s>                max pooling with window and stride s
//   f<out>              linear layer
// Every conv and every linear layer except the last is followed by a ReLU. Presets:
//   "default"       = c32k5-p2-c64k5-p2-f80-f10           (303,866 parameters on 28x28x1)
//   "lenet5-caffe"  = c20k5p0-p2-c50k5p0-p2-f500-f10      ("20-50-800-500", 431,080 parameters)
#pragma once

#include "layers.hpp"

#include <cstdio>
#include <functional>
#include <random>
#include <sstream>

namespace sparsereg_cnn {

struct layer_spec {
  enum class kind { conv, pool, fc };
  kind type = kind::conv;
  std::size_t out = 0;     // conv: filters; fc: neurons
  std::size_t kernel = 0;  // conv: kernel size; pool: window
  std::size_t pad = 0;     // conv only
};

struct architecture {
  std::size_t in_channels = 1, in_h = 28, in_w = 28;
  std::vector<layer_spec> layers;

  // Bounds of the numbers in an architecture string: conv filters and linear neurons; conv kernel,
  // padding and pooling window.
  static constexpr std::size_t max_units = 65536;
  static constexpr std::size_t max_window = 1024;

  static std::string expand_preset(const std::string& s) {
    if (s == "default" || s.empty()) return "c32k5-p2-c64k5-p2-f80-f10";
    if (s == "lenet5-caffe" || s == "20-50-800-500") return "c20k5p0-p2-c50k5p0-p2-f500-f10";
    return s;
  }

  static architecture parse(const std::string& text, std::size_t channels = 1, std::size_t h = 28, std::size_t w = 28) {
    architecture a;
    a.in_channels = channels;
    a.in_h = h;
    a.in_w = w;
    const std::string s = expand_preset(text);
    std::stringstream ss(s);
    std::string tok;
    auto fail = [&](const std::string& why) -> void {
      throw std::invalid_argument("--arch '" + text + "': " + why +
                                  " (expected tokens c<out>k<k>[p<pad>], p<size>, f<out> joined by '-', e.g. "
                                  "c32k5-p2-c64k5-p2-f80-f10, or a preset: default, lenet5-caffe)");
    };
    // The digits at `pos` as a number in [1, limit] (0 too if allow_zero); `what` names it in errors.
    // The bound comes before any arithmetic, so no digit string can overflow.
    auto number = [&](const std::string& t, std::size_t& pos, std::size_t limit, const char* what,
                      bool allow_zero = false) -> std::size_t {
      const std::size_t start = pos;
      std::size_t v = 0;
      bool too_large = false;
      while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
        if (!too_large) v = v * 10 + static_cast<std::size_t>(t[pos] - '0');
        too_large = too_large || v > limit;
        ++pos;
      }
      if (pos == start) fail("token '" + t + "' is missing a number");
      if (too_large)
        fail("token '" + t + "': " + what + " " + t.substr(start, pos - start) + " is too large (at most " +
             std::to_string(limit) + ")");
      if (v == 0 && !allow_zero) fail("token '" + t + "' has a zero size");
      return v;
    };
    bool seen_fc = false;
    while (std::getline(ss, tok, '-')) {
      if (tok.empty()) fail("empty token");
      layer_spec l;
      std::size_t pos = 1;
      if (tok[0] == 'c') {
        if (seen_fc) fail("convolution after a linear layer");
        l.type = layer_spec::kind::conv;
        l.out = number(tok, pos, max_units, "filter count");
        if (pos >= tok.size() || tok[pos] != 'k') fail("token '" + tok + "' needs a kernel size k<k>");
        ++pos;
        l.kernel = number(tok, pos, max_window, "kernel size");
        l.pad = (l.kernel - 1) / 2;
        if (pos < tok.size()) {
          if (tok[pos] != 'p') fail("token '" + tok + "' has trailing characters");
          ++pos;
          if (pos == tok.size() || tok[pos] < '0' || tok[pos] > '9') fail("token '" + tok + "' has a bad padding");
          l.pad = number(tok, pos, max_window, "padding", true);
          if (pos != tok.size()) fail("token '" + tok + "' has a bad padding");
        }
      } else if (tok[0] == 'p') {
        if (seen_fc) fail("pooling after a linear layer");
        l.type = layer_spec::kind::pool;
        l.kernel = number(tok, pos, max_window, "pooling window");
        if (pos != tok.size()) fail("token '" + tok + "' has trailing characters");
      } else if (tok[0] == 'f') {
        seen_fc = true;
        l.type = layer_spec::kind::fc;
        l.out = number(tok, pos, max_units, "neuron count");
        if (pos != tok.size()) fail("token '" + tok + "' has trailing characters");
      } else {
        fail("unknown token '" + tok + "'");
      }
      a.layers.push_back(l);
    }
    if (!seen_fc) fail("the last layer must be a linear layer (f<classes>)");
    return a;
  }

  std::string str() const {
    std::string s;
    for (const auto& l : layers) {
      if (!s.empty()) s += "-";
      switch (l.type) {
        case layer_spec::kind::conv:
          s += "c" + std::to_string(l.out) + "k" + std::to_string(l.kernel);
          if (l.pad != (l.kernel - 1) / 2) s += "p" + std::to_string(l.pad);
          break;
        case layer_spec::kind::pool: s += "p" + std::to_string(l.kernel); break;
        case layer_spec::kind::fc: s += "f" + std::to_string(l.out); break;
      }
    }
    return s;
  }
};

/// A named parameter tensor with its gradient buffer (both owned by the model).
struct parameter_ref {
  std::string name;
  std::vector<float>* value;
  std::vector<float>* grad;
  std::vector<std::size_t> shape;
  bool is_weight;  // false for biases
};

class model {
 public:
  architecture arch;
  std::vector<conv2d> convs;
  std::vector<maxpool2d> pools;
  std::vector<linear> fcs;
  flatten flat;
  // Execution order: kind and index into convs / pools / fcs.
  std::vector<std::pair<layer_spec::kind, std::size_t>> order;

  model() = default;
  /// Builds the layers of `a`; `flatten_keep` (ascending feature indices) feeds the first linear
  /// layer only those features (used by compacted models). Weights are zero until init().
  explicit model(const architecture& a, std::vector<std::uint32_t> flatten_keep = {}) : arch(a) {
    std::size_t c = a.in_channels, h = a.in_h, w = a.in_w;
    std::size_t features = 0;
    for (std::size_t i = 0; i < a.layers.size(); ++i) {
      const auto& l = a.layers[i];
      if (l.type == layer_spec::kind::conv) {
        convs.emplace_back(c, l.out, l.kernel, l.pad, h, w, true);
        c = l.out;
        h = convs.back().out_h();
        w = convs.back().out_w();
        order.emplace_back(l.type, convs.size() - 1);
      } else if (l.type == layer_spec::kind::pool) {
        pools.emplace_back(c, l.kernel, h, w);
        h = pools.back().out_h();
        w = pools.back().out_w();
        order.emplace_back(l.type, pools.size() - 1);
      } else {
        if (fcs.empty()) {
          flat.channels = c;
          flat.hw = h * w;
          flat.keep = flatten_keep;
          for (auto f : flat.keep)
            if (f >= c * h * w) throw std::invalid_argument("model: flatten index out of range");
          features = flat.features();
        }
        const bool last = (i + 1 == a.layers.size());
        fcs.emplace_back(features, l.out, !last);
        features = l.out;
        order.emplace_back(l.type, fcs.size() - 1);
      }
    }
    if (fcs.empty()) throw std::invalid_argument("model: architecture has no linear layer");
  }

  std::size_t classes() const { return fcs.back().out; }

  /// He (Kaiming normal, fan-in) initialization of weights, zero biases, from a seeded engine.
  void init(std::mt19937& rng) {
    for (auto& c : convs) {
      std::normal_distribution<float> nd(0.f, std::sqrt(2.f / static_cast<float>(c.patch())));
      for (auto& v : c.w) v = nd(rng);
      std::fill(c.b.begin(), c.b.end(), 0.f);
    }
    for (auto& f : fcs) {
      std::normal_distribution<float> nd(0.f, std::sqrt(2.f / static_cast<float>(f.in)));
      for (auto& v : f.w) v = nd(rng);
      std::fill(f.b.begin(), f.b.end(), 0.f);
    }
  }

  std::vector<parameter_ref> parameters() {
    std::vector<parameter_ref> p;
    for (std::size_t i = 0; i < convs.size(); ++i) {
      auto& c = convs[i];
      const std::string n = "conv" + std::to_string(i + 1);
      p.push_back({n + ".weight", &c.w, &c.gw, {c.out_c, c.in_c, c.k, c.k}, true});
      p.push_back({n + ".bias", &c.b, &c.gb, {c.out_c}, false});
    }
    for (std::size_t i = 0; i < fcs.size(); ++i) {
      auto& f = fcs[i];
      const std::string n = "fc" + std::to_string(i + 1);
      p.push_back({n + ".weight", &f.w, &f.gw, {f.out, f.in}, true});
      p.push_back({n + ".bias", &f.b, &f.gb, {f.out}, false});
    }
    return p;
  }

  std::size_t parameter_count() const {
    std::size_t n = 0;
    for (const auto& c : convs) n += c.w.size() + c.b.size();
    for (const auto& f : fcs) n += f.w.size() + f.b.size();
    return n;
  }
  /// Forward multiply-accumulates per image.
  std::size_t macs() const {
    std::size_t n = 0;
    for (const auto& c : convs) n += c.macs();
    for (const auto& f : fcs) n += f.macs();
    return n;
  }

  /// Forward pass on n images (n x C x H x W floats, which for C == 1 is also CNHW); returns the
  /// logits (n x classes), valid until the next call.
  const float* forward(const float* images, std::size_t n) {
    prepare(n);
    const std::size_t in_size = arch.in_channels * arch.in_h * arch.in_w;
    float* input = acts_[0].data();
    if (arch.in_channels == 1) {
      std::memcpy(input, images, n * in_size * sizeof(float));
    } else {
      const std::size_t hw = arch.in_h * arch.in_w;
      for (std::size_t r = 0; r < n; ++r)
        for (std::size_t c = 0; c < arch.in_channels; ++c)
          std::memcpy(input + (c * n + r) * hw, images + (r * arch.in_channels + c) * hw, hw * sizeof(float));
    }
    std::size_t a = 0;
    bool flattened = false;
    for (const auto& [k, i] : order) {
      if (k == layer_spec::kind::conv) {
        convs[i].forward(acts_[a].data(), acts_[a + 1].data(), n);
      } else if (k == layer_spec::kind::pool) {
        pools[i].forward(acts_[a].data(), acts_[a + 1].data(), n);
      } else {
        if (!flattened) {
          flat.forward(acts_[a].data(), flat_in_.data(), n);
          flattened = true;
          fcs[i].forward(flat_in_.data(), acts_[a + 1].data(), n);
        } else {
          fcs[i].forward(acts_[a].data(), acts_[a + 1].data(), n);
        }
      }
      ++a;
    }
    return acts_.back().data();
  }

  /// Called by backward() for each conv / linear layer (kind, index among its kind) as soon as
  /// its weight and bias gradients are complete and the pass no longer reads its weights.
  using layer_done = std::function<void(layer_spec::kind, std::size_t)>;

  /// Backward pass after forward(); dlogits (n x classes) is consumed. Sets every gradient. With
  /// on_layer, a training loop can update each layer right there, while its weights and
  /// gradients are still in cache (the trainer's layer-by-layer step).
  void backward(const float* dlogits, std::size_t n, const layer_done& on_layer = {}) {
    std::memcpy(grads_.back().data(), dlogits, n * classes() * sizeof(float));
    std::size_t a = order.size();
    for (std::size_t s = order.size(); s-- > 0;) {
      const auto [k, i] = order[s];
      float* dy = grads_[a].data();
      float* dx = grads_[a - 1].data();
      if (k == layer_spec::kind::conv) {
        convs[i].backward(acts_[a - 1].data(), acts_[a].data(), dy, s == 0 ? nullptr : dx, n);
      } else if (k == layer_spec::kind::pool) {
        pools[i].backward(dy, dx, n);
      } else if (i == 0) {
        fcs[i].backward(flat_in_.data(), acts_[a].data(), dy, s == 0 ? nullptr : flat_grad_.data(), n);
      } else {
        fcs[i].backward(acts_[a - 1].data(), acts_[a].data(), dy, dx, n);
      }
      if (on_layer && k != layer_spec::kind::pool) on_layer(k, i);
      if (k == layer_spec::kind::fc && i == 0 && s != 0) flat.backward(flat_grad_.data(), dx, n);
      --a;
    }
  }

  /// Output of stage i - 1 of the last forward (0: the input), and the flattened first-linear input.
  const std::vector<float>& activation(std::size_t i) const { return acts_[i]; }
  const std::vector<float>& flattened() const { return flat_in_; }

  /// Size of activation after each stage (per image), index 0 = input.
  std::vector<std::size_t> activation_sizes() const {
    std::vector<std::size_t> s{arch.in_channels * arch.in_h * arch.in_w};
    for (const auto& [k, i] : order) {
      if (k == layer_spec::kind::conv)
        s.push_back(convs[i].out_c * convs[i].out_h() * convs[i].out_w());
      else if (k == layer_spec::kind::pool)
        s.push_back(pools[i].channels * pools[i].out_h() * pools[i].out_w());
      else
        s.push_back(fcs[i].out);
    }
    return s;
  }

 private:
  void prepare(std::size_t n) {
    if (n <= prepared_) return;
    const auto sizes = activation_sizes();
    acts_.assign(sizes.size(), {});
    grads_.assign(sizes.size(), {});
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      acts_[i].resize(sizes[i] * n);
      grads_[i].resize(sizes[i] * n);
    }
    flat_in_.resize(flat.features() * n);
    flat_grad_.resize(flat.features() * n);
    prepared_ = n;
  }

  std::size_t prepared_ = 0;
  std::vector<std::vector<float>> acts_, grads_;
  std::vector<float> flat_in_, flat_grad_;
};

}  // namespace sparsereg_cnn
