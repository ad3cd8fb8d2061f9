// PyTorch .ckpt/.pt/.pth reading: values against companion safetensors files (fixtures from
// tools/refgen/make_ckpt_fixtures.py), malicious pickles refused without running anything, and
// ParserTorchCkpt.* robustness: every malformed archive or pickle is an error, never a crash.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "io/checkpoint.h"
#include "io/pickle.h"
#include "io/torch_checkpoint.h"
#include "io/zip_reader.h"
#include "test_data.h"

namespace easel {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  auto dir = fs::temp_directory_path() / ("easel_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// --- a small zip writer, enough to build archives like torch.save's (and broken ones) -----------

std::string le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

struct ZipRecord {
  std::string name, data;
  bool deflate = false;
};

struct ZipOptions {
  size_t align = 64;  // of each record's data, as PyTorchStreamWriter pads them
  bool zip64 = false;
};

std::string deflate_raw(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, in.size()) + 16, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string make_zip(const std::vector<ZipRecord>& records, ZipOptions opt = {}) {
  std::string file, central;
  for (const auto& r : records) {
    const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(r.data.data()), static_cast<uInt>(r.data.size())));
    const std::string body = r.deflate ? deflate_raw(r.data) : r.data;
    const uint64_t local = file.size();
    const size_t header_end = local + 30 + r.name.size();
    size_t pad = opt.align > 1 ? (opt.align - (header_end + 4) % opt.align) % opt.align : 0;
    std::string extra = opt.align > 1 ? "FB" + le(pad, 2) + std::string(pad, 'Z') : "";
    const uint16_t method = r.deflate ? 8 : 0;
    file += le(0x04034b50, 4) + le(20, 2) + le(0, 2) + le(method, 2) + le(0, 4) + le(crc, 4) + le(body.size(), 4) +
            le(r.data.size(), 4) + le(r.name.size(), 2) + le(extra.size(), 2) + r.name + extra + body;
    std::string cextra;
    if (opt.zip64) cextra = le(1, 2) + le(24, 2) + le(r.data.size(), 8) + le(body.size(), 8) + le(local, 8);
    const uint64_t f32 = opt.zip64 ? 0xffffffff : 0;
    central += le(0x02014b50, 4) + le(45, 2) + le(45, 2) + le(0, 2) + le(method, 2) + le(0, 4) + le(crc, 4) +
               le(opt.zip64 ? f32 : body.size(), 4) + le(opt.zip64 ? f32 : r.data.size(), 4) + le(r.name.size(), 2) +
               le(cextra.size(), 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(opt.zip64 ? f32 : local, 4) +
               r.name + cextra;
  }
  const uint64_t cd_offset = file.size();
  file += central;
  if (opt.zip64) {
    const uint64_t end64 = file.size();
    file += le(0x06064b50, 4) + le(44, 8) + le(45, 2) + le(45, 2) + le(0, 4) + le(0, 4) + le(records.size(), 8) +
            le(records.size(), 8) + le(central.size(), 8) + le(cd_offset, 8);
    file += le(0x07064b50, 4) + le(0, 4) + le(end64, 8) + le(1, 4);
    file += le(0x06054b50, 4) + le(0, 2) + le(0, 2) + le(0xffff, 2) + le(0xffff, 2) + le(0xffffffff, 4) +
            le(0xffffffff, 4) + le(0, 2);
  } else {
    file += le(0x06054b50, 4) + le(0, 2) + le(0, 2) + le(records.size(), 2) + le(records.size(), 2) +
            le(central.size(), 4) + le(cd_offset, 4) + le(0, 2);
  }
  return file;
}

// --- pickles by hand ------------------------------------------------------------------------------

std::string U(const std::string& s) {  // BINUNICODE
  std::string out = "X";
  out += le(s.size(), 4);
  return out += s;
}
std::string I(int64_t v) {  // LONG1, 8 bytes
  std::string s = "\x8a\x08";
  return s += le(static_cast<uint64_t>(v), 8);
}
std::string ints(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (int64_t x : v) s += I(x);
  return s + "t";
}

// _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())
std::string tensor_pickle(const std::string& key, int64_t numel, int64_t offset, const std::vector<int64_t>& size,
                          const std::vector<int64_t>& stride, const std::string& type = "FloatStorage") {
  return "ctorch._utils\n_rebuild_tensor_v2\n((" + U("storage") + "ctorch\n" + type + "\n" + U(key) + U("cpu") +
         I(numel) + "tQ" + I(offset) + ints(size) + ints(stride) + "\x89" + "ccollections\nOrderedDict\n)R" + "tR";
}

// {name: tensor, ...} as a protocol 2 pickle.
std::string state_dict_pickle(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string s = "\x80\x02}(";
  for (const auto& [k, v] : items) s += U(k) + v;
  return s + "u.";
}

std::string floats(int n, float start = 0) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    float f = start + i;
    s.append(reinterpret_cast<const char*>(&f), 4);
  }
  return s;
}

