#include "cli/progress_bar.h"

#include <unistd.h>

namespace easel {

ProgressBar::ProgressBar(std::FILE* out)
    : out_(out), enabled_(::isatty(::fileno(out)) != 0), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(const Progress& p) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (p.stage != stage_) {
    if (drawn_) std::fputc('\n', out_);
    stage_ = std::string(p.stage);
    start_ = now;
  } else if (p.done < p.total && now - last_draw_ < std::chrono::milliseconds(50)) {
    return;  // redraw at most 20 times a second
  }
  last_draw_ = now;
  constexpr int kWidth = 30;
  const int filled = p.total > 0 ? static_cast<int>(kWidth * p.done / p.total) : 0;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '-');
  std::fprintf(out_, "\r%-10s [%s] %lld/%lld %.1f s", stage_.c_str(), bar.c_str(), static_cast<long long>(p.done),
               static_cast<long long>(p.total), seconds);
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) std::fputc('\n', out_);
  drawn_ = false;
  stage_.clear();
}

}  // namespace easel
