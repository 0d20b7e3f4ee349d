// The "write your own adapter" example of docs/views.md, compiled and checked: a user's container
// with a row pitch becomes usable by every sparsereg function through one view_adapter
// specialisation, and gives exactly the results of the equivalent explicit-stride view.
#include <catch2/catch.hpp>
#include <cstddef>
#include <sparsereg/sparsereg.hpp>
#include <vector>

// --- docs/views.md example begins ---
namespace mylib {
/// n images of h x w pixels, each image row padded to `pitch` pixels (pitch >= w).
struct image_stack {
  std::size_t n, h, w, pitch;
  std::vector<float> pixels;  // n * h * pitch
  image_stack(std::size_t n_, std::size_t h_, std::size_t w_, std::size_t pitch_)
      : n(n_), h(h_), w(w_), pitch(pitch_), pixels(n_ * h_ * pitch_, 0.0f) {}
  float& at(std::size_t k, std::size_t i, std::size_t j) { return pixels[(k * h + i) * pitch + j]; }
};
}  // namespace mylib

namespace sparsereg {
template <>
struct view_adapter<mylib::image_stack> {
  // Strides are in elements, outermost axis first; the padding is simply never visited.
  static view<float> make(mylib::image_stack& s) {
    return view<float>(s.pixels.data(), {s.n, s.h, s.w}, {std::ptrdiff_t(s.h * s.pitch), std::ptrdiff_t(s.pitch), 1});
  }
  static view<const float> make(const mylib::image_stack& s) {
    return view<const float>(s.pixels.data(), {s.n, s.h, s.w},
                             {std::ptrdiff_t(s.h * s.pitch), std::ptrdiff_t(s.pitch), 1});
  }
};
}  // namespace sparsereg

// Usage: one group per image.
//   const sparsereg::group_lasso per_image(0.1, sparsereg::grouping::by_axes({0}, 3));
//   sparsereg::prox(per_image, stack, stack, step);   // in place
// --- docs/views.md example ends ---

TEST_CASE("a user-written view_adapter works with every operation", "[adapters][custom]") {
  mylib::image_stack stack(4, 3, 5, 8);
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 5; ++j)
        stack.at(k, i, j) = (static_cast<float>((k * 7 + i * 3 + j) % 11) * 0.1f - 0.4f) * (k == 2 ? 0.01f : 1.0f);
  // Padding holds a sentinel that must survive.
  for (std::size_t r = 0; r < 4 * 3; ++r)
    for (std::size_t j = 5; j < 8; ++j) stack.pixels[r * 8 + j] = 99.0f;

  // The reference: the same logical tensor, dense row-major.
  std::vector<float> dense;
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 5; ++j) dense.push_back(stack.at(k, i, j));
  const sparsereg::view<float> ref(dense.data(), {4, 3, 5});

  const sparsereg::sparse_group_lasso pen(0.1, 0.02, sparsereg::grouping::by_axes({0}, 3));
  const mylib::image_stack& const_stack = stack;
  CHECK(sparsereg::value(pen, const_stack) == sparsereg::value(pen, ref));

  std::vector<float> g(60, 0.5f), g_ref(60, 0.5f);
  sparsereg::add_gradient(pen, stack, sparsereg::view<float>(g.data(), {4, 3, 5}));
  sparsereg::add_gradient(pen, ref, sparsereg::view<float>(g_ref.data(), {4, 3, 5}));
  CHECK(g == g_ref);

  const auto r = sparsereg::prox(pen, stack, stack, 1.0);
  const auto r_ref = sparsereg::prox(pen, ref, ref, 1.0);
  CHECK(r.zero_groups == r_ref.zero_groups);
  CHECK(r.zero_groups == 1);  // the faint image 2 is removed
  CHECK(r.value == r_ref.value);
  std::size_t mismatches = 0, padding_changed = 0;
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t i = 0; i < 3; ++i) {
      for (std::size_t j = 0; j < 5; ++j) mismatches += stack.at(k, i, j) != dense[(k * 3 + i) * 5 + j];
      for (std::size_t j = 5; j < 8; ++j) padding_changed += stack.at(k, i, j) != 99.0f;
    }
  CHECK(mismatches == 0);
  CHECK(padding_changed == 0);
}