std::string checkpoint(const std::string& pkl, const std::vector<std::pair<std::string, std::string>>& storages = {},
                       ZipOptions opt = {}, bool deflate_pickle = false) {
  std::vector<ZipRecord> r{{"archive/data.pkl", pkl, deflate_pickle}, {"archive/byteorder", "little"}};
  for (const auto& [key, bytes] : storages) r.push_back({"archive/data/" + key, bytes});
  r.push_back({"archive/version", "3\n"});
  return make_zip(r, opt);
}

Result<Checkpoint> open_bytes(const std::string& bytes, const std::string& name = "case.ckpt") {
  auto p = temp_dir() / name;
  spit(p, bytes);
  return Checkpoint::open(p);
}

void expect_error(const std::string& bytes, const std::string& needle) {
  auto ck = open_bytes(bytes);
  ASSERT_FALSE(ck.ok()) << "accepted a malformed checkpoint; expected an error mentioning '" << needle << "'";
  EXPECT_NE(ck.error().message().find(needle), std::string::npos) << ck.error().message();
  EXPECT_NE(ck.error().message().find("case.ckpt"), std::string::npos) << "error must name the file";
}

// Reads every element of every tensor (under ASan, any read outside the file is caught).
void touch_all(const Checkpoint& ck) {
  for (const auto& name : ck.names()) {
    Tensor t = ck.get(name).value();
    std::vector<std::byte> buf(t.nbytes());
    detail::strided_copy_out(t, buf.data());
  }
}

std::vector<std::byte> bytes_of(const Tensor& t) {
  std::vector<std::byte> buf(t.nbytes());
  detail::strided_copy_out(t, buf.data());
  return buf;
}

bool is_checkpoint_name(const fs::path& p) {
  const auto ext = p.extension();
  return ext == ".ckpt" || ext == ".pt" || ext == ".pth";
}

// --- the unpickler on its own ---------------------------------------------------------------------

