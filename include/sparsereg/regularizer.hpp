// regularizer<T>: the façade a training loop talks to.
//
//   sparsereg::regularizer<float> reg;
//   reg.add_parameter("conv1.weight", w1, g1);                    // non-owning views
//   reg.add_penalty("conv1.weight", sparsereg::sparse_group_lasso(1e-4, 1e-5, groups::filters()),
//                   sparsereg::schedule::linear_warmup(1000));
//   reg.add_penalty("fc.weight", sparsereg::squared_l2(5e-4));
//   loop: forward; backward; reg.add_gradients(); optimizer.step(); reg.prox_step(lr); log reg.value()
//   or, layer by layer inside the backward pass: reg.add_gradients(name); step of that parameter;
//   reg.prox_parameter(name, lr); ...; reg.end_step() (the same results; see add_gradients(name))
//
// Where each penalty goes (penalty traits, penalty.hpp):
//   smooth == true (squared_l2, KL penalties)  -> add_gradients(): g += s(t) * dR/dw
//   otherwise, has_prox (l1, group lasso, SGL)  -> prox_step(lr): w = prox_{lr * s(t) * R}(w), in place,
//                                                 then the step counter t advances
// (penalty_options::mode overrides this, e.g. squared_l2 as a prox = decoupled weight decay).
// s(t) is the penalty's schedule (schedule.hpp), applied as penalty.scaled(s(t)); the prox of
// step * (f R) equals the prox of (step * f) * R, so one scaled copy serves both.
//
// Call prox_step once per optimizer step even when only smooth penalties are attached: it is
// what advances the step counter the schedules read.
//
// Per-element steps (Adam-aware prox): set_element_steps(name, d) registers a buffer d (same shape
// as the weights) that the optimizer keeps up to date, e.g. d_i = 1 / (sqrt(v_hat_i) + eps); the
// prox then uses step_i = lr * d_i, the diagonal metric in which Adam took its step. Separable
// penalties support it exactly; group penalties through penalties/group_element_steps.hpp.
//
// Several prox penalties on one parameter are applied one after the other in registration order
// (a splitting, not the prox of their sum, unless they commute such as l1 then group lasso, whose
// composition *is* the SGL prox).
//
// Coupled groups (coupled.hpp): add_coupled(label, penalty, {{"conv1.weight", 0}, {"conv1.bias", 0},
// {"conv2.weight", 1}}) makes unit k the union of slice k of every listed parameter (one norm, one
// shrink); it is applied in prox_step like any prox penalty.
//
// Views are non-owning: the regularizer stores the views it was given and never copies tensor
// data. If a tensor is reallocated or reshaped (e.g. after compaction), call rebind(); rebind
// re-validates every attached penalty's grouping against the new shape (rebind({...}) takes
// several parameters at once, for coupled groups whose parts shrink together).
//
// values() lists each penalty's scaled value, report() each parameter's zero elements and, per
// group penalty, its groups and zero groups (recomputed from the weights: one read each), and
// save_state()/load_state() checkpoint the step counter and the penalties' own state.
// docs/integration.md shows the wiring for Eigen, libtorch, Adam, MPI and sharded tensors.
//
// A regularizer is used from one thread at a time (it keeps scratch space, and KL penalties keep
// state); the kernels it calls parallelize internally with OpenMP when it is enabled.
//
// Errors: std::invalid_argument naming the function and the parameter (unknown name, registered
// twice, shape mismatch, grouping that does not fit, gradient needed but not given, prox before
// any registration). load_state throws std::runtime_error for a malformed or truncated state
// and std::invalid_argument for a state saved from a different set of parameters or penalties.
#pragma once

#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint8_t, std::uint32_t, std::uint64_t
#include <map>          // std::map
#include <memory>       // std::unique_ptr
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <type_traits>  // std::is_floating_point_v, std::void_t
#include <utility>      // std::move
#include <vector>       // std::vector

#include "coupled.hpp"
#include "detail/runs.hpp"
#include "detail/sweep.hpp"
#include "errors.hpp"
#include "groups.hpp"
#include "penalties/group_element_steps.hpp"
#include "penalties/group_lasso.hpp"
#include "penalties/hard_threshold.hpp"
#include "penalties/l1.hpp"
#include "penalties/sparse_group_lasso.hpp"
#include "penalties/squared_l2.hpp"
#include "penalty.hpp"
#include "schedule.hpp"
#include "view.hpp"

