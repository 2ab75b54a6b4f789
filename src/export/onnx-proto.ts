// The ONNX messages panseg emits (onnx.proto), on the shared protobuf writer.
import { Message } from '../io/protobuf.js';

export { Message };

/** ONNX TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
export type DataTypeId = (typeof DataType)[keyof typeof DataType];

/** ONNX AttributeProto.AttributeType values. */
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** A dimension: a fixed size or a symbolic name (dynamic axis). */
export type Dim = number | string;

export interface TensorData {
  name: string;
  dataType: DataTypeId;
  dims: number[];
  /** Little-endian raw bytes (float32, int64, ...). */
  raw: Uint8Array;
}

/** TensorProto with raw_data. */
export function tensorProto(t: TensorData): Message {
  const m = new Message();
  for (const d of t.dims) m.int(1, d);
  m.int(2, t.dataType).string(8, t.name).bytes(9, t.raw);
  return m;
}

export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'tensor'; value: TensorData };

export function attributeProto(name: string, a: AttrValue): Message {
  const m = new Message().string(1, name);
  switch (a.kind) {
    case 'float': m.float(2, a.value).int(20, AttrType.FLOAT); break;
    case 'int': m.int(3, a.value).int(20, AttrType.INT); break;
    case 'string': m.string(4, a.value).int(20, AttrType.STRING); break;
    case 'tensor': m.message(5, tensorProto(a.value)).int(20, AttrType.TENSOR); break;
    case 'floats': for (const f of a.value) m.float(7, f); m.int(20, AttrType.FLOATS); break;
    case 'ints': for (const i of a.value) m.int(8, i); m.int(20, AttrType.INTS); break;
  }
  return m;
}

export interface NodeData {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttrValue>;
}

export function nodeProto(n: NodeData): Message {
  const m = new Message();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name).string(4, n.opType);
  for (const [k, a] of Object.entries(n.attributes)) m.message(5, attributeProto(k, a));
  return m;
}

export interface ValueInfo {
  name: string;
  elemType: DataTypeId;
  dims: Dim[];
  doc?: string;
}

/** ValueInfoProto { name, type: TypeProto { tensor_type { elem_type, shape } } }. */
export function valueInfoProto(v: ValueInfo): Message {
  const shape = new Message();
  for (const d of v.dims) shape.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  const tensorType = new Message().int(1, v.elemType).message(2, shape);
  const m = new Message().string(1, v.name).message(2, new Message().message(1, tensorType));
  if (v.doc) m.string(3, v.doc);
  return m;
}

export interface GraphData {
  name: string;
  nodes: NodeData[];
  initializers: TensorData[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  doc?: string;
}

export function graphProto(g: GraphData): Message {
  const m = new Message();
  for (const n of g.nodes) m.message(1, nodeProto(n));
  m.string(2, g.name);
  for (const t of g.initializers) m.message(5, tensorProto(t));
  if (g.doc) m.string(10, g.doc);
  for (const i of g.inputs) m.message(11, valueInfoProto(i));
  for (const o of g.outputs) m.message(12, valueInfoProto(o));
  return m;
}

export interface ModelData {
  irVersion: number;
  opset: number;
  producerName: string;
  producerVersion: string;
  graph: GraphData;
  doc?: string;
  metadata?: Record<string, string>;
}

export function modelProto(md: ModelData): Message {
  const m = new Message().int(1, md.irVersion).string(2, md.producerName).string(3, md.producerVersion);
  if (md.doc) m.string(6, md.doc);
  m.message(7, graphProto(md.graph));
  m.message(8, new Message().string(1, '').int(2, md.opset));
  for (const [k, v] of Object.entries(md.metadata ?? {})) m.message(14, new Message().string(1, k).string(2, v));
  return m;
}

/** The IR version that goes with an opset (onnx/helper.py's VERSION_TABLE). */
export function irVersionFor(opset: number): number {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}
