// Decoding image and mask files to raw bytes with sharp (JPEG, PNG, WebP, ...).
// Masks keep their stored values: palette PNGs through our own reader, others as grey or RGB.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { PansegError } from '../common/errors.js';
import type { RGB } from '../common/palette.js';
import { readIndexedPng, pngColorType } from './png.js';

/**
 * A mask whose values do not fit the dataset (an unknown colour, a value outside the classes that is not the
 * ignore index). Not a bad file to skip: the loader stops on it, since every later mask likely has the same problem.
 */
export class MaskValueError extends PansegError {
  override name = 'MaskValueError';
}

/** An 8-bit RGB image, HWC row-major. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** A decoded mask before label mapping. */
export type RawMask =
  /** One value per pixel: a grey level or a palette index. `palette` is set for indexed PNGs. */
  | { kind: 'index'; data: Uint8Array | Uint16Array; width: number; height: number; palette?: RGB[] }
  /** HWC RGB colours. */
  | { kind: 'rgb'; data: Uint8Array; width: number; height: number };

/**
 * Decodes any image sharp reads (JPEG, PNG, WebP, TIFF, ...) to 8-bit sRGB, alpha dropped, greyscale expanded to
 * three channels. The EXIF orientation is applied (a phone photo stored sideways with orientation 6 comes out
 * upright, as every viewer and annotation tool shows it), so masks drawn on the shown image line up.
 */
export async function decodeImage(path: string): Promise<RgbImage> {
  return toRgb(sharp(path));
}

/** The pixels {@link decodeImage} gives, from any sharp input (the server's uploads use it too). */
export async function toRgb(input: sharp.Sharp): Promise<RgbImage> {
  const { data, info } = await input.rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels instead of 3`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

/**
 * Decodes a mask without changing its values: indexed PNGs give their palette indices (exactly; sharp
 * would expand them to colours), greyscale files their levels (16-bit kept as Uint16Array), colour files RGB.
 */
export async function decodeMask(path: string): Promise<RawMask> {
  const buf = await readFile(path);
  const type = pngColorType(buf);
  if (type === 0 || type === 3) {
    // Our own reader: exact indices, and faster than a sharp round trip for small masks.
    const png = readIndexedPng(buf);
    if (png) return { kind: 'index', data: png.indices, width: png.width, height: png.height, palette: type === 3 ? png.palette : undefined };
  }
  if (type === 3) {
    // Interlaced palette PNG: let sharp expand it, then look the colours up in the palette.
    const rgb = await decodeRgb(buf);
    const pal = readPalette(buf);
    return { kind: 'index', data: rgbToIndex(rgb, pal, path), width: rgb.width, height: rgb.height, palette: pal };
  }
  const meta = await sharp(buf).metadata();
  const channels = meta.channels ?? 3;
  if (channels <= 2) {
    const wide = meta.depth === 'ushort';
    const { data, info } = await sharp(buf).extractChannel(0).raw(wide ? { depth: 'ushort' } : {}).toBuffer({ resolveWithObject: true });
    const values = wide ? new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return { kind: 'index', data: values, width: info.width, height: info.height };
  }
  return { kind: 'rgb', ...(await decodeRgb(buf)) };
}

async function decodeRgb(buf: Buffer): Promise<RgbImage> {
  const { data, info } = await sharp(buf).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

function readPalette(buf: Buffer): RGB[] {
  const out: RGB[] = [];
  let pos = 8;
  while (pos + 8 <= buf.length) {
    const len = buf.readUInt32BE(pos);
    if (buf.toString('latin1', pos + 4, pos + 8) === 'PLTE') {
      for (let i = 0; i + 2 < len; i += 3) out.push([buf[pos + 8 + i], buf[pos + 9 + i], buf[pos + 10 + i]]);
      break;
    }
    pos += 12 + len;
  }
  return out;
}

/**
 * Maps HWC RGB colours to their position in `table` (first match wins).
 * @throws naming the file and the first colour not in the table
 */
export function rgbToIndex(img: RgbImage, table: readonly (RGB | undefined)[], path: string): Uint8Array {
  const lookup = new Map<number, number>();
  for (let i = table.length - 1; i >= 0; i--) {
    const c = table[i];
    if (c) lookup.set((c[0] << 16) | (c[1] << 8) | c[2], i);
  }
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  const d = img.data;
  let lastKey = -1;
  let lastVal = 0;
  for (let i = 0; i < n; i++) {
    const key = (d[3 * i] << 16) | (d[3 * i + 1] << 8) | d[3 * i + 2];
    if (key !== lastKey) {
      const v = lookup.get(key);
      if (v === undefined) {
        const x = i % img.width;
        const y = Math.floor(i / img.width);
        throw new MaskValueError(`mask ${path} has colour (${d[3 * i]}, ${d[3 * i + 1]}, ${d[3 * i + 2]}) at x=${x}, y=${y}, which is not a class colour`);
      }
      lastKey = key;
      lastVal = v;
    }
    out[i] = lastVal;
  }
  return out;
}
