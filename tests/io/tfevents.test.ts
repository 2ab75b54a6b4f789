// TensorBoard event files: CRC32C against published vectors (RFC 3720 B.4 and the "123456789" check
// value), Event bytes against a hand-assembled encoding, and files read back record by record.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c, encodeEvent, encodeRecord, maskedCrc32c, readEvents, TfEventsWriter } from '../../src/io/tfevents.js';

const bytes = (...xs: number[]) => Uint8Array.from(xs);

describe('tfevents: CRC32C', () => {
  it('matches the published check values', () => {
    assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });

  it('masks as TFRecord does: rotate right 15, add 0xa282ead8', () => {
    const c = 0xe3069283;
    const rot = ((c >>> 15) | (c << 17)) >>> 0;
    assert.equal(maskedCrc32c(new TextEncoder().encode('123456789')), (rot + 0xa282ead8) >>> 0);
  });
});

describe('tfevents: encoding', () => {
  it('encodes an Event as protobuf field by field', () => {
    const e = encodeEvent({ wallTime: 1.5, step: 3, fileVersion: 'ab', values: [] });
    // 0x09 = field 1 fixed64; 1.5 = 0x3FF8000000000000 little-endian; 0x10 = field 2 varint; 0x1a = field 3 bytes
    assert.deepEqual([...e], [0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x10, 3, 0x1a, 2, 0x61, 0x62]);
    const s = encodeEvent({ wallTime: 0, step: 300, values: [{ tag: 'x', value: 1 }] });
    // step 300 = varint ac 02; summary (field 5, 0x2a) { value (0x0a) { tag (0x0a) 'x', simple_value (0x15) 1.0f } }
    assert.deepEqual([...s], [0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0xac, 0x02, 0x2a, 10, 0x0a, 8, 0x0a, 1, 0x78, 0x15, 0, 0, 0x80, 0x3f]);
  });

  it('frames a record: length, masked CRC of the length, data, masked CRC of the data', () => {
    const data = bytes(1, 2, 3);
    const r = encodeRecord(data);
    const dv = new DataView(r.buffer);
    assert.equal(r.length, 8 + 4 + 3 + 4);
    assert.equal(dv.getBigUint64(0, true), 3n);
    assert.equal(dv.getUint32(8, true), maskedCrc32c(r.subarray(0, 8)));
    assert.deepEqual([...r.subarray(12, 15)], [1, 2, 3]);
    assert.equal(dv.getUint32(15, true), maskedCrc32c(data));
  });
});

describe('tfevents: files', () => {
  it('writes events.out.tfevents.* that read back with their CRCs, tags and values', () => {
    const dir = mkdtempSync(join(tmpdir(), 'panseg-tfevents-'));
    try {
      const w = new TfEventsWriter(dir);
      w.scalars(10, { 'train/loss': 0.75, 'train/lr': 0.01, skipped: Number.NaN });
      const png = bytes(0x89, 0x50, 0x4e, 0x47);
      w.image(20, 'val/sample', { height: 2, width: 3, colorspace: 3, encoded: png });
      w.close();
      const files = readdirSync(dir);
      assert.equal(files.length, 1);
      assert.match(files[0], /^events\.out\.tfevents\.\d+\..+\.\d+\.\d+$/);
      const ev = readEvents(join(dir, files[0]));
      assert.equal(ev.length, 3);
      assert.equal(ev[0].fileVersion, 'brain.Event:2');
      assert.equal(ev[1].step, 10);
      assert.deepEqual(ev[1].values, [{ tag: 'train/loss', value: 0.75 }, { tag: 'train/lr', value: Math.fround(0.01) }]);
      assert.ok(Math.abs(ev[1].wallTime - Date.now() / 1000) < 60);
      assert.equal(ev[2].step, 20);
      const v = ev[2].values[0];
      assert.ok('image' in v);
      assert.equal(v.tag, 'val/sample');
      assert.deepEqual({ ...v.image, encoded: [...v.image.encoded] }, { height: 2, width: 3, colorspace: 3, encoded: [...png] });

      // A flipped byte is caught by the data CRC.
      const path = join(dir, files[0]);
      const buf = readFileSync(path);
      buf[buf.length - 6] ^= 1;
      writeFileSync(path, buf);
      assert.throws(() => readEvents(path), /readEvents: .*record 2: data CRC mismatch/);
      writeFileSync(path, buf.subarray(0, buf.length - 2));
      assert.throws(() => readEvents(path), /record 2 is cut short/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
