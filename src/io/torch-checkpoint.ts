// Reads PyTorch checkpoints written by torch.save (the zip format, default since PyTorch 1.6)
// without Python and without executing anything: a zip reader, a restricted unpickler that knows
// only tensors and containers, and storages copied out of `<archive>/data/<key>`.
import { describe, fail } from '../common/errors.js';
import { fromBytes } from '../engine/bytes.js';
import { BYTES, type DType } from '../engine/dtype.js';
import type { Tensor } from '../engine/tensor.js';
import { type Fail, RandomAccessFile } from './file.js';
import { PyCallable, isTuple, pyDescribe, unpickle } from './pickle.js';
import { ZipArchive } from './zip.js';

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ByteStorage: 'uint8', BoolStorage: 'bool',
};
/** data.pkl takes about 150 bytes per tensor: a few hundred KiB for real models, so 16 MiB is ample. */
const MAX_PICKLE = 16 * 1024 * 1024;
/** A view may be larger than its storage only through zero strides (expand); refuse huge ones. */
const MAX_EXPANSION = 1024 * 1024 * 1024;
/**
 * Tensors are copied out of their storages; views that share a storage (tied weights, slices of one
 * buffer) are copied once each. The copies may total this many times the storage bytes the file
 * holds (plus MATERIALIZE_SLACK), so a small file cannot ask for many copies of one big storage.
 */
const MATERIALIZE_FACTOR = 4;
const MATERIALIZE_SLACK = 1024 * 1024;
/** Deflated entries may inflate to this many times the file's size in all (plus INFLATE_SLACK). */
const INFLATE_FACTOR = 32;
const INFLATE_SLACK = 64 * 1024 * 1024;
/** More dimensions than any model uses (NumPy allows 64 too). */
const MAX_DIMS = 64;
const WRAPPER_KEYS = ['state_dict', 'model', 'model_state_dict'];

class StorageType extends PyCallable {
  constructor(name: string, readonly dtype: DType, bad: Fail) {
    super(`torch.${name}`, () => bad(`calling torch.${name} is not supported`));
  }
}
class StorageRef {
  constructor(readonly key: string, readonly dtype: DType, readonly numel: number) {}
}
class TensorSpec {
  constructor(readonly storage: StorageRef, readonly offset: unknown, readonly size: unknown, readonly stride: unknown) {}
}
/** torch.Tensor / torch.nn.Parameter as the `new_type` of _rebuild_from_type_v2. */
class TensorClass extends PyCallable {}

function allowedGlobals(bad: Fail): (module: string, name: string) => unknown {
  const asTensor = (x: unknown, fn: string): TensorSpec => (x instanceof TensorSpec ? x : bad(`${fn} expects a tensor but received ${pyDescribe(x)}`));
  const rebuildTensor = (a: readonly unknown[]): TensorSpec => {
    if (a.length < 6 || a.length > 7) bad(`_rebuild_tensor_v2 expects 6 or 7 arguments but received ${a.length}`);
    if (!(a[0] instanceof StorageRef)) bad(`_rebuild_tensor_v2 expects a storage but received ${pyDescribe(a[0])}`);
    return new TensorSpec(a[0], a[1], a[2], a[3]);
  };
  const fixed: Record<string, () => PyCallable> = {
    'collections.OrderedDict': () => new PyCallable('collections.OrderedDict', (a) => {
      if (a.length === 0) return new Map();
      bad('collections.OrderedDict with arguments is not supported');
    }),
    'torch._utils._rebuild_tensor_v2': () => new PyCallable('torch._utils._rebuild_tensor_v2', rebuildTensor),
    'torch._utils._rebuild_parameter': () => new PyCallable('torch._utils._rebuild_parameter', (a) => asTensor(a[0], '_rebuild_parameter')),
    'torch._utils._rebuild_parameter_with_state': () => new PyCallable('torch._utils._rebuild_parameter_with_state', (a) => asTensor(a[0], '_rebuild_parameter_with_state')),
    'torch._tensor._rebuild_from_type_v2': () => new PyCallable('torch._tensor._rebuild_from_type_v2', (a) => {
      const [func, newType, args] = a;
      if (!(func instanceof PyCallable) || !(newType instanceof TensorClass) || !isTuple(args)) bad('_rebuild_from_type_v2 with unexpected arguments');
      return asTensor(func.call(args), '_rebuild_from_type_v2');
    }),
    'torch.Tensor': () => new TensorClass('torch.Tensor', () => bad('constructing torch.Tensor directly is not supported')),
    'torch.nn.parameter.Parameter': () => new TensorClass('torch.nn.parameter.Parameter', () => bad('constructing torch.nn.Parameter directly is not supported')),
  };
  return (module, name) => {
    const q = `${module}.${name}`;
    if (Object.hasOwn(fixed, q)) return fixed[q]();
    if (module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name)) return new StorageType(name, STORAGE_DTYPES[name], bad);
    if (module === 'torch' && /^(ComplexFloat|ComplexDouble|ComplexHalf|Char|Short|QInt8|QUInt8|QInt32|QUInt4x2|QUInt2x3)Storage$/.test(name)) {
      bad(`tensors stored as torch.${name} are not supported (supported: ${Object.values(STORAGE_DTYPES).join(', ')})`);
    }
    bad(`refusing to load global '${q}' (only tensors, dicts and primitive containers are allowed)`);
  };
}

