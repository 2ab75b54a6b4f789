// Writes torch.save-style checkpoints for tests: a protocol-2 pickle of a state_dict of
// _rebuild_tensor_v2 records, and the zip around it (stored or deflated entries, CRCs left 0,
// which the reader does not check). Enough to build seeds for the fuzz tests and hostile files.
import { deflateRawSync } from 'node:zlib';

/** One tensor record: a view of storage `key` (`numel` elements of `storage`, e.g. 'FloatStorage'). */
export interface TensorRecord {
  key: string;
  storage: string;
  numel: number;
  offset: number;
  size: number[];
  stride: number[];
}

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A pickle `int`: BININT for 32-bit values, LONG1 otherwise. */
function pint(n: number): Buffer {
  if (Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31) {
    const b = Buffer.alloc(5);
    b[0] = 0x4a;
    b.writeInt32LE(n, 1);
    return b;
  }
  const b = Buffer.alloc(10);
  b[0] = 0x8a; b[1] = 8;
  b.writeBigInt64LE(BigInt(n), 2);
  return b;
}
/** A pickle `str` (BINUNICODE). */
function pstr(s: string): Buffer {
  const u = Buffer.from(s, 'utf8');
  const h = Buffer.alloc(5);
  h[0] = 0x58;
  h.writeUInt32LE(u.length, 1);
  return Buffer.concat([h, u]);
}
const ptuple = (items: Buffer[]): Buffer => Buffer.concat([bytes('('), ...items, bytes('t')]);

/** The data.pkl of `{name: tensor}` as torch.save writes it (without memoization). */
export function statePickle(tensors: [string, TensorRecord][]): Buffer {
  const parts: Buffer[] = [bytes('\x80\x02}(')];
  for (const [name, t] of tensors) {
    const pid = ptuple([pstr('storage'), bytes(`ctorch\n${t.storage}\n`), pstr(t.key), pstr('cpu'), pint(t.numel)]);
    parts.push(pstr(name), bytes('ctorch._utils\n_rebuild_tensor_v2\n'),
      bytes('('), pid, bytes('Q'), pint(t.offset), ptuple(t.size.map(pint)), ptuple(t.stride.map(pint)), bytes('\x89'),
      bytes('ccollections\nOrderedDict\n)R'), bytes('tR'));
  }
  parts.push(bytes('u.'));
  return Buffer.concat(parts);
}

/**
 * A zip archive of `files` as torch.save lays it out: `[name, bytes]`, or `[name, deflated, size]` for
 * an entry compressed already (raw DEFLATE) that inflates to `size` bytes. `deflate` compresses the others.
 */
export function zipArchive(files: ([string, Uint8Array] | [string, Uint8Array, number])[], deflate = false): Buffer {
  const local: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [n, data, rawSize] of files) {
    const nb = Buffer.from(n);
    const packed = rawSize !== undefined ? Buffer.from(data) : deflate ? deflateRawSync(data, { level: 9 }) : Buffer.from(data);
    const size = rawSize ?? data.length;
    const method = rawSize !== undefined || deflate ? 8 : 0;
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0); h.writeUInt16LE(method, 8);
    h.writeUInt32LE(packed.length, 18); h.writeUInt32LE(size, 22); h.writeUInt16LE(nb.length, 26);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0); c.writeUInt16LE(method, 10);
    c.writeUInt32LE(packed.length, 20); c.writeUInt32LE(size, 24); c.writeUInt16LE(nb.length, 28); c.writeUInt32LE(offset, 42);
    local.push(h, nb, packed);
    central.push(c, nb);
    offset += 30 + nb.length + packed.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8); end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...local, cd, end]);
}

/** A whole checkpoint: `archive/data.pkl`, `archive/byteorder` and one `archive/data/<key>` per storage. */
export function torchCheckpoint(pickle: Uint8Array, storages: Record<string, Uint8Array>, deflate = false): Buffer {
  return zipArchive([
    ['archive/data.pkl', pickle],
    ['archive/byteorder', Buffer.from('little')],
    ...Object.entries(storages).map(([k, v]) => [`archive/data/${k}`, v] as [string, Uint8Array]),
  ], deflate);
}
