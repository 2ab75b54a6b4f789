import { openDataset, decodeImage, decodeMask, trainTransform, trainOptions, Rng } from '../../src/data/index.js';
import sharp from 'sharp';
const ds = openDataset('folder', '/tmp/syn1', { split: 'train' });
const N = 200;
async function time(name: string, f: (i: number) => Promise<unknown>, par = 1) {
  const t = performance.now();
  for (let i = 0; i < N; i += par) await Promise.all(Array.from({ length: par }, (_, k) => f((i + k) % ds.length)));
  console.log(name, 'par', par, ((performance.now() - t) / N).toFixed(3), 'ms/img');
}
for (const par of [1, 8]) {
  await time('decodeImage', (i) => decodeImage(ds.samples[i].imagePath), par);
  await time('decodeMask', (i) => decodeMask(ds.samples[i].maskPath), par);
  await time('meta', (i) => sharp(ds.samples[i].maskPath).metadata(), par);
  await time('load', (i) => ds.load(i), par);
}
const s = await ds.load(0);
const t = trainOptions('x', { crop: 128 }, 255);
let t0 = performance.now();
for (let i = 0; i < N; i++) trainTransform(s.image, s.mask, t, new Rng(i));
console.log('transform128', ((performance.now() - t0) / N).toFixed(3));
const t5 = trainOptions('x', { crop: 512, colorJitter: 0.3 }, 255);
t0 = performance.now();
for (let i = 0; i < 50; i++) trainTransform(s.image, s.mask, t5, new Rng(i));
console.log('transform512 jitter', ((performance.now() - t0) / 50).toFixed(3));