std::vector<std::byte> from_hex(std::string_view hex) {
  std::vector<std::byte> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<std::byte>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

const pickle::Value* lookup(const pickle::Value& dict, const std::string& key) {
  const auto& items = dict.items();
  for (size_t i = 0; i + 1 < items.size(); i += 2)
    if (items[i].is(pickle::Kind::String) && items[i].text() == key) return &items[i + 1];
  return nullptr;
}

// pickle.dumps({'a': [1, -2, 300, 70000, -(2**40), 2**62, -1], 'b': (1.5, None, True, False, -0.25),
//               'd': 'h\u00e9llo', 'e': {'n': {}}}, protocol=p) for p = 2 and 4 (CPython 3.11).
TEST(Pickle, ReadsWhatCPythonWrites) {
  const char* kHex[] = {
      "80027d71002858010000006171015d7102284b014afeffffff4d2c014a701101008a060000000000ff8a0800000000000000404affffffff"
      "65580100000062710328473ff80000000000004e888947bfd00000000000007471045801000000647105580600000068c3a96c6c6f7106"
      "58010000006571077d710858010000006e71097d710a73752e",
      "80049569000000000000007d94288c0161945d94284b014afeffffff4d2c014a701101008a060000000000ff8a0800000000000000404a"
      "ffffffff658c01629428473ff80000000000004e888947bfd000000000000074948c0164948c0668c3a96c6c6f948c0165947d948c016e"
      "947d9473752e",
  };
  for (const char* hex : kHex) {
    auto doc = pickle::unpickle(from_hex(hex), {});
    ASSERT_TRUE(doc.ok()) << doc.error().message();
    const pickle::Value& root = doc->root;
    ASSERT_TRUE(root.is(pickle::Kind::Dict));
    const pickle::Value* a = lookup(root, "a");
    ASSERT_TRUE(a && a->is(pickle::Kind::List));
    std::vector<int64_t> ints;
    for (const auto& v : a->items()) ints.push_back(v.i);
    EXPECT_EQ(ints, (std::vector<int64_t>{1, -2, 300, 70000, -(int64_t(1) << 40), int64_t(1) << 62, -1}));
    const pickle::Value* b = lookup(root, "b");
    ASSERT_TRUE(b && b->is(pickle::Kind::Tuple) && b->items().size() == 5);
    EXPECT_EQ(b->items()[0].f, 1.5);
    EXPECT_TRUE(b->items()[1].is(pickle::Kind::None));
    EXPECT_TRUE(b->items()[2].is(pickle::Kind::Bool) && b->items()[2].i == 1);
    EXPECT_TRUE(b->items()[3].is(pickle::Kind::Bool) && b->items()[3].i == 0);
    EXPECT_EQ(b->items()[4].f, -0.25);
    EXPECT_EQ(lookup(root, "d")->text(), "h\xc3\xa9llo");
    const pickle::Value* e = lookup(root, "e");
    ASSERT_TRUE(e && lookup(*e, "n") && lookup(*e, "n")->is(pickle::Kind::Dict));
  }
  auto bytes = pickle::unpickle(from_hex("800495060000000000000043027879942e"), {});  // b'xy'
  ASSERT_TRUE(bytes.ok());
  EXPECT_TRUE(bytes->root.is(pickle::Kind::Bytes));
  EXPECT_EQ(bytes->root.text(), "xy");
}

TEST(Pickle, WithoutRulesEveryCallableIsRefused) {
  const std::string p = "\x80\x02" "cos\nsystem\n" + U("ls") + "\x85R.";
  auto doc = pickle::unpickle({reinterpret_cast<const std::byte*>(p.data()), p.size()}, {});
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error().message(),
            "refuses to load: the pickle calls os.system, which a checkpoint never needs (this file may be malicious)");
}

// --- the fixtures ---------------------------------------------------------------------------------

TEST(TorchCheckpoint, ValuesMatchTheirSafetensorsCompanions) {
  const fs::path dir = testing::set_dir("torch_ckpt");
  int files = 0, tensors = 0, strided = 0;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (!is_checkpoint_name(f.path())) continue;
    auto expected_path = f.path();
    expected_path.replace_extension(".safetensors");
    ASSERT_TRUE(fs::exists(expected_path)) << f.path() << " has no companion " << expected_path;
    auto ck = Checkpoint::open(f.path());
    ASSERT_TRUE(ck.ok()) << ck.error().message();
    auto expected = Checkpoint::open(expected_path).value();
    ASSERT_EQ(ck->names(), expected.names()) << f.path();
    for (const auto& name : expected.names()) {
      SCOPED_TRACE(f.path().filename().string() + ": " + name);
      Tensor got = ck->get(name).value(), want = expected.get(name).value();
      EXPECT_EQ(got.dtype(), want.dtype());
      EXPECT_EQ(got.shape(), want.shape());
      EXPECT_TRUE(got.read_only());
      EXPECT_NE(dynamic_cast<BorrowedStorage*>(got.storage().get()), nullptr) << "not a view of the mapped file";
      if (got.dtype() == want.dtype() && got.shape() == want.shape()) {
        EXPECT_EQ(bytes_of(got), bytes_of(want));
      }
      strided += !got.is_contiguous();
      ++tensors;
    }
    ++files;
  }
  EXPECT_GE(files, 2);
  EXPECT_GE(tensors, 10);
  EXPECT_GE(strided, 1) << "the fixtures should hold a non-contiguous tensor, read as a strided view";
}

