// Input and output of a prox must have the same element type.
#include <sparsereg/sparsereg.hpp>
#include <vector>

int main() {
  std::vector<float> x(4, 1.0f);
#ifdef SPARSEREG_SHOULD_FAIL
  std::vector<double> y(4);
#else
  std::vector<float> y(4);
#endif
  sparsereg::prox(sparsereg::l1(0.1), x, y, 0.5);
}