function persistentLoad(bad: Fail): (pid: unknown) => StorageRef {
  return (pid) => {
    if (!isTuple(pid) || pid.length !== 5 || pid[0] !== 'storage') bad(`unsupported persistent id ${pyDescribe(pid)}; expected a ('storage', type, key, location, numel) record`);
    const [, type, key, , numel] = pid;
    if (!(type instanceof StorageType)) bad(`a storage record names ${pyDescribe(type)} instead of a storage type`);
    if (typeof key !== 'string') bad(`a storage record has ${pyDescribe(key)} as its key`);
    if (!Number.isSafeInteger(numel) || (numel as number) < 0) bad(`storage '${key}' has an invalid element count`);
    return new StorageRef(key, type.dtype, numel as number);
  };
}

const isTensorDict = (x: unknown): x is Map<unknown, TensorSpec> =>
  x instanceof Map && [...x.values()].every((t) => t instanceof TensorSpec);

/** Picks the state dict out of what the pickle holds: the dict itself or a known wrapper entry. */
function stateDictOf(top: unknown, bad: Fail): Map<unknown, TensorSpec> {
  if (!(top instanceof Map)) bad(`holds ${pyDescribe(top)}, not a state_dict (a dict of tensors)`);
  if (isTensorDict(top)) return top;
  for (const k of WRAPPER_KEYS) if (isTensorDict(top.get(k))) return top.get(k) as Map<unknown, TensorSpec>;
  const hasWrapper = WRAPPER_KEYS.find((k) => top.has(k));
  if (hasWrapper) {
    const inner = top.get(hasWrapper);
    if (inner instanceof Map) {
      const [k, x] = [...inner].find(([, t]) => !(t instanceof TensorSpec))!;
      bad(`holds a '${hasWrapper}' dict whose key ${String(k)} holds ${pyDescribe(x)}, not a tensor`);
    }
    bad(`holds a '${hasWrapper}' entry that is ${pyDescribe(inner)}, not a dict of tensors`);
  }
  const [k, x] = [...top].find(([, t]) => !(t instanceof TensorSpec))!;
  bad(`is not a state_dict: key ${typeof k === 'string' ? `'${k}'` : String(k)} holds ${pyDescribe(x)}, not a tensor, and there is no ${WRAPPER_KEYS.map((w) => `'${w}'`).join(' or ')} entry`);
}

const fmt = (a: readonly number[]): string => `[${a.join(', ')}]`;

