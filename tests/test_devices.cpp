// Devices: the Runtime's list of devices and the contexts it hands out, the op front ends' refusal
// of an operand on another device, the transfer ops, and weights loaded through a context (zero
// copy on the CPU: views of the mapped file). A tensor "on cuda:0" here is host bytes labelled
// with that device: the front end must refuse it before any backend sees it.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/runtime.h"
#include "io/checkpoint.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "models/vae_kl.h"
#include "models/weights.h"
#include "ops/ops.h"
#include "test_data.h"

namespace easel {
namespace {

const Device kCuda0{DeviceKind::CUDA, 0};

// Host bytes (a copy of `values`) labelled as memory of `device`.
Tensor on_device(Device device, const std::vector<float>& values, const Shape& shape) {
  auto bytes = std::make_shared<std::vector<float>>(values);
  auto storage = std::make_shared<BorrowedStorage>(bytes, reinterpret_cast<std::byte*>(bytes->data()),
                                                   bytes->size() * sizeof(float), device, false);
  return Tensor::from_storage(std::move(storage), 0, shape, DType::F32);
}

// --- the Runtime -------------------------------------------------------------------------------------

TEST(Runtime, ListsTheCpuDevice) {
  auto rt = Runtime::create().value();
  ASSERT_EQ(rt->devices().size(), 1u);
  EXPECT_EQ(rt->devices()[0], Device{});
  EXPECT_EQ(rt->devices()[0].str(), "cpu");
  EXPECT_TRUE(rt->has(Device{}));
  EXPECT_FALSE(rt->has(kCuda0));
  EXPECT_EQ(rt->device().backend().device(), Device{});
  EXPECT_STREQ(rt->device().backend().name(), "cpu");
}

TEST(Runtime, RefusesDevicesItCannotMake) {
  auto error_of = [](std::vector<std::string> devices) {
    auto rt = Runtime::create({.devices = std::move(devices)});
    return rt.ok() ? std::string("(no error)") : rt.error().message();
  };
  EXPECT_NE(error_of({"cuda"}).find("'cuda:0' needs the CUDA backend"), std::string::npos) << error_of({"cuda"});
  EXPECT_NE(error_of({"cuda:1"}).find("'cuda:1' needs the CUDA backend"), std::string::npos);
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""})
    EXPECT_NE(error_of({bad}).find("unknown device"), std::string::npos) << bad << ": " << error_of({bad});
  EXPECT_NE(error_of({"cpu", "cpu"}).find("listed twice"), std::string::npos);
  EXPECT_NE(error_of({}).find("no devices"), std::string::npos);
  EXPECT_FALSE(Runtime::create({.threads = -1}).ok());
}

TEST(Runtime, ContextsOfOneDeviceShareItsPoolAndAllocator) {
  auto rt = Runtime::create({.threads = 2}).value();
  Context a = rt->context();
  Context b = rt->context();
  EXPECT_EQ(&a.backend(), &b.backend());
  EXPECT_EQ(&a.pool(), &b.pool());
  EXPECT_EQ(&a.allocator(), &b.allocator());
  EXPECT_EQ(&a.pool(), &rt->device().pool());
  EXPECT_EQ(a.threads(), 2);
  // Each is a job's own: what one sets, the other does not see.
  int calls = 0;
  a.on_progress = [&](const Progress&) { ++calls; };
  b.progress("step", 1, 2);
  EXPECT_EQ(calls, 0);
  a.progress("step", 1, 2);
  EXPECT_EQ(calls, 1);
  // Memory from either comes from the one allocator.
  const size_t before = a.allocator().stats().in_use;
  Tensor t = b.empty({1024});
  EXPECT_GE(a.allocator().stats().in_use, before + t.nbytes());
}

TEST(Runtime, ContextOfAMissingDeviceIsAClearError) {
  auto rt = Runtime::create().value();
  try {
    (void)rt->context(kCuda0);
    FAIL() << "no error";
  } catch (const Exception& e) {
    EXPECT_NE(std::string(e.what()).find("no device cuda:0 (it has cpu)"), std::string::npos) << e.what();
  }
}

// --- op front ends refuse operands on another device ---------------------------------------------

// A CPU backend that counts the calls that reach it, so a test can show a refused op reached none.
class CountingBackend final : public Backend {
 public:
  CountingBackend() : Backend(Device{}) {}
  const char* name() const override { return "counting"; }
  int calls = 0;

