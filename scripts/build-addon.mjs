#!/usr/bin/env node
// Builds native/*.cc into build/Release/panseg.node against libtorch.
// libtorch is looked up in a fixed order (LIBTORCH, an installed PyTorch, the system's
// libtorch-dev) and the choice is recorded in build/addon-config.json for `panseg info`.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import os from 'node:os';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, 'build');
const objDir = join(buildDir, 'obj');
const outFile = join(buildDir, 'Release', 'panseg.node');
const configFile = join(buildDir, 'addon-config.json');

function fail(msg) {
  console.error(`panseg build: ${msg}`);
  process.exit(1);
}

function libtorchAt(prefix, source) {
  const inc = join(prefix, 'include');
  const lib = join(prefix, 'lib');
  if (!existsSync(join(inc, 'ATen', 'ATen.h')) || !existsSync(join(lib, 'libtorch.so'))) return null;
  return { source, prefix, includes: [inc, join(inc, 'torch', 'csrc', 'api', 'include')], lib };
}

function fromPython() {
  for (const py of ['python3', '/usr/bin/python3']) {
    try {
      const dir = execFileSync(py, ['-c', 'import torch, os; print(os.path.dirname(torch.__file__))'], {
        encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000,
      }).trim();
      const found = dir && libtorchAt(dir, `PyTorch (${py})`);
      if (found) return found;
    } catch { /* no torch in this python */ }
  }
  return null;
}

function fromSystem() {
  const triplet = `${os.arch() === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
  for (const lib of [`/usr/lib/${triplet}`, '/usr/lib', '/usr/local/lib']) {
    if (existsSync(join(lib, 'libtorch.so')) && existsSync('/usr/include/ATen/ATen.h')) {
      return { source: 'system libtorch-dev', prefix: '/usr', includes: ['/usr/include', '/usr/include/torch/csrc/api/include'], lib };
    }
  }
  return null;
}

function findLibtorch() {
  if (process.env.LIBTORCH) {
    const found = libtorchAt(resolve(process.env.LIBTORCH), 'LIBTORCH');
    if (!found) fail(`LIBTORCH=${process.env.LIBTORCH} does not hold include/ATen/ATen.h and lib/libtorch.so; point it at an unpacked libtorch zip from pytorch.org`);
    return found;
  }
  const found = fromPython() ?? fromSystem();
  if (found) return found;
  fail([
    'libtorch was not found. panseg looks in this order:',
    '  1. LIBTORCH=/path/to/libtorch (an unpacked libtorch zip from pytorch.org, CPU or CUDA)',
    "  2. the libtorch inside an installed PyTorch (python3 -c 'import torch')",
    '  3. the system one: sudo apt-get install libtorch-dev libopenblas0-pthread',
  ].join('\n'));
}

function findNodeHeaders() {
  const cands = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    resolve(process.execPath, '..', '..', 'include', 'node'),
    '/usr/include/node',
    join(os.homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ].filter(Boolean);
  const dir = cands.find((d) => existsSync(join(d, 'node_api.h')));
  if (!dir) fail(`Node's C headers (node_api.h) were not found in ${cands.join(', ')}`);
  return dir;
}

function torchVersion(lt) {
  // PyTorch 2.9+ keeps the numbers in torch/headeronly/version.h.
  const txt = lt.includes.flatMap((i) => [join(i, 'torch', 'version.h'), join(i, 'torch', 'headeronly', 'version.h')])
    .filter(existsSync).map((h) => readFileSync(h, 'utf8')).join('\n');
  const v = (n) => (txt.match(new RegExp(`TORCH_VERSION_${n}\\s+(\\d+)`)) ?? [])[1];
  return v('MAJOR') ? `${v('MAJOR')}.${v('MINOR')}.${v('PATCH')}` : 'unknown';
}

function cxx11Abi(lt) {
  try {
    const syms = execFileSync('nm', ['-D', '--defined-only', join(lt.lib, 'libc10.so')], { encoding: 'utf8', maxBuffer: 1 << 28 });
    return syms.includes('__cxx11') ? 1 : 0;
  } catch { return 1; }
}

const lt = findLibtorch();
const cuda = existsSync(join(lt.lib, 'libtorch_cuda.so'));
const config = {
  source: lt.source, prefix: lt.prefix, lib: lt.lib, version: torchVersion(lt), cuda,
  cxx11Abi: cxx11Abi(lt),
};
// A CUDA libtorch's NCCL process group needs the CUDA toolkit's headers and nccl.h at build time
// (the rest of the addon needs neither). Missing ones only leave NCCL out of the build.
function cudaIncludes() {
  const dirs = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'].filter(Boolean).map((d) => join(d, 'include'));
  const found = dirs.filter((d) => existsSync(join(d, 'cuda_runtime_api.h'))).slice(0, 1);
  const nccl = [process.env.NCCL_INCLUDE, ...found, ...ncclFromPython()].filter(Boolean).find((d) => existsSync(join(d, 'nccl.h')));
  if (nccl && !found.includes(nccl)) found.push(nccl);
  return found;
}
function ncclFromPython() {
  try {
    const out = execFileSync('python3', ['-c', 'import nvidia, os; print("\\n".join(os.path.join(p, d, "include") for p in nvidia.__path__ for d in os.listdir(p)))'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000,
    });
    return out.split('\n').filter(Boolean);
  } catch { return []; }
}

