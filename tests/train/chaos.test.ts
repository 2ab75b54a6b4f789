// Chaos: `panseg train` is killed with SIGKILL at random points (startup, steps, validation, checkpoint
// and report writes) and continued with --resume each time; the final weights, optimizer state, best/
// and metrics.jsonl equal those of a run that was never interrupted, bit for bit. And a full disk
// (a small tmpfs where this process may mount one, else ENOSPC injected by the PANSEG_TEST hook)
// ends the run with one line and leaves the previous checkpoint loadable, with no temporaries behind.
// The runs are tiny (Unet-resnet18 of depth 3, 32 px, 8 images, 1 thread, no workers) so that ~20 kills
// fit in CI's budget; PANSEG_CHAOS_KILLS and PANSEG_CHAOS_SEED change the count and the kill times.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { generateSynthetic, Rng } from '../../src/data/index.js';
import { loadModel } from '../../src/models/index.js';
import { restoreCheckpoint } from '../../src/train/checkpoint.js';
import { AdamW } from '../../src/train/optimizers.js';
import { ROOT } from '../helpers/reference.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-chaos-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const KILLS = Number(process.env.PANSEG_CHAOS_KILLS ?? 20);
const SEED = Number(process.env.PANSEG_CHAOS_SEED ?? 15);

