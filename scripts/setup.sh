#!/usr/bin/env bash
# One idempotent setup step, run before `npm test`, `npm run demo` and `npm run bench`:
# system packages -> npm packages -> native addon -> TypeScript. Seconds when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. Debian packages: libtorch (with oneDNN), OpenBLAS (1x1 convs fall to the ~10x slower
#    reference BLAS without it), oneDNN's and ideep's headers (inference copies call oneDNN for
#    Winograd convolutions; without them ATen's slower path runs), PyTorch for the parity tests'
#    reference data (and Pillow for the PyTorch side of `npm run bench -- train`), a compiler, Gloo's headers (distributed training on c10d), and Chromium (+ a font)
#    for the web page's browser test.
PKGS=(libtorch-dev libopenblas0-pthread libdnnl-dev libideep-dev python3-torch python3-numpy python3-pil g++ make libgloo-dev chromium fonts-dejavu-core)
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
fi
if [ -n "${LIBTORCH:-}" ]; then
  # A user-provided libtorch replaces the Debian one.
  missing=("${missing[@]/libtorch-dev/}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then
    echo "panseg setup: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive bash -c "$cmd" >/tmp/panseg-apt.log 2>&1 || { tail -20 /tmp/panseg-apt.log; echo "panseg setup: apt-get failed (log above)"; exit 1; }
  else
    echo "panseg setup: missing system packages: ${missing[*]}"
    echo "  run: sudo bash -c '$cmd'"
    exit 1
  fi
fi

# 2. npm packages, when node_modules is missing or older than the lockfile.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "panseg setup: npm ci"
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi

# 3. The native addon (incremental) and 4. the TypeScript build (incremental).
node scripts/build-addon.mjs
npx tsc -p tsconfig.json
