// The browser page's own inference time (onnxruntime-web, wasm SIMD, threaded under COOP/COEP) in Debian's
// headless Chromium, per encoder, on a 512x512 image: `npm run bench -- web` (resnet34 and mobilenet_v2, PAN).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { manualSeed } from '../src/engine/index.js';
import { createModel } from '../src/models/index.js';
import { startServer } from '../src/serve/index.js';
import { median } from './timing.js';

const CHROMIUM = process.env.PANSEG_CHROMIUM ?? '/usr/bin/chromium';
type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any
declare const document: Any;

export interface WebBenchRow { encoder: string; ms: number; backend: string }

/** Median page inference ms (the page's own timing: preprocessing, session.run, argmax) over `repeats` uploads. */
export async function benchWeb(o: { encoders?: string[]; size?: number; repeats?: number; threads?: number } = {}): Promise<WebBenchRow[]> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set PANSEG_CHROMIUM)`);
  const size = o.size ?? 512;
  const dir = mkdtempSync(join(tmpdir(), 'panseg-bench-web-'));
  const rows: WebBenchRow[] = [];
  const png = join(dir, 'image.png');
  const px = Buffer.from(Array.from({ length: size * size * 3 }, (_, i) => (i * 37 + (i >> 9)) % 251));
  await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toFile(png);
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    for (const encoder of o.encoders ?? ['resnet34', 'mobilenet_v2']) {
      manualSeed(0);
      const modelDir = join(dir, encoder);
      const m = createModel('pan', { encoderName: encoder, classes: 21 });
      m.savePretrained(modelDir);
      m.dispose();
      const server = await startServer({ model: modelDir, port: 0, log: () => {} });
      try {
        const page = context.pages()[0] ?? (await context.newPage());
        await page.goto(`${server.url}?threads=${o.threads ?? 2}`);
        await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 300_000 });
        await page.selectOption('#max-side', '0'); // full resolution: the 512 px image as it is
        const ms: number[] = [];
        for (let i = 0; i <= (o.repeats ?? 5); i++) {
          const runs = Number(await page.evaluate(() => document.body.dataset.runs));
          await page.setInputFiles('#file', png);
          await page.waitForFunction((n) => Number(document.body.dataset.runs) > n && document.body.dataset.state !== 'running', runs, { timeout: 300_000 });
          if (i > 0) ms.push(Number(await page.evaluate(() => document.getElementById('stage')?.dataset.ms))); // the first run warms up
        }
        rows.push({ encoder, ms: median(ms), backend: await page.evaluate(() => document.getElementById('stage')?.dataset.backend ?? '') });
      } finally {
        await server.close();
      }
    }
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export function printWeb(rows: WebBenchRow[], size = 512): void {
  console.log(`\nThe web page in headless Chromium, PAN, 1x3x${size}x${size}, median of the page's own timing`);
  for (const r of rows) console.log(`  ${r.encoder.padEnd(14)}${r.ms.toFixed(0).padStart(6)} ms  ${(1000 / r.ms).toFixed(1).padStart(5)} images/s  (${r.backend})`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) printWeb(await benchWeb());
