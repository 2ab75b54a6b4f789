// The browser page's own inference time (onnxruntime-web in Debian's headless Chromium) per encoder on a
// 512x512 image: wasm SIMD threaded under COOP/COEP, and WebGPU where the browser has an adapter; fp32 and
// fp16 exports; beside onnxruntime-node (CPU) and the server's libtorch on the same image, in the same run.
// `npm run bench -- web` (PAN on resnet34 and mobilenet_v2). Each row carries the 1-minute load average.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { manualSeed } from '../src/engine/index.js';
import { exportOnnx } from '../src/export/index.js';
import { createModel } from '../src/models/index.js';
import { OnnxSession } from '../src/onnx/session.js';
import { startServer } from '../src/serve/index.js';
import { median } from './timing.js';

const CHROMIUM = process.env.PANSEG_CHROMIUM ?? '/usr/bin/chromium';
type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any
declare const document: Any;
declare const navigator: Any;

export interface WebBenchRow {
  encoder: string;
  dtype: 'fp32' | 'fp16';
  /** 'wasm' | 'webgpu' in the page, 'onnxruntime-node' or 'libtorch (server)'. */
  engine: string;
  /** Median ms per image, or null with `note` (e.g. no WebGPU adapter). */
  ms: number | null;
  detail: string;
  mb: number;
  /** 1-minute load average when the row was measured. */
  load: number;
  note?: string;
}

const load = () => Number(loadavg()[0].toFixed(2));

// Warm-up runs before timing: onnxruntime-web takes a few runs to settle, an fp16 export more than fp32
// (its first 2-3 runs were about twice the steady time, in the browser and in onnxruntime-web's Node build).
const WARMUP = 3;

/** The page's median inference ms (its own timing: preprocessing, session.run, argmax) over `repeats` uploads after {@link WARMUP} more. */
async function pageMs(page: Page, png: string, repeats: number): Promise<{ ms: number; backend: string }> {
  await page.selectOption('#max-side', '0'); // full resolution: the image as it is
  const ms: number[] = [];
  for (let i = 0; i < repeats + WARMUP; i++) {
    const runs = Number(await page.evaluate(() => document.body.dataset.runs));
    await page.setInputFiles('#file', png);
    await page.waitForFunction((n) => Number(document.body.dataset.runs) > n && document.body.dataset.state !== 'running', runs, { timeout: 600_000 });
    if (i >= WARMUP) ms.push(Number(await page.evaluate(() => document.getElementById('stage')?.dataset.ms)));
  }
  return { ms: median(ms), backend: await page.evaluate(() => document.getElementById('stage')?.dataset.backend ?? '') };
}

/** The page's WebGPU adapter, if any: its name and whether it is a software (fallback) one. */
async function webgpuAdapter(page: Page): Promise<{ name: string; software: boolean } | null> {
  return page.evaluate(async () => {
    const a = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
    if (!a) return null;
    const i = a.info ?? {};
    const name = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'unnamed';
    return { name, software: Boolean(i.isFallbackAdapter || a.isFallbackAdapter) || /swiftshader|llvmpipe|lavapipe|software/i.test(name) };
  });
}

