// The l0 penalty has no gradient: asking for one is a compile error.
#include <sparsereg/sparsereg.hpp>
#include <vector>

int main() {
  std::vector<double> w(4, 1.0), g(4, 0.0);
#ifdef SPARSEREG_SHOULD_FAIL
  sparsereg::add_gradient(sparsereg::hard_threshold(0.1), w, g);
#else
  sparsereg::add_gradient(sparsereg::l1(0.1), w, g);
#endif
}
