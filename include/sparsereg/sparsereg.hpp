// Umbrella header: views, groupings and every penalty. Adapters for third-party containers are
// separate (sparsereg/adapters/*.hpp) so this header pulls in only the standard library.
#pragma once

#include "errors.hpp"
#include "groups.hpp"
#include "penalties/group_lasso.hpp"
#include "penalties/hard_threshold.hpp"
#include "penalties/kl_gaussian.hpp"
#include "penalties/kl_to_target.hpp"
#include "penalties/l1.hpp"
#include "penalties/sparse_group_lasso.hpp"
#include "penalties/squared_l2.hpp"
#include "penalty.hpp"
#include "regularizer.hpp"
#include "targets.hpp"
#include "view.hpp"
