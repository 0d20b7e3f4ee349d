// -DSPARSEREG_LANE_PREFETCH decides detail::lane_prefetch() at compile time, whatever the
// processor (where the run-time rule says yes, as on Intel and Zen 3, 0 must still say no).
#define SPARSEREG_LANE_PREFETCH 0
#include <catch2/catch.hpp>

#include <sparsereg/detail/sweep.hpp>

TEST_CASE("SPARSEREG_LANE_PREFETCH=0 turns the separable lanes' prefetch off", "[sweep][prefetch]") {
  CHECK_FALSE(sparsereg::detail::lane_prefetch());
}