namespace sparsereg {

/// How an attached penalty is applied.
enum class apply_as {
  automatic,  ///< smooth -> gradient; otherwise prox if it has one; otherwise (sub)gradient
  gradient,   ///< add_gradients(): g += s(t) * dR/dw (subgradient for non-smooth penalties)
  prox        ///< prox_step(lr): w = prox_{lr * s(t) * R}(w)
};

struct penalty_options {
  std::string label;                    ///< name in values()/report(); default: the penalty kind
  apply_as mode = apply_as::automatic;  ///< see apply_as
};

/// One line of values(): the scaled value of one attached penalty at the current step.
struct penalty_value {
  std::string parameter;  ///< parameter name (coupled penalties: the names joined by '+')
  std::string penalty;    ///< label
  double factor = 1.0;    ///< schedule factor s(t) at the current step
  double value = 0.0;     ///< s(t) * R(w)
};

/// Group counts of one group penalty on one parameter.
struct group_counts {
  std::string penalty;
  std::size_t groups = 0;
  std::size_t zero_groups = 0;
};

/// report(): structure of one parameter, recomputed from the current weights.
struct parameter_report {
  std::string name;
  std::size_t elements = 0;
  std::size_t zero_elements = 0;  ///< exactly 0 (NaN is not zero)
  std::vector<group_counts> group_penalties;
};

template <class T>
class regularizer;

namespace detail {

/// A registered parameter as the penalty holders see it.
template <class T>
struct parameter_slot {
  std::string name;
  view<T> weights;
  view<T> gradient;     // may be empty
  view<const T> steps;  // per-element steps; empty = scalar step
};

template <class T>
using slot_list = std::vector<const parameter_slot<T>*>;

/// Type-erased penalty attached to one parameter (or several, for coupled penalties).
template <class T>
class penalty_holder {
 public:
  virtual ~penalty_holder() = default;
  virtual std::unique_ptr<penalty_holder> clone() const = 0;
  virtual std::string kind() const = 0;
  virtual bool smooth() const noexcept = 0;
  virtual bool has_gradient() const noexcept = 0;
  virtual bool has_prox() const noexcept = 0;
  virtual bool has_element_steps() const noexcept = 0;
  /// Throws std::invalid_argument (naming `where`) if the penalty does not fit the parameters.
  virtual void validate(const char* where, const slot_list<T>& s) const = 0;
  virtual double value(const slot_list<T>& s, double factor) const = 0;
  /// Every check of add_gradient(s, factor) (gradient) or prox(s, step, factor) (prox) that does
  /// not depend on the weights' values, without writing anything: the regularizer runs it for
  /// all penalties of a step before the first one writes.
  virtual void check_step(const char* where, const slot_list<T>& s, bool prox, double step, double factor) const = 0;
  virtual void add_gradient(const slot_list<T>& s, double factor) const = 0;
  /// In-place prox with step*factor (per-element steps when the slots carry them).
  virtual prox_result prox(const slot_list<T>& s, double step, double factor) const = 0;
  /// Group penalties: groups and zero groups of the current weights ({0, 0} otherwise).
  virtual bool reports_groups() const noexcept = 0;
  virtual prox_result count_groups(const slot_list<T>& s) const = 0;
  virtual std::vector<std::uint8_t> save_state() const { return {}; }
  virtual void load_state(const std::vector<std::uint8_t>&) {}
  virtual bool has_state() const noexcept { return false; }
};

template <class P, class = void>
struct has_grouping_member : std::false_type {};
template <class P>
struct has_grouping_member<P, std::enable_if_t<std::is_same_v<std::decay_t<decltype(std::declval<const P&>().groups)>, grouping>>>
    : std::true_type {};

/// Penalties whose grouping is optional (kl_to_target::on_group_norms) expose it as
/// `const grouping* group_structure() const` (nullptr when they have none).
template <class P, class = void>
struct has_group_structure : std::false_type {};
template <class P>
struct has_group_structure<
    P, std::enable_if_t<std::is_same_v<decltype(std::declval<const P&>().group_structure()), const grouping*>>>
    : std::true_type {};

template <class P, class = void>
struct has_static_name : std::false_type {};
template <class P>
struct has_static_name<P, std::void_t<decltype(std::string(P::name))>> : std::true_type {};

template <class P, class = void>
struct has_state_members : std::false_type {};
template <class P>
struct has_state_members<P, std::void_t<decltype(std::vector<std::uint8_t>(std::declval<const P&>().save_state())),
                                        decltype(std::declval<P&>().load_state(std::declval<const std::vector<std::uint8_t>&>()))>>
    : std::true_type {};

template <class P, class = void>
struct has_fresh : std::false_type {};
template <class P>
struct has_fresh<P, std::enable_if_t<std::is_same_v<decltype(std::declval<const P&>().fresh()), P>>> : std::true_type {};

template <class P, class T, class = void>
struct has_group_element_steps : std::false_type {};
template <class P, class T>
struct has_group_element_steps<
    P, T,
    std::void_t<decltype(prox_per_element_steps(std::declval<const P&>(), std::declval<const view<const T>&>(),
                                                std::declval<const view<T>&>(), std::declval<const view<const T>&>()))>>
    : std::true_type {};

template <class P>
std::string penalty_kind() {
  if constexpr (has_static_name<P>::value) return std::string(P::name);
  else if constexpr (std::is_same_v<P, l1>) return "l1";
  else if constexpr (std::is_same_v<P, squared_l2>) return "squared_l2";
  else if constexpr (std::is_same_v<P, group_lasso>) return "group_lasso";
  else if constexpr (std::is_same_v<P, sparse_group_lasso>) return "sparse_group_lasso";
  else if constexpr (std::is_same_v<P, hard_threshold>) return "hard_threshold";
  else return "penalty";
}

/// Groups and zero groups of w under grouping g (a group is zero when all its elements are
/// exactly 0; NaN is not zero), and the zero elements. One read of w; for reports, not hot loops.
template <class T>
prox_result count_zero_groups(const char* where, const grouping& g, const view<const T>& w) {
  g.check(where, w);
  const std::size_t G = g.group_count(w);
  std::vector<std::size_t> nonzero(G, 0);
  std::size_t zeros = 0;
  if (w.size() != 0) {
    if (g.is_explicit()) {
      const auto& off = g.explicit_offsets();
      const auto& idx = g.explicit_indices();
      for (std::size_t k = 0; k < G; ++k)
        for (std::size_t i = off[k]; i < off[k + 1]; ++i) nonzero[k] += w.data()[w.offset_of_flat(idx[i])] != T(0);
      for (std::size_t k = 0; k < G; ++k) zeros += (off[k + 1] - off[k]) - nonzero[k];
    } else {
      const auto keys = row_major_key_strides(g.axis_mask(), w.extents(), w.rank());
      for_each_keyed_run(w, w, keys, [&](const T* p, std::ptrdiff_t sp, const T*, std::ptrdiff_t, std::size_t k0,
                                         std::size_t ks, std::size_t n) {
        if (ks == 0) {  // the run lies in one group
          std::size_t nz = 0;
          for (std::size_t j = 0; j < n; ++j) nz += p[static_cast<std::ptrdiff_t>(j) * sp] != T(0);
          nonzero[k0] += nz;
          zeros += n - nz;
        } else {
          for (std::size_t j = 0; j < n; ++j) {
            const bool nz = p[static_cast<std::ptrdiff_t>(j) * sp] != T(0);
            nonzero[k0 + j * ks] += nz;
            zeros += !nz;
          }
        }
      });
    }
  }
  prox_result r;
  r.groups = G;
  r.zero_elements = zeros;
  for (std::size_t k = 0; k < G; ++k) r.zero_groups += nonzero[k] == 0;
  return r;
}

/// The holder of an ordinary one-tensor penalty P.
template <class T, class P>
class penalty_model final : public penalty_holder<T> {
 public:
  explicit penalty_model(P p) : p_(std::move(p)) {}
  /// A copy with its own state: penalties whose copies share state (KL penalties, see
  /// kl_to_target.hpp) are copied through fresh() + load_state(save_state()).
  std::unique_ptr<penalty_holder<T>> clone() const override {
    if constexpr (has_state_members<P>::value && has_fresh<P>::value) {
      P q = p_.fresh();
      q.load_state(p_.save_state());
      return std::make_unique<penalty_model>(std::move(q));
    } else {
      return std::make_unique<penalty_model>(p_);
    }
  }
  std::string kind() const override { return penalty_kind<P>(); }
  bool smooth() const noexcept override { return P::smooth; }
  bool has_gradient() const noexcept override { return P::has_gradient; }
  bool has_prox() const noexcept override { return P::has_prox; }
  bool has_element_steps() const noexcept override {
    return P::has_prox && (P::separable || has_group_element_steps<P, T>::value);
  }

