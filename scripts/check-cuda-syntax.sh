#!/usr/bin/env bash
# Dev check, not part of `npm test`: syntax-checks native files with -DPANSEG_CUDA against CUDA headers
# on a machine without a GPU or a CUDA libtorch (the CUDA-only code compiles nowhere else here).
# Uses the flags of the last build (build/addon-config.json) plus the CUDA headers.
# usage: scripts/check-cuda-syntax.sh [native/file.cc ...]   (default: native/cuda-graph.cc native/capturable.cc)
# CUDA_HEADERS: a CUDA toolkit include dir (default /opt/cuda-headers/include); CUDA_STUB: a dir with
# the CMake-generated header Debian's libtorch-dev lacks (default /opt/cuda-headers/stub).
set -euo pipefail
cd "$(dirname "$0")/.."
inc=${CUDA_HEADERS:-/opt/cuda-headers/include}
stub=${CUDA_STUB:-/opt/cuda-headers/stub}
[ -f build/addon-config.json ] || { echo "build the addon first: node scripts/build-addon.mjs" >&2; exit 1; }
mapfile -t flags < <(node -e "for (const f of require('./build/addon-config.json').cflags) if (!/^-O|^-fopenmp/.test(f)) console.log(f)")
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(native/cuda-graph.cc native/capturable.cc)
for f in "${files[@]}"; do
  echo "== $f"
  g++ "${flags[@]}" -fsyntax-only -DPANSEG_CUDA -isystem "$inc" -isystem "$stub" "$f"
done
echo "ok: ${files[*]} compile with -DPANSEG_CUDA (syntax only; not linked, not run)"
