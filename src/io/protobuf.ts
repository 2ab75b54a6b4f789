// A minimal protobuf writer (proto2/proto3 wire format) for the messages panseg writes: ONNX models
// (src/export/onnx-proto.ts) and TensorBoard events (src/io/tfevents.ts). Messages are built as lists
// of byte chunks, so large payloads are referenced, never re-copied, until they are written.
// Repeated scalars are written unpacked, which every parser accepts.

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_FIXED32 = 5;
const WIRE_BYTES = 2;
const utf8 = new TextEncoder();

function varint(value: number | bigint): Uint8Array {
  // Negative int64s are sign-extended to 64 bits: always 10 bytes.
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

/** An encoded message: its chunks and their total length. */
export class Message {
  readonly parts: Uint8Array[] = [];
  length = 0;

  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  private key(field: number, wire: number): void {
    this.push(varint((field << 3) | wire));
  }
  int(field: number, value: number | bigint): this {
    this.key(field, WIRE_VARINT);
    this.push(varint(value));
    return this;
  }
  double(field: number, value: number): this {
    this.key(field, WIRE_FIXED64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    this.push(b);
    return this;
  }
  float(field: number, value: number): this {
    this.key(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }
  bytes(field: number, value: Uint8Array): this {
    this.key(field, WIRE_BYTES);
    this.push(varint(value.length));
    this.push(value);
    return this;
  }
  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }
  message(field: number, m: Message): this {
    this.key(field, WIRE_BYTES);
    this.push(varint(m.length));
    for (const p of m.parts) this.push(p);
    return this;
  }
  /** All chunks joined (for small messages and tests; files are written chunk by chunk). */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}
