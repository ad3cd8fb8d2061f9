#!/usr/bin/env bash
# Regenerates every generated golden set into one data root, from another seed, so that the tests
# can be run on sets they have never seen:
#
#   tools/refgen/regen_all.sh --out /tmp/data-s7 --seed 7
#   EASEL_TEST_DATA=/tmp/data-s7 build/tests/easel_tests
#
# Each generator of tools/refgen writes its set with that seed (other weights, inputs and case
# seeds; where it says so, other prompts and sizes). The sets no generator here makes are copied
# from tests/data as they are: those made elsewhere (../shared/refdata: clip_tokenizer, qwen_tokenizer,
# prompt_weights, torch_rng; taef2_real, real pretrained weights) and the hand-made JPEGs of images/.
# Without --seed the generators write the committed sets again (tests/data itself is never written).
# The generators record their versions in their files; regenerated.json at the root records the
# seed, the commit and the interpreter's package versions; logs/ holds each generator's output.
#
# Python: $PYTHON, else the venv tools/refgen/requirements.txt describes (../venv-refgen).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$(cd "$root/.." && pwd)/venv-refgen/bin/python}"
out="" seed=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "usage: $0 --out DIR [--seed N]" >&2; exit 2 ;;
  esac
done
[[ -n "$out" ]] || { echo "usage: $0 --out DIR [--seed N]" >&2; exit 2; }
[[ -x "$python" ]] || { echo "no Python at $python: make the venv (tools/refgen/requirements.txt) or set PYTHON" >&2; exit 1; }
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
[[ "$out" != "$root/tests/data" ]] || { echo "refusing to write into tests/data: give another folder" >&2; exit 1; }

# set -> generator (run from the source root: the generators read tests/data/clip_tokenizer and
# tests/data/prompt_weights).
declare -A generated=(
  [brownian_tree]=brownian_tree.py
  [clip_text_tiny]=clip_text.py
  [pil_ops]=pil_ops.py
  [samplers]=samplers.py
  [sd_pipeline_tiny]=sd_pipeline.py
  [torch_ckpt]=make_ckpt_fixtures.py
  [unet_sd_tiny]=unet_sd.py
  [vae_kl_tiny]=vae_kl.py
)
copied=(clip_tokenizer images prompt_weights qwen_tokenizer taef2_real torch_rng)

# Every set of tests/data is either generated or copied: a new set must be added above.
for dir in "$root"/tests/data/*/; do
  set_name="$(basename "$dir")"
  if [[ -z "${generated[$set_name]+x}" && ! " ${copied[*]} " =~ " $set_name " ]]; then
    echo "tests/data/$set_name is neither generated nor copied by $0: add it" >&2
    exit 1
  fi
done

seed_args=()
[[ -z "$seed" ]] || seed_args=(--seed "$seed")
cd "$root"
for set_name in "${copied[@]}"; do
  rm -rf "${out:?}/$set_name"
  cp -r "tests/data/$set_name" "$out/$set_name"
  echo "$set_name: copied from tests/data"
done
for set_name in $(printf '%s\n' "${!generated[@]}" | sort); do
  rm -rf "${out:?}/$set_name"
  echo "$set_name: tools/refgen/${generated[$set_name]} ${seed_args[*]}"
  "$python" "tools/refgen/${generated[$set_name]}" --out "$out/$set_name" "${seed_args[@]}" \
    > "$out/logs/$set_name.log" 2>&1 || { echo "failed, see $out/logs/$set_name.log" >&2; exit 1; }
done

"$python" - "$out" "$seed" "$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)" <<'EOF'
import importlib.metadata as md, json, os, platform, sys
out, seed, commit = sys.argv[1], sys.argv[2], sys.argv[3]
pins = [l.split("==")[0] for l in open("tools/refgen/requirements.txt") if "==" in l and not l.startswith("#")]
info = {"seed": int(seed) if seed else None, "commit": commit, "python": platform.python_version(),
        "packages": {p: md.version(p) for p in pins + ["k-diffusion"]},
        "generated": sorted(f[:-4] for f in os.listdir(os.path.join(out, "logs"))),
        "copied_from_tests_data": sorted(d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))
                                         and not os.path.exists(os.path.join(out, "logs", d + ".log")) and d != "logs")}
with open(os.path.join(out, "regenerated.json"), "w") as f:
    json.dump(info, f, indent=1)
    f.write("\n")
EOF
du -sh "$out"
