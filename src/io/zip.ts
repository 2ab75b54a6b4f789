// A minimal, defensive zip reader for torch.save archives: central directory (zip64 included),
// stored entries (what torch.save writes) and deflated ones (re-zipped checkpoints).
import { inflateRawSync } from 'node:zlib';
import type { Fail, RandomAccessFile } from './file.js';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  /** Where the next entry (or the central directory) starts: this entry's bytes must end before it. */
  limit: number;
}

const EOCD = 0x06054b50;
const EOCD64 = 0x06064b50;
const EOCD64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024;
/** torch.save writes one entry per storage plus a few; a million is far past any real checkpoint. */
const MAX_ENTRIES = 1 << 20;

function u64(b: Buffer, at: number, bad: Fail, what: string): number {
  const n = b.readBigUInt64LE(at);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${what} ${n} is out of range; the zip archive is corrupt`);
  return Number(n);
}

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();
  /** Bytes inflated so far from deflated entries, against `inflateBudget`. */
  private inflated = 0;

  /**
   * Reads and checks the central directory. `inflateBudget` caps the bytes all deflated entries
   * together may inflate to (each one is also capped by what DEFLATE can produce from its size).
   */
  constructor(private readonly file: RandomAccessFile, private readonly bad: Fail, private readonly inflateBudget = Number.MAX_SAFE_INTEGER) {
    const size = file.size;
    if (size < 22) bad(`is ${size} bytes, too short for a zip archive; the file is truncated or not a PyTorch checkpoint`);
    // The end-of-central-directory record sits in the last 22 + up to 65535 comment bytes.
    const tailLen = Math.min(size, 22 + 0xffff);
    const tailStart = size - tailLen;
    const tail = file.read(tailStart, tailLen, 'the end of the zip archive');
    let at = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) { at = i; break; }
    }
    if (at < 0) bad('has no zip end-of-central-directory record; the file is truncated or not a zip archive');
    const eocdPos = tailStart + at;
    if (tail.readUInt16LE(at + 4) !== 0 || tail.readUInt16LE(at + 6) !== 0) bad('is a multi-part zip archive, which is not supported');
    let count = tail.readUInt16LE(at + 10);
    let cdSize = tail.readUInt32LE(at + 12);
    let cdOffset = tail.readUInt32LE(at + 16);
    let cdLimit = eocdPos;
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      if (eocdPos < 20) bad('has a zip64 marker but no zip64 locator; the zip archive is corrupt');
      const loc = file.read(eocdPos - 20, 20, 'the zip64 locator');
      if (loc.readUInt32LE(0) !== EOCD64_LOCATOR) bad('has a zip64 marker but no zip64 locator; the zip archive is corrupt');
      const recPos = u64(loc, 8, bad, 'zip64 record offset');
      const rec = file.read(recPos, 56, 'the zip64 end-of-central-directory record');
      if (rec.readUInt32LE(0) !== EOCD64) bad('has a bad zip64 end-of-central-directory record; the zip archive is corrupt');
      count = u64(rec, 32, bad, 'zip64 entry count');
      cdSize = u64(rec, 40, bad, 'zip64 central directory size');
      cdOffset = u64(rec, 48, bad, 'zip64 central directory offset');
      cdLimit = recPos;
    }
    if (cdOffset + cdSize > cdLimit) bad(`has a central directory (bytes ${cdOffset}..${cdOffset + cdSize}) outside the archive; the file is truncated or corrupt`);
    if (cdSize > MAX_CENTRAL_DIRECTORY) bad(`has a ${cdSize}-byte zip central directory, over the ${MAX_CENTRAL_DIRECTORY}-byte limit`);
    if (count > MAX_ENTRIES) bad(`claims ${count} zip entries, over the limit of ${MAX_ENTRIES}; the file is corrupt`);
    if (count * 46 > cdSize) bad(`claims ${count} zip entries but its central directory holds only ${cdSize} bytes; the zip archive is corrupt`);
    const cd = file.read(cdOffset, cdSize, 'the zip central directory');
    let p = 0;
    const utf8 = new TextDecoder('utf-8', { fatal: true });
    const spans: { entry: ZipEntry; minEnd: number }[] = [];
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || cd.readUInt32LE(p) !== CENTRAL) bad(`has a corrupt zip central directory (entry ${i} of ${count})`);
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      const end = p + 46 + nameLen + extraLen + commentLen;
      if (end > cdSize) bad(`has a corrupt zip central directory (entry ${i} of ${count} runs past its end)`);
      let name: string;
      try { name = utf8.decode(cd.subarray(p + 46, p + 46 + nameLen)); } catch { bad(`has a zip entry name that is not valid UTF-8 (entry ${i})`); }
      if (flags & 1) bad(`has an encrypted zip entry '${name}', which is not supported`);
      // Zip64 extended information replaces the 32-bit fields that are saturated, in this order.
      let q = p + 46 + nameLen;
      const extraEnd = q + extraLen;
      while (q + 4 <= extraEnd) {
        const id = cd.readUInt16LE(q);
        const len = cd.readUInt16LE(q + 2);
        if (q + 4 + len > extraEnd) bad(`has a corrupt extra field in zip entry '${name}'`);
        if (id === 0x0001) {
          let r = q + 4;
          const next = (what: string): number => {
            if (r + 8 > q + 4 + len) bad(`has a short zip64 field in zip entry '${name}'`);
            const n = u64(cd, r, bad, what); r += 8; return n;
          };
          if (size === 0xffffffff) size = next('zip64 size');
          if (compressedSize === 0xffffffff) compressedSize = next('zip64 compressed size');
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = next('zip64 header offset');
        }
        q += 4 + len;
      }
      if (this.entries.has(name)) bad(`has two zip entries named '${name}'; refusing an ambiguous archive`);
      const entry = { name, method, compressedSize, size, localHeaderOffset, limit: cdOffset };
      this.entries.set(name, entry);
      // A local header is 30 bytes plus the name; its extra field may differ from the central one.
      spans.push({ entry, minEnd: localHeaderOffset + 30 + nameLen + compressedSize });
      p = end;
    }
    // Entries may not share bytes: overlapping entries let a small file be read (or inflated) many times over.
    spans.sort((a, b) => a.entry.localHeaderOffset - b.entry.localHeaderOffset);
    for (let i = 0; i < spans.length; i++) {
      const { entry, minEnd } = spans[i];
      const next = spans[i + 1]?.entry;
      entry.limit = next ? next.localHeaderOffset : cdOffset;
      if (minEnd > entry.limit) {
        bad(next
          ? `has overlapping zip entries '${entry.name}' (bytes ${entry.localHeaderOffset}..${minEnd}) and '${next.name}' (from byte ${next.localHeaderOffset}); the zip archive is corrupt or hostile`
          : `has zip entry '${entry.name}' (bytes ${entry.localHeaderOffset}..${minEnd}) running into the central directory at byte ${cdOffset}; the zip archive is corrupt`);
      }
    }
  }

  /** The uncompressed bytes of `entry`, refusing anything over `maxSize`. */
  read(entry: ZipEntry, maxSize = Number.MAX_SAFE_INTEGER): Buffer {
    const { name, method, compressedSize, size, localHeaderOffset, limit } = entry;
    const bad: Fail = this.bad;
    if (size > maxSize) bad(`zip entry '${name}' holds ${size} bytes, over the ${maxSize}-byte limit`);
    const h = this.file.read(localHeaderOffset, 30, `the zip header of '${name}'`);
    if (h.readUInt32LE(0) !== LOCAL) bad(`has a corrupt zip header for '${name}'`);
    const start = localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
    if (start + compressedSize > limit) bad(`zip entry '${name}' (bytes ${start}..${start + compressedSize}) runs into the next entry at byte ${limit}; the zip archive is corrupt or hostile`);
    if (method === 0) {
      if (compressedSize !== size) bad(`zip entry '${name}' is stored with mismatched sizes (${compressedSize} vs ${size}); the zip archive is corrupt`);
      return this.file.read(start, size, `zip entry '${name}'`);
    }
    if (method === 8) {
      // DEFLATE expands at most ~1032x; a larger claim is a zip bomb or a corrupt size.
      if (size > compressedSize * 1032 + 1024) bad(`zip entry '${name}' claims ${size} bytes from ${compressedSize} compressed bytes, more than DEFLATE can produce; the file is corrupt`);
      if (this.inflated + size > this.inflateBudget) {
        bad(`zip entry '${name}' would inflate to ${size} bytes, past the archive's budget of ${this.inflateBudget} inflated bytes (${this.inflated} used); a deflated checkpoint this compressible is a zip bomb or corrupt; re-save it with torch.save, which stores entries uncompressed`);
      }
      this.inflated += size;
      const packed = this.file.read(start, compressedSize, `zip entry '${name}'`);
      let out: Buffer;
      try {
        out = size === 0 ? Buffer.alloc(0) : inflateRawSync(packed, { maxOutputLength: size });
      } catch (e) {
        bad(`zip entry '${name}' does not inflate (${(e as Error).message}); the file is corrupt`);
      }
      if (out.length !== size) bad(`zip entry '${name}' inflates to ${out.length} bytes but its header says ${size}; the file is corrupt`);
      return out;
    }
    bad(`zip entry '${name}' uses compression method ${method}; only stored (0) and deflated (8) entries are supported`);
  }
}
