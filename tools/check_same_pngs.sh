#!/usr/bin/env bash
# check_same_pngs.sh OLD_EASEL NEW_EASEL [SET_DIR]
#
# Runs `easel generate` from two builds over a matrix of requests on the tiny models of set
# sd_pipeline_tiny (every model the set lists: single file, .ckpt, diffusers folder, 9-channel
# inpainting, v-prediction) and compares the PNGs byte for byte (pixels and infotext). A refactor
# of the pipeline must leave every file identical; a request that fails must fail with the same
# message from both. Then it starts `easel serve` from both on the same models and compares the
# PNGs the A1111 routes (txt2img, img2img, inpaint) and the OpenAI routes (generations, edits)
# return. Exit status 0 when everything matched.
#
# The models' head counts come from the set's info.json, written as the `.easel.json` sidecars
# `easel generate` reads (as `easel serve` does). Needs jq.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 OLD_EASEL NEW_EASEL [SET_DIR (default \$EASEL_TEST_DATA/sd_pipeline_tiny)]" >&2
  exit 2
fi
old=$(realpath "$1")
new=$(realpath "$2")
set_dir=$(realpath "${3:-${EASEL_TEST_DATA:-tests/data}/sd_pipeline_tiny}")
work=$(mktemp -d /tmp/check_same_pngs.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- the models, each with its sidecar --------------------------------------------------------
mkdir -p "$work/models"
models=()
eps_txt2img="" v_model="" inpainting=""
while IFS= read -r file; do
  cp -r "$set_dir/$file" "$work/models/"
  m="$work/models/$file"
  sidecar="$m.easel.json"
  [[ -d $m ]] && sidecar="$m/easel.json"
  jq --arg f "$file" '.models[$f] | {
      text_encoder_heads: .text_encoder.heads,
      vae_norm_groups: .vae.norm_groups,
      prediction: (if .prediction_type == "v" then "v" else "eps" end),
      unet: ({norm_groups: .unet.norm_groups}
             + (if .unet.attention.num_heads != null then {num_heads: .unet.attention.num_heads}
                else {head_dim: .unet.attention.head_dim} end))}' "$set_dir/info.json" > "$sidecar"
  models+=("$m")
  in_ch=$(jq -r --arg f "$file" '.models[$f].unet.diffusers_config.in_channels' "$set_dir/info.json")
  pred=$(jq -r --arg f "$file" '.models[$f].prediction_type' "$set_dir/info.json")
  if [[ $in_ch == 9 ]]; then inpainting=${inpainting:-$m}
  elif [[ $pred == v ]]; then v_model=${v_model:-$m}
  else eps_txt2img=${eps_txt2img:-$m}; fi
done < <(jq -r '.models | keys[]' "$set_dir/info.json")
[[ -n $eps_txt2img ]] || { echo "the set has no eps text-to-image model" >&2; exit 2; }

# The set's pictures: an init image and a mask of the same size (the first such pair), and the
# init image's size, read from the PNG header.
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $3*256+$4, $7*256+$8}'; }
init="" mask=""
for m in "$set_dir"/mask*.png; do
  for i in "$set_dir"/init*.png; do
    if [[ -z $init && $(png_size "$i") == $(png_size "$m") ]]; then init=$i; mask=$m; fi
  done
done
[[ -n $init ]] || { echo "the set has no init image with a mask of its size" >&2; exit 2; }
read -r init_w init_h < <(png_size "$init")

# --- the matrix -------------------------------------------------------------------------------
cases=()  # "name|model|args"
add() { cases+=("$1|$2|$3"); }
small="--width 48 --height 32 --steps 4 --cfg-scale 7"
prompt="--prompt 'a (red:1.3) lighthouse at dusk, [fog]' --negative-prompt 'blurry'"
for sampler in "Euler" "Euler a" "LMS" "Heun" "DPM2" "DPM2 a" "DPM++ 2S a" "DPM++ 2M" "DPM++ 2M Karras" \
               "DPM++ SDE" "DPM++ 2M SDE" "DPM++ 2M SDE Heun" "DPM++ 3M SDE" "LCM" "DDIM" "PLMS" "UniPC"; do
  add "t2i ${sampler}" "$eps_txt2img" "$small --sampler '$sampler' --seed 11"
done
for schedule in Karras Exponential "SGM Uniform"; do
  add "t2i Euler ${schedule}" "$eps_txt2img" "$small --sampler Euler --scheduler '$schedule' --seed 12"
