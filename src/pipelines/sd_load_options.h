// Load options a checkpoint's tensors cannot tell (head counts of tiny test models, v-prediction of
// an SD2 file without the telltale key), from an optional sidecar beside it:
// `<checkpoint>.easel.json`, or `easel.json` inside a diffusers folder:
//   {"prediction": "v", "text_encoder_heads": 2, "unet": {"num_heads": 2, "norm_groups": 8}, "vae_norm_groups": 4}
// `easel generate` and `easel serve` read it the same way, so a checkpoint one runs the other runs.
#pragma once

#include <filesystem>

#include "core/error.h"
#include "pipelines/stable_diffusion.h"

namespace easel {

// The sidecar's options (the defaults when there is none); an unreadable sidecar is an error.
Result<SdLoadOptions> load_options_for(const std::filesystem::path& checkpoint);

}  // namespace easel