  void validate(const char* where, const slot_list<T>& s) const override {
    if constexpr (has_grouping_member<P>::value) {
      p_.groups.check(where, view<const T>(s[0]->weights));
    } else if constexpr (has_group_structure<P>::value) {
      if (const grouping* g = p_.group_structure()) g->check(where, view<const T>(s[0]->weights));
    } else {
      (void)where, (void)s;
    }
  }
  void check_step(const char* where, const slot_list<T>& s, bool prox, double step, double factor) const override {
    // p_.scaled(...) validates the scaled hyper-parameters (finite, >= 0) as the step will.
    if (!prox) {
      if (factor != 1.0 && factor != 0.0) (void)p_.scaled(factor);
      return;
    }
    const parameter_slot<T>& slot = *s[0];
    if (slot.steps.empty()) {
      if (factor != 1.0) (void)p_.scaled(factor);
      return;
    }
    if constexpr (P::has_prox && (P::separable || has_group_element_steps<P, T>::value)) {
      (void)p_.scaled(step * factor);
      require_valid_steps(where, slot.steps);
      require_disjoint(where, "weights", view<const T>(slot.weights), "steps", slot.steps);
    } else {
      throw_argument(where, "parameter '" + slot.name + "' has per-element steps but " + kind() +
                                " has no per-element-step prox");
    }
  }
  double value(const slot_list<T>& s, double factor) const override {
    const view<const T> w = s[0]->weights;
    return factor == 1.0 ? sparsereg::value(p_, w) : sparsereg::value(p_.scaled(factor), w);
  }
  void add_gradient(const slot_list<T>& s, double factor) const override {
    if constexpr (P::has_gradient) {
      const view<const T> w = s[0]->weights;
      if (factor == 1.0) sparsereg::add_gradient(p_, w, s[0]->gradient);
      else if (factor != 0.0) sparsereg::add_gradient(p_.scaled(factor), w, s[0]->gradient);
    } else {
      (void)s, (void)factor;
      throw_argument("regularizer::add_gradients", kind() + " has no gradient");
    }
  }
  prox_result prox(const slot_list<T>& s, double step, double factor) const override {
    if constexpr (P::has_prox) {
      const parameter_slot<T>& slot = *s[0];
      const view<const T> x = slot.weights;
      if (slot.steps.empty())
        return factor == 1.0 ? sparsereg::prox(p_, x, slot.weights, step)
                             : sparsereg::prox(p_.scaled(factor), x, slot.weights, step);
      // prox_{D, f R} with D = step * diag(d) equals prox_{diag(d), (step f) R}: fold step into lambda.
      // check_step has validated the steps (and registration their shape and memory) for this
      // step, so the prox does not read them once more to check them.
      const P scaled = p_.scaled(step * factor);
      if constexpr (P::separable) {
        return scaled.prox_of(x, slot.weights, slot.steps, detail::steps_already_checked);
      } else if constexpr (has_group_element_steps<P, T>::value) {
        return detail::prox_per_element_steps_checked_by_caller(scaled, x, slot.weights, slot.steps);
      } else {
        throw_argument("regularizer::prox_step", "parameter '" + slot.name + "' has per-element steps but " + kind() +
                                                     " has no per-element-step prox");
      }
    } else {
      (void)s, (void)step, (void)factor;
      throw_argument("regularizer::prox_step", kind() + " has no prox");
    }
  }
  bool reports_groups() const noexcept override { return has_grouping_member<P>::value; }
  prox_result count_groups(const slot_list<T>& s) const override {
    if constexpr (has_grouping_member<P>::value) return count_zero_groups<T>("regularizer::report", p_.groups, s[0]->weights);
    else return (void)s, prox_result{};
  }
  bool has_state() const noexcept override { return has_state_members<P>::value; }
  std::vector<std::uint8_t> save_state() const override {
    if constexpr (has_state_members<P>::value) return p_.save_state();
    else return {};
  }
  void load_state(const std::vector<std::uint8_t>& b) override {
    if constexpr (has_state_members<P>::value) p_.load_state(b);
    else (void)b;
  }

