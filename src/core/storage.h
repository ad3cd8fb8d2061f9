// Storage: a block of bytes a tensor views. Kinds: host memory from a caching allocator
// (activations), a read-only region of a memory-mapped checkpoint (weights, zero copy), and,
// later, device memory. The subclass keeps whatever owns the bytes alive.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace easel {

enum class DeviceKind : uint8_t { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;
  bool is_cpu() const { return kind == DeviceKind::CPU; }
  bool operator==(const Device&) const = default;
  std::string str() const { return kind == DeviceKind::CPU ? "cpu" : "cuda:" + std::to_string(index); }
};

class Storage {
 public:
  Storage(std::byte* data, size_t size, Device device, bool read_only)
      : data_(data), size_(size), device_(device), read_only_(read_only) {}
  virtual ~Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  Device device() const { return device_; }
  // Weights mapped from a checkpoint are read-only: ops refuse to write into them.
  bool read_only() const { return read_only_; }

 private:
  std::byte* data_;
  size_t size_;
  Device device_;
  bool read_only_;
};

// Storage over memory that someone else keeps alive through `owner` (an mmapped file, a vector).
class BorrowedStorage final : public Storage {
 public:
  BorrowedStorage(std::shared_ptr<const void> owner, std::byte* data, size_t size, Device device, bool read_only)
      : Storage(data, size, device, read_only), owner_(std::move(owner)) {}

 private:
  std::shared_ptr<const void> owner_;
};

}  // namespace easel
