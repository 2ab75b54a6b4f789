// The demo dataset: procedural shape scenes written as a `folder` dataset, generated once per parameters.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { fail } from '../common/errors.js';
import * as v from '../common/validate.js';
import { Rng, mixSeed } from './prng.js';
import { SYNTHETIC_CLASSES, SYNTHETIC_COLORS, drawScene } from './synthetic-draw.js';

export { SYNTHETIC_CLASSES, SYNTHETIC_COLORS } from './synthetic-draw.js';

/** Options of {@link generateSynthetic}. */
export interface SyntheticOptions {
  /** Training images. Default 300. */
  train?: number;
  /** Validation images. Default 60. */
  val?: number;
  /** Square image side in pixels, at least 32. Default 128. */
  size?: number;
  /** Default 0. */
  seed?: number;
}

/** What {@link generateSynthetic} did. */
export interface SyntheticResult {
  dir: string;
  classes: string[];
  train: number;
  val: number;
  size: number;
  /** True when the folder already held this dataset and nothing was written. */
  skipped: boolean;
  ms: number;
}

const MANIFEST = 'manifest.json';
const GENERATOR = 'panseg-synthetic';
const VERSION = 1;

/**
 * Writes a `folder`-layout dataset of procedural scenes to `dir`:
 * `classes.json`, `train/images/*.png`, `train/masks/*.png`, `val/...`, and `manifest.json`.
 * Each scene has 2-5 shapes (circle, rectangle, triangle, ring, cross) of random size, rotation and position,
 * overlapping, filled with random colours and textures (flat, gradient, stripes, noise) on a textured background,
 * plus pixel noise: only the shape tells the class. Images are deterministic in (seed, split, index).
 * Idempotent: when `dir/manifest.json` records the same parameters, nothing is written.
 * Open the result with `openDataset('folder', dir, { split: 'train' })`.
 * @example await generateSynthetic('data/shapes', { train: 300, val: 60, size: 128, seed: 0 })
 */
export async function generateSynthetic(dir: string, opts: SyntheticOptions = {}): Promise<SyntheticResult> {
  const op = 'generateSynthetic';
  const t0 = performance.now();
  const params = {
    generator: GENERATOR, version: VERSION,
    train: v.int(op, 'train', opts.train ?? 300, 1),
    val: v.int(op, 'val', opts.val ?? 60, 0),
    size: v.int(op, 'size', opts.size ?? 128, 32, 4096),
    seed: v.int(op, 'seed', opts.seed ?? 0),
  };
  const result = (skipped: boolean): SyntheticResult => ({
    dir, classes: [...SYNTHETIC_CLASSES], train: params.train, val: params.val, size: params.size, skipped, ms: performance.now() - t0,
  });
  const manifestPath = join(dir, MANIFEST);
  if (existsSync(manifestPath)) {
    let old: unknown = null;
    try { old = JSON.parse(readFileSync(manifestPath, 'utf8')); } catch { /* rewrite below */ }
    if (JSON.stringify(old) === JSON.stringify(params) && complete(dir, params.train, params.val)) return result(true);
  } else if (existsSync(dir) && readdirSync(dir).length) {
    fail(op, `${dir} is not empty and holds no ${MANIFEST} from a previous generation; choose an empty or new folder`);
  }
  rmSync(manifestPath, { force: true });
  for (const split of ['train', 'val']) rmSync(join(dir, split), { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'classes.json'), `${JSON.stringify({ classes: SYNTHETIC_CLASSES, colors: SYNTHETIC_COLORS, ignore_index: 255 })}\n`);
  for (const [split, n, code] of [['train', params.train, 1], ['val', params.val, 2]] as const) {
    if (!n) continue;
    mkdirSync(join(dir, split, 'images'), { recursive: true });
    mkdirSync(join(dir, split, 'masks'), { recursive: true });
    const batch = 16;
    for (let start = 0; start < n; start += batch) {
      const jobs: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(n, start + batch); i++) {
        const { rgb, labels } = drawScene(new Rng(mixSeed(params.seed, code, i)), params.size);
        const name = `${split}_${String(i).padStart(5, '0')}.png`;
        const raw = { width: params.size, height: params.size };
        jobs.push(sharp(rgb, { raw: { ...raw, channels: 3 } }).png({ compressionLevel: 3 }).toFile(join(dir, split, 'images', name)));
        jobs.push(sharp(labels, { raw: { ...raw, channels: 1 } }).toColourspace('b-w').png({ compressionLevel: 3 }).toFile(join(dir, split, 'masks', name)));
      }
      await Promise.all(jobs);
    }
  }
  // Written last: its presence means the folder is complete.
  writeFileSync(manifestPath, `${JSON.stringify(params)}\n`);
  return result(false);
}

function complete(dir: string, train: number, val: number): boolean {
  const count = (p: string): number => (existsSync(p) ? readdirSync(p).length : 0);
  return [['train', train], ['val', val]].every(([s, n]) =>
    count(join(dir, s as string, 'images')) === n && count(join(dir, s as string, 'masks')) === n);
}