function intList(x: unknown, what: string, name: string, bad: Fail): number[] {
  if (!isTuple(x) && !Array.isArray(x)) bad(`tensor '${name}' has ${pyDescribe(x)} as its ${what}`);
  if (x.length > MAX_DIMS) bad(`tensor '${name}' has a ${what} of ${x.length} dimensions, more than the ${MAX_DIMS} supported`);
  if (!x.every((n) => Number.isSafeInteger(n) && (n as number) >= 0)) {
    bad(`tensor '${name}' has ${what} [${x.map((n) => (typeof n === 'number' ? String(n) : pyDescribe(n))).join(', ')}]; sizes and strides must be non-negative integers`);
  }
  return x as number[];
}

/**
 * Copies the elements of a strided view of `src` into row-major order. Elements move as 1-, 2- or
 * 4-byte integer words (8-byte items as two words), so float bits, NaN payloads included, are kept.
 */
function gather(src: Uint8Array, item: number, offset: number, size: number[], stride: number[], numel: number): Uint8Array {
  const word = Math.min(item, 4);
  const words = item / word;
  const aligned = src.byteOffset % word === 0 ? src : src.slice();
  const Words = word === 4 ? Uint32Array : word === 2 ? Uint16Array : Uint8Array;
  const from = new Words(aligned.buffer as ArrayBuffer, aligned.byteOffset, Math.floor(aligned.byteLength / word));
  const out = new Words(numel * words);
  const nd = size.length;
  const inner = nd ? size[nd - 1] : 1;
  const innerStride = nd ? stride[nd - 1] : 1;
  const idx = new Array<number>(Math.max(nd - 1, 0)).fill(0);
  let o = 0;
  for (let r = 0, rows = numel / inner; r < rows; r++) {
    let base = offset;
    for (let d = 0; d < nd - 1; d++) base += idx[d] * stride[d];
    if (innerStride === 1) {
      out.set(from.subarray(base * words, (base + inner) * words), o);
      o += inner * words;
    } else if (words === 1) {
      for (let j = 0, e = base; j < inner; j++, e += innerStride) out[o++] = from[e];
    } else {
      for (let j = 0, e = base * 2; j < inner; j++, e += innerStride * 2) { out[o++] = from[e]; out[o++] = from[e + 1]; }
    }
    for (let d = nd - 2; d >= 0; d--) {
      if (++idx[d] < size[d]) break;
      idx[d] = 0;
    }
  }
  return new Uint8Array(out.buffer);
}

function isRowMajor(size: number[], stride: number[]): boolean {
  let expect = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expect) return false;
    expect *= size[d];
  }
  return true;
}

/**
 * Loads the tensors of a PyTorch checkpoint written by `torch.save` (zip format, PyTorch >= 1.6)
 * as a Map from state_dict key to a CPU tensor, in the file's key order.
 *
 * Accepts a state_dict itself, or a dict that wraps one under `'state_dict'`, `'model'` or
 * `'model_state_dict'` (other entries such as `epoch` or optimizer state are read and ignored).
 * Tensors always land on the CPU (like `map_location='cpu'`), as contiguous copies; views that
 * share a storage become independent tensors, and `requires_grad` is dropped. A tensor expanded
 * along some dimensions (stride 0, as `x.expand(...)` saves) loads as an expanded view of its
 * elements, as torch.load gives it, rather than a full copy.
 *
 * The file is treated as untrusted: the pickle is interpreted by a restricted reader that allows
 * only `collections.OrderedDict`, torch's tensor/parameter rebuild functions and the storage types
 * of the supported dtypes (float32, float64, float16, bfloat16, int64, int32, uint8, bool); any
 * other global (e.g. `os.system`) is refused and nothing is ever executed. Legacy (pre-1.6),
 * TorchScript and big-endian archives are refused with an explanation. Zip CRCs are not checked.
 * Memory stays bounded by the file: data.pkl may hold 16 MiB and build 128 MiB of objects at most,
 * deflated entries may inflate to 32x the file size (+64 MiB) in all, zip entries may not overlap,
 * and the copies made may total 4x the storage bytes in the file (+1 MiB).
 *
 * @example
 * const sd = loadTorchCheckpoint('resnet18.pth');
 * sd.get('conv1.weight')?.shape; // [64, 3, 7, 7]
 * for (const t of sd.values()) t.dispose();
 */