// native/mkldnn.cc calls oneDNN through ideep's headers only where libtorch loads the system oneDNN
// (Debian's); pytorch.org's and pip's libtorch link oneDNN statically, so the path could never run
// there, and their bundled ideep headers may not match the code: leave it out at compile time.
function linksSystemOneDnn(lib) {
  return /NEEDED.*libdnnl\.so/.test(libtorchNeeds(lib));
}

// The fused optimizer loops (native/optim.cc) split their work with OpenMP where libtorch itself runs
// on libgomp (Debian's, pip's and pytorch.org's builds; pip's bundles a renamed copy). They are
// compiled with -fopenmp but not linked against a libgomp of their own: the GOMP symbols resolve to
// the copy libtorch loads, so one OpenMP runtime and one thread pool serve both.
function libtorchUsesGomp(lib) {
  return /NEEDED.*libgomp[^\]]*\.so/.test(libtorchNeeds(lib));
}

function libtorchNeeds(lib) {
  try {
    return execFileSync('readelf', ['-d', join(lib, 'libtorch_cpu.so')], { encoding: 'utf8', maxBuffer: 1 << 24 });
  } catch { return ''; }
}

const nodeInc = findNodeHeaders();
const napiInc = dirname(createRequire(import.meta.url).resolve('node-addon-api/package.json'));
// PyTorch 2.10 and later are built as C++20 and their headers may use it; older ones as C++17.
const [tMajor, tMinor] = config.version.split('.').map(Number);
const std = tMajor > 2 || (tMajor === 2 && tMinor >= 10) ? 'c++20' : 'c++17';
const cflags = [
  `-std=${std}`, '-O2', '-fPIC',
  // Nothing here reads errno after maths; without it, loops that take a square root cannot vectorize.
  '-fno-math-errno', '-Wall', '-Wno-unused-parameter', '-Wno-unused-variable',
  `-D_GLIBCXX_USE_CXX11_ABI=${config.cxx11Abi}`, '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS',
  '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS', ...(cuda ? ['-DPANSEG_CUDA'] : []),
  ...(linksSystemOneDnn(lt.lib) ? [] : ['-DPANSEG_NO_IDEEP']),
  ...(libtorchUsesGomp(lt.lib) ? ['-fopenmp'] : []),
  `-I${nodeInc}`, `-I${napiInc}`, ...lt.includes.map((i) => `-isystem${i}`),
  ...(cuda ? cudaIncludes().map((i) => `-isystem${i}`) : []),
  // Extra flags, e.g. PANSEG_CXXFLAGS=-DPANSEG_NO_NCCL (or -DPANSEG_NO_C10D) to leave a backend out.
  ...(process.env.PANSEG_CXXFLAGS ?? '').split(/\s+/).filter(Boolean),
];
const libs = cuda ? ['-ltorch', '-ltorch_cuda', '-ltorch_cpu', '-lc10_cuda', '-lc10'] : ['-ltorch', '-ltorch_cpu', '-lc10'];
const ldflags = ['-shared', `-L${lt.lib}`, `-Wl,-rpath,${lt.lib}`, '-Wl,--no-as-needed', ...libs];

const stamp = JSON.stringify({ config, cflags, ldflags });
const prev = existsSync(configFile) ? readFileSync(configFile, 'utf8') : '';
const prevStamp = prev ? JSON.stringify((({ config: c, cflags: f, ldflags: l }) => ({ config: c, cflags: f, ldflags: l }))(JSON.parse(prev))) : '';
const configChanged = prevStamp !== stamp;

const srcDir = join(root, 'native');
const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cc'));
const headers = readdirSync(srcDir).filter((f) => f.endsWith('.h')).map((f) => join(srcDir, f));
const newestHeader = Math.max(0, ...headers.map((h) => statSync(h).mtimeMs));
mkdirSync(objDir, { recursive: true });
mkdirSync(dirname(outFile), { recursive: true });

const jobs = sources.map((s) => ({ src: join(srcDir, s), obj: join(objDir, s.replace(/\.cc$/, '.o')) }))
  .filter(({ src, obj }) => configChanged || !existsSync(obj) || statSync(obj).mtimeMs < Math.max(statSync(src).mtimeMs, newestHeader));

function run(cmd, args) {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`${cmd} exited with ${code}`))));
  });
}

async function main() {
  if (jobs.length) console.log(`panseg build: libtorch ${config.version} from ${config.source} (${config.lib})${cuda ? ' with CUDA' : ''}; compiling ${jobs.length} file(s)`);
  const queue = [...jobs];
  const parallel = Math.max(1, Math.min(os.availableParallelism?.() ?? 2, 8));
  // Every started compile finishes before a failure is reported (no g++ left writing into build/).
  const failed = [];
  await Promise.all(Array.from({ length: parallel }, async () => {
    for (let j = queue.shift(); j; j = queue.shift()) await run('g++', [...cflags, '-c', j.src, '-o', j.obj]).catch(() => failed.push(j.src));
  }));
  if (failed.length) throw new Error(`compiling ${failed.map((f) => f.slice(srcDir.length + 1)).join(', ')} failed (errors above)`);
  const objs = sources.map((s) => join(objDir, s.replace(/\.cc$/, '.o')));
  const newestObj = Math.max(...objs.map((o) => statSync(o).mtimeMs));
  if (jobs.length || !existsSync(outFile) || statSync(outFile).mtimeMs < newestObj) {
    const tmp = `${outFile}.tmp`;
    await run('g++', ['-o', tmp, ...objs, ...ldflags]);
    renameSync(tmp, outFile);
  }
  writeFileSync(configFile, JSON.stringify({ config, cflags, ldflags }, null, 2));
}

main().catch((e) => fail(e.message));