interface Done { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
interface Child { p: ChildProcess; done: Promise<Done>; progress: (k: number) => Promise<void> }

/**
 * `panseg train` as users run it. `progress(k)` resolves once its progress output has switched k times
 * between an epoch's bar and a validation's (2 per epoch: the epoch's steps are done, its validation is
 * done), or when it exits.
 */
function trainCli(data: string, out: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}, layout = 'folder'): Child {
  const args = [
    '--import', 'tsx', 'src/cli/main.ts', 'train', '--dataset', layout, '--data-root', data, '--out', out,
    '--arch', 'unet', '--encoder', 'resnet18', '--arch-options', '{"encoderDepth":3}', '--decoder-channels', '16,8,8',
    '--crop', '32', '--batch-size', '4', '--optimizer', 'adamw', '--lr', '0.003', '--precision', 'fp32',
    '--threads', '1', '--workers', '0', '--seed', '3', ...extra,
  ];
  const p = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, OMP_NUM_THREADS: '1', NO_COLOR: '1', NODE_OPTIONS: '--stack-trace-limit=40', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let closed = false;
  const waiting: { k: number; resolve: () => void }[] = [];
  const lines = (): number => (stderr.match(/^(epoch \d|  val )/gm) ?? []).filter((l, i, all) => i === 0 || l !== all[i - 1]).length;
  const wake = (): void => { for (const w of waiting.splice(0)) { if (closed || lines() >= w.k) w.resolve(); else waiting.push(w); } };
  p.stdout!.on('data', (d: Buffer) => { stdout += d; });
  p.stderr!.on('data', (d: Buffer) => { stderr += d; wake(); });
  const done = new Promise<Done>((resolve, reject) => {
    p.on('error', reject);
    p.on('close', (code, signal) => { closed = true; wake(); resolve({ code, signal, stdout, stderr }); });
  });
  const progress = (k: number): Promise<void> => new Promise((resolve) => { waiting.push({ k, resolve }); wake(); });
  return { p, done, progress };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The records of metrics.jsonl without wall-clock fields. */
function records(out: string): Record<string, unknown>[] {
  const keep = ['type', 'epoch', 'iter', 'loss', 'lr', 'valMiou', 'valPixelAccuracy', 'skipped'];
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    .map((r) => Object.fromEntries(keep.filter((k) => k in r).map((k) => [k, r[k]])));
}

const bytes = (p: string): Buffer => readFileSync(p);

describe('chaos: kill -9 during training, --resume, bit-identical result', () => {
  let data: string;
  before(async () => { data = (await generateSynthetic(join(tmp, 'shapes'), { train: 8, val: 2, size: 32, seed: 3 })).dir; });

  it(`survives up to ${KILLS} SIGKILLs at random points and ends with the weights of an uninterrupted run`, async () => {
    const epochs = ['--epochs', '14']; // long enough that the kills, not the run, end first
    const refOut = join(tmp, 'ref');
    const ref = trainCli(data, refOut, [...epochs, '--quiet']); // alongside the chaos loop: 2 cores
    const out = join(tmp, 'chaos');
    const ckpt = join(out, 'checkpoints');
    const rng = new Rng(SEED);
    const kills: string[] = [];
    const resumedAt = new Set<number>(); // the epochs resumes started from
    let from = -1; // this start's checkpoint epoch (0: none)
    let stuck = 0; // starts in a row from the same checkpoint
    let finished: Done | null = null;
    for (let run = 0; !finished; run++) {
      if (run > KILLS + 10) assert.fail(`no finished run after ${run} starts; kills: ${kills.join(', ')}`);
      // Resume when a checkpoint (or the renamed-away copy a kill can leave) exists; else start afresh.
      const resumable = existsSync(ckpt) && readdirSync(ckpt).some((f) => f === 'last' || f.startsWith('last.old-'));
      if (!resumable) rmSync(out, { recursive: true, force: true });
      const at = existsSync(join(ckpt, 'last', 'trainer.json')) ? JSON.parse(readFileSync(join(ckpt, 'last', 'trainer.json'), 'utf8')).epoch as number : 0;
      if (at) resumedAt.add(at);
      stuck = at === from ? stuck + 1 : 0;
      from = at;
      const child = trainCli(data, out, [...epochs, ...(resumable ? ['--resume'] : [])]);
      if (kills.length < KILLS) {
        // One kill in five at any time from the start (startup, tidying, loading); the others 0.5-2 epochs
        // into the run plus a random delay: in steps, validation, best/ and last/ writes, the report.
        // Each start that a kill sent back to the same checkpoint waits one epoch more: on a loaded
        // machine the writes after validation take longer than the delay, and the run must still move on.
        const early = rng.next() < 0.2 && stuck === 0;
        const lines = early ? 0 : 1 + rng.int(4) + 2 * stuck;
        const delay = early ? rng.uniform(0, 2500) : rng.uniform(0, 600);
        await child.progress(lines);
        const killed = await Promise.race([sleep(delay).then(() => true), child.done.then(() => false)]);
        if (killed && child.p.exitCode === null) {
          child.p.kill('SIGKILL');
          kills.push(early ? `+${delay.toFixed(0)} ms from start` : `+${delay.toFixed(0)} ms after progress line ${lines}`);
        }
      }
      const r = await child.done;
      if (r.signal === 'SIGKILL') continue;
      assert.equal(r.code, 0, `run ${run} (after kills ${kills.join(', ')}; seed ${SEED}) failed:\n${r.stderr.split('\n').filter((l) => !l.includes('█')).slice(-50).join('\n')}`);
      finished = r;
    }
    const whole = await ref.done;
    assert.equal(whole.code, 0, whole.stderr);
    assert.ok(kills.length >= Math.min(KILLS, 10), `only ${kills.length} kills landed before the run finished`);

    for (const f of ['model.safetensors', 'optimizer.safetensors', 'rng.safetensors']) {
      assert.ok(bytes(join(ckpt, 'last', f)).equals(bytes(join(refOut, 'checkpoints', 'last', f))), `last/${f} differs from the uninterrupted run's (seed ${SEED})`);
    }
    assert.ok(bytes(join(ckpt, 'best', 'model.safetensors')).equals(bytes(join(refOut, 'checkpoints', 'best', 'model.safetensors'))), 'best/ differs');
    const st = JSON.parse(readFileSync(join(ckpt, 'last', 'trainer.json'), 'utf8'));
    const refSt = JSON.parse(readFileSync(join(refOut, 'checkpoints', 'last', 'trainer.json'), 'utf8'));
    assert.deepEqual([st.epoch, st.iter, st.bestMiou, st.bestEpoch], [refSt.epoch, refSt.iter, refSt.bestMiou, refSt.bestEpoch]);
    assert.deepEqual(records(out), records(refOut), 'metrics.jsonl: no records of killed epochs, none missing');
    assert.deepEqual(readdirSync(ckpt).sort(), ['best', 'last'], 'no temporaries left');
    assert.ok(resumedAt.size >= Math.min(KILLS, 4), `resumed from epochs ${[...resumedAt].join(', ')} only (kills ${kills.join(', ')}): they must land all over the run`);
    console.log(`# chaos: ${kills.length} kills survived (seed ${SEED}), resumes from epochs ${[...resumedAt].sort((a, b) => a - b).join(', ')}`);
  });
});

describe('chaos: a full disk while saving a checkpoint', () => {
  let data: string;
  let probe: string;
  let model: number; // bytes of model.safetensors
  let used: number; // bytes of the run directory after epoch 1, in 4 KiB pages
  before(async () => {
    data = (await generateSynthetic(join(tmp, 'shapes'), { train: 8, val: 2, size: 32, seed: 3 })).dir;
    probe = join(tmp, 'probe'); // epoch 1 of 3 (2 steps), checkpointed
    const r = await trainCli(data, probe, ['--epochs', '3', '--max-steps', '2', '--quiet']).done;
    assert.equal(r.code, 0, r.stderr);
    model = statSync(join(probe, 'checkpoints', 'best', 'model.safetensors')).size;
    const du = (p: string): number => (statSync(p).isDirectory() ? readdirSync(p).reduce((s, f) => s + du(join(p, f)), 4096) : Math.ceil(statSync(p).size / 4096) * 4096);
    used = du(probe);
  });

  /** Resumes a copy of the epoch-1 run at `dir` on a disk that fills up in epoch 2; checks the one-line error and the intact checkpoint. */
  async function fillUp(dir: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
    cpSync(probe, dir, { recursive: true });
    const before = bytes(join(dir, 'checkpoints', 'last', 'model.safetensors'));
    const r = await trainCli(data, dir, ['--epochs', '3', '--resume', '--quiet'], env).done;
    const lines = r.stderr.trimEnd().split('\n');
    assert.notEqual(r.code, 0, 'the run fails');
    assert.equal(lines.length, 1, `one line:\n${r.stderr}`);
    assert.match(lines[0], /^panseg train: cannot write .*checkpoints\/(best|last).*no space left on device.*; free disk space and continue with --resume$/);
    const ckpt = join(dir, 'checkpoints');
    assert.deepEqual(readdirSync(ckpt).sort(), ['best', 'last'], 'no temporaries left');
    assert.ok(bytes(join(ckpt, 'last', 'model.safetensors')).equals(before), 'last/ is the epoch-1 checkpoint');
    const m = loadModel(join(ckpt, 'last'));
    const opt = new AdamW(m.parameters(), { lr: 1e-3 });
    try { assert.equal(restoreCheckpoint(join(ckpt, 'last'), opt).epoch, 1); } finally { opt.dispose(); m.dispose(); }
    assert.equal(existsSync(join(ckpt, 'best', 'model.safetensors')), true);
    loadModel(join(ckpt, 'best')).dispose();
  }

  it('a small tmpfs: the run ends with one line, the epoch-1 checkpoint stays loadable (root only)', async (t) => {
    const mnt = join(tmp, 'tmpfs');
    mkdirSync(mnt);
    // Room for the epoch-1 run and half a model more: epoch 2's first checkpoint write fills it.
    const size = used + Math.floor(model / 2 / 4096) * 4096;
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) { t.skip(`cannot mount a tmpfs here (${(m.stderr || m.error?.message || '').trim()}); the injected-ENOSPC test covers it`); return; }
    try { await fillUp(join(mnt, 'run')); } finally { spawnSync('umount', [mnt]); }
  });

  it('ENOSPC injected by the PANSEG_TEST hook: the same', async () => {
    await fillUp(join(tmp, 'hook'), { PANSEG_TEST: '1', PANSEG_TEST_FAIL_WRITE_AFTER: String(Math.floor(model / 2)) });
  });
});

