// A small ONNX graph builder: values are names, nodes get unique output names, constants are
// initializers (deduplicated), and the finished model is written chunk by chunk.
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { fail } from '../common/errors.js';
import { type Float16Options, toFloat16 } from './fp16.js';
import {
  type AttrValue, DataType, type DataTypeId, type Dim, irVersionFor, type Message, modelProto, type NodeData, type TensorData, type ValueInfo,
} from './onnx-proto.js';

/** Attribute constructors: ONNX distinguishes ints from floats, JavaScript does not. */
export const attr = {
  int: (value: number): AttrValue => ({ kind: 'int', value }),
  float: (value: number): AttrValue => ({ kind: 'float', value }),
  str: (value: string): AttrValue => ({ kind: 'string', value }),
  ints: (value: number[]): AttrValue => ({ kind: 'ints', value }),
  floats: (value: number[]): AttrValue => ({ kind: 'floats', value }),
};

function rawBytes(a: Float32Array | BigInt64Array | Int32Array): Uint8Array {
  // Typed arrays are little-endian on every platform Node runs on, as ONNX's raw_data.
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class GraphBuilder {
  private readonly nodes: NodeData[] = [];
  private readonly initializers: TensorData[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly names = new Set<string>();
  private readonly consts = new Map<string, string>();
  private counter = 0;

  constructor(readonly name = 'graph') {}

  private unique(base: string): string {
    let n = base;
    while (this.names.has(n)) n = `${base}_${++this.counter}`;
    this.names.add(n);
    return n;
  }

  /** Declares a graph input (float32 unless told). Dims: numbers, or names for dynamic axes. */
  input(name: string, dims: Dim[], elemType: DataTypeId = DataType.FLOAT): string {
    if (this.names.has(name)) fail('GraphBuilder', `value '${name}' is already defined`);
    this.names.add(name);
    this.inputs.push({ name, dims, elemType });
    return name;
  }

  /** Marks `value` as a graph output named `name` (an Identity node renames it when needed). */
  output(value: string, name: string, dims: Dim[], elemType: DataTypeId = DataType.FLOAT, doc?: string): void {
    if (value !== name) {
      if (this.names.has(name)) fail('GraphBuilder', `value '${name}' is already defined`);
      this.names.add(name);
      this.nodes.push({ opType: 'Identity', name: `${name}_identity`, inputs: [value], outputs: [name], attributes: {} });
    }
    this.outputs.push({ name, dims, elemType, doc });
  }

  /** A float32 initializer (e.g. conv weights); returns its value name. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    const n = this.unique(name);
    this.initializers.push({ name: n, dataType: DataType.FLOAT, dims, raw: rawBytes(data) });
    return n;
  }

  /** A 1-D int64 constant, shared between nodes that use the same values. */
  int64(values: number[]): string {
    const key = `i64:${values.join(',')}`;
    let n = this.consts.get(key);
    if (!n) {
      n = this.unique(`const_i64_${values.join('_').replace(/-/g, 'm')}`);
      this.initializers.push({ name: n, dataType: DataType.INT64, dims: [values.length], raw: rawBytes(BigInt64Array.from(values.map(BigInt))) });
      this.consts.set(key, n);
    }
    return n;
  }

  /** A 1-D float32 constant, shared like int64(). */
  float32(values: number[]): string {
    const key = `f32:${values.join(',')}`;
    let n = this.consts.get(key);
    if (!n) {
      n = this.unique(`const_f32_${this.consts.size}`);
      this.initializers.push({ name: n, dataType: DataType.FLOAT, dims: [values.length], raw: rawBytes(Float32Array.from(values)) });
      this.consts.set(key, n);
    }
    return n;
  }

  /**
   * Appends a node; returns its output names (`outputs` of them, default 1). An empty input name
   * ('') is an omitted optional input.
   */
  node(opType: string, inputs: string[], attributes: Record<string, AttrValue> = {}, o: { name?: string; outputs?: number } = {}): string[] {
    for (const i of inputs) if (i !== '' && !this.names.has(i)) fail('GraphBuilder', `${opType} reads undefined value '${i}'`);
    const base = o.name ?? `${opType.toLowerCase()}_${this.nodes.length}`;
    const outputs = Array.from({ length: o.outputs ?? 1 }, (_, k) => this.unique(k ? `${base}:${k}` : base));
    this.nodes.push({ opType, name: outputs[0], inputs, outputs, attributes });
    return outputs;
  }

  /** node() for single-output ops. */
  op(opType: string, inputs: string[], attributes: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(opType, inputs, attributes, { name })[0];
  }

  get nodeCount(): number { return this.nodes.length; }
  get opTypes(): Set<string> { return new Set(this.nodes.map((n) => n.opType)); }

  /** The ModelProto (chunks) for this graph; with `float16`, weights and compute in float16 (see fp16.ts). */
  build(o: { opset: number; producerVersion: string; doc?: string; metadata?: Record<string, string>; float16?: Float16Options }): Message {
    if (!this.outputs.length) fail('GraphBuilder', 'the graph has no outputs');
    const graph = { name: this.name, nodes: this.nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs };
    return modelProto({
      irVersion: irVersionFor(o.opset), opset: o.opset, producerName: 'panseg', producerVersion: o.producerVersion, doc: o.doc, metadata: o.metadata,
      graph: o.float16 ? toFloat16(graph, o.float16) : graph,
    });
  }
}

/**
 * Writes a message to `path`: small chunks are gathered into 1 MiB writes, large ones (weights) go as they are.
 * Returns the file's sha256 (hex), which the sidecar carries so that caches can key on it.
 */
export function writeMessage(path: string, m: Message): string {
  const fd = openSync(path, 'w');
  const buf = new Uint8Array(1 << 20);
  const hash = createHash('sha256');
  let used = 0;
  const write = (b: Uint8Array) => {
    hash.update(b);
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
  };
  try {
    for (const p of m.parts) {
      const big = p.length > buf.length / 4;
      if (big || used + p.length > buf.length) { write(buf.subarray(0, used)); used = 0; }
      if (big) write(p);
      else { buf.set(p, used); used += p.length; }
    }
    write(buf.subarray(0, used));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
