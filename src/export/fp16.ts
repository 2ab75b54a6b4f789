// float16 ONNX: a pass over the finished graph. Float weights are stored as float16 (half the file);
// heavy ops (Conv, MatMul, Gemm) compute in float16 where onnxruntime's CPU provider (and so
// onnxruntime-web's wasm) has a float16 kernel for them, other float ops follow their input's type,
// and ops without a float16 kernel compute in float32 behind Casts. Graph inputs and outputs stay
// float32 (a Cast at each boundary) unless asked otherwise. Integer and shape subgraphs are untouched;
// float values the graph computes from shapes (PSPNet's pooling windows) stay float32, where they are exact.
import { fail } from '../common/errors.js';
import { DataType, type GraphData, type NodeData, type TensorData } from './onnx-proto.js';

export interface Float16Options {
  /** Keep the graph's float inputs and outputs float32, with Casts at the boundary. Default true. */
  float32Io?: boolean;
  /** Ops that compute in float16 (they have a float16 kernel on the target runtime); default {@link ORT_CPU_FLOAT16_OPS}. */
  float16Ops?: ReadonlySet<string>;
}

/**
 * Ops of panseg's exports that onnxruntime-node 1.30's CPU provider (x64) runs in float16: only data movement
 * and Clip. Conv, MatMul, Gemm, pooling, Resize and every elementwise op are cast to float32 by onnxruntime
 * itself (found by saving the session's optimized graph and looking for its inserted Casts; see
 * tests/export/fp16.test.ts). So on the CPU and in onnxruntime-web's wasm a float16 export computes in
 * float32 from float16 weights (Cast once at load), without Casts between layers.
 */
export const ORT_CPU_FLOAT16_OPS: ReadonlySet<string> = new Set(['Concat', 'Clip', 'Reshape', 'Transpose', 'Slice', 'Expand', 'Flatten', 'Identity', 'Squeeze', 'Unsqueeze']);

/** Every float op panseg emits: for runtimes with float16 kernels throughout (onnxruntime-web's WebGPU with shader-f16). */
export const ALL_FLOAT16_OPS: ReadonlySet<string> = new Set([
  ...ORT_CPU_FLOAT16_OPS, 'Conv', 'Relu', 'Add', 'Mul', 'Sub', 'Div', 'Sum', 'Resize', 'MaxPool', 'AveragePool', 'GlobalAveragePool',
  'GlobalMaxPool', 'Sigmoid', 'Tanh', 'Softmax', 'LogSoftmax', 'MatMul', 'Gemm', 'InstanceNormalization',
]);

/** Ops worth running in float16: the ones that move and multiply the weights. Others follow their input. */
const PREFER_FLOAT16 = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']);
/** Ops whose output is not a float whatever their inputs. */
const NON_FLOAT_OUTPUT: Record<string, 'int' | 'bool'> = { Shape: 'int', Less: 'bool', Greater: 'bool', GreaterOrEqual: 'bool', LessOrEqual: 'bool', Equal: 'bool', And: 'bool', Or: 'bool', Not: 'bool', ArgMax: 'int' };
/** Initializers smaller than this stay float32 where a float32 op reads them (a Cast would cost more than it saves). */
const SMALL = 64;

type Kind = 'f32' | 'f16' | 'int' | 'bool';

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** IEEE half bits of a float32 value, rounded to nearest even; overflow gives infinity. */
export function toHalfBits(x: number): number {
  F32[0] = x;
  const b = U32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf, NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half of the smallest subnormal
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rest > mid || (rest === mid && (half & 1))) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half += 1; // may carry into the exponent: still right
  return sign | half;
}

/** float32 value of IEEE half bits. */
export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** float32 array -> half bits. */
export function toHalf(a: Float32Array): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = toHalfBits(a[i]);
  return out;
}

/** Half bits -> float32 array. */
export function fromHalf(a: Uint16Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = fromHalfBits(a[i]);
  return out;
}

function halfInitializer(t: TensorData, name: string): TensorData {
  const f = new Float32Array(t.raw.buffer.slice(t.raw.byteOffset, t.raw.byteOffset + t.raw.byteLength));
  const h = toHalf(f);
  return { name, dataType: DataType.FLOAT16, dims: t.dims, raw: new Uint8Array(h.buffer) };
}

