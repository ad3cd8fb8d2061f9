#include "server/previews.h"

#include <algorithm>

namespace easel::server {

namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(char((v >> shift) & 0xff));
}

uint32_t image_type(ImageFormat format) {  // ComfyUI's numbering
  return format == ImageFormat::Png ? 2 : format == ImageFormat::Jpeg ? 1 : 3;
}

}  // namespace

std::string preview_frame(const Preview& preview) {
  std::string out;
  out.reserve(kPreviewFrameHeader + preview.bytes.size());
  put_u32(out, kPreviewFrameEvent);
  put_u32(out, image_type(preview.format));
  std::string id = preview.job_id.substr(0, 16);
  id.resize(16, ' ');
  out += id;
  out += preview.bytes;
  return out;
}

void PreviewStore::put(std::shared_ptr<const Preview> p) {
  std::lock_guard lock(mutex_);
  std::erase_if(latest_, [&](const auto& q) { return q->job_id == p->job_id; });
  latest_.push_back(std::move(p));
  while (latest_.size() > keep_jobs_) latest_.pop_front();
}

std::shared_ptr<const Preview> PreviewStore::latest(const std::string& job_id) const {
  std::lock_guard lock(mutex_);
  for (const auto& p : latest_)
    if (p->job_id == job_id) return p;
  return nullptr;
}

}  // namespace easel::server
