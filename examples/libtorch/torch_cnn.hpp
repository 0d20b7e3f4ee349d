// The LeNet-style CNN of the libtorch examples, as a torch::nn::Module: conv 1->c1 5x5 pad 2,
// ReLU, max-pool 2, conv c1->c2 5x5 pad 2, ReLU, max-pool 2, linear (c2*7*7)->hidden, ReLU,
// linear hidden->10, for 28x28 single-channel images.
#pragma once

#include <torch/torch.h>

namespace sparsereg_examples {

struct torch_cnn : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch_cnn(std::int64_t c1, std::int64_t c2, std::int64_t hidden) {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, c1, 5).padding(2)));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(c1, c2, 5).padding(2)));
    fc1 = register_module("fc1", torch::nn::Linear(c2 * 7 * 7, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);  // c1 x 14 x 14
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);  // c2 x 7 x 7
    x = torch::relu(fc1(x.flatten(1)));
    return fc2(x);
  }
};

}  // namespace sparsereg_examples