/** The graph with float16 weights and compute (see the file comment). */
export function toFloat16(g: GraphData, o: Float16Options = {}): GraphData {
  const float32Io = o.float32Io ?? true;
  const supported = o.float16Ops ?? ORT_CPU_FLOAT16_OPS;
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const kind = new Map<string, Kind>();
  const names = new Set<string>([...g.nodes.flatMap((n) => n.outputs), ...g.initializers.map((t) => t.name), ...g.inputs.map((i) => i.name)]);
  const unique = (base: string) => {
    let n = base;
    for (let k = 1; names.has(n); k++) n = `${base}_${k}`;
    names.add(n);
    return n;
  };
  const nodes: NodeData[] = [];
  const newInits: TensorData[] = [];
  const used = new Set<string>();
  // Casts and converted initializers, made once per (value, type).
  const converted = new Map<string, string>();
  const cast = (value: string, to: 'f16' | 'f32'): string => {
    const key = `${value}->${to}`;
    let n = converted.get(key);
    if (!n) {
      n = unique(`${value}_${to === 'f16' ? 'fp16' : 'fp32'}`);
      nodes.push({ opType: 'Cast', name: n, inputs: [value], outputs: [n], attributes: { to: { kind: 'int', value: to === 'f16' ? DataType.FLOAT16 : DataType.FLOAT } } });
      kind.set(n, to);
      converted.set(key, n);
    }
    return n;
  };
  const initAs = (t: TensorData, to: 'f16' | 'f32'): string => {
    const n32 = t.raw.byteLength / 4;
    if (to === 'f32' && n32 < SMALL) { used.add(t.name); return t.name; }
    const key = `${t.name}->init16`;
    let h = converted.get(key);
    if (!h) {
      h = unique(`${t.name}_fp16`);
      newInits.push(halfInitializer(t, h));
      kind.set(h, 'f16');
      converted.set(key, h);
    }
    return to === 'f16' ? h : cast(h, 'f32');
  };

  for (const i of g.inputs) {
    if (i.elemType === DataType.FLOAT) kind.set(i.name, float32Io ? 'f32' : 'f16');
    else kind.set(i.name, 'int');
  }
  for (const t of g.initializers) if (t.dataType !== DataType.FLOAT) kind.set(t.name, t.dataType === DataType.INT64 || t.dataType === DataType.INT32 ? 'int' : 'bool');

  for (const n of g.nodes) {
    const isFloatInit = (i: string) => inits.get(i)?.dataType === DataType.FLOAT;
    const runtimeFloat = n.inputs.filter((i) => i && !isFloatInit(i) && (kind.get(i) === 'f32' || kind.get(i) === 'f16'));
    const hasFloat = runtimeFloat.length > 0 || n.inputs.some(isFloatInit);
    if (n.opType === 'Cast') {
      // Casts the model emits (shape -> float) keep float32: the values they start are exact there.
      const to = (n.attributes.to as { value: number }).value;
      for (const out of n.outputs) kind.set(out, to === DataType.FLOAT ? 'f32' : to === DataType.BOOL ? 'bool' : 'int');
      nodes.push({ ...n, inputs: n.inputs.map((i) => (isFloatInit(i) ? initAs(inits.get(i)!, 'f32') : i)) });
      continue;
    }
    if (!hasFloat || n.opType === 'Shape') {
      const k = NON_FLOAT_OUTPUT[n.opType] ?? kind.get(n.inputs[0]) ?? 'int';
      for (const out of n.outputs) kind.set(out, k);
      nodes.push(n);
      continue;
    }
    const kinds = runtimeFloat.map((i) => kind.get(i));
    const any16 = kinds.includes('f16');
    let compute: 'f16' | 'f32';
    if (!supported.has(n.opType)) compute = 'f32';
    else if (PREFER_FLOAT16.has(n.opType)) compute = 'f16';
    else if (runtimeFloat.length === 0) compute = 'f32';
    else compute = any16 ? 'f16' : 'f32';
    const inputs = n.inputs.map((i) => {
      if (!i) return i;
      if (isFloatInit(i)) return initAs(inits.get(i)!, compute);
      const k = kind.get(i);
      return (k === 'f32' || k === 'f16') && k !== compute ? cast(i, compute) : i;
    });
    const outKind: Kind = NON_FLOAT_OUTPUT[n.opType] ?? compute;
    for (const out of n.outputs) kind.set(out, outKind);
    nodes.push({ ...n, inputs });
  }

  // Outputs: float32 at the boundary (renaming the producer's output), or float16 as computed.
  const outputs = g.outputs.map((out) => {
    const k = kind.get(out.name);
    if (k !== 'f32' && k !== 'f16') return out;
    const want: 'f16' | 'f32' = float32Io ? 'f32' : 'f16';
    if (k !== want) {
      const inner = unique(`${out.name}_${k === 'f16' ? 'fp16' : 'fp32'}`);
      for (const nd of nodes) {
        nd.outputs = nd.outputs.map((x) => (x === out.name ? inner : x));
        nd.inputs = nd.inputs.map((x) => (x === out.name ? inner : x));
      }
      nodes.push({ opType: 'Cast', name: `${out.name}_cast`, inputs: [inner], outputs: [out.name], attributes: { to: { kind: 'int', value: want === 'f16' ? DataType.FLOAT16 : DataType.FLOAT } } });
    }
    return { ...out, elemType: want === 'f16' ? DataType.FLOAT16 : DataType.FLOAT };
  });
  const inputs = g.inputs.map((i) => (i.elemType === DataType.FLOAT && !float32Io ? { ...i, elemType: DataType.FLOAT16 } : i));

  // Initializers still read as they were: integer constants, and small float32 ones read by float32 ops.
  const read = new Set(nodes.flatMap((n) => n.inputs));
  const kept = g.initializers.filter((t) => (t.dataType !== DataType.FLOAT || used.has(t.name)) && read.has(t.name));
  if (!nodes.length) fail('toFloat16', 'the graph has no nodes');
  return { ...g, nodes: topoSort(nodes), initializers: [...kept, ...newInits.filter((t) => read.has(t.name))], inputs, outputs };
}

/** Nodes in an order where every input is produced first (the output Casts were appended last). */
function topoSort(nodes: NodeData[]): NodeData[] {
  const producer = new Map<string, NodeData>();
  for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
  const done = new Set<NodeData>();
  const out: NodeData[] = [];
  const visit = (n: NodeData) => {
    const stack: [NodeData, number][] = [[n, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      if (done.has(node)) { stack.pop(); continue; }
      if (i < node.inputs.length) {
        top[1]++;
        const p = producer.get(node.inputs[i]);
        if (p && !done.has(p)) stack.push([p, 0]);
        continue;
      }
      done.add(node);
      out.push(node);
      stack.pop();
    }
  };
  for (const n of nodes) visit(n);
  return out;
}