  Tensor upload(Context& ctx, const Tensor& host) override { return ++calls, cpu.upload(ctx, host); }
  Tensor download(Context& ctx, const Tensor& x) override { return ++calls, cpu.download(ctx, x); }
  Tensor adopt_weight(Context& ctx, const Tensor& host) override { return ++calls, cpu.adopt_weight(ctx, host); }
  void linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) override {
    ++calls, cpu.linear(ctx, x, w, bias, out);
  }
  void matmul(Context& ctx, const Tensor& a, const Tensor& b, float alpha, Tensor& out) override {
    ++calls, cpu.matmul(ctx, a, b, alpha, out);
  }
  void conv2d(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
              Tensor& out) override {
    ++calls, cpu.conv2d(ctx, x, w, bias, p, out);
  }
  void group_norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, int groups, float eps,
                  Tensor& out) override {
    ++calls, cpu.group_norm(ctx, x, w, b, groups, eps, out);
  }
  void layer_norm(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& out) override {
    ++calls, cpu.layer_norm(ctx, x, w, b, eps, out);
  }
  void rms_norm(Context& ctx, const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    ++calls, cpu.rms_norm(ctx, x, w, eps, out);
  }
  void softmax(Context& ctx, const Tensor& x, Tensor& out) override { ++calls, cpu.softmax(ctx, x, out); }
  void attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                 const AttentionParams& p, Tensor& out) override {
    ++calls, cpu.attention(ctx, q, k, v, mask, p, out);
  }
  void unary(Context& ctx, UnaryOp op, const Tensor& x, float a, float b, Tensor& out) override {
    ++calls, cpu.unary(ctx, op, x, a, b, out);
  }
  void binary(Context& ctx, BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override {
    ++calls, cpu.binary(ctx, op, a, b, out);
  }
  void upsample_nearest2d(Context& ctx, const Tensor& x, Tensor& out) override {
    ++calls, cpu.upsample_nearest2d(ctx, x, out);
  }
  void copy(Context& ctx, const Tensor& src, Tensor& dst) override { ++calls, cpu.copy(ctx, src, dst); }
  void fill(Context& ctx, Tensor& dst, double value) override { ++calls, cpu.fill(ctx, dst, value); }

 private:
  CpuBackend cpu;
};

class DeviceChecks : public ::testing::Test {
 protected:
  CountingBackend backend;
  ThreadPool pool{1};
  HostAllocator allocator;
  Context ctx{backend, pool, allocator};

  Tensor host(const Shape& shape, float value = 0.5f) {
    return Tensor::from_vector(std::vector<float>(size_t(shape.numel()), value), shape);
  }
  Tensor cuda(const Shape& shape, float value = 0.5f) {
    return on_device(kCuda0, std::vector<float>(size_t(shape.numel()), value), shape);
  }

  // `op` with one operand on cuda:0 must throw naming the op, the operand and both devices, and
  // must not reach the backend.
  void expect_refused(const std::string& op, const std::string& operand, const std::function<void()>& call) {
    SCOPED_TRACE(op + " " + operand);
    backend.calls = 0;
    try {
      call();
      ADD_FAILURE() << "no error";
    } catch (const Exception& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.rfind(op + ": " + operand + " f32[", 0), 0u) << m;
      EXPECT_NE(m.find("is on cuda:0 but this context runs on cpu"), std::string::npos) << m;
      EXPECT_NE(m.find("ops::to_host on a context of cuda:0"), std::string::npos) << m;
    }
    EXPECT_EQ(backend.calls, 0);
  }
};

TEST_F(DeviceChecks, OperandsOnTheContextsDeviceRun) {
  const Tensor y = ops::linear(ctx, host({2, 3}), host({4, 3}), host({4}));
  EXPECT_EQ(y.device(), Device{});
  EXPECT_GT(backend.calls, 0);
}

TEST_F(DeviceChecks, LinearAlgebraRefusesOtherDevices) {
  expect_refused("linear", "x", [&] { ops::linear(ctx, cuda({2, 3}), host({4, 3})); });
  expect_refused("linear", "weight", [&] { ops::linear(ctx, host({2, 3}), cuda({4, 3})); });
  expect_refused("linear", "bias", [&] { ops::linear(ctx, host({2, 3}), host({4, 3}), cuda({4})); });
  expect_refused("matmul", "a", [&] { ops::matmul(ctx, cuda({2, 3}), host({3, 4})); });
  expect_refused("matmul", "b", [&] { ops::matmul(ctx, host({2, 3}), cuda({3, 4})); });
  expect_refused("conv2d", "input", [&] { ops::conv2d(ctx, cuda({1, 2, 4, 4}), host({3, 2, 3, 3})); });
  expect_refused("conv2d", "weight", [&] { ops::conv2d(ctx, host({1, 2, 4, 4}), cuda({3, 2, 3, 3})); });
  expect_refused("conv2d", "bias", [&] { ops::conv2d(ctx, host({1, 2, 4, 4}), host({3, 2, 3, 3}), cuda({3})); });
  const Shape qkv{1, 2, 5, 8};
  expect_refused("attention", "q", [&] { ops::attention(ctx, cuda(qkv), host(qkv), host(qkv)); });
  expect_refused("attention", "k", [&] { ops::attention(ctx, host(qkv), cuda(qkv), host(qkv)); });
  expect_refused("attention", "v", [&] { ops::attention(ctx, host(qkv), host(qkv), cuda(qkv)); });
  expect_refused("attention", "mask", [&] { ops::attention(ctx, host(qkv), host(qkv), host(qkv), cuda({5, 5})); });
}

