// sparsereg_train: trains the bundled CNN on (Fashion-)MNIST with proximal structured-sparsity
// regularization through sparsereg's regularizer, then reports, compacts and optionally exports.
// Exit codes: 0 success, 1 runtime error (bad data, corrupt checkpoint, NaN loss), 2 usage error.
#include "cnn/synthetic.hpp"
#include "cnn/trainer.hpp"

#include <filesystem>

#include <iostream>
#include <new>

namespace {

const char* usage_head = R"(Usage: sparsereg_train [flags]

Trains a small CNN on Fashion-MNIST or MNIST. With --lambda-group / --lambda-l1 each step applies
the sparse-group-lasso proximal operator (sparsereg::regularizer::prox_step) after the optimizer
step; --var-weight adds the KL variance regularizer's gradient before it. After training it prints
a structural report (filters / neurons / features that can be removed), builds the compacted
dense model and measures its accuracy and inference speed against the dense one.

Checkpoints and export:
  --save FILE               write a checkpoint (weights, optimizer state, RNG, epoch, step,
                            regularizer step; crc32-checked, written atomically) after every epoch
                            (default: none)
  --resume FILE             continue from a checkpoint up to --epochs; with the same flags the
                            result is bitwise identical to an uninterrupted run (default: none)
  --export FILE             write the compacted model (atomically), read it back and check that it
                            reproduces the compacted model's test predictions (default: none)
  --write-synthetic DIR     write a small synthetic 10-class IDX data set (raw, 2048 train /
                            512 test images) into DIR and exit; used by the CTest smoke test
  --help                    this text

)";

}  // namespace

int main(int argc, char** argv) {
  using namespace sparsereg_cnn;
  options o;
  bool help = false;
  std::string synthetic_dir;
  try {
    parse_options(argc, argv, o,
                  {{"--help", {false, [&](const std::string&) { help = true; }}},
                   {"--write-synthetic", {true, [&](const std::string& v) { synthetic_dir = v; }}}});
  } catch (const usage_error& e) {
    std::cerr << "sparsereg_train: " << e.what() << "\n";
    return 2;
  }
  if (help) {
    std::cout << usage_head << common_flags_help();
    return 0;
  }
  try {
    // Before the data loads: --arch syntax, bounds, file names that clash.
    if (synthetic_dir.empty()) check_options(o);
  } catch (const usage_error& e) {
    std::cerr << "sparsereg_train: " << e.what() << "\n";
    return 2;
  }
  try {
    if (!synthetic_dir.empty()) {
      std::filesystem::create_directories(synthetic_dir);
      write_idx_split(synthetic_dataset(2048, 1), synthetic_dir, "train");
      write_idx_split(synthetic_dataset(512, 2), synthetic_dir, "t10k");
      std::cout << "wrote synthetic IDX data to " << synthetic_dir << "\n";
      return 0;
    }
    const auto data = load_data(o);
    std::cout << "data: " << o.effective_data_dir() << " (" << data.train.count << " train, " << data.test.count
              << " test images), threads " << o.effective_threads() << ", optimizer " << o.optimizer << ", lr "
              << o.effective_lr() << ", batch " << o.batch << "\n";
    const auto r = run_training(o, data, std::cout);
    std::cout << "mean training speed " << static_cast<long>(r.train_images_per_second) << " images/s; total "
              << static_cast<long>(r.seconds) << " s\n";
    print_comparison(std::cout, {r});
  } catch (const usage_error& e) {
    std::cerr << "sparsereg_train: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "sparsereg_train: error: " << out_of_memory_message(o) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "sparsereg_train: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