 private:
  P p_;
};

/// The holder of a coupled group penalty: one unit spans slices of several parameters.
template <class T>
class coupled_model final : public penalty_holder<T> {
 public:
  coupled_model(coupled_sparse_group_lasso p, std::vector<std::size_t> axes) : p_(std::move(p)), axes_(std::move(axes)) {}
  std::unique_ptr<penalty_holder<T>> clone() const override { return std::make_unique<coupled_model>(p_, axes_); }
  std::string kind() const override { return coupled_sparse_group_lasso::name; }
  bool smooth() const noexcept override { return false; }
  bool has_gradient() const noexcept override { return false; }
  bool has_prox() const noexcept override { return true; }
  bool has_element_steps() const noexcept override { return false; }
  void validate(const char* where, const slot_list<T>& s) const override { p_.check(where, parts(s)); }
  double value(const slot_list<T>& s, double factor) const override {
    return factor == 1.0 ? p_.value(parts(s)) : p_.scaled(factor).value(parts(s));
  }
  void check_step(const char* where, const slot_list<T>& s, bool prox, double, double factor) const override {
    if (!prox) throw_argument(where, "coupled_sparse_group_lasso has no gradient");
    for (const auto* p : s)
      if (!p->steps.empty())
        throw_argument(where, "parameter '" + p->name + "' has per-element steps, which coupled groups do not support");
    if (factor != 1.0) (void)p_.scaled(factor);
  }
  void add_gradient(const slot_list<T>&, double) const override {
    throw_argument("regularizer::add_gradients", "coupled_sparse_group_lasso has no gradient");
  }
  prox_result prox(const slot_list<T>& s, double step, double factor) const override {
    for (const auto* p : s)
      if (!p->steps.empty())
        throw_argument("regularizer::prox_step", "parameter '" + p->name +
                                                     "' has per-element steps, which coupled groups do not support");
    return factor == 1.0 ? p_.prox(parts(s), step) : p_.scaled(factor).prox(parts(s), step);
  }
  bool reports_groups() const noexcept override { return true; }
  prox_result count_groups(const slot_list<T>& s) const override { return p_.count_zero_units(parts(s)); }

