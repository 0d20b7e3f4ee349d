// Downstream use of the Eigen backend target: a column-major Eigen matrix as a sparsereg view.
#include <sparsereg/adapters/eigen.hpp>
#include <sparsereg/sparsereg.hpp>

#include <Eigen/Core>
#include <cstdio>

int main() {
  Eigen::MatrixXd m(2, 3);
  m << 0.01, -0.02, 0.01, 1.0, 2.0, -2.0;
  // Rows are output neurons: the first one is pruned whatever the storage order.
  sparsereg::prox(sparsereg::group_lasso(0.1, sparsereg::groups::output_neurons()), m, m, 0.5);
  const bool ok = m.row(0).isZero(0.0) && m(1, 1) != 0.0;
  std::printf("consumer_eigen: %s\n", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