describe('chaos: a corrupt training image never ends a run', () => {
  it("CamVid layout, 24 training images, the first one random bytes, no val split: exit 0, one 'skipped' line per epoch, checkpoints written", async () => {
    const root = join(tmp, 'camvid');
    for (const [split, n] of [['train', 24], ['val', 2]] as const) {
      mkdirSync(join(root, split), { recursive: true });
      mkdirSync(join(root, `${split}annot`), { recursive: true });
      for (let i = 0; i < n; i++) {
        const w = 40;
        const h = 36;
        const mask = Buffer.from(Array.from({ length: w * h }, (_, p) => ((p % w >> 3) + (Math.floor(p / w) >> 3) + i) % 12));
        const img = Buffer.from(Array.from({ length: w * h * 3 }, (_, p) => (mask[Math.floor(p / 3)] * (40 + (p % 3) * 30)) & 255));
        const id = `f${String(i).padStart(3, '0')}.png`;
        await sharp(img, { raw: { width: w, height: h, channels: 3 } }).png().toFile(join(root, split, id));
        await sharp(mask, { raw: { width: w, height: h, channels: 1 } }).png().toFile(join(root, `${split}annot`, id));
      }
    }
    const bad = join(root, 'train', 'f000.png');
    writeFileSync(bad, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24)));
    const out = join(tmp, 'camvid-run');
    const r = await trainCli(root, out, ['--epochs', '2', '--val-split', 'none', '--quiet', '--json'], {}, 'camvid').done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1)!).skipped, [bad], 'the --json result lists the skipped file');
    const lines = r.stderr.trimEnd().split('\n');
    assert.deepEqual(lines.filter((l) => l.includes('f000')).map((l) => l.replace(/ \(.*/, '')), [1, 2].map((e) => `panseg: epoch ${e} skipped 1 unreadable or invalid training sample: ${bad}`));
    assert.ok(!lines.some((l) => l.startsWith('panseg train:')), r.stderr);
    const st = JSON.parse(readFileSync(join(out, 'checkpoints', 'last', 'trainer.json'), 'utf8'));
    assert.deepEqual([st.epoch, st.iter, st.skipped], [2, 12, [bad]], 'the skipped image is made up for: 6 batches of 4 per epoch');
    assert.ok(existsSync(join(out, 'report.html')));
  });
});
