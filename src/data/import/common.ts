// What the importers share: limits checked before allocating, the folder-dataset writer, small JSON checks.
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../../common/errors.js';
import { type RGB, vocPalette } from '../../common/palette.js';
import { encodeIndexedPng } from '../png.js';

/** Caps that keep a hostile or broken annotation file from exhausting memory or time. */
export interface ImportLimits {
  /** Largest image area (width x height) accepted, checked before a mask is allocated. Default 100,000,000 (10k x 10k). */
  maxPixels?: number;
  /** Polygon coordinates per image, summed over its annotations. Default 4,000,000. */
  maxCoordinates?: number;
  /** Edge/row crossings per polygon. Default 4,000,000. */
  maxCrossings?: number;
  /**
   * The regions of one image may add up to at most this many times its area (painting work is bounded by it,
   * not by how many times a short file repeats a full-image region). Default 64.
   */
  maxCoverage?: number;
}

export const DEFAULT_LIMITS: Required<ImportLimits> = { maxPixels: 100_000_000, maxCoordinates: 4_000_000, maxCrossings: 4_000_000, maxCoverage: 64 };

/** Refuses an image whose regions add up to more than `maxCoverage` times its area (checked before painting). */
export function checkCoverage(op: string, what: string, area: number, pixels: number, limits: Required<ImportLimits>): void {
  if (area > limits.maxCoverage * pixels) fail(op, `the regions of ${what} add up to ${area} pixels, more than ${limits.maxCoverage} times its ${pixels}; the file repeats regions`);
}

/** The label of ignored pixels in converted masks (crowd regions, `__ignore__` shapes). */
export const IGNORE = 255;

/** Checks an image size from an annotation file and refuses an area above the cap, before anything is allocated. */
export function checkSize(op: string, what: string, width: unknown, height: unknown, limits: Required<ImportLimits>): { width: number; height: number } {
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (!ok(width) || !ok(height)) fail(op, `${what} has width ${JSON.stringify(width) ?? 'undefined'} and height ${JSON.stringify(height) ?? 'undefined'}; expected positive integers`);
  if (width * height > limits.maxPixels) fail(op, `${what} is ${width}x${height} = ${width * height} pixels, above the limit of ${limits.maxPixels} (--max-pixels)`);
  return { width, height };
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Short JSON of a received value for messages (at most 40 characters; cheap for huge arrays and strings). */
export function shown(v: unknown): string {
  let s: string;
  if (Array.isArray(v) && v.length > 8) return `an array of ${v.length} items`;
  if (typeof v === 'string' && v.length > 40) return `${JSON.stringify(v.slice(0, 30)).slice(0, -1)}..." (${v.length} characters)`;
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  try { s = JSON.stringify(v) ?? String(v); } catch { s = String(v); }
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** The palette converted masks are written with: VOC's, so 255 (ignore) shows as VOC's cream border colour. */
export const MASK_PALETTE: readonly RGB[] = vocPalette(256);

/** Writes a folder dataset (images/, masks/, classes.json) into `out`, which must not already hold one. */
export class FolderWriter {
  readonly images: string;
  readonly masks: string;
  constructor(readonly op: string, readonly out: string) {
    this.images = join(out, 'images');
    this.masks = join(out, 'masks');
    for (const d of [this.images, this.masks]) {
      if (existsSync(d) && readdirSync(d).length) fail(op, `${d} already holds files; convert into a new --out folder`);
    }
    mkdirSync(this.images, { recursive: true });
    mkdirSync(this.masks, { recursive: true });
  }

  /** Copies an image in under `name` (stem + extension). */
  copyImage(src: string, name: string): void {
    copyFileSync(src, join(this.images, name));
  }

  writeImage(name: string, bytes: Uint8Array): void {
    writeFileSync(join(this.images, name), bytes);
  }

  writeMask(stem: string, mask: Uint8Array, width: number, height: number): void {
    writeFileSync(join(this.masks, `${stem}.png`), encodeIndexedPng(mask, width, height, MASK_PALETTE));
  }

  /** classes.json with the ignore index declared, so 255 is never mistaken for a class. */
  writeClasses(classes: string[]): void {
    writeFileSync(join(this.out, 'classes.json'), `${JSON.stringify({ classes, ignore_index: IGNORE }, null, 1)}\n`);
  }
}

/** What a conversion did, for the summary line and --json. */
export interface ConvertSummary {
  out: string;
  images: number;
  classes: string[];
  /** Shapes or annotations painted. */
  painted: number;
  /** Regions painted as ignore (COCO iscrowd, labelme `__ignore__`). */
  ignored: number;
  /** Skipped, with the reason: e.g. { 'polygon with fewer than 3 points': 2, 'line shape (no area)': 1 }. */
  skipped: Record<string, number>;
  /** Pixels per class over all masks (the last entry: ignored pixels). */
  pixels: number[];
}

export function countPixels(mask: Uint8Array, pixels: number[]): void {
  const k = pixels.length - 1;
  for (let i = 0; i < mask.length; i++) {
    const v = mask[i];
    if (v < k) pixels[v]++;
    else pixels[k]++;
  }
}