TEST_F(DeviceChecks, NormalisationRefusesOtherDevices) {
  const Shape x{1, 4, 3, 3};
  expect_refused("group_norm", "input", [&] { ops::group_norm(ctx, cuda(x), 2, host({4}), host({4})); });
  expect_refused("group_norm", "weight", [&] { ops::group_norm(ctx, host(x), 2, cuda({4}), host({4})); });
  expect_refused("group_norm", "bias", [&] { ops::group_norm(ctx, host(x), 2, host({4}), cuda({4})); });
  expect_refused("layer_norm", "input", [&] { ops::layer_norm(ctx, cuda({2, 6}), host({6}), host({6})); });
  expect_refused("layer_norm", "weight", [&] { ops::layer_norm(ctx, host({2, 6}), cuda({6}), host({6})); });
  expect_refused("layer_norm", "bias", [&] { ops::layer_norm(ctx, host({2, 6}), host({6}), cuda({6})); });
  expect_refused("rms_norm", "input", [&] { ops::rms_norm(ctx, cuda({2, 6}), host({6})); });
  expect_refused("rms_norm", "weight", [&] { ops::rms_norm(ctx, host({2, 6}), cuda({6})); });
  expect_refused("softmax", "input", [&] { ops::softmax(ctx, cuda({2, 6}), 0); });
}

TEST_F(DeviceChecks, ElementwiseRefusesOtherDevices) {
  expect_refused("silu", "input", [&] { ops::silu(ctx, cuda({5})); });
  expect_refused("clamp", "input", [&] { ops::clamp(ctx, cuda({5}), 0, 1); });
  expect_refused("relu_", "input", [&] {
    Tensor x = cuda({5});
    ops::relu_(ctx, x);
  });
  expect_refused("add", "first operand", [&] { ops::add(ctx, cuda({5}), host({5})); });
  expect_refused("mul", "second operand", [&] { ops::mul(ctx, host({5}), cuda({1})); });
  expect_refused("add_", "first operand", [&] {
    Tensor a = cuda({5});
    ops::add_(ctx, a, host({5}));
  });
  expect_refused("add_", "second operand", [&] {
    Tensor a = host({5});
    ops::add_(ctx, a, cuda({5}));
  });
}

TEST_F(DeviceChecks, LayoutOpsRefuseOtherDevices) {
  expect_refused("upsample_nearest2d", "input", [&] { ops::upsample_nearest2d(ctx, cuda({1, 1, 2, 2}), 2); });
  const Tensor parts[] = {host({2, 3}), cuda({2, 3})};
  expect_refused("concat", "input", [&] { ops::concat(ctx, parts, 0); });
  expect_refused("contiguous", "input", [&] { ops::contiguous(ctx, cuda({2, 3}).transpose(0, 1)); });
  // Even where the result would be the input itself: a view on another device is no answer.
  expect_refused("contiguous", "input", [&] { ops::contiguous(ctx, cuda({2, 3})); });
  expect_refused("permute", "input", [&] { ops::permute(ctx, cuda({2, 3}), {1, 0}); });
  expect_refused("cast", "input", [&] { ops::cast(ctx, cuda({2, 3}), DType::F16); });
  const int64_t pads[] = {1, 1};
  expect_refused("pad", "input", [&] { ops::pad(ctx, cuda({2, 3}), pads); });
  expect_refused("copy_", "source", [&] {
    Tensor dst = host({2, 3});
    ops::copy_(ctx, cuda({2, 3}), dst);
  });
  expect_refused("copy_", "destination", [&] {
    Tensor dst = cuda({2, 3});
    ops::copy_(ctx, host({2, 3}), dst);
  });
}

// --- transfers -------------------------------------------------------------------------------------

TEST_F(DeviceChecks, ToDeviceAndToHostOnTheCpuAreTheTensorItself) {
  const Tensor x = host({3, 4}).transpose(0, 1);  // any view, not only contiguous ones
  for (const Tensor& y : {ops::to_device(ctx, x), ops::to_host(ctx, x)}) {
    EXPECT_EQ(y.storage(), x.storage());
    EXPECT_EQ(y.raw(), x.raw());
    EXPECT_EQ(y.strides(), x.strides());
    EXPECT_EQ(y.shape(), x.shape());
  }
  EXPECT_EQ(backend.calls, 0);
}

