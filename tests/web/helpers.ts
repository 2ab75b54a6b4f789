// Fixtures for the server and page tests: a tiny PAN saved to a temp folder and generated images.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { manualSeed } from '../../src/engine/index.js';
import { PAN } from '../../src/models/index.js';

export const CLASSES = ['background', 'sky', 'road'];
export const COLORS: [number, number, number][] = [[0, 0, 0], [70, 130, 180], [128, 64, 128]];

/** A fresh temp folder and its cleanup. */
export function tmp(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Saves a small random PAN (resnet18, 3 classes, 16 decoder channels) with class names and colours; returns its folder. */
export function saveTinyModel(parent: string, seed = 7): string {
  manualSeed(seed);
  const dir = join(parent, 'model');
  mkdirSync(parent, { recursive: true });
  const model = new PAN({ encoderName: 'resnet18', classes: 3, decoderChannels: 16 });
  try {
    model.savePretrained(dir, { classNames: CLASSES, colors: COLORS });
  } finally {
    model.dispose();
  }
  return dir;
}

/** RGB pixels with structure (gradients, a disc, a stripe), so the random model predicts more than one class. */
export function testPixels(w: number, h: number): Uint8Array {
  const d = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = 3 * (y * w + x);
      const disc = (x - w / 3) ** 2 + (y - h / 2) ** 2 < (Math.min(w, h) / 4) ** 2;
      d[i] = Math.round((255 * x) / w);
      d[i + 1] = disc ? 230 : Math.round((255 * y) / h);
      d[i + 2] = x > (2 * w) / 3 ? 200 : disc ? 40 : 90;
    }
  }
  return d;
}

/** Encodes {@link testPixels} as PNG (default), JPEG or WebP. */
export async function testImage(w: number, h: number, format: 'png' | 'jpeg' | 'webp' = 'png'): Promise<Buffer> {
  const img = sharp(Buffer.from(testPixels(w, h)), { raw: { width: w, height: h, channels: 3 } });
  return (format === 'jpeg' ? img.jpeg({ quality: 95 }) : format === 'webp' ? img.webp({ lossless: true }) : img.png()).toBuffer();
}

/** The share of equal entries of two label maps. */
export function agreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`label maps differ in size: ${a.length} vs ${b.length}`);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}