done
add "batch 2 x n_iter 2" "$eps_txt2img" "$small --sampler 'Euler a' --batch-size 2 --n-iter 2 --seed 13"
add "batch 2 x n_iter 2 SDE" "$eps_txt2img" "$small --sampler 'DPM++ 2M SDE' --batch-size 2 --n-iter 2 --seed 13"
add "subseed" "$eps_txt2img" "$small --sampler 'Euler a' --seed 14 --subseed 99 --subseed-strength 0.4 --batch-size 2"
add "clip skip 2" "$eps_txt2img" "$small --clip-skip 2 --seed 15"
add "ENSD" "$eps_txt2img" "$small --sampler 'Euler a' --eta-noise-seed-delta 31337 --seed 16"
add "CFG rescale" "$eps_txt2img" "$small --guidance-rescale 0.7 --seed 17"
add "BREAK, long prompt" "$eps_txt2img" "$small --seed 18 --prompt '$(printf 'word%.0s ' {1..90}) BREAK sky' --negative-prompt ''"
add "tall" "$eps_txt2img" "--width 32 --height 64 --steps 3 --seed 19"
for r in 0 1 2 3; do
  for sampler in "Euler a" "DDIM"; do
    add "i2i resize ${r} ${sampler}" "$eps_txt2img" \
        "--width 32 --height 24 --steps 5 --sampler '$sampler' --seed 20 --init-image '$init' --resize-mode $r --denoising-strength 0.7"
  done
done
add "i2i batch" "$eps_txt2img" "--width $init_w --height $init_h --steps 5 --seed 21 --init-image '$init' --batch-size 2 --n-iter 2"
inpaint="--width $init_w --height $init_h --steps 5 --init-image '$init' --mask '$mask'"
for fill in 0 1 2 3; do
  add "inpaint fill ${fill}" "$eps_txt2img" "$inpaint --seed 22 --inpainting-fill $fill --mask-blur 2"
done
add "inpaint DDIM" "$eps_txt2img" "$inpaint --seed 23 --sampler DDIM --mask-blur 0"
add "inpaint UniPC invert" "$eps_txt2img" "$inpaint --seed 23 --sampler UniPC --inpainting-mask-invert 1"
add "inpaint batch latent noise" "$eps_txt2img" "$inpaint --seed 24 --sampler 'Euler a' --inpainting-fill 2 --batch-size 2 --n-iter 2"
add "inpaint only masked" "$eps_txt2img" "$inpaint --seed 25 --inpaint-full-res true --inpaint-full-res-padding 8 --mask-blur 1"
add "inpaint resize 2" "$eps_txt2img" "--width 32 --height 24 --steps 4 --init-image '$init' --mask '$mask' --resize-mode 2 --seed 26"
add "error: mask with latent upscale" "$eps_txt2img" "$inpaint --seed 26 --resize-mode 3"
add "error: mask without init" "$eps_txt2img" "$small --seed 26 --mask '$mask'"
add "error: missing init image" "$eps_txt2img" "$small --seed 26 --init-image '$work/none.png'"
add "error: UniPC 2 steps" "$eps_txt2img" "--width 48 --height 32 --steps 2 --sampler UniPC --seed 26"
for m in "${models[@]}"; do
  [[ $m == "$inpainting" ]] && continue
  add "layout $(basename "$m")" "$m" "$small --sampler 'DPM++ 2M' --seed 27"
done
if [[ -n $v_model ]]; then
  add "v t2i Euler" "$v_model" "$small --seed 28"
  add "v t2i DDIM" "$v_model" "$small --sampler DDIM --seed 28"
  add "v t2i UniPC" "$v_model" "$small --sampler UniPC --seed 28"
  add "v t2i DPM++ SDE" "$v_model" "$small --sampler 'DPM++ SDE' --seed 28"
  add "v i2i" "$v_model" "--width 32 --height 24 --steps 5 --seed 29 --init-image '$init' --sampler PLMS"
  add "v inpaint" "$v_model" "$inpaint --seed 29 --sampler 'DPM++ 2M'"
  add "v model as eps" "$v_model" "$small --seed 28 --prediction eps"
else
  echo "note: the set has no v-prediction model" >&2
