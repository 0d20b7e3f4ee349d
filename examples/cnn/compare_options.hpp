// Command-line options of sparsereg_compare: the common flags plus its own, and the quick or
// --full schedule's defaults for every flag not given (see compare.cpp's --help text).
#pragma once

#include "trainer.hpp"

#include <string>

namespace sparsereg_cnn {

struct compare_options {
  options o;
  bool help = false, full = false;
  std::string only;             // empty: all three runs
  double var_lambda_group = 0;  // lambda_group of the sgl+var run
};

/// Parses sparsereg_compare's argv and fills in the defaults of the quick (or --full) schedule for
/// the flags not given; an explicit value, 0 included, is kept. Throws usage_error. With --help
/// the options are returned as parsed, unchecked.
inline compare_options parse_compare_options(int argc, char** argv) {
  compare_options c;
  options& o = c.o;
  // Unset markers; the defaults below depend on --full.
  bool epochs_given = false;
  o.lambda_group = -1;
  o.lambda_l1 = -1;
  o.var_weight = -1;
  c.var_lambda_group = -1;
  constexpr std::size_t finetune_unset = static_cast<std::size_t>(-1);
  o.finetune_epochs = finetune_unset;
  o.lr_schedule.clear();  // unset: constant for the quick schedule, cosine for --full
  parse_options(argc, argv, o,
                {{"--help", {false, [&](const std::string&) { c.help = true; }}},
                 {"--full", {false, [&](const std::string&) { c.full = true; }}},
                 {"--only", {true, [&](const std::string& v) { c.only = v; }}},
                 {"--epochs",
                  {true,
                   [&](const std::string& v) {
                     o.epochs = detail::parse_uint("--epochs", v);
                     epochs_given = true;
                   }}},
                 {"--var-lambda-group",
                  {true, [&](const std::string& v) {
                     c.var_lambda_group = detail::parse_double("--var-lambda-group", v);
                   }}}});
  if (c.help) return c;
  if (!c.only.empty() && c.only != "baseline" && c.only != "sgl" && c.only != "sgl+var")
    throw usage_error("--only must be baseline, sgl or sgl+var, got '" + c.only + "'");
  if (!o.save.empty() || !o.resume.empty() || !o.export_path.empty())
    throw usage_error("--save, --resume and --export are sparsereg_train flags");
  const bool full = c.full;
  // Quick-schedule defaults (tuned; see the report in compare.cpp's header comment).
  if (!epochs_given) o.epochs = full ? 30 : 3;
  if (o.finetune_epochs == finetune_unset) o.finetune_epochs = full ? 2 : 1;
  if (o.lr_schedule.empty()) o.lr_schedule = full ? "cosine" : "constant";
  if (full && o.finetune_lr < 0) o.finetune_lr = 0.01;
  if (o.lambda_group < 0) o.lambda_group = full ? 0.00056 : 0.0015;
  if (o.lambda_l1 < 0) o.lambda_l1 = 0.000005;
  if (o.var_weight < 0) o.var_weight = 0.002;
  if (c.var_lambda_group < 0) c.var_lambda_group = full ? 0.00075 : 0.002;
  check_options(o);
  return c;
}

}  // namespace sparsereg_cnn