/** Median ms per image in the page (wasm and WebGPU), onnxruntime-node and the server's libtorch, fp32 and fp16. */
export async function benchWeb(o: { encoders?: string[]; size?: number; repeats?: number; threads?: number } = {}): Promise<WebBenchRow[]> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set PANSEG_CHROMIUM)`);
  const size = o.size ?? 512;
  const repeats = o.repeats ?? 5;
  const threads = o.threads ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'panseg-bench-web-'));
  const rows: WebBenchRow[] = [];
  const png = join(dir, 'image.png');
  const px = Buffer.from(Array.from({ length: size * size * 3 }, (_, i) => (i * 37 + (i >> 9)) % 251));
  await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toFile(png);
  // WebGPU is asked for (it needs a GPU adapter; headless Chromium without one reports none).
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu'] });
  try {
    for (const encoder of o.encoders ?? ['resnet34', 'mobilenet_v2']) {
      manualSeed(0);
      const modelDir = join(dir, encoder);
      const m = createModel('pan', { encoderName: encoder, classes: 21 });
      m.savePretrained(modelDir);
      const files = { fp32: join(dir, `${encoder}.onnx`), fp16: join(dir, `${encoder}-fp16.onnx`) };
      // As `panseg serve` exports for the page: dynamic size, with the attention output.
      exportOnnx(m, { path: files.fp32, dynamicSize: true, attention: true });
      exportOnnx(m, { path: files.fp16, dynamicSize: true, attention: true, dtype: 'fp16' });
      m.dispose();
      for (const dtype of ['fp32', 'fp16'] as const) {
        const mb = statSync(files[dtype]).size / 1e6;
        const server = await startServer({ model: modelDir, onnx: files[dtype], port: 0, log: () => {} });
        try {
          const page = context.pages()[0] ?? (await context.newPage());
          for (const backend of ['wasm', 'webgpu'] as const) {
            await page.goto(`${server.url}?threads=${threads}&backend=${backend}`);
            if (backend === 'webgpu') {
              const gpu = await webgpuAdapter(page);
              // A software adapter (SwiftShader on a machine without a GPU) takes tens of seconds per image: reported, measured only on request.
              const skip = !gpu ? 'n/a, no WebGPU adapter'
                : gpu.software && !process.env.PANSEG_BENCH_SOFTWARE_WEBGPU ? `n/a: only a software adapter (${gpu.name}); PANSEG_BENCH_SOFTWARE_WEBGPU=1 measures it` : null;
              if (skip) {
                rows.push({ encoder, dtype, engine: 'webgpu', ms: null, detail: '', mb, load: load(), note: skip });
                continue;
              }
            }
            await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 600_000 });
            const r = await pageMs(page, png, repeats);
            rows.push({ encoder, dtype, engine: backend, ms: r.ms, detail: r.backend, mb, load: load() });
          }
          // The same export in onnxruntime-node (CPU), and the server's libtorch on the same PNG (once, with fp32).
          const s = await OnnxSession.create(files[dtype], { threads });
          try {
            const x = new Float32Array(3 * size * size).fill(0.1);
            const ms: number[] = [];
            for (let i = 0; i < repeats + WARMUP; i++) {
              const t0 = performance.now();
              await s.run(x, [1, 3, size, size]);
              if (i >= WARMUP) ms.push(performance.now() - t0);
            }
            rows.push({ encoder, dtype, engine: 'onnxruntime-node', ms: median(ms), detail: `cpu, ${threads} threads`, mb, load: load() });
          } finally {
            await s.release();
          }
          if (dtype === 'fp32') {
            const body = readFileSync(png);
            const ms: number[] = [];
            for (let i = 0; i < repeats + WARMUP; i++) {
              const res = await fetch(new URL('/api/segment', server.url), { method: 'POST', body, headers: { 'Content-Type': 'image/png' } });
              if (i >= WARMUP) ms.push(((await res.json()) as { ms: number }).ms);
            }
            rows.push({ encoder, dtype, engine: 'libtorch (server)', ms: median(ms), detail: 'precision auto, all cores', mb: statSync(join(modelDir, 'model.safetensors')).size / 1e6, load: load() });
          }
        } finally {
          await server.close();
        }
      }
    }
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export function printWeb(rows: WebBenchRow[], size = 512): void {
  console.log(`\nThe web page in headless Chromium vs onnxruntime-node and libtorch, PAN, 1x3x${size}x${size}, median ms per image (the page's own timing)`);
  console.log(`${'encoder'.padEnd(14)}${'dtype'.padEnd(6)}${'engine'.padEnd(20)}${'ms'.padStart(8)}  ${'MB'.padStart(5)}  ${'load'.padStart(5)}  detail`);
  for (const r of rows) {
    console.log(`${r.encoder.padEnd(14)}${r.dtype.padEnd(6)}${r.engine.padEnd(20)}${(r.ms === null ? '-' : r.ms.toFixed(0)).padStart(8)}  ${r.mb.toFixed(1).padStart(5)}  ${r.load.toFixed(2).padStart(5)}  ${r.note ?? r.detail}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = await benchWeb();
  printWeb(rows);
  if (process.env.PANSEG_BENCH_JSON) writeFileSync(process.env.PANSEG_BENCH_JSON, JSON.stringify(rows, null, 2));
}
