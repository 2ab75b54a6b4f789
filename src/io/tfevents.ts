// TensorBoard event files (`events.out.tfevents.*`): a record is
//   uint64 length | uint32 masked CRC32C(length) | data | uint32 masked CRC32C(data)   (little-endian)
// and its data an `Event` protobuf (tensorflow/core/util/event.proto):
//   Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value { string tag = 1; float simple_value = 2; Image image = 4; }
//   Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
// The first record of a file carries file_version "brain.Event:2".
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fail } from '../common/errors.js';
import { Message } from './protobuf.js';

// ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven ----
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32C (Castagnoli) of `data`. crc32c("123456789") = 0xE3069283. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 and add a constant, so CRCs of CRCs stay well spread. */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** A PNG (or other encoded image) for a `Summary.Image`. */
export interface EventImage {
  height: number;
  width: number;
  /** 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. */
  colorspace: number;
  encoded: Uint8Array;
}

/** One value of a summary: a scalar or an image. */
export type SummaryValue = { tag: string; value: number } | { tag: string; image: EventImage };

/** A decoded event (what {@link readEvents} returns). */
export interface TfEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: SummaryValue[];
}

/** The `Event` message bytes. */
export function encodeEvent(e: TfEvent): Uint8Array {
  const m = new Message().double(1, e.wallTime).int(2, e.step);
  if (e.fileVersion !== undefined) m.string(3, e.fileVersion);
  if (e.values.length) {
    const summary = new Message();
    for (const v of e.values) {
      const val = new Message().string(1, v.tag);
      if ('image' in v) {
        const im = v.image;
        val.message(4, new Message().int(1, im.height).int(2, im.width).int(3, im.colorspace).bytes(4, im.encoded));
      } else {
        val.float(2, v.value);
      }
      summary.message(1, val);
    }
    m.message(5, summary);
  }
  return m.toBytes();
}

/** One framed record: length, masked CRC of the length, data, masked CRC of the data. */
export function encodeRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(data.length), true);
  dv.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  dv.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/**
 * Appends events to a new `events.out.tfevents.<seconds>.<host>.<pid>.<n>` file in `dir`, the name
 * TensorBoard looks for. Each event is written (and flushed to the OS) as it comes, so a killed run
 * keeps every event written before it.
 * @example
 * const w = new TfEventsWriter('runs/a');
 * w.scalars(10, { 'train/loss': 0.7 });
 * w.close();
 */
export class TfEventsWriter {
  readonly path: string;
  private fd: number | null;
  private static count = 0;

