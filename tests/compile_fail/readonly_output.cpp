// A prox output must be writable: passing a const container is a compile error with a message.
#include <sparsereg/sparsereg.hpp>
#include <vector>

int main() {
  std::vector<float> x(8, 1.0f);
#ifdef SPARSEREG_SHOULD_FAIL
  const std::vector<float>& y = x;
#else
  std::vector<float>& y = x;
#endif
  sparsereg::prox(sparsereg::l1(0.1), x, y, 0.5);
}
