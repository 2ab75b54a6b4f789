// Palette ("indexed") PNGs, read and written by hand. sharp expands palettes to RGB on load,
// which loses the index a VOC mask stores as its label; this reader keeps it, exactly.
import { deflateSync, inflateSync } from 'node:zlib';
import type { RGB } from '../common/palette.js';

const SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);

/** The raw indices and palette of an indexed PNG. */
export interface IndexedPng {
  width: number;
  height: number;
  /** One palette index per pixel, row-major. */
  indices: Uint8Array;
  /** The PLTE entries. */
  palette: RGB[];
}

/** Whether `buf` starts with the PNG signature. */
export function isPng(buf: Uint8Array): boolean {
  return buf.length >= 8 && SIGNATURE.equals(buf.subarray(0, 8));
}

/** The IHDR colour type of a PNG (3 = palette), or -1 when `buf` is not a PNG. */
export function pngColorType(buf: Uint8Array): number {
  return isPng(buf) && buf.length >= 26 ? buf[25] : -1;
}

/**
 * Decodes a one-sample-per-pixel PNG keeping its stored values: indexed (colour type 3; `palette` filled)
 * or greyscale (colour type 0; `palette` empty), bit depth 1-8, not interlaced.
 * Returns null for anything else (the caller falls back to sharp). Throws on a truncated or corrupt stream.
 */
export function readIndexedPng(buf: Uint8Array): IndexedPng | null {
  const type = pngColorType(buf);
  if (type !== 3 && type !== 0) return null;
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 8;
  let width = 0;
  let height = 0;
  let depth = 0;
  let interlace = 0;
  const palette: RGB[] = [];
  const idat: Buffer[] = [];
  while (pos + 8 <= view.length) {
    const len = view.readUInt32BE(pos);
    const type = view.toString('latin1', pos + 4, pos + 8);
    const data = view.subarray(pos + 8, pos + 8 + len);
    if (data.length !== len) throw new Error(`truncated PNG chunk ${type}`);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      depth = data[8];
      interlace = data[12];
    } else if (type === 'PLTE') {
      for (let i = 0; i + 2 < len; i += 3) palette.push([data[i], data[i + 1], data[i + 2]]);
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    }
    pos += 12 + len;
  }
  if (interlace !== 0 || depth > 8) return null;
  if (![1, 2, 4, 8].includes(depth) || width === 0 || height === 0) throw new Error(`bad PNG header (${width}x${height}, depth ${depth})`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = Math.ceil((width * depth) / 8);
  if (raw.length < (stride + 1) * height) throw new Error(`truncated PNG image data (${raw.length} of ${(stride + 1) * height} bytes)`);
  const rows = unfilter(raw, stride, height, 1);
  const indices = new Uint8Array(width * height);
  const perByte = 8 / depth;
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    const row = y * stride;
    const out = y * width;
    if (depth === 8) {
      indices.set(rows.subarray(row, row + width), out);
      continue;
    }
    for (let x = 0; x < width; x++) {
      const byte = rows[row + Math.floor(x / perByte)];
      indices[out + x] = (byte >> (8 - depth * (1 + (x % perByte)))) & mask;
    }
  }
  return { width, height, indices, palette };
}

// PNG's per-row filters; `bpp` is the filter unit in bytes (1 for palette and grey depths <= 8, 3 for RGB, ...).
function unfilter(raw: Uint8Array, stride: number, height: number, bpp: number): Uint8Array {
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const o = y * stride;
    const up = o - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[o + x - bpp] : 0;
      const b = y > 0 ? out[up + x] : 0;
      const c = x >= bpp && y > 0 ? out[up + x - bpp] : 0;
      const v = raw[src + x];
      let p: number;
      switch (f) {
        case 0: p = 0; break;
        case 1: p = a; break;
        case 2: p = b; break;
        case 3: p = (a + b) >> 1; break;
        case 4: {
          const pa = Math.abs(b - c);
          const pb = Math.abs(a - c);
          const pc = Math.abs(a + b - 2 * c);
          p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default: throw new Error(`bad PNG filter type ${f} in row ${y}`);
      }
      out[o + x] = (v + p) & 255;
    }
  }
  return out;
}

/**
 * The grey level of every pixel of an 8-bit, non-interlaced PNG whose pixels are all grey: greyscale (alpha
 * dropped), or RGB/RGBA with R = G = B everywhere. Null for any other PNG (palette, colour, 16-bit, interlaced)
 * or a non-PNG. Synchronous, for quick checks of mask files (e.g. "are these 0/255 masks?").
 */
export function readGreyPng(buf: Uint8Array): { width: number; height: number; grey: Uint8Array } | null {
  const type = pngColorType(buf);
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[type];
  if (!channels || buf.length < 29 || buf[24] !== 8 || buf[28] !== 0) return null;
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const width = view.readUInt32BE(16);
  const height = view.readUInt32BE(20);
  const idat: Buffer[] = [];
  let pos = 8;
  while (pos + 8 <= view.length) {
    const len = view.readUInt32BE(pos);
    const t = view.toString('latin1', pos + 4, pos + 8);
    if (t === 'IDAT') idat.push(view.subarray(pos + 8, pos + 8 + len));
    else if (t === 'IEND') break;
    pos += 12 + len;
  }
  const stride = width * channels;
  const raw = inflateSync(Buffer.concat(idat));
  if (!width || !height || raw.length < (stride + 1) * height) throw new Error(`truncated PNG image data (${raw.length} of ${(stride + 1) * height} bytes)`);
  const rows = unfilter(raw, stride, height, channels);
  const grey = new Uint8Array(width * height);
  for (let i = 0, p = 0; i < grey.length; i++, p += channels) {
    const g = rows[p];
    if (channels >= 3 && (rows[p + 1] !== g || rows[p + 2] !== g)) return null;
    grey[i] = g;
  }
  return { width, height, grey };
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bufs: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const b of bufs) for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32([head.subarray(4), data]), 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * Encodes a label map as an 8-bit indexed PNG (the format of VOC's SegmentationClass masks),
 * so every viewer shows colours while the stored index stays the label.
 * @param indices one label per pixel, row-major, `width * height` long
 * @param palette up to 256 colours; missing entries are written black
 * @example writeFileSync('pred.png', encodeIndexedPng(labels, w, h, VOC_PALETTE))
 */
export function encodeIndexedPng(indices: Uint8Array, width: number, height: number, palette: readonly RGB[]): Buffer {
  if (indices.length !== width * height) throw new Error(`encodeIndexedPng: expected ${width * height} indices but received ${indices.length}`);
  let max = 0;
  for (let i = 0; i < indices.length; i++) if (indices[i] > max) max = indices[i];
  const n = Math.max(palette.length, max + 1);
  const plte = new Uint8Array(3 * Math.min(256, n));
  for (let i = 0; i < plte.length / 3; i++) plte.set(palette[i] ?? [0, 0, 0], 3 * i);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 3; // colour type: palette
  const raw = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(indices.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('PLTE', plte), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}