 private:
  std::vector<coupled_part<T>> parts(const slot_list<T>& s) const {
    std::vector<coupled_part<T>> out(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) out[i] = {s[i]->weights, axes_[i]};
    return out;
  }
  coupled_sparse_group_lasso p_;
  std::vector<std::size_t> axes_;
};

/// Little-endian byte writer/reader for save_state / load_state.
struct state_writer {
  std::vector<std::uint8_t> bytes;
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void str(const std::string& s) {
    u64(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void blob(const std::vector<std::uint8_t>& b) {
    u64(b.size());
    bytes.insert(bytes.end(), b.begin(), b.end());
  }
};

struct state_reader {
  const std::vector<std::uint8_t>& bytes;
  std::size_t at = 0;
  void need(std::size_t n) const {
    if (bytes.size() - at < n)
      throw std::runtime_error("sparsereg::regularizer::load_state: state is truncated (needs " + std::to_string(n) +
                               " more bytes at offset " + std::to_string(at) + ", has " +
                               std::to_string(bytes.size() - at) + ")");
  }
  std::uint64_t u64() {
    need(8);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(bytes[at + static_cast<std::size_t>(i)]) << (8 * i);
    at += 8;
    return v;
  }
  std::string str() {
    const std::uint64_t n = u64();
    need(n);
    std::string s(bytes.begin() + static_cast<std::ptrdiff_t>(at), bytes.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
    return s;
  }
  std::vector<std::uint8_t> blob() {
    const std::uint64_t n = u64();
    need(n);
    std::vector<std::uint8_t> b(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                                bytes.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
    return b;
  }
};

template <class A>
std::string shape_text(const view<A>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.rank(); ++i) s += (i ? "x" : "") + std::to_string(v.extent(i));
  return s + "]";
}

template <class A, class B>
bool same_shape(const view<A>& a, const view<B>& b) noexcept {
  if (a.rank() != b.rank()) return false;
  for (std::size_t i = 0; i < a.rank(); ++i)
    if (a.extent(i) != b.extent(i)) return false;
  return true;
}

}  // namespace detail

template <class T>
class regularizer {
  static_assert(std::is_floating_point_v<T>, "sparsereg::regularizer<T>: T must be float or double");

 public:
  using value_type = T;
  static constexpr std::uint64_t state_version = 1;

  regularizer() = default;
  regularizer(regularizer&&) noexcept = default;
  regularizer& operator=(regularizer&&) noexcept = default;
  regularizer(const regularizer& o) : params_(o.params_), index_(o.index_), step_(o.step_) {
    entries_.reserve(o.entries_.size());
    for (const auto& e : o.entries_) entries_.push_back(e.copy());
  }
  regularizer& operator=(const regularizer& o) {
    if (this != &o) *this = regularizer(o);
    return *this;
  }

  /// Registers a parameter. `gradient` may be empty when only prox penalties will be attached;
  /// otherwise it must have the weights' shape and must not overlap them. Both are written, so
  /// neither may have elements that share memory (a stride 0; see docs/views.md).
  void add_parameter(const std::string& name, view<T> weights, view<T> gradient = {}) {
    const char* where = "regularizer::add_parameter";
    if (name.empty()) detail::throw_argument(where, "name must not be empty");
    if (index_.count(name)) detail::throw_argument(where, "parameter '" + name + "' is already registered");
    check_gradient(where, name, weights, gradient);
    index_.emplace(name, params_.size());
    params_.push_back({name, weights, gradient, {}});
  }
  /// Same, from any container with a view_adapter (Eigen, xtensor, std::vector, ...).
  template <class W>
  void add_parameter(const std::string& name, W& weights) {
    add_parameter(name, view<T>(detail::mutable_view_of(weights)), view<T>());
  }
  template <class W, class G>
  void add_parameter(const std::string& name, W& weights, G& gradient) {
    add_parameter(name, view<T>(detail::mutable_view_of(weights)), view<T>(detail::mutable_view_of(gradient)));
  }

  /// Per-element steps d for parameter `name` (same shape as its weights): prox_step(lr) then uses
  /// step_i = lr * d_i. An empty view returns to the scalar step.
  void set_element_steps(const std::string& name, view<const T> steps) {
    const char* where = "regularizer::set_element_steps";
    auto& p = params_[find(where, name)];
    if (!steps.empty() && !detail::same_shape(p.weights, steps))
      detail::throw_argument(where, "steps for '" + name + "' have shape " + detail::shape_text(steps) +
                                        " but the weights have shape " + detail::shape_text(p.weights));
    if (!steps.empty()) {
      detail::require_disjoint(where, ("weights of '" + name + "'").c_str(), view<const T>(p.weights),
                               ("steps of '" + name + "'").c_str(), steps);
      for (const auto& e : entries_)
        if (e.mode == apply_as::prox && e.touches(p_index(name)) && !e.holder->has_element_steps())
          detail::throw_argument(where, "penalty '" + e.label + "' on '" + name + "' has no per-element-step prox");
    }
    p.steps = steps;
  }

  /// Attaches a penalty to parameter `name`, scaled by schedule `s`.
  template <class Penalty>
  void add_penalty(const std::string& name, Penalty p, schedule s = schedule::constant()) {
    add_penalty(name, std::move(p), std::move(s), penalty_options{});
  }
  template <class Penalty>
  void add_penalty(const std::string& name, Penalty p, schedule s, penalty_options options) {
    static_assert(Penalty::has_gradient || Penalty::has_prox,
                  "sparsereg::regularizer::add_penalty: the penalty has neither a gradient nor a prox");
    const char* where = "regularizer::add_penalty";
    const std::size_t i = find(where, name);
    entry e;
    e.holder = std::make_unique<detail::penalty_model<T, Penalty>>(std::move(p));
    e.targets = {i};
    e.sched = std::move(s);
    attach(where, std::move(e), std::move(options));
  }

  /// One part of a coupled group: slice k along `axis` of parameter `parameter` belongs to unit k.
  struct coupled_member {
    std::string parameter;
    std::size_t axis = 0;
  };

  /// Attaches a coupled group penalty (coupled.hpp) whose units span slices of several
  /// registered parameters, e.g. {{"conv1.weight", 0}, {"conv1.bias", 0}, {"conv2.weight", 1}}.
  /// It is applied as a prox; `label` names it in values() and report().
  void add_coupled(const std::string& label, coupled_sparse_group_lasso p, const std::vector<coupled_member>& parts,
                   schedule s = schedule::constant()) {
    const char* where = "regularizer::add_coupled";
    if (parts.empty()) detail::throw_argument(where, "coupled group '" + label + "' has no parts");
    entry e;
    std::vector<std::size_t> axes;
    for (const auto& m : parts) {
      const std::size_t i = find(where, m.parameter);
      for (std::size_t t : e.targets)
        if (t == i) detail::throw_argument(where, "parameter '" + m.parameter + "' appears twice in coupled group '" + label + "'");
      e.targets.push_back(i);
      axes.push_back(m.axis);
    }
    e.holder = std::make_unique<detail::coupled_model<T>>(std::move(p), std::move(axes));
    e.sched = std::move(s);
    attach(where, std::move(e), penalty_options{label, apply_as::prox});
  }

  /// g += s(t) * dR/dw for every penalty applied as a gradient (smooth ones by default).
  void add_gradients() { add_gradients_of(all_parameters); }

  /// w = prox_{lr * s(t) * R}(w) in place for every penalty applied as a prox, then t += 1.
  void prox_step(double lr) {
    const char* where = "regularizer::prox_step";
    if (params_.empty()) detail::throw_argument(where, "no parameter is registered");
    prox_of(where, all_parameters, lr);
    ++step_;
  }

  /// Layer-by-layer form of a training step, for loops that update each parameter as soon as its
  /// gradient is ready (during the backward pass, while the weights and gradient are still in
  /// cache):
  ///   for each parameter p, when its gradient is complete:
  ///     reg.add_gradients(p); optimizer step of p; reg.prox_parameter(p, lr);
  ///   after the last one: reg.end_step();
  /// Each call applies the penalties attached to that parameter alone, at the current step t,
  /// exactly as add_gradients() / prox_step() would, so the results are the same bit for bit.
  /// A penalty that couples several parameters (add_coupled) cannot be applied one parameter at
  /// a time: both calls throw std::invalid_argument (before changing anything) when `name` has
  /// one attached in their mode; use add_gradients() / prox_step() for such models.
  void add_gradients(const std::string& name) {
    add_gradients_of(single_parameter("regularizer::add_gradients", name, apply_as::gradient));
  }
  /// See add_gradients(name); does not advance the step counter (end_step() does).
  void prox_parameter(const std::string& name, double lr) {
    const char* where = "regularizer::prox_parameter";
    prox_of(where, single_parameter(where, name, apply_as::prox), lr);
  }
  /// t += 1: ends a step done with add_gradients(name) / prox_parameter(name, lr).
  void end_step() noexcept { ++step_; }

  /// Sum of s(t) * R(w) over every attached penalty at the current step t.
  double value() const {
    double v = 0.0;
    for (const auto& e : entries_) v += e.holder->value(slots_of(e), e.sched(step_));
    return v;
  }

  /// One line per attached penalty, in registration order.
  std::vector<penalty_value> values() const {
    std::vector<penalty_value> out;
    out.reserve(entries_.size());
    for (const auto& e : entries_) {
      const double f = e.sched(step_);
      out.push_back({target_names(e), e.label, f, e.holder->value(slots_of(e), f)});
    }
    return out;
  }

  /// Per parameter (registration order): elements, zero elements, and for each group penalty
  /// touching it, its groups and zero groups. Recomputed from the current weights (one read each).
  std::vector<parameter_report> report() const {
    std::vector<parameter_report> out;
    out.reserve(params_.size());
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      parameter_report r;
      r.name = p.name;
      const view<const T> w = p.weights;
      r.elements = w.size();
      r.zero_elements = detail::count_zero_groups<T>("regularizer::report", groups::whole(), w).zero_elements;
      for (const auto& e : entries_) {
        if (!e.touches(i) || !e.holder->reports_groups()) continue;
        const prox_result c = e.holder->count_groups(slots_of(e));
        r.group_penalties.push_back({e.label, c.groups, c.zero_groups});
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  /// Result of each prox penalty's last prox (value at the output, zero elements/groups), in
  /// registration order of the prox penalties; empty results before the first prox_step.
  std::vector<prox_result> last_prox_results() const {
    std::vector<prox_result> out;
    for (const auto& e : entries_)
      if (e.mode == apply_as::prox) out.push_back(e.last);
    return out;
  }

  std::size_t step() const noexcept { return step_; }
  void set_step(std::size_t step) noexcept { step_ = step; }

  /// New memory for one parameter in rebind(list).
  struct binding {
    std::string name;
    view<T> weights;
    view<T> gradient = {};
    view<const T> steps = {};  ///< empty: keep the current steps if the shape is unchanged, else none
  };

  /// Points parameter `name` at new memory (e.g. after compaction changed its shape). Every
  /// penalty attached to it is re-validated against the new shape; on error nothing changes.
  /// Per-element steps are kept if the shape is unchanged and dropped otherwise (pass new ones
  /// with the 4-argument form or call set_element_steps).
  void rebind(const std::string& name, view<T> weights, view<T> gradient, view<const T> steps = {}) {
    rebind({binding{name, weights, gradient, steps}});
  }

  /// Rebinds several parameters at once, validating only the final state: needed when a
  /// coupled group spans them (shrinking one part alone would not fit the others).
  void rebind(const std::vector<binding>& list) {
    const char* where = "regularizer::rebind";
    std::vector<std::size_t> ids;
    for (const auto& b : list) {
      const std::size_t i = find(where, b.name);
      for (std::size_t j : ids)
        if (j == i) detail::throw_argument(where, "parameter '" + b.name + "' is listed twice");
      ids.push_back(i);
      check_gradient(where, b.name, b.weights, b.gradient);
      if (!b.steps.empty() && !detail::same_shape(b.weights, b.steps))
        detail::throw_argument(where, "steps for '" + b.name + "' have shape " + detail::shape_text(b.steps) +
                                          " but the weights have shape " + detail::shape_text(b.weights));
      if (!b.steps.empty())
        detail::require_disjoint(where, ("weights of '" + b.name + "'").c_str(), view<const T>(b.weights),
                                 ("steps of '" + b.name + "'").c_str(), b.steps);
    }
    const std::vector<detail::parameter_slot<T>> saved = params_;
    for (std::size_t k = 0; k < list.size(); ++k) {
      auto& p = params_[ids[k]];
      const view<const T> steps =
          !list[k].steps.empty() ? list[k].steps : (detail::same_shape(p.weights, list[k].weights) ? p.steps : view<const T>());
      p.weights = list[k].weights;
      p.gradient = list[k].gradient;
      p.steps = steps;
    }
    try {
      for (const auto& e : entries_) {
        bool touched = false;
        for (std::size_t i : ids) touched = touched || e.touches(i);
        if (!touched) continue;
        for (std::size_t t : e.targets) {
          const auto& p = params_[t];
          if (e.mode == apply_as::gradient && p.gradient.empty())
            detail::throw_argument(where, "penalty '" + e.label + "' needs a gradient but the gradient view of '" + p.name +
                                              "' is empty");
          if (e.mode == apply_as::prox && !p.steps.empty() && !e.holder->has_element_steps())
            detail::throw_argument(where, "penalty '" + e.label + "' has no per-element-step prox but '" + p.name +
                                              "' has steps");
        }
        try {
          e.holder->validate(where, slots_of(e));
        } catch (const std::invalid_argument& err) {
          std::string shapes;
          for (std::size_t t : e.targets)
            shapes += (shapes.empty() ? "" : ", ") + params_[t].name + " " + detail::shape_text(params_[t].weights);
          detail::throw_argument(where, "penalty '" + e.label + "' does not fit the new shapes (" + shapes + "): " + err.what());
        }
      }
    } catch (...) {
      params_ = saved;
      throw;
    }
  }

  /// Step counter and penalty state, versioned; parameter names, shapes and penalty labels are
  /// recorded so that load_state can refuse a state from a different configuration.
  std::vector<std::uint8_t> save_state() const {
    detail::state_writer w;
    w.bytes.insert(w.bytes.end(), magic, magic + 8);
    w.u64(state_version);
    w.u64(step_);
    w.u64(params_.size());
    for (const auto& p : params_) {
      w.str(p.name);
      w.u64(p.weights.rank());
      for (std::size_t a = 0; a < p.weights.rank(); ++a) w.u64(p.weights.extent(a));
    }
    w.u64(entries_.size());
    for (const auto& e : entries_) {
      w.str(e.label);
      w.u64(e.targets.size());
      for (std::size_t t : e.targets) w.u64(t);
      w.blob(e.holder->save_state());
    }
    return std::move(w.bytes);
  }

  /// Restores a save_state() result (all or nothing).
  void load_state(const std::vector<std::uint8_t>& bytes) {
    const char* where = "regularizer::load_state";
    detail::state_reader r{bytes};
    r.need(8);
    for (std::size_t k = 0; k < 8; ++k)
      if (bytes[k] != static_cast<std::uint8_t>(magic[k]))
        throw std::runtime_error("sparsereg::regularizer::load_state: not a sparsereg regularizer state (bad magic)");
    r.at = 8;
    const std::uint64_t version = r.u64();
    if (version != state_version)
      throw std::runtime_error("sparsereg::regularizer::load_state: unsupported state version " + std::to_string(version) +
                               " (this build reads version " + std::to_string(state_version) + ")");
    const std::uint64_t step = r.u64();
    const std::uint64_t np = r.u64();
    if (np != params_.size())
      detail::throw_argument(where, "state has " + std::to_string(np) + " parameters, this regularizer has " +
                                        std::to_string(params_.size()));
    for (const auto& p : params_) {
      const std::string name = r.str();
      if (name != p.name)
        detail::throw_argument(where, "state has parameter '" + name + "' where this regularizer has '" + p.name + "'");
      const std::uint64_t rank = r.u64();
      bool same = rank == p.weights.rank();
      std::string shape = "[";
      for (std::uint64_t a = 0; a < rank && a <= max_rank; ++a) {
        const std::uint64_t ext = r.u64();
        shape += (a ? "x" : "") + std::to_string(ext);
        same = same && ext == p.weights.extent(static_cast<std::size_t>(a));
      }
      if (!same)
        detail::throw_argument(where, "parameter '" + p.name + "' had shape " + shape + "] in the state but has " +
                                          detail::shape_text(p.weights) + " now");
    }
    const std::uint64_t ne = r.u64();
    if (ne != entries_.size())
      detail::throw_argument(where, "state has " + std::to_string(ne) + " penalties, this regularizer has " +
                                        std::to_string(entries_.size()));
    std::vector<std::vector<std::uint8_t>> blobs;
    for (const auto& e : entries_) {
      const std::string label = r.str();
      const std::uint64_t nt = r.u64();
      bool same = label == e.label && nt == e.targets.size();
      for (std::uint64_t k = 0; k < nt && k <= params_.size(); ++k)
        same = same && k < e.targets.size() && r.u64() == e.targets[static_cast<std::size_t>(k)];
      if (!same)
        detail::throw_argument(where, "state penalty '" + label + "' does not match penalty '" + e.label + "' on " +
                                          target_names(e));
      blobs.push_back(r.blob());
    }
    if (r.at != bytes.size())
      throw std::runtime_error("sparsereg::regularizer::load_state: " + std::to_string(bytes.size() - r.at) +
                               " trailing bytes after the state");
    // Penalty states are checked by the penalties themselves: load every blob into an
    // independent copy first, so a rejected blob leaves this regularizer unchanged; then load
    // into the penalties in place (keeping any state they share with the caller's copies).
    for (std::size_t k = 0; k < entries_.size(); ++k) {
      if (entries_[k].holder->has_state()) entries_[k].holder->clone()->load_state(blobs[k]);
      else if (!blobs[k].empty())
        detail::throw_argument(where, "state carries data for penalty '" + entries_[k].label + "', which has no state");
    }
    for (std::size_t k = 0; k < entries_.size(); ++k)
      if (entries_[k].holder->has_state()) entries_[k].holder->load_state(blobs[k]);
    step_ = static_cast<std::size_t>(step);
  }

  std::size_t parameter_count() const noexcept { return params_.size(); }
  std::size_t penalty_count() const noexcept { return entries_.size(); }
  bool has_parameter(const std::string& name) const { return index_.count(name) != 0; }
  view<T> weights(const std::string& name) const { return params_[find("regularizer::weights", name)].weights; }
  view<T> gradient(const std::string& name) const { return params_[find("regularizer::gradient", name)].gradient; }

 protected:
  struct entry {
    std::unique_ptr<detail::penalty_holder<T>> holder;
    std::vector<std::size_t> targets;
    schedule sched;
    std::string label;
    apply_as mode = apply_as::automatic;
    prox_result last;
    mutable detail::slot_list<T> slots;  // scratch for slots_of

    bool touches(std::size_t i) const {
      for (std::size_t t : targets)
        if (t == i) return true;
      return false;
    }
    entry copy() const {
      entry e;
      e.holder = holder->clone();
      e.targets = targets;
      e.sched = sched;
      e.label = label;
      e.mode = mode;
      e.last = last;
      return e;
    }
  };

  std::size_t find(const char* where, const std::string& name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) {
      std::string known;
      for (const auto& p : params_) known += (known.empty() ? "'" : ", '") + p.name + "'";
      detail::throw_argument(where, "no parameter named '" + name + "' (registered: " +
                                        (known.empty() ? std::string("none") : known) + ")");
    }
    return it->second;
  }
  std::size_t p_index(const std::string& name) const { return index_.at(name); }

  static constexpr std::size_t all_parameters = static_cast<std::size_t>(-1);

  /// Index of `name`, after checking that no penalty applied in `mode` couples it with others.
  std::size_t single_parameter(const char* where, const std::string& name, apply_as mode) const {
    const std::size_t i = find(where, name);
    for (const auto& e : entries_)
      if (e.mode == mode && e.targets.size() > 1 && e.touches(i))
        detail::throw_argument(where, "penalty '" + e.label + "' couples " + target_names(e) +
                                          "; apply it with " + (mode == apply_as::prox ? "prox_step" : "add_gradients") +
                                          "() for all parameters at once");
    return i;
  }
  /// Phase 1 of a step: the schedule factor of every penalty applied in `mode` to parameter
  /// `only` (all_parameters: every one) into factors_, and every check that does not depend on
  /// the weights' values (check_step), before anything is written; so a step that throws here
  /// has modified nothing. What can still throw in phase 2 depends on the values themselves (a
  /// KL penalty's first use on an all-zero tensor with a relative target scale). factors_ keeps
  /// its capacity, so steady-state steps do not allocate.
  void prepare_step(const char* where, std::size_t only, apply_as mode, double lr) {
    factors_.clear();
    for (const auto& e : entries_) {
      if (e.mode != mode || (only != all_parameters && !e.touches(only))) continue;
      const auto& s = slots_of(e);
      if (mode == apply_as::gradient)
        for (const auto* p : s)
          if (p->gradient.empty())
            detail::throw_argument(where, "penalty '" + e.label + "' needs a gradient but parameter '" + p->name +
                                              "' has none");
      try {
        const double f = e.sched(step_);
        e.holder->check_step(mode == apply_as::prox ? "prox" : "add_gradient", s, mode == apply_as::prox, lr, f);
        factors_.push_back(f);
      } catch (const std::invalid_argument& err) {
        detail::throw_argument(where, "penalty '" + e.label + "' on '" + target_names(e) + "' at step " +
                                          std::to_string(step_) + ": " + err.what());
      }
    }
  }
  /// Gradient penalties of parameter `only` (all_parameters: every one).
  void add_gradients_of(std::size_t only) {
    prepare_step("regularizer::add_gradients", only, apply_as::gradient, 0.0);
    std::size_t k = 0;
    for (const auto& e : entries_) {
      if (e.mode != apply_as::gradient || (only != all_parameters && !e.touches(only))) continue;
      e.holder->add_gradient(slots_of(e), factors_[k++]);
    }
  }
  /// Prox penalties of parameter `only` (all_parameters: every one), at the current step.
  void prox_of(const char* where, std::size_t only, double lr) {
    detail::require_nonnegative(where, "lr", lr);
    prepare_step(where, only, apply_as::prox, lr);
    std::size_t k = 0;
    for (auto& e : entries_) {
      if (e.mode != apply_as::prox || (only != all_parameters && !e.touches(only))) continue;
      e.last = e.holder->prox(slots_of(e), lr, factors_[k++]);
    }
  }

  /// The entry's parameters; refilled on each call (params_ may have grown) into a buffer the
  /// entry keeps, so a training step does not allocate.
  const detail::slot_list<T>& slots_of(const entry& e) const {
    e.slots.clear();
    for (std::size_t t : e.targets) e.slots.push_back(&params_[t]);
    return e.slots;
  }
  std::string target_names(const entry& e) const {
    std::string s;
    for (std::size_t t : e.targets) s += (s.empty() ? "" : "+") + params_[t].name;
    return s;
  }

  /// Resolves the mode, validates the penalty against its parameters and stores it.
  void attach(const char* where, entry e, penalty_options options) {
    auto& h = *e.holder;
    apply_as mode = options.mode;
    if (mode == apply_as::automatic) mode = h.smooth() ? apply_as::gradient : (h.has_prox() ? apply_as::prox : apply_as::gradient);
    if (mode == apply_as::gradient && !h.has_gradient())
      detail::throw_argument(where, h.kind() + " has no gradient; apply it as a prox");
    if (mode == apply_as::prox && !h.has_prox()) detail::throw_argument(where, h.kind() + " has no prox");
    e.mode = mode;
    e.label = options.label.empty() ? h.kind() : options.label;
    const auto& s = slots_of(e);
    for (const auto* p : s) {
      if (mode == apply_as::gradient && p->gradient.empty())
        detail::throw_argument(where, "penalty '" + e.label + "' is applied as a gradient but parameter '" + p->name +
                                          "' was registered without a gradient view");
      if (mode == apply_as::prox && !p->steps.empty() && !h.has_element_steps())
        detail::throw_argument(where, "parameter '" + p->name + "' has per-element steps but penalty '" + e.label +
                                          "' has no per-element-step prox");
    }
    try {
      h.validate(where, s);
    } catch (const std::invalid_argument& err) {
      detail::throw_argument(where, "penalty '" + e.label + "' does not fit " + target_names(e) + ": " + err.what());
    }
    entries_.push_back(std::move(e));
  }

  /// The weights (written by prox penalties) and the gradient (written by add_gradients) are
  /// outputs: neither may have elements sharing memory, and they must share no element.
  void check_gradient(const char* where, const std::string& name, const view<T>& w, const view<T>& g) const {
    detail::require_no_self_overlap(where, ("weights of '" + name + "'").c_str(), w);
    if (g.empty()) return;
    detail::require_no_self_overlap(where, ("gradient of '" + name + "'").c_str(), g);
    if (!detail::same_shape(w, g))
      detail::throw_argument(where, "gradient of '" + name + "' has shape " + detail::shape_text(g) +
                                        " but the weights have shape " + detail::shape_text(w));
    detail::require_disjoint(where, "weights", w, "gradient", g);
  }

  static constexpr char magic[9] = "SPRGREG\x01";

  std::vector<detail::parameter_slot<T>> params_;
  std::map<std::string, std::size_t> index_;
  std::vector<entry> entries_;
  std::vector<double> factors_;  // prepare_step's schedule factors, in entry order
  std::size_t step_ = 0;
};

}  // namespace sparsereg
