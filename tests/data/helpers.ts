// Fixture writers for the data tests: tiny datasets in a temp folder, written with sharp.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import type { RGB } from '../../src/common/palette.js';
import { encodeIndexedPng } from '../../src/data/png.js';

/** A fresh temp folder, removed by the returned cleanup. */
export function tmp(prefix = 'panseg-data-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function ensure(path: string): string {
  mkdirSync(dirname(path), { recursive: true });
  return path;
}

/** An RGB image whose pixel is f(x, y). Format from the extension (.png, .jpg, .webp). */
export async function writeRgb(path: string, w: number, h: number, f: (x: number, y: number) => RGB): Promise<void> {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(f(x, y), 3 * (y * w + x));
  const img = sharp(data, { raw: { width: w, height: h, channels: 3 } });
  const ext = path.split('.').pop();
  await (ext === 'jpg' ? img.jpeg({ quality: 95 }) : ext === 'webp' ? img.webp({ lossless: true }) : img.png()).toFile(ensure(path));
}

/** An 8-bit greyscale PNG whose value is f(x, y). */
export async function writeGrey(path: string, w: number, h: number, f: (x: number, y: number) => number): Promise<void> {
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = f(x, y);
  await sharp(data, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toFile(ensure(path));
}

/** An indexed PNG (palette) whose index is f(x, y). */
export function writeIndexed(path: string, w: number, h: number, palette: readonly RGB[], f: (x: number, y: number) => number): void {
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = f(x, y);
  writeFileSync(ensure(path), encodeIndexedPng(data, w, h, palette));
}

/** A text file. */
export function writeText(path: string, text: string): void {
  writeFileSync(ensure(path), text);
}

/** A label pattern that uses every value in `values` and is a function of position. */
export function pattern(values: readonly number[], block = 2): (x: number, y: number) => number {
  return (x, y) => values[(Math.floor(x / block) + 3 * Math.floor(y / block)) % values.length];
}
