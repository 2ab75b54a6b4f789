#!/usr/bin/env node
// Data for scripts/first-hour.sh, shaped like a new user's own: a flat folder of JPEG photos with
// 0/255 PNG masks (no splits), a classes.json, and one large JPEG photo stored sideways with an EXIF
// orientation tag, as phones write them.
// usage: node scripts/first-hour-data.mjs OUT_DIR [--images N] [--size PX] [--photo WxH]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

const args = process.argv.slice(2);
const out = args[0];
if (!out || out.startsWith('--')) {
  console.error('usage: node scripts/first-hour-data.mjs OUT_DIR [--images N] [--size PX] [--photo WxH]');
  process.exit(2);
}
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i > 0 ? args[i + 1] : dflt; };
const count = Number(opt('images', 60));
const size = Number(opt('size', 96));
const [photoW, photoH] = opt('photo', '4000x3000').split('x').map(Number);

let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);

/** An RGB scene of textured grey with `n` reddish blobs, and its 0/255 mask. */
function scene(w, h, n) {
  const rgb = Buffer.alloc(w * h * 3);
  const mask = Buffer.alloc(w * h);
  for (let i = 0; i < w * h; i++) {
    const noise = rand() * 60;
    rgb[3 * i] = 80 + noise;
    rgb[3 * i + 1] = 80 + noise;
    rgb[3 * i + 2] = 90 + noise;
  }
  for (let k = 0; k < n; k++) {
    const cx = rand() * w, cy = rand() * h;
    const rx = (0.08 + rand() * 0.12) * Math.min(w, h), ry = (0.08 + rand() * 0.12) * Math.min(w, h);
    for (let y = Math.max(0, Math.floor(cy - ry)); y < Math.min(h, Math.ceil(cy + ry)); y++) {
      for (let x = Math.max(0, Math.floor(cx - rx)); x < Math.min(w, Math.ceil(cx + rx)); x++) {
        if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 > 1) continue;
        const i = y * w + x;
        const noise = rand() * 60;
        rgb[3 * i] = 170 + noise;
        rgb[3 * i + 1] = 40 + noise / 2;
        rgb[3 * i + 2] = 50 + noise / 2;
        mask[i] = 255;
      }
    }
  }
  return { rgb, mask };
}

mkdirSync(join(out, 'images'), { recursive: true });
mkdirSync(join(out, 'masks'), { recursive: true });
for (let k = 0; k < count; k++) {
  const { rgb, mask } = scene(size, size, 1 + Math.floor(rand() * 3));
  const stem = `photo_${String(k).padStart(3, '0')}`;
  await sharp(rgb, { raw: { width: size, height: size, channels: 3 } }).jpeg({ quality: 92 }).toFile(join(out, 'images', `${stem}.jpg`));
  await sharp(mask, { raw: { width: size, height: size, channels: 1 } }).png().toFile(join(out, 'masks', `${stem}.png`));
}
writeFileSync(join(out, 'classes.json'), `${JSON.stringify({ classes: ['background', 'object'] })}\n`);
// The large photo: pixels stored rotated a quarter turn, EXIF orientation 6 says "rotate 90 degrees clockwise to show".
const { rgb } = scene(photoW, photoH, 12);
await sharp(rgb, { raw: { width: photoW, height: photoH, channels: 3 } }).rotate(-90).jpeg({ quality: 90 })
  .withMetadata({ orientation: 6 }).toFile(join(out, '..', 'big-photo.jpg'));
console.log(`wrote ${count} images (${size}x${size}) with 0/255 masks to ${out}, and ${join(out, '..', 'big-photo.jpg')} (${photoW}x${photoH}, EXIF orientation 6)`);
