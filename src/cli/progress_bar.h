// A one-line progress bar on stderr for long work ("decoder [#######-----] 12/20 1.3 s").
// Draws only when stderr is a terminal, so logs and pipes stay clean.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "core/context.h"

namespace easel {

class ProgressBar {
 public:
  explicit ProgressBar(std::FILE* out = stderr);
  ~ProgressBar() { finish(); }
  void update(const Progress& p);
  void finish();  // ends the line, if one was drawn

 private:
  std::FILE* out_;
  bool enabled_;
  bool drawn_ = false;
  std::string stage_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace easel
