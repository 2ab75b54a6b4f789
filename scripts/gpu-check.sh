#!/usr/bin/env bash
# GPU checks in one run, for a machine with an NVIDIA GPU and a CUDA PyTorch (python3): builds the
# addon against that PyTorch's libtorch, runs the CUDA/NCCL test cases and the GPU benchmark.
# Logs go to $OUT (default ./gpu-out). Node, its headers and node_modules may come packed in .gpu/
# (node.xz, node-headers.tar.xz, node_modules.tar.xz) for a machine without them, made on a machine with
# them: xz -c "$(command -v node)" > .gpu/node.xz; tar cJf .gpu/node-headers.tar.xz -C /usr include/node;
# tar cJf .gpu/node_modules.tar.xz --exclude='node_modules/onnxruntime-*' --exclude=node_modules/typescript node_modules
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
if ! command -v node >/dev/null && [ -f .gpu/node.xz ]; then
  mkdir -p .gpu/bin && xz -dc .gpu/node.xz > .gpu/bin/node && chmod +x .gpu/bin/node
  tar xJf .gpu/node-headers.tar.xz -C .gpu && export npm_config_nodedir=$PWD/.gpu
  export PATH=$PWD/.gpu/bin:$PATH
fi
[ -d node_modules ] || tar xJf .gpu/node_modules.tar.xz
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch, os; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(), os.path.dirname(torch.__file__))'
  g++ --version | head -1; node -v; nproc
  find / -name nccl.h -not -path '*/proc/*' 2>/dev/null | head -3
} 2>&1 | tee "$OUT/machine.txt"

export MAX_JOBS=$(nproc)
build() { echo "== build ${PANSEG_CXXFLAGS:-}"; rm -rf build; node scripts/build-addon.mjs; }
{ build || PANSEG_CXXFLAGS=-DPANSEG_NO_NCCL build || PANSEG_CXXFLAGS='-DPANSEG_NO_NCCL -DPANSEG_NO_C10D' build; } > "$OUT/build.log" 2>&1
grep -m8 -E 'error|== build|compiling' "$OUT/build.log"
node --import tsx -e "import('./src/engine/index.ts').then(e => { console.log(JSON.stringify(e.buildInfo())); return import('./src/distributed/index.ts'); }).then(d => console.log('nccl', d.ncclAvailable(), 'dist', d.distributedUnavailable()))" 2>&1 | tee -a "$OUT/machine.txt"

# CUDA graphs (written without a GPU; these are their first GPU runs): capture/replay, the graphed training
# step vs eager, graphed inference, and the capturable optimizers and scaler.
timeout "${PANSEG_GPU_TEST_S:-300}" node --import tsx --test --test-reporter=spec tests/engine/cuda.test.ts tests/train/grad-scaler.test.ts \
  tests/engine/cuda-graph.test.ts tests/train/graphed-step.test.ts tests/train/capturable.test.ts > "$OUT/tests.log" 2>&1
echo "tests exit $?"; grep -E '^ *(✔|✖)|^ℹ (tests|pass|fail|skipped)' "$OUT/tests.log" | head -60
timeout "${PANSEG_GPU_BENCH_S:-300}" node --import tsx bench/run.ts cuda > "$OUT/bench.log" 2>&1
echo "bench exit $?"; tail -30 "$OUT/bench.log"
timeout "${PANSEG_GPU_DEMO_S:-180}" node --import tsx src/cli/main.ts demo --device cuda --precision "${PANSEG_GPU_DEMO_PRECISION:-bf16}" --workers 4 --quiet --out /tmp/demo-gpu > "$OUT/demo.log" 2>&1
echo "demo exit $?"; tail -6 "$OUT/demo.log"