TEST(TorchCheckpoint, StateDictNamesMetadataAndSharedStorage) {
  auto ck = Checkpoint::open(testing::set_dir("torch_ckpt") / "sd_like.ckpt").value();
  const auto& meta = ck.files().front()->metadata();
  EXPECT_EQ(meta.at("global_step"), "470000");
  EXPECT_EQ(meta.at("epoch"), "6");
  EXPECT_EQ(ck.find("callbacks.note"), nullptr);  // only the state dict's entries are tensors
  EXPECT_NE(ck.find("model.diffusion_model.input_blocks.0.0.weight"), nullptr);
  // q and k are two views of one storage: 8 floats apart in the same mapping.
  Tensor q = ck.get("cond_stage_model.attn.q.weight").value(), k = ck.get("cond_stage_model.attn.k.weight").value();
  EXPECT_EQ(static_cast<const std::byte*>(k.raw()) - static_cast<const std::byte*>(q.raw()), 32);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q.raw()) % 64, 0u) << "torch aligns storages to 64 bytes: no copy";
}

TEST(TorchCheckpoint, MaliciousFixturesAreRefusedNamingTheCallable) {
  const fs::path marker = "/tmp/easel_pwned_fixture";
  int files = 0;
  for (const auto& f : fs::directory_iterator(testing::set_dir("torch_ckpt") / "malicious")) {
    const std::string callable = f.path().stem().string();  // "os.system.ckpt" -> "os.system"
    auto ck = Checkpoint::open(f.path());
    ASSERT_FALSE(ck.ok()) << f.path() << " was accepted";
    const std::string& msg = ck.error().message();
    EXPECT_NE(msg.find(f.path().filename().string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("refuses to load: the pickle calls " + callable + ","), std::string::npos) << msg;
    EXPECT_NE(msg.find("may be malicious"), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(marker)) << "the payload of " << f.path() << " ran";
    ++files;
  }
  EXPECT_GE(files, 3);
}

TEST(TorchCheckpoint, PayloadNeverRuns) {
  const std::string marker = "/tmp/easel_pwned_" + std::to_string(::getpid());
  const std::string cmd = "touch " + marker;
  const std::vector<std::string> pickles = {
      "\x80\x02" "cos\nsystem\n" + U(cmd) + "\x85R.",
      "\x80\x02" "cposix\nsystem\n" + U(cmd) + "\x85R.",
      "\x80\x04" + U("os") + U("system") + "\x93" + U(cmd) + "\x85R.",  // STACK_GLOBAL
      "\x80\x02" "cbuiltins\neval\n" + U("__import__('os').system('" + cmd + "')") + "\x85R.",
      "\x80\x02" "c__builtin__\nexec\n" + U("import os; os.system('" + cmd + "')") + "\x85R.",
      "\x80\x02" "csubprocess\nPopen\n(" + U("touch") + U(marker) + "l\x85R.",
      "(" + U(cmd) + "ios\nsystem\n.",                          // INST
      "(cos\nsystem\n" + U(cmd) + "o.",                          // OBJ
      "\x80\x02" "cos\nsystem\n" + U(cmd) + "\x85\x81.",         // NEWOBJ
      state_dict_pickle({{"w", tensor_pickle("0", 4, 0, {4}, {1})}, {"x", "cos\nsystem\n" + U(cmd) + "\x85R"}}),
  };
  for (const auto& pkl : pickles) {
    auto ck = open_bytes(checkpoint(pkl, {{"0", floats(4)}}));
    ASSERT_FALSE(ck.ok());
    EXPECT_NE(ck.error().message().find("refuses to load: the pickle calls "), std::string::npos) << ck.error().message();
    EXPECT_FALSE(fs::exists(marker));
  }
}

TEST(TorchCheckpoint, ArchiveVariants) {
  const std::string pkl = state_dict_pickle({{"a", tensor_pickle("0", 6, 0, {2, 3}, {3, 1})},
                                             {"t", tensor_pickle("0", 6, 0, {3, 2}, {1, 3})},
                                             {"h", tensor_pickle("1", 2, 1, {1}, {1}, "HalfStorage")}});
  const std::string half = le(0x3c00, 2) + le(0xc000, 2);  // 1.0, -2.0
  const std::vector<std::pair<std::string, std::string>> storages = {{"0", floats(6)}, {"1", half}};
  auto check = [&](const std::string& bytes, const char* what) {
    SCOPED_TRACE(what);
    auto ck = open_bytes(bytes);
    ASSERT_TRUE(ck.ok()) << ck.error().message();
    EXPECT_EQ(ck->get("a")->to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(ck->get("t")->to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
    EXPECT_FALSE(ck->get("t")->is_contiguous());
    EXPECT_EQ(ck->get("h")->bitcast(DType::I16).to_vector<int16_t>(), (std::vector<int16_t>{int16_t(0xc000)}));
  };
  check(checkpoint(pkl, storages), "aligned");
  check(checkpoint(pkl, storages, {.align = 1}), "unaligned: copied");
  check(checkpoint(pkl, storages, {.align = 64, .zip64 = true}), "zip64");
  check(checkpoint(pkl, storages, {}, /*deflate_pickle=*/true), "deflated data.pkl");
  auto deflated_storage = make_zip({{"archive/data.pkl", pkl}, {"archive/data/0", floats(6), true}, {"archive/data/1", half}});
  expect_error(deflated_storage, "compressed");
}

TEST(TorchCheckpoint, TrainingStateBesideTheWeightsIsSkipped) {
  // {'state_dict': {'w': tensor}, 'rng': numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b') + BUILD}
  const std::string pkl = "\x80\x02}(" + U("state_dict") + "}" + U("w") + tensor_pickle("0", 4, 0, {4}, {1}) + "s" +
                          U("rng") + "cnumpy.core.multiarray\n_reconstruct\n" + "cnumpy\nndarray\n" + "K\x05\x85" +
                          U("b") + "\x87R" + "(K\x01t" + "b" + "u.";
  auto ck = open_bytes(checkpoint(pkl, {{"0", floats(4)}}));
  ASSERT_TRUE(ck.ok()) << ck.error().message();
  EXPECT_EQ(ck->names(), std::vector<std::string>{"w"});
}

TEST(TorchCheckpoint, LegacyFormatGivesAdvice) {
  const std::string legacy = std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15) + "rest";
  expect_error(legacy, "legacy torch format");
  expect_error(legacy, "re-save");
}

// --- robustness -----------------------------------------------------------------------------------

TEST(ParserTorchCkpt, MalformedArchives) {
  const std::string pkl = state_dict_pickle({{"a", tensor_pickle("0", 4, 0, {4}, {1})}});
  const std::string good = checkpoint(pkl, {{"0", floats(4)}});
  ASSERT_TRUE(open_bytes(good).ok());
  expect_error("PK\x03\x04", "too short");
  expect_error(std::string("PK\x03\x04") + std::string(100, '\0'), "end-of-central-directory");
  expect_error(make_zip({{"x/other.txt", "hi"}}), "without <name>/data.pkl");
  expect_error(make_zip({{"a/data.pkl", pkl}, {"b/data.pkl", pkl}}), "two pickles");
  expect_error(make_zip({{"archive/data.pkl", pkl}}), "no record archive/data/0");
  expect_error(checkpoint(pkl, {{"0", floats(3)}}), "is 12 bytes");
  expect_error(make_zip({{"archive/data.pkl", pkl}, {"archive/byteorder", "big"}, {"archive/data/0", floats(4)}}),
               "byte order");

  // Fields of the end record and the central directory pointing past the end, or huge.
  const size_t end = good.size() - 22;
  auto patched = [&](size_t at, uint64_t v, int n) {
    std::string b = good;
    b.replace(at, n, le(v, n));
    return b;
  };
  expect_error(patched(end + 16, 0xfffffff0, 4), "outside the archive");  // directory offset
  expect_error(patched(end + 12, 0xfffffff0, 4), "outside the archive");  // directory size
  expect_error(patched(end + 10, 0xfff0, 2), "claims");                    // entry count
  const size_t cd = good.find(std::string("PK\x01\x02", 4));
  expect_error(patched(cd + 20, 0xfffffff0, 4), "sizes differ");           // compressed size
  {
    std::string b = patched(cd + 20, 0xfffffff0, 4);
    b.replace(cd + 24, 4, le(0xfffffff0, 4));
    expect_error(b, "run past the end");
  }
  expect_error(patched(cd + 42, 0xfffffff0, 4), "local header");           // local header offset
  expect_error(patched(cd + 10, 12, 2), "compression method 12");
  expect_error(patched(cd + 8, 1, 2), "encrypted");
  expect_error(patched(cd + 28, 0xffff, 2), "runs past the directory");   // name length
  // ZIP64 records that point outside the file.
  const std::string z64 = checkpoint(pkl, {{"0", floats(4)}}, {.align = 64, .zip64 = true});
  ASSERT_TRUE(open_bytes(z64).ok());
  {
    std::string b = z64;
    b.replace(b.size() - 22 - 20 + 8, 8, le(0xffffffffffff0000ull, 8));  // locator -> end64 offset
    expect_error(b, "zip64 end-of-central-directory");
  }
  {
    std::string b = z64;
    const size_t e64 = b.size() - 22 - 20 - 56;
    b.replace(e64 + 48, 8, le(0x7fffffffffffffffull, 8));  // directory offset
    expect_error(b, "outside the archive");
    b = z64;
    b.replace(e64 + 32, 8, le(0xffffffffffffffffull, 8));  // entry count
    expect_error(b, "claims");
  }
}

TEST(ParserTorchCkpt, MalformedTensorsAndStorages) {
  auto one = [](const std::string& tensor, const std::string& storage = floats(4)) {
    return checkpoint(state_dict_pickle({{"a", tensor}}), {{"0", storage}});
  };
  expect_error(one(tensor_pickle("0", 4, 0, {5}, {1})), "reaches past its storage");
  expect_error(one(tensor_pickle("0", 4, 2, {2, 2}, {2, 1})), "reaches past its storage");
  expect_error(one(tensor_pickle("0", 4, 0, {2, 2}, {1, 4})), "reaches past its storage");
  expect_error(one(tensor_pickle("0", 4, 0, {int64_t(1) << 40, int64_t(1) << 40}, {0, 0})), "too large");
  expect_error(one(tensor_pickle("0", 4, 0, {4}, {int64_t(1) << 62})), "reaches past");
  expect_error(one(tensor_pickle("0", 4, -1, {4}, {1})), "offset");
  expect_error(one(tensor_pickle("0", 4, 0, {-4}, {1})), "non-negative");
  expect_error(one(tensor_pickle("0", 4, 0, {4}, {1, 1})), "differ in length");
  expect_error(one(tensor_pickle("0", 4, 0, {1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1})), "dimensions");
  expect_error(one(tensor_pickle("0", int64_t(1) << 62, 0, {4}, {1})), "elements but its record");
  expect_error(one(tensor_pickle("0", 4, 0, {4}, {1}, "ComplexFloatStorage")), "ComplexFloatStorage");
  expect_error(one(tensor_pickle("../0", 4, 0, {4}, {1})), "no record");
  // The same storage key with two types.
  expect_error(checkpoint(state_dict_pickle({{"a", tensor_pickle("0", 4, 0, {4}, {1})},
                                             {"b", tensor_pickle("0", 8, 0, {8}, {1}, "HalfStorage")}}),
                          {{"0", floats(4)}}),
               "two different types");
  expect_error(checkpoint(state_dict_pickle({{"a", tensor_pickle("0", 4, 0, {4}, {1})},
                                             {"a", tensor_pickle("0", 4, 0, {4}, {1})}}),
                          {{"0", floats(4)}}),
               "two tensors are named 'a'");
  // A bare tensor, or something that is not a dict, is not a state dict.
  expect_error(checkpoint("\x80\x02" + tensor_pickle("0", 4, 0, {4}, {1}) + ".", {{"0", floats(4)}}), "single tensor");
  expect_error(checkpoint("\x80\x02K\x05."), "not a state dict");
  expect_error(checkpoint("\x80\x02" + U("storage") + "Q."), "persistent id");
  expect_error(checkpoint("\x80\x02" "ctorch._utils\n_rebuild_parameter\nK\x01\x85R."), "not a tensor");
}

TEST(ParserTorchCkpt, MalformedPickles) {
  expect_error(checkpoint(""), "ends without a STOP");
  expect_error(checkpoint("\x80\x02}"), "ends without a STOP");
  expect_error(checkpoint("\x80\x02."), "stack underflow");
  expect_error(checkpoint("\x80\x02}(K\x01s."), "stack underflow");  // a frame hides what is below its MARK
  expect_error(checkpoint("\x80\x02}K\x01u."), "never opened");
  expect_error(checkpoint("\x80\x02h\x07."), "memo entry 7");
  expect_error(checkpoint(std::string("\x80\x02X\xff\xff\x00\x00", 7)), "runs past the end");
  expect_error(checkpoint("\x80\x02X\xff\xff\xff\x7f"), "over the limit");
  expect_error(checkpoint("\x80\x02\x8a\x09" + std::string(9, '\x01') + "."), "too large");
  expect_error(checkpoint("\x80\x02\xfe."), "unsupported pickle opcode 0xfe");
  expect_error(checkpoint("\x80\x09."), "protocol 9");
  expect_error(checkpoint("\x80\x02K\x01K\x02R."), "not a callable");
  expect_error(checkpoint("\x80\x02" "ccollections\nOrderedDict\nK\x01R."), "for arguments");
  expect_error(checkpoint("\x80\x02K\x01K\x02" "a."), "appends to a int");
  expect_error(checkpoint("\x80\x02]K\x01K\x02s."), "not a dict");
  expect_error(checkpoint("\x80\x02}(K\x01u."), "without a value");
  expect_error(checkpoint("\x80\x02" "ccollections"), "text line");
  expect_error(checkpoint("\x80\x02" "ctorch\nFloatStorage\n)R."), "a state dict does not");
}

TEST(ParserTorchCkpt, DeepNestingAndCycles) {
  const int n = 100000;
  expect_error(checkpoint("\x80\x02" + std::string(n, ']') + std::string(n - 1, 'a') + "."), "levels deep");
  expect_error(checkpoint("\x80\x02)" + std::string(n, '\x85') + "."), "levels deep");
  expect_error(checkpoint("\x80\x02" + std::string(n, '}') + [&] {
    std::string s;
    for (int i = 0; i < n - 1; ++i) s += U("k") + "s";  // wrong order on purpose: key after value
    return s;
  }() + "."), "levels deep");
  // Dicts nested deeper than any state dict, but within the pickle's own limit.
  std::string nested = "\x80\x02";
  for (int i = 0; i < 100; ++i) {
    nested += "}";
    nested += U("k");
  }
  nested += tensor_pickle("0", 4, 0, {4}, {1});
  for (int i = 0; i < 100; ++i) nested += "s";
  expect_error(checkpoint(nested + ".", {{"0", floats(4)}}), "nests more than 64");
  // A dict that holds itself (memo): read without looping forever.
  expect_error(checkpoint(std::string("\x80\x02}q\x00", 5) + U("k") + std::string("h\x00s.", 4)), "nests more than");
  // Many values on the stack: bounded by the input, read fine or refused, never a crash.
  (void)open_bytes(checkpoint("\x80\x02" + std::string(200000, 'N') + "."));
  (void)open_bytes(checkpoint("\x80\x02N" + std::string(200000, '2') + "."));
  (void)open_bytes(checkpoint("\x80\x02" + std::string(200000, '(') + "N."));
}

TEST(ParserTorchCkpt, EveryTruncationOfAValidCheckpointIsRejected) {
  const std::string full = slurp(testing::set_dir("torch_ckpt") / "plain_state_dict.pt");
  ASSERT_TRUE(open_bytes(full).ok());
  for (size_t cut = 0; cut < full.size(); ++cut) {
    auto ck = open_bytes(full.substr(0, cut));
    EXPECT_FALSE(ck.ok()) << "truncated at " << cut << " of " << full.size() << " was accepted";
  }
  // The pickle alone, truncated at every byte.
  auto zip = ZipReader::parse(MappedFile::open(testing::set_dir("torch_ckpt") / "sd_like.ckpt").value()).value();
  const ZipEntry* pkl = zip.find("sd_like/data.pkl");
  ASSERT_NE(pkl, nullptr);
  auto bytes = zip.read(*pkl, 1 << 20).value();
  const std::string pickle_text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  for (size_t cut = 0; cut < pickle_text.size(); ++cut)
    EXPECT_FALSE(open_bytes(checkpoint(pickle_text.substr(0, cut))).ok()) << cut;
}

TEST(ParserTorchCkpt, RandomFlipsAndRandomBytesNeverCrash) {
  std::mt19937 rng(4321);
  for (const char* fixture : {"sd_like.ckpt", "plain_state_dict.pt"}) {
    const std::string full = slurp(testing::set_dir("torch_ckpt") / fixture);
    for (int trial = 0; trial < 300; ++trial) {
      std::string bytes = full;
      const int flips = 1 + trial % 4;
      for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<char>(rng());
      auto ck = open_bytes(bytes);
      if (ck.ok()) touch_all(*ck);  // harmless corruption: every tensor must still be readable
    }
  }
  // Flips inside the pickle only (the CRC would catch most flips above).
  auto zip = ZipReader::parse(MappedFile::open(testing::set_dir("torch_ckpt") / "sd_like.ckpt").value()).value();
  std::vector<std::pair<std::string, std::string>> storages;
  std::string pickle_text;
  for (const auto& e : zip.entries()) {
    auto b = zip.read(e, 1 << 20).value();
    std::string s(reinterpret_cast<const char*>(b.data()), b.size());
    if (e.name == "sd_like/data.pkl") pickle_text = s;
    else if (e.name.rfind("sd_like/data/", 0) == 0) storages.emplace_back(e.name.substr(13), s);
  }
  ASSERT_FALSE(pickle_text.empty());
  ASSERT_TRUE(open_bytes(checkpoint(pickle_text, storages)).ok());
  for (int trial = 0; trial < 400; ++trial) {
    std::string p = pickle_text;
    const int flips = 1 + trial % 3;
    for (int f = 0; f < flips; ++f) p[rng() % p.size()] = static_cast<char>(rng());
    auto ck = open_bytes(checkpoint(p, storages));
    if (ck.ok()) touch_all(*ck);
  }
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes(rng() % 300, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    bytes = "PK\x03\x04" + bytes;
    (void)open_bytes(bytes);
    std::string p(rng() % 100, '\0');
    for (auto& c : p) c = static_cast<char>(rng());
    (void)open_bytes(checkpoint("\x80\x02" + p, storages));
  }
}

}  // namespace
}  // namespace easel
