// What the routes control of the image generation runner (A1111's options and endpoints): the
// checkpoint new jobs use, unloading it, the live preview period, and where images are written.
// The routes see this, not the runner: they need no pipeline header, and the runner behind it can
// change (another family, another device) without a route file changing.
#pragma once

#include <filesystem>
#include <string>

#include "core/error.h"

namespace easel::server {

class ImageRunnerControl {
 public:
  virtual ~ImageRunnerControl() = default;
  // The checkpoint new jobs use unless they name one (A1111's sd_model_checkpoint option).
  virtual std::string current_checkpoint() const = 0;
  virtual Status select_checkpoint(const std::string& key) = 0;  // error when the catalog has no such model
  virtual void unload() = 0;                                      // frees the loaded model
  // Live preview period in steps (A1111's show_progress_every_n_steps; 0: off), from the next job.
  virtual void set_preview_every(int steps) = 0;
  virtual int preview_every() const = 0;
  virtual const std::filesystem::path& outputs_dir() const = 0;
};

}  // namespace easel::server
