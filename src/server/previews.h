// Live previews of running jobs: the latest preview image of each recent job, for
// GET /sdapi/v1/progress (current_image), GET /easel/v1/jobs/{id}/preview and the events
// (a JSON "preview" event for everyone, and the image itself as a binary WebSocket frame).
//
// Binary frame (ComfyUI's layout, with the job id added):
//   bytes 0..3    event type, uint32 big-endian: 1 = preview
//   bytes 4..7    image type, uint32 big-endian: 1 = JPEG, 2 = PNG
//   bytes 8..23   the job id, 16 ASCII characters
//   bytes 24..    the encoded image
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "io/image.h"

namespace easel::server {

struct Preview {
  std::string job_id;
  int64_t seq = 0;  // 1, 2, ... within the job
  int image = 0;    // images of the job finished before this one
  int step = 0, steps = 0;
  std::string method;  // "TAESD" or "Approx cheap" (A1111's live preview methods)
  int width = 0, height = 0;
  ImageFormat format = ImageFormat::Jpeg;
  std::string bytes;  // the encoded image
};


inline constexpr uint32_t kPreviewFrameEvent = 1;
inline constexpr size_t kPreviewFrameHeader = 24;
// The binary WebSocket frame above.
std::string preview_frame(const Preview& preview);

class PreviewStore {
 public:
  explicit PreviewStore(size_t keep_jobs = 16) : keep_jobs_(keep_jobs) {}

  void put(std::shared_ptr<const Preview> preview);  // replaces the job's previous preview
  std::shared_ptr<const Preview> latest(const std::string& job_id) const;

 private:
  const size_t keep_jobs_;  // jobs whose latest preview is kept, most recent last
  mutable std::mutex mutex_;
  std::deque<std::shared_ptr<const Preview>> latest_;
};

}  // namespace easel::server