TEST_F(DeviceChecks, ToDeviceRefusesATensorOfAnotherDevice) {
  // A CPU context cannot read cuda:0 memory: the tensor has to come through a context of its own device.
  for (auto transfer : {&ops::to_device, &ops::to_host}) {
    backend.calls = 0;
    try {
      transfer(ctx, cuda({2, 2}));
      ADD_FAILURE() << "no error";
    } catch (const Exception& e) {
      EXPECT_NE(std::string(e.what()).find("is on cuda:0"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("context of cuda:0"), std::string::npos) << e.what();
    }
    EXPECT_EQ(backend.calls, 0);
  }
}

TEST(CpuBackend, UploadAndDownloadMakeContiguousCopies) {
  auto rt = Runtime::create({.threads = 1}).value();
  Context ctx = rt->context();
  std::vector<float> v(12);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  const Tensor x = Tensor::from_vector(v, {3, 4}).transpose(0, 1);
  for (const Tensor& y : {ctx.backend().upload(ctx, x), ctx.backend().download(ctx, x)}) {
    EXPECT_NE(y.storage(), x.storage());
    EXPECT_TRUE(y.is_contiguous());
    EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
  }
}

// --- weights through a context ---------------------------------------------------------------------

// The .safetensors files of a set, each mapped here, so a test knows the address range of its bytes.
struct MappedSafetensors {
  std::shared_ptr<const MappedFile> map;
  SafetensorsFile file;
  bool holds(const Tensor& t) const {
    const auto* p = static_cast<const std::byte*>(t.raw());
    return p >= map->data() && p + t.nbytes() <= map->data() + map->size();
  }
};

std::vector<MappedSafetensors> map_set(const std::string& set) {
  std::vector<MappedSafetensors> out;
  for (const auto& e : std::filesystem::directory_iterator(testing::set_dir(set))) {
    if (e.path().extension() != ".safetensors") continue;
    auto map = MappedFile::open(e.path()).value();
    out.push_back({map, SafetensorsFile::parse(map).value()});
  }
  return out;
}

// Every weight WeightLoader hands a model on the CPU is the mapped file's own bytes.
TEST(WeightsOnTheCpu, EveryTakenWeightIsAViewOfTheMappedFile) {
  auto rt = Runtime::create({.threads = 1}).value();
  Context ctx = rt->context();
  int checked = 0;
  for (const MappedSafetensors& m : map_set("vae_kl_tiny")) {
    WeightMap weights;
    for (const TensorEntry& e : m.file.entries())
      if (dtype_is_float(e.dtype)) {
        ASSERT_TRUE(weights.add(e.name, m.file.tensor(e), e.name).ok());
      }
    WeightLoader loader(ctx, weights, "test");
    for (const auto& [name, entry] : weights.entries()) {
      SCOPED_TRACE(name);
      const Tensor w = loader.take(name, entry.tensor.shape());
      ASSERT_TRUE(w.defined());
      EXPECT_EQ(w.raw(), entry.tensor.raw());
      EXPECT_TRUE(m.holds(w));
      EXPECT_TRUE(w.read_only());
      EXPECT_EQ(w.device(), Device{});
      ++checked;
    }
    EXPECT_TRUE(loader.finish().ok());
  }
  EXPECT_GT(checked, 0);
}

// A whole model loaded through a context: its weights point into the mapped checkpoint.
TEST(WeightsOnTheCpu, ALoadedModelReadsTheMappedFile) {
  auto rt = Runtime::create({.threads = 1}).value();
  Context ctx = rt->context();
  int loaded = 0;
  for (const MappedSafetensors& m : map_set("vae_kl_tiny")) {
    // A VAE in diffusers or original naming; other files of the set (the cases) are not one.
    auto ck = Checkpoint::open(m.map->path()).value();
    bool has_decoder = false;
    if (!vae_kl_recognize(ck, nullptr, &has_decoder) || !has_decoder) continue;
    std::vector<SourceTensor> tensors;
    for (const TensorEntry& e : m.file.entries()) tensors.push_back({e.name, m.file.tensor(e), e.name});
    auto vae = VaeKl::load(ctx, tensors, VaeKlOptions{1});  // 1 group divides any width; nothing runs here
    ASSERT_TRUE(vae.ok()) << vae.error().message();
    const vae_kl::Decoder& d = *vae->decoder();
    for (const Tensor* w : {&d.conv_in.weight, &d.conv_in.bias, &d.mid_block.attention.to_q,
                            &d.mid_block.resnets[1].conv2.weight, &d.conv_norm_out.weight, &d.conv_out.weight}) {
      EXPECT_TRUE(m.holds(*w)) << w->describe();
      EXPECT_TRUE(w->read_only());
    }
    ++loaded;
  }
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace easel
