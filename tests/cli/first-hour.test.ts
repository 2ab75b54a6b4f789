// The README's first-hour walkthrough (scripts/first-hour.sh), run end to end at a small size: a flat
// folder of 0/255 masks, check-data, train with --val-fraction and TensorBoard, Ctrl-C, --resume, a
// second run that may not overwrite the first, and a large EXIF-rotated photo predicted in tiles.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import sharp from 'sharp';

const root = new URL('../..', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'panseg-first-hour-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('first hour (scripts/first-hour.sh)', () => {
  it('runs from data to a tiled prediction without losing a run', async () => {
    const work = join(tmp, 'w');
    const cli = `node --import ${import.meta.resolve('tsx')} ${join(root, 'src/cli/main.ts')}`;
    const r = spawnSync('bash', [join(root, 'scripts/first-hour.sh'), work], {
      encoding: 'utf8', env: { ...process.env, FIRST_HOUR_SMALL: '1', PANSEG: cli }, timeout: 900_000,
    });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, out.slice(-3000));
    // 0/255 masks read as background/object, said once per command
    assert.match(out, /hold only 0 and 255, so they are read as background \(0\) and object \(255\)/);
    assert.match(out, /samples\s+24 image\/mask pairs, 2 classes/);
    // Ctrl-C ended the first run (130 = killed by SIGINT) after its first checkpoint; --resume finished it
    assert.match(out, /\^C {2}\(exit status 130\)/);
    const run = join(work, 'runs', 'shapes');
    const log = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type?: string; epoch: number });
    assert.deepEqual(log.filter((e) => e.type === 'epoch').map((e) => e.epoch), [1, 2, 3]);
    assert.ok(existsSync(join(run, 'split.json')) && existsSync(join(run, 'checkpoints', 'best', 'model.safetensors')));
    assert.ok(readdirSync(run).some((f) => f.startsWith('events.out.tfevents.')), 'TensorBoard event file');
    // the second run was refused in runs/shapes and went beside it
    assert.match(out, /--out runs\/shapes already holds a training run.*--resume.*--overwrite/);
    assert.ok(existsSync(join(work, 'runs', 'shapes-2', 'checkpoints', 'best', 'model.safetensors')));
    // the big photo: 1200x900 as displayed (stored 900x1200 with EXIF orientation 6)
    const mask = join(work, 'preds', 'big-photo_mask.png');
    const m = await sharp(mask).metadata();
    assert.deepEqual([m.width, m.height], [1200, 900]);
  });
});