  constructor(dir: string) {
    if (typeof dir !== 'string' || !dir) fail('TfEventsWriter', 'expected a folder path for dir');
    const host = hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'host';
    this.path = join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${host}.${process.pid}.${TfEventsWriter.count++}`);
    this.fd = openSync(this.path, 'a');
    this.write({ wallTime: Date.now() / 1000, step: 0, fileVersion: 'brain.Event:2', values: [] });
  }

  /** Writes one event. */
  write(e: TfEvent): void {
    if (this.fd === null) fail('TfEventsWriter', `${this.path} is closed`);
    const rec = encodeRecord(encodeEvent(e));
    writeSync(this.fd, rec);
  }

  /** Scalars at `step` (non-finite values are skipped: TensorBoard cannot draw them). */
  scalars(step: number, values: Record<string, number>): void {
    const vs = Object.entries(values).filter(([, x]) => Number.isFinite(x)).map(([tag, value]) => ({ tag, value }));
    if (vs.length) this.write({ wallTime: Date.now() / 1000, step, values: vs });
  }

  /** An image (PNG bytes, RGB) at `step`. */
  image(step: number, tag: string, image: EventImage): void {
    this.write({ wallTime: Date.now() / 1000, step, values: [{ tag, image }] });
  }

  /** Flushes to disk and closes the file. */
  close(): void {
    if (this.fd === null) return;
    try { fsyncSync(this.fd); } catch { /* best effort: some file systems refuse fsync */ }
    closeSync(this.fd);
    this.fd = null;
  }
}

// ---- reading back (tests, tools) ----
class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array, readonly what: string) {}
  get done(): boolean { return this.pos >= this.b.length; }
  varint(): bigint {
    let x = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (this.pos >= this.b.length || shift > 63n) fail('readEvents', `${this.what}: bad varint`);
      const byte = this.b[this.pos++];
      x |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return x;
    }
  }
  take(n: number): Uint8Array {
    if (this.pos + n > this.b.length) fail('readEvents', `${this.what}: field runs past the end`);
    return this.b.subarray(this.pos, (this.pos += n));
  }
  /** [field, wire type, payload] for each field. */
  *fields(): Generator<[number, number, Uint8Array | bigint]> {
    while (!this.done) {
      const k = Number(this.varint());
      const field = k >>> 3;
      const wire = k & 7;
      if (wire === 0) yield [field, wire, this.varint()];
      else if (wire === 1) yield [field, wire, this.take(8)];
      else if (wire === 5) yield [field, wire, this.take(4)];
      else if (wire === 2) yield [field, wire, this.take(Number(this.varint()))];
      else fail('readEvents', `${this.what}: unsupported wire type ${wire}`);
    }
  }
}

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const utf8d = new TextDecoder();

/** Decodes an `Event` message (the fields panseg writes; others are skipped). */
export function decodeEvent(data: Uint8Array): TfEvent {
  const e: TfEvent = { wallTime: 0, step: 0, values: [] };
  for (const [f, , p] of new Reader(data, 'Event').fields()) {
    if (f === 1) e.wallTime = dv(p as Uint8Array).getFloat64(0, true);
    else if (f === 2) e.step = Number(BigInt.asIntN(64, p as bigint));
    else if (f === 3) e.fileVersion = utf8d.decode(p as Uint8Array);
    else if (f === 5) {
      for (const [sf, , sp] of new Reader(p as Uint8Array, 'Summary').fields()) {
        if (sf !== 1) continue;
        let tag = '';
        let value: number | undefined;
        let image: EventImage | undefined;
        for (const [vf, , vp] of new Reader(sp as Uint8Array, 'Summary.Value').fields()) {
          if (vf === 1) tag = utf8d.decode(vp as Uint8Array);
          else if (vf === 2) value = dv(vp as Uint8Array).getFloat32(0, true);
          else if (vf === 4) {
            image = { height: 0, width: 0, colorspace: 0, encoded: new Uint8Array(0) };
            for (const [imf, , ip] of new Reader(vp as Uint8Array, 'Summary.Image').fields()) {
              if (imf === 1) image.height = Number(ip);
              else if (imf === 2) image.width = Number(ip);
              else if (imf === 3) image.colorspace = Number(ip);
              else if (imf === 4) image.encoded = ip as Uint8Array;
            }
          }
        }
        if (image) e.values.push({ tag, image });
        else if (value !== undefined) e.values.push({ tag, value });
      }
    }
  }
  return e;
}

/**
 * Reads every record of an event file, checking both CRCs of each.
 * @throws naming the record when a CRC does not match or the file ends inside a record
 */
export function readEvents(path: string): TfEvent[] {
  const buf = readFileSync(path);
  const b = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: TfEvent[] = [];
  let pos = 0;
  for (let i = 0; pos < b.length; i++) {
    if (pos + 12 > b.length) fail('readEvents', `${path}: record ${i} header is cut short (the file ends at byte ${b.length})`);
    const len = Number(dv(b).getBigUint64(pos, true));
    if (dv(b).getUint32(pos + 8, true) !== maskedCrc32c(b.subarray(pos, pos + 8))) fail('readEvents', `${path}: record ${i}: length CRC mismatch`);
    if (pos + 12 + len + 4 > b.length) fail('readEvents', `${path}: record ${i} is cut short (the file ends at byte ${b.length})`);
    const data = b.subarray(pos + 12, pos + 12 + len);
    if (dv(b).getUint32(pos + 12 + len, true) !== maskedCrc32c(data)) fail('readEvents', `${path}: record ${i}: data CRC mismatch`);
    out.push(decodeEvent(data));
    pos += 16 + len;
  }
  return out;
}
