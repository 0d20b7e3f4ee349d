// Checkpoints and exported models.
//
// Both are one binary file, written atomically (temp file + fsync + rename, atomic_file.hpp) and
// ending in the crc32 of everything before it; a file whose checksum does not match is rejected
// with std::runtime_error before anything is touched. Numbers are stored in the machine's byte
// order (little-endian on every platform we build for); the magic string carries the version.
//
// Checkpoint ("SRCKPT01"): architecture, flatten gather, completed epochs, global step,
// regularizer state (sparsereg::regularizer::save_state: step counter and penalty state), RNG state (std::mt19937 text form), optimizer kind / hyper-parameters / step
// count / state buffers, every parameter, and a free-form settings string (the run's flags).
// Export ("SRMODEL1"): architecture, flatten gather and parameters only (inference).
#pragma once

#include "model.hpp"
#include "optimizer.hpp"

#include "common/atomic_file.hpp"

#include <cstring>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sparsereg_cnn {

class byte_writer {
 public:
  std::vector<std::uint8_t> bytes;
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
  void u32(std::uint32_t v) { raw(&v, sizeof v); }
  void u64(std::uint64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void str(const std::string& s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  void floats(const std::vector<float>& v) {
    u64(v.size());
    raw(v.data(), v.size() * sizeof(float));
  }
  void finish_with_crc() { u32(sparsereg_examples::crc32_of(bytes.data(), bytes.size())); }
};

class byte_reader {
 public:
  byte_reader(const std::vector<std::uint8_t>& b, std::string source) : bytes_(b), source_(std::move(source)) {}
  void raw(void* p, std::size_t n) {
    if (n > bytes_.size() - pos_) fail("truncated (wanted " + std::to_string(n) + " more bytes)");
    std::memcpy(p, bytes_.data() + pos_, n);
    pos_ += n;
  }
  std::uint32_t u32() {
    std::uint32_t v;
    raw(&v, sizeof v);
    return v;
  }
  std::uint64_t u64() {
    std::uint64_t v;
    raw(&v, sizeof v);
    return v;
  }
  double f64() {
    double v;
    raw(&v, sizeof v);
    return v;
  }
  std::string str() {
    const auto n = u64();
    if (n > bytes_.size() - pos_) fail("truncated string");
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  std::vector<float> floats() {
    const auto n = u64();
    if (n > (bytes_.size() - pos_) / sizeof(float)) fail("truncated tensor");
    std::vector<float> v(static_cast<std::size_t>(n));
    raw(v.data(), v.size() * sizeof(float));
    return v;
  }
  [[noreturn]] void fail(const std::string& why) const { throw std::runtime_error("'" + source_ + "': " + why); }
  std::size_t position() const { return pos_; }

 private:
  const std::vector<std::uint8_t>& bytes_;
  std::string source_;
  std::size_t pos_ = 0;
};

inline constexpr char checkpoint_magic[8] = {'S', 'R', 'C', 'K', 'P', 'T', '0', '1'};
inline constexpr char export_magic[8] = {'S', 'R', 'M', 'O', 'D', 'E', 'L', '1'};

/// Largest checkpoint or export read_checked accepts: far above any model the trainer builds (the
/// default model's checkpoint is about 4 MB), and small enough that a wrong path (a device, a huge
/// unrelated file) fails at once instead of filling the memory.
inline constexpr std::size_t max_model_file_bytes = std::size_t{1} << 32;

/// Bounds of the input size stored in a checkpoint or export, checked before the model is built:
/// each side as in IDX files (idx_max_side), and channels x height x width at most one such image.
inline constexpr std::uint64_t max_input_side = 4096;
inline constexpr std::uint64_t max_input_elements = max_input_side * max_input_side;

/// Reads `path` (a regular file of at most max_model_file_bytes), checks magic and crc32; returns
/// the bytes (crc excluded) positioned after magic.
inline std::vector<std::uint8_t> read_checked(const std::string& path, const char (&magic)[8], const char* what) {
  std::vector<std::uint8_t> b = sparsereg_examples::read_file(path, max_model_file_bytes);
  if (b.size() < 12 || std::memcmp(b.data(), magic, 8) != 0)
    throw std::runtime_error("'" + path + "' is not a sparsereg " + what + " file (bad magic or too short)");
  std::uint32_t stored;
  std::memcpy(&stored, b.data() + b.size() - 4, 4);
  const std::uint32_t actual = sparsereg_examples::crc32_of(b.data(), b.size() - 4);
  if (stored != actual) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "stored crc32 %08x, computed %08x", stored, actual);
    throw std::runtime_error("'" + path + "': " + what + " is corrupt (checksum mismatch: " + buf + ")");
  }
  b.resize(b.size() - 4);
  return b;
}

inline void write_model_part(byte_writer& w, model& m) {
  w.str(m.arch.str());
  w.u64(m.arch.in_channels);
  w.u64(m.arch.in_h);
  w.u64(m.arch.in_w);
  w.u64(m.flat.keep.size());
  for (auto f : m.flat.keep) w.u32(f);
  auto params = m.parameters();
  w.u64(params.size());
  for (auto& p : params) {
    w.str(p.name);
    w.floats(*p.value);
  }
}

inline model read_model_part(byte_reader& r) {
  const std::string arch = r.str();
  const auto c = r.u64(), h = r.u64(), wd = r.u64();
  if (c == 0 || h == 0 || wd == 0 || c > max_input_side || h > max_input_side || wd > max_input_side ||
      c * h * wd > max_input_elements)
    r.fail("implausible input size " + std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(wd) +
           " (channels x height x width; each at most " + std::to_string(max_input_side) + ", the product at most " +
           std::to_string(max_input_elements) + ")");
  const auto nk = r.u64();
  if (nk > (1u << 28)) r.fail("implausible flatten size");
  std::vector<std::uint32_t> keep(static_cast<std::size_t>(nk));
  for (auto& k : keep) k = r.u32();
  model m;
  try {
    m = model(architecture::parse(arch, static_cast<std::size_t>(c), static_cast<std::size_t>(h),
                                  static_cast<std::size_t>(wd)),
              keep);
  } catch (const std::invalid_argument& e) {
    r.fail(std::string("bad architecture: ") + e.what());
  }
  auto params = m.parameters();
  const auto np = r.u64();
  if (np != params.size()) r.fail("parameter count " + std::to_string(np) + " does not match the architecture");
  for (auto& p : params) {
    const std::string name = r.str();
    auto v = r.floats();
    if (name != p.name || v.size() != p.value->size())
      r.fail("parameter '" + name + "' (" + std::to_string(v.size()) + " values) does not match '" + p.name + "' (" +
             std::to_string(p.value->size()) + ")");
    *p.value = std::move(v);
  }
  return m;
}

struct training_state {
  model net;
  optimizer opt;
  std::mt19937 rng;
  std::uint64_t epochs_done = 0;
  std::uint64_t global_step = 0;
  std::uint64_t reg_step = 0;
  std::string settings;  // the flags that shaped the run (checked on --resume)
  std::vector<std::uint8_t> reg_state;  // sparsereg::regularizer::save_state()
};

inline void save_checkpoint(const std::string& path, training_state& s) {
  byte_writer w;
  w.raw(checkpoint_magic, 8);
  write_model_part(w, s.net);
  w.u64(s.epochs_done);
  w.u64(s.global_step);
  w.u64(s.reg_step);
  std::ostringstream rs;
  rs << s.rng;
  w.str(rs.str());
  w.str(s.settings);
  w.u64(s.reg_state.size());
  w.raw(s.reg_state.data(), s.reg_state.size());
  w.u32(s.opt.kind == optimizer_kind::sgd ? 0u : 1u);
  w.f64(s.opt.momentum);
  w.f64(s.opt.beta1);
  w.f64(s.opt.beta2);
  w.f64(s.opt.eps);
  w.u64(s.opt.steps);
  w.u64(s.opt.state.size());
  for (auto& per : s.opt.state) {
    w.u64(per.size());
    for (auto& b : per) w.floats(b);
  }
  w.finish_with_crc();
  sparsereg_examples::write_file_atomically(path, w.bytes.data(), w.bytes.size());
}

inline training_state load_checkpoint(const std::string& path) {
  const auto bytes = read_checked(path, checkpoint_magic, "checkpoint");
  byte_reader r(bytes, path);
  char magic[8];
  r.raw(magic, 8);
  training_state s;
  s.net = read_model_part(r);
  s.epochs_done = r.u64();
  s.global_step = r.u64();
  s.reg_step = r.u64();
  std::istringstream rs(r.str());
  rs >> s.rng;
  if (!rs) r.fail("bad RNG state");
  s.settings = r.str();
  {
    const auto n = r.u64();
    if (n > bytes.size()) r.fail("truncated regularizer state");
    s.reg_state.resize(static_cast<std::size_t>(n));
    r.raw(s.reg_state.data(), s.reg_state.size());
  }
  const auto kind = r.u32();
  if (kind > 1) r.fail("unknown optimizer kind " + std::to_string(kind));
  s.opt = optimizer(kind == 0 ? optimizer_kind::sgd : optimizer_kind::adam);
  s.opt.momentum = r.f64();
  s.opt.beta1 = r.f64();
  s.opt.beta2 = r.f64();
  s.opt.eps = r.f64();
  s.opt.steps = r.u64();
  const auto np = r.u64();
  auto params = s.net.parameters();
  if (np != 0 && np != params.size()) r.fail("optimizer state has " + std::to_string(np) + " parameters");
  s.opt.state.resize(static_cast<std::size_t>(np));
  for (std::size_t p = 0; p < s.opt.state.size(); ++p) {
    const auto nb = r.u64();
    if (nb != s.opt.buffers_per_parameter()) r.fail("optimizer state has the wrong number of buffers");
    s.opt.state[p].resize(static_cast<std::size_t>(nb));
    for (auto& b : s.opt.state[p]) {
      b = r.floats();
      if (b.size() != params[p].value->size()) r.fail("optimizer state size mismatch for " + params[p].name);
    }
  }
  if (r.position() != bytes.size()) r.fail("trailing bytes");
  return s;
}

inline void export_model(const std::string& path, model& m) {
  byte_writer w;
  w.raw(export_magic, 8);
  write_model_part(w, m);
  w.finish_with_crc();
  sparsereg_examples::write_file_atomically(path, w.bytes.data(), w.bytes.size());
}

inline model load_exported_model(const std::string& path) {
  const auto bytes = read_checked(path, export_magic, "exported model");
  byte_reader r(bytes, path);
  char magic[8];
  r.raw(magic, 8);
  model m = read_model_part(r);
  if (r.position() != bytes.size()) r.fail("trailing bytes");
  return m;
}

}  // namespace sparsereg_cnn
