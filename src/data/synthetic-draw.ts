// Procedural scenes for the demo dataset: textured shapes on textured backgrounds, rasterized in
// plain JS. A shape's class is its geometry; its colours and texture are drawn independently of it.
import type { RGB } from '../common/palette.js';
import type { Rng } from './prng.js';

/** The synthetic classes, in label order. */
export const SYNTHETIC_CLASSES: readonly string[] = Object.freeze(['background', 'circle', 'rectangle', 'triangle', 'ring', 'cross']);

/** Drawing colours for the synthetic classes. */
export const SYNTHETIC_COLORS: readonly RGB[] = Object.freeze([
  [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
] as RGB[]);

type Texture = (x: number, y: number) => RGB;

function randomColor(rng: Rng): RGB {
  return [rng.int(256), rng.int(256), rng.int(256)];
}

function dist(a: RGB, b: RGB): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

function mix(a: RGB, b: RGB, t: number): RGB {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

/** A smooth random field in [0, 1]: bilinear interpolation over a coarse grid of random values. */
function valueNoise(rng: Rng, size: number, cells: number): (x: number, y: number) => number {
  const g = cells + 2;
  const grid = Float32Array.from({ length: g * g }, () => rng.next());
  const k = cells / size;
  return (x, y) => {
    const fx = x * k;
    const fy = y * k;
    const ix = Math.floor(fx);
    const iy = Math.floor(fy);
    const tx = fx - ix;
    const ty = fy - iy;
    const a = grid[iy * g + ix];
    const b = grid[iy * g + ix + 1];
    const c = grid[(iy + 1) * g + ix];
    const d = grid[(iy + 1) * g + ix + 1];
    return a + (b - a) * tx + (c - a) * ty + (a - b - c + d) * tx * ty;
  };
}

/** One of: flat, linear gradient, stripes, smooth noise, speckle noise; between two colours. */
function texture(rng: Rng, size: number, a: RGB, b: RGB): Texture {
  const kind = rng.int(5);
  const angle = rng.uniform(0, Math.PI);
  const ca = Math.cos(angle);
  const sa = Math.sin(angle);
  switch (kind) {
    case 0:
      return () => a;
    case 1: {
      return (x, y) => mix(a, b, Math.min(1, Math.max(0, ((x * ca + y * sa) / size + 0.5) * 0.7)));
    }
    case 2: {
      const period = rng.uniform(4, size / 6);
      return (x, y) => (Math.floor((x * ca + y * sa) / period) & 1 ? a : b);
    }
    case 3: {
      const f = valueNoise(rng, size, 2 + rng.int(6));
      return (x, y) => mix(a, b, f(x, y));
    }
    default: {
      const amount = rng.uniform(0.2, 0.6);
      const s = rng.next();
      // A hash of the position, so the texture is a pure function of (x, y) and the seed.
      return (x, y) => {
        let h = Math.imul((x * 73856093) ^ (y * 19349663) ^ Math.floor(s * 1e9), 0x5bd1e995);
        h ^= h >>> 15;
        return mix(a, b, (((h >>> 0) % 1000) / 1000) * amount);
      };
    }
  }
}

type Inside = (u: number, v: number) => boolean;

/** The membership test of one shape of class `cls` (1-5) with outer radius r, in its own rotated frame. */
function shape(rng: Rng, cls: number, r: number): Inside {
  switch (cls) {
    case 1: return (u, v) => u * u + v * v <= r * r;
    case 2: {
      const h = r * rng.uniform(0.45, 0.9);
      const w = r * 0.9;
      return (u, v) => Math.abs(u) <= w && Math.abs(v) <= h;
    }
    case 3: {
      // Equilateral: circumradius R, inradius R/2; three edge normals 120 degrees apart.
      const R = r * 1.2;
      const n = [0, 1, 2].map((k) => [Math.cos(Math.PI / 2 + (2 * Math.PI * k) / 3), Math.sin(Math.PI / 2 + (2 * Math.PI * k) / 3)]);
      return (u, v) => n.every(([nx, ny]) => u * nx + v * ny <= R / 2);
    }
    case 4: {
      const inner = r * rng.uniform(0.45, 0.65);
      return (u, v) => {
        const d = u * u + v * v;
        return d <= r * r && d >= inner * inner;
      };
    }
    default: {
      const t = r * rng.uniform(0.22, 0.36);
      return (u, v) => (Math.abs(u) <= r && Math.abs(v) <= t) || (Math.abs(u) <= t && Math.abs(v) <= r);
    }
  }
}

/** One scene: HWC RGB bytes and a label per pixel. */
export function drawScene(rng: Rng, size: number): { rgb: Uint8Array; labels: Uint8Array } {
  const rgb = new Float32Array(size * size * 3);
  const labels = new Uint8Array(size * size);
  const bgA = randomColor(rng);
  const bgB = randomColor(rng);
  const bg = texture(rng, size, bgA, bgB);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) rgb.set(bg(x, y), 3 * (y * size + x));
  }
  const bgMean = mix(bgA, bgB, 0.5);
  const count = 2 + rng.int(4);
  for (let s = 0; s < count; s++) {
    const cls = 1 + rng.int(SYNTHETIC_CLASSES.length - 1);
    const r = size * rng.uniform(0.09, 0.24);
    const cx = rng.uniform(r * 0.4, size - r * 0.4);
    const cy = rng.uniform(r * 0.4, size - r * 0.4);
    const theta = rng.uniform(0, 2 * Math.PI);
    const inside = shape(rng, cls, r);
    // Keep the fill visibly apart from the background (colours are otherwise unrelated to the class).
    let a = randomColor(rng);
    for (let k = 0; k < 8 && dist(a, bgMean) < 110; k++) a = randomColor(rng);
    const b = mix(a, randomColor(rng), rng.uniform(0.15, 0.45));
    const fill = texture(rng, size, a, b);
    const cos = Math.cos(theta);
    const sin = Math.sin(theta);
    const R = Math.ceil(r * 1.3) + 1;
    const y0 = Math.max(0, Math.floor(cy - R));
    const y1 = Math.min(size - 1, Math.ceil(cy + R));
    const x0 = Math.max(0, Math.floor(cx - R));
    const x1 = Math.min(size - 1, Math.ceil(cx + R));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        if (!inside(dx * cos + dy * sin, -dx * sin + dy * cos)) continue;
        const i = y * size + x;
        rgb.set(fill(x, y), 3 * i);
        labels[i] = cls;
      }
    }
  }
  const sigma = rng.uniform(3, 14);
  const out = new Uint8Array(rgb.length);
  for (let i = 0; i < rgb.length; i++) {
    const n = rgb[i] + sigma * rng.normal();
    out[i] = n < 0 ? 0 : n > 255 ? 255 : Math.round(n);
  }
  return { rgb: out, labels };
}