export function loadTorchCheckpoint(path: string): Map<string, Tensor> {
  const op = 'loadTorchCheckpoint';
  if (typeof path !== 'string' || path === '') fail(op, `expected a file path string for path but received ${describe(path)}`);
  const bad: Fail = (msg) => fail(op, `${path}: ${msg}`);
  const file = new RandomAccessFile(path, bad);
  try {
    const head = file.read(0, Math.min(4, file.size), 'the file header');
    if (head.length >= 2 && head[0] === 0x80 && head[1] <= 5) {
      bad("uses PyTorch's legacy (pre-1.6) serialization format, which is not supported; re-save it with torch.save(obj, path) in PyTorch >= 1.6");
    }
    if (head.length < 4 || head.readUInt32LE(0) !== 0x04034b50) bad('is not a PyTorch checkpoint: expected a zip archive written by torch.save');
    const zip = new ZipArchive(file, bad, INFLATE_FACTOR * file.size + INFLATE_SLACK);
    const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) bad(pkls.length ? `holds ${pkls.length} data.pkl records; expected one` : 'is a zip archive without a data.pkl record, not a torch.save checkpoint');
    const prefix = pkls[0].slice(0, -'data.pkl'.length);
    if (zip.entries.has(`${prefix}constants.pkl`) || [...zip.entries.keys()].some((n) => n.startsWith(`${prefix}code/`))) {
      bad('is a TorchScript archive (torch.jit.save); load it in Python and save model.state_dict() with torch.save');
    }
    const order = zip.entries.get(`${prefix}byteorder`);
    if (order) {
      const s = zip.read(order, 16).toString('latin1').trim();
      if (s !== 'little') bad(`was written on a ${s === 'big' ? 'big-endian' : `'${s}'-byte-order`} machine; only little-endian checkpoints are supported`);
    }
    const pklEntry = zip.entries.get(pkls[0])!;
    if (pklEntry.size > MAX_PICKLE) {
      bad(`has a ${pklEntry.size}-byte data.pkl, over the ${MAX_PICKLE}-byte limit; a state_dict's pickle takes about 150 bytes per tensor (a few hundred KiB for real models), so the file is corrupt or hostile`);
    }
    const top = unpickle(zip.read(pklEntry, MAX_PICKLE), {
      findGlobal: allowedGlobals(bad), persistentLoad: persistentLoad(bad), bad,
    });
    const specs = stateDictOf(top, bad);

    // Read each storage once, and drop it after its last tensor. A storage's record must hold exactly
    // the bytes the pickle claims, checked before anything is read or inflated.
    const uses = new Map<string, number>();
    const records = new Map<string, { ref: StorageRef; bytes: number }>();
    let storageTotal = 0;
    for (const [name, t] of specs) {
      const { key, dtype, numel } = t.storage;
      uses.set(key, (uses.get(key) ?? 0) + 1);
      const seen = records.get(key);
      if (seen) {
        if (seen.ref.dtype !== dtype || seen.ref.numel !== numel) {
          bad(`storage '${key}' is described twice, as ${seen.ref.numel} ${seen.ref.dtype} and as ${numel} ${dtype} elements (tensor '${String(name)}'); the file is corrupt`);
        }
        continue;
      }
      const entry = zip.entries.get(`${prefix}data/${key}`);
      if (!entry) bad(`tensor '${String(name)}' uses storage '${key}', which is missing from the archive (no entry ${prefix}data/${key})`);
      const need = numel * BYTES[dtype];
      if (entry.size < need) {
        bad(`storage '${key}' holds ${entry.size} bytes but tensor '${String(name)}' needs ${numel} ${dtype} elements (${need} bytes); the file is corrupt`);
      }
      if (entry.size > need) bad(`storage '${key}' holds ${entry.size} bytes but its record says ${numel} ${dtype} elements (${need} bytes); the file is corrupt`);
      records.set(key, { ref: t.storage, bytes: need });
      storageTotal += need;
    }
    const materializeCap = MATERIALIZE_FACTOR * storageTotal + MATERIALIZE_SLACK;
    let materialized = 0;
    const cache = new Map<string, Buffer>();
    const storageBytes = (key: string): Buffer => {
      let b = cache.get(key);
      if (!b) {
        b = zip.read(zip.entries.get(`${prefix}data/${key}`)!);
        cache.set(key, b);
      }
      return b;
    };

    const out = new Map<string, Tensor>();
    try {
      for (const [name, spec] of specs) {
        if (typeof name !== 'string') bad(`has a state_dict key that is ${pyDescribe(name)}, not a str`);
        const { storage } = spec;
        const size = intList(spec.size, 'size', name, bad);
        const stride = intList(spec.stride, 'stride', name, bad);
        const offset = spec.offset;
        if (!Number.isSafeInteger(offset) || (offset as number) < 0) bad(`tensor '${name}' has storage offset ${String(offset)}; expected a non-negative integer`);
        const off = offset as number;
        if (size.length !== stride.length) bad(`tensor '${name}' has size ${fmt(size)} but stride ${fmt(stride)}`);
        const item = BYTES[storage.dtype];
        let numel = 1;
        let last = off;
        for (let d = 0; d < size.length; d++) { numel *= size[d]; last += (size[d] - 1) * stride[d]; }
        // Dimensions with stride 0 (expand) are read once and expanded again as a view, as torch.load
        // keeps them: `zeros(1).expand(2**28)` costs 4 bytes, not 1 GiB.
        const compact = size.map((n, d) => (stride[d] === 0 ? Math.min(n, 1) : n));
        const compactNumel = compact.reduce((a, b) => a * b, 1);
        let t: Tensor;
        if (numel === 0) t = fromBytes(new Uint8Array(0), size, storage.dtype);
        else {
          if (!Number.isSafeInteger(last) || last >= storage.numel) {
            bad(`tensor '${name}' (offset ${off}, size ${fmt(size)}, stride ${fmt(stride)}) needs elements up to index ${last} but its storage '${storage.key}' holds ${storage.numel} elements`);
          }
          if (numel * item > storage.numel * item + MAX_EXPANSION) {
            bad(`tensor '${name}' of size ${fmt(size)} needs ${numel * item} bytes but its storage holds only ${storage.numel * item}; refusing an expanded view over 1 GiB larger than its storage`);
          }
          if (compactNumel > storage.numel) {
            bad(`tensor '${name}' (size ${fmt(size)}, stride ${fmt(stride)}) reads its ${storage.numel}-element storage '${storage.key}' with overlapping strides, which is not supported; save it with .contiguous() or .clone()`);
          }
          materialized += compactNumel * item;
          if (materialized > materializeCap) {
            bad(`its tensors would take more than ${materializeCap} bytes as copies, ${MATERIALIZE_FACTOR} times the ${storageTotal} bytes of storage the file holds; refusing so many views of shared storages (save the tensors with .clone())`);
          }
          const bytes = storageBytes(storage.key);
          const data = isRowMajor(compact, stride) ? bytes.subarray(off * item, (off + compactNumel) * item) : gather(bytes, item, off, compact, stride, compactNumel);
          t = fromBytes(data, compact, storage.dtype);
          if (compactNumel !== numel) {
            const base = t;
            try { t = base.expand(size); } finally { base.dispose(); } // the view keeps the storage alive
          }
        }
        out.set(name, t);
        const left = uses.get(storage.key)! - 1;
        uses.set(storage.key, left);
        if (left === 0) cache.delete(storage.key);
      }
    } catch (e) {
      for (const t of out.values()) t.dispose();
      throw e;
    }
    return out;
  } finally {
    file.close();
  }
}
