#include "pipelines/sd_load_options.h"

#include <fstream>

#include <nlohmann/json.hpp>

namespace easel {

namespace fs = std::filesystem;

Result<SdLoadOptions> load_options_for(const fs::path& checkpoint) {
  SdLoadOptions o;
  const fs::path sidecar = fs::is_directory(checkpoint) ? checkpoint / "easel.json"
                                                         : fs::path(checkpoint.string() + ".easel.json");
  std::error_code ec;
  if (!fs::exists(sidecar, ec)) return o;
  std::ifstream in(sidecar);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error(cat(sidecar.string(), ": not a JSON object"));
  try {
    if (j.contains("prediction")) {
      const std::string pred = j["prediction"];
      if (pred != "v" && pred != "eps") return Error(cat(sidecar.string(), ": prediction must be \"eps\" or \"v\""));
      o.prediction = pred == "v" ? Prediction::V : Prediction::Eps;
    }
    if (j.contains("text_encoder_heads")) o.text_encoder_heads = j["text_encoder_heads"].get<int>();
    if (j.contains("vae_norm_groups")) o.vae_norm_groups = j["vae_norm_groups"].get<int>();
    if (j.contains("unet")) {
      UnetOptions u;
      const auto& uj = j["unet"];
      if (uj.contains("num_heads")) u.num_heads = uj["num_heads"].get<int>();
      if (uj.contains("head_dim")) u.head_dim = uj["head_dim"].get<int>();
      if (uj.contains("norm_groups")) u.norm_groups = uj["norm_groups"].get<int>();
      o.unet = u;
    }
  } catch (const nlohmann::json::exception& e) {
    return Error(cat(sidecar.string(), ": ", e.what()));
  }
  return o;
}

}  // namespace easel
