// The Stable Diffusion job runner on its own, on the tiny SD model of sd_pipeline_tiny: it runs
// only the kinds it declares, a job leaves nothing installed on the process's shared Context (even
// when it fails before generating), and A1111's comments are kept whole.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "server/model_catalog.h"
#include "server/sd_runner.h"
#include "server_test_support.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace server;

class SdRunner : public ::testing::Test {
 public:
  void SetUp() override {
    root = fs::temp_directory_path() / ("easel_sd_runner_" + std::to_string(::getpid()));
    fs::remove_all(root);
    ASSERT_FALSE(testing::make_tiny_models_dir(root / "models").empty()) << "the set has no SD 1.x checkpoint";
    auto made = Runtime::create({.threads = 1});
    ASSERT_TRUE(made.ok()) << made.error().message();
    runtime = std::move(*made);
    catalog = std::make_unique<ModelCatalog>(root / "models");
  }
  void TearDown() override { fs::remove_all(root); }

  Job job(const std::string& kind) const {
    Job j;
    j.id = random_id();
    j.kind = kind;
    j.request = {{"prompt", "a cat"}, {"steps", 2}, {"width", 48}, {"height", 32}, {"seed", 3}, {"sampler_name", "Euler"}};
    return j;
  }

  fs::path root;
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<ModelCatalog> catalog;
};

std::string error_of(SdJobRunner& runner, const Job& job) {
  JobControl control([](JobEvent) {});
  try {
    runner.run(job, control);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST_F(SdRunner, RefusesAKindItDoesNotRun) {
  SdJobRunner runner(*catalog, *runtime, {.outputs_dir = root / "outputs"});
  EXPECT_EQ(runner.kinds(), (std::vector<std::string>{"txt2img", "img2img"}));
  const std::string error = error_of(runner, job("chat"));
  EXPECT_NE(error.find("not 'chat'"), std::string::npos) << "a chat job must be refused, not run as txt2img: '" << error << "'";
  EXPECT_FALSE(fs::exists(root / "outputs")) << "nothing generated";
}

// A1111 (processing.py): p.comment(text) sets comments[text] = 1, and Processed.comments is
// "".join(f"{comment}\n" for comment in p.comments): every distinct comment, in order.
TEST(SdRunnerInfo, KeepsEveryCommentOnceInOrder) {
  EXPECT_EQ(processed_comments({}), "");
  EXPECT_EQ(processed_comments({"first"}), "first\n");
  EXPECT_EQ(processed_comments({"first", "second", "first", "third"}), "first\nsecond\nthird\n");
}

}  // namespace
}  // namespace easel