fi
if [[ -n $inpainting ]]; then
  add "9ch t2i" "$inpainting" "$small --seed 30"
  add "9ch i2i" "$inpainting" "--width 32 --height 24 --steps 5 --seed 30 --init-image '$init'"
  add "9ch inpaint DPM++ 2M" "$inpainting" "$inpaint --seed 31 --sampler 'DPM++ 2M Karras' --denoising-strength 1"
  add "9ch inpaint DDIM fill 3 invert" "$inpainting" "$inpaint --seed 31 --sampler DDIM --inpainting-fill 3 --inpainting-mask-invert 1"
  add "9ch inpaint only masked" "$inpainting" "$inpaint --seed 32 --inpaint-full-res true --inpaint-full-res-padding 8 --inpainting-fill 0"
  add "error: 9ch latent upscale" "$inpainting" "--width 32 --height 24 --steps 4 --seed 33 --init-image '$init' --resize-mode 3"
else
  echo "note: the set has no inpainting model" >&2
fi

# --- run both, compare --------------------------------------------------------------------------
failed=0 images=0 errors=0
n=0
for c in "${cases[@]}"; do
  IFS='|' read -r name model args <<< "$c"
  n=$((n + 1))
  for which in old new; do
    mkdir -p "$work/$which/$n"
    bin=$old; [[ $which == new ]] && bin=$new
    set +e
    p=$prompt; [[ $args == *--prompt* ]] && p=""
    eval "\"$bin\" --threads 1 generate --model '$model' $p $args -o '$work/$which/$n/out.png'" \
      > "$work/$which/$n.stdout" 2> "$work/$which/$n.stderr"
    echo $? > "$work/$which/$n.rc"
    set -e
  done
  verdict=same
  if ! cmp -s "$work/old/$n.rc" "$work/new/$n.rc"; then
    verdict="DIFFERENT exit status ($(cat "$work/old/$n.rc") vs $(cat "$work/new/$n.rc"))"
  elif [[ $(cat "$work/old/$n.rc") != 0 ]]; then
    if ! cmp -s <(grep '^error:' "$work/old/$n.stderr") <(grep '^error:' "$work/new/$n.stderr"); then
      verdict="DIFFERENT error message"
    else
      errors=$((errors + 1)); verdict="same error: $(grep '^error:' "$work/old/$n.stderr" | head -c 100 || true)"
    fi
  else
    old_files=$(cd "$work/old/$n" && ls)
    new_files=$(cd "$work/new/$n" && ls)
    if [[ $old_files != "$new_files" || -z $old_files ]]; then
      verdict="DIFFERENT files ($old_files | $new_files)"
    else
      for f in $old_files; do
        images=$((images + 1))
        cmp -s "$work/old/$n/$f" "$work/new/$n/$f" || verdict="DIFFERENT bytes in $f"
      done
    fi
  fi
  [[ $verdict == same* ]] || failed=$((failed + 1))
  printf '%-36s %s\n' "$name" "$verdict"
done
echo "easel generate: ${#cases[@]} requests, ${images} images compared byte for byte, ${errors} identical errors, ${failed} different"

# --- the server's routes ----------------------------------------------------------------------
# Both servers on the single-file models (each as the catalog names it: the file name).
mkdir -p "$work/serve/Stable-diffusion"
for m in "${models[@]}"; do
  [[ -f $m ]] && cp "$m" "$m.easel.json" "$work/serve/Stable-diffusion/"
