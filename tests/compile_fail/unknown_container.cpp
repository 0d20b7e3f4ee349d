// A container no adapter knows is a compile error naming the fix.
#include <sparsereg/sparsereg.hpp>
#include <vector>

struct my_tensor {
  float* p;
};

int main() {
  std::vector<float> x(8, 1.0f);
#ifdef SPARSEREG_SHOULD_FAIL
  my_tensor t{x.data()};
  return static_cast<int>(sparsereg::value(sparsereg::l1(0.1), t));
#else
  return static_cast<int>(sparsereg::value(sparsereg::l1(0.1), x));
#endif
}