done
name_of() { basename "$1"; }
base_port=$((20000 + RANDOM % 20000))
server_pids=()
stop_servers() { for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap 'stop_servers; rm -rf "$work"' EXIT
port=$base_port
for which in old new; do
  bin=$old; [[ $which == new ]] && bin=$new
  "$bin" --threads 1 serve --port $port --models-dir "$work/serve" --outputs-dir "$work/$which-outputs" \
    --data-dir "$work/$which-data" --preview-every 0 > "$work/$which-serve.log" 2>&1 &
  server_pids+=($!)
  up=0
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/sdapi/v1/sd-models" > /dev/null && up=1 && break; sleep 0.1; done
  if [[ $up == 0 ]]; then
    echo "easel serve ($which) did not answer on port $port within 30 s:" >&2
    tail -5 "$work/$which-serve.log" >&2
    exit 1
  fi
  port=$((port + 1))
done
b64() { base64 -w0 "$1"; }
api_cases=()  # "name|route|json body or -F form arguments"
add_api() { api_cases+=("$1|$2|$3"); }
eps_name=$(name_of "$eps_txt2img")
[[ -f $eps_txt2img ]] || eps_name=$(cd "$work/serve/Stable-diffusion" && ls | grep -v easel.json | head -1)
a1111() {  # checkpoint, then extra JSON fields
  jq -nc --arg ck "$1" --argjson extra "$2" '{prompt: "a (red:1.3) lighthouse at dusk, [fog]", negative_prompt: "blurry",
    width: 48, height: 32, steps: 4, cfg_scale: 7, override_settings: {sd_model_checkpoint: $ck}} + $extra'
}
add_api "sdapi txt2img batch 2 x 2" /sdapi/v1/txt2img "$(a1111 "$eps_name" '{"sampler_name": "Euler a", "seed": 13, "batch_size": 2, "n_iter": 2}')"
add_api "sdapi txt2img SDE subseed" /sdapi/v1/txt2img "$(a1111 "$eps_name" '{"sampler_name": "DPM++ 2M SDE", "seed": 14, "subseed": 5, "subseed_strength": 0.3, "seed_resize_from_w": 64, "seed_resize_from_h": 48}')"
add_api "sdapi txt2img clip skip, DDIM eta" /sdapi/v1/txt2img "$(a1111 "$eps_name" '{"sampler_name": "DDIM", "seed": 15, "eta": 0.5, "override_settings": {"CLIP_stop_at_last_layers": 2}}' | jq -c --arg ck "$eps_name" '.override_settings.sd_model_checkpoint = $ck')"
add_api "sdapi img2img crop" /sdapi/v1/img2img "$(a1111 "$eps_name" "{\"seed\": 16, \"width\": 32, \"height\": 24, \"resize_mode\": 1, \"denoising_strength\": 0.6, \"init_images\": [\"$(b64 "$init")\"]}")"
add_api "sdapi inpaint latent noise" /sdapi/v1/img2img "$(a1111 "$eps_name" "{\"seed\": 17, \"width\": $init_w, \"height\": $init_h, \"inpainting_fill\": 2, \"mask_blur\": 2, \"init_images\": [\"$(b64 "$init")\"], \"mask\": \"$(b64 "$mask")\"}")"
if [[ -n $v_model ]]; then
  add_api "sdapi v txt2img UniPC" /sdapi/v1/txt2img "$(a1111 "$(name_of "$v_model")" '{"sampler_name": "UniPC", "seed": 18}')"
fi
if [[ -n $inpainting ]]; then
  add_api "sdapi 9ch inpaint only masked" /sdapi/v1/img2img "$(a1111 "$(name_of "$inpainting")" "{\"seed\": 19, \"width\": $init_w, \"height\": $init_h, \"inpaint_full_res\": true, \"inpaint_full_res_padding\": 8, \"init_images\": [\"$(b64 "$init")\"], \"mask\": \"$(b64 "$mask")\"}")"
fi
add_api "openai generations" /v1/images/generations "$(jq -nc --arg m "$eps_name" '{prompt: "a lighthouse", model: $m, n: 2, size: "48x32", steps: 4, seed: 20}')"
add_api "openai edits" /v1/images/edits "-F prompt=a_lighthouse -F model=$eps_name -F size=${init_w}x${init_h} -F steps=4 -F seed=21 -F image=@$init"
api_failed=0 api_images=0
for c in "${api_cases[@]}"; do
  IFS='|' read -r name route body <<< "$c"
  port=$base_port
  for which in old new; do
    if [[ $body == -F* ]]; then
      # shellcheck disable=SC2086
      curl -s -o "$work/$which.json" "http://127.0.0.1:$port$route" $body || true
    else
      curl -s -o "$work/$which.json" -H 'Content-Type: application/json' --data-binary "$body" "http://127.0.0.1:$port$route" || true
    fi
    jq -c '[.images[]?, .data[]?.b64_json]' "$work/$which.json" > "$work/$which.images" 2>/dev/null || echo "[]" > "$work/$which.images"
    port=$((port + 1))
  done
  count=$(jq length "$work/old.images")
  if [[ $count == 0 ]]; then
    verdict="NO IMAGES: $(head -c 200 "$work/old.json")"
  elif cmp -s "$work/old.images" "$work/new.images"; then
    verdict="same ($count PNGs)"; api_images=$((api_images + count))
  else
    verdict="DIFFERENT"
  fi
  [[ $verdict == same* ]] || api_failed=$((api_failed + 1))
  printf '%-36s %s\n' "$name" "$verdict"
done
echo "easel serve: ${#api_cases[@]} requests, ${api_images} images compared byte for byte, ${api_failed} different or failed"
failed=$((failed + api_failed))
if [[ $failed != 0 ]]; then
  trap stop_servers EXIT
  echo "outputs kept in $work" >&2
  exit 1
fi
