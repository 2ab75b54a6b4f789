// Watching a run and stopping it: validation loss and per-image scores, the report rewritten after every
// validation (and rebuilt from the run directory), TensorBoard event files and metrics.csv, and a
// maxSteps stop in the middle of an epoch that saves last/ and resumes exactly.
// libtorch runs on 1 thread (bit-reproducible runs; see train.test.ts). Tolerances: resumed vs
// uninterrupted weights exact (max |diff| == 0); TensorBoard scalars equal metrics.jsonl's values
// rounded to float32 (the Summary field is a float).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../src/engine/index.js';
import { readEvents, type TfEvent } from '../../src/io/tfevents.js';
import { CSV_COLUMNS, parseLoggers } from '../../src/train/loggers.js';
import { REPORT_STATE_FILE, rewriteTrainingReport, worstImages } from '../../src/train/report.js';
import { train, type TrainOptions } from '../../src/train/train.js';
import { makeTinyRun, maxStateDiff, type TinyRun, tinyRunOptions } from './helpers.js';

setNumThreads(1);
const tmp = mkdtempSync(join(tmpdir(), 'panseg-monitor-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const jsonl = (out: string): Record<string, number | string>[] => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
/** Records without wall-clock fields. */
const stable = (rs: Record<string, number | string>[]) => rs.map(({ imgPerSec: _i, ...r }) => r);

let run: TinyRun;
let data: string;
// 16 train images / batch 4 = 4 steps per epoch; 4 val images.
const base = (): TrainOptions => tinyRunOptions(run);
before(async () => {
  run = await makeTinyRun(tmp);
  data = run.data;
});

describe('train: a maxSteps stop mid-epoch', () => {
  it('saves last/ with the batches done, and --resume continues to the weights and log of an uninterrupted run', async () => {
    const a = await train({ ...base(), out: join(tmp, 'whole') });
    const out = join(tmp, 'stopped');
    const b1 = await train({ ...base(), out, maxSteps: 6 }); // epoch 2, batch 2 of 4
    b1.model.dispose();
    const last = join(out, 'checkpoints', 'last');
    const st = JSON.parse(readFileSync(join(last, 'trainer.json'), 'utf8'));
    assert.deepEqual([st.epoch, st.iter, st.epochBatches, st.history.length], [1, 6, 2, 1], 'one epoch done, two batches of the second');
    const stop = jsonl(out).at(-1)!;
    assert.equal(stop.type, 'stop');
    assert.equal(stop.epoch, 1.5);
    assert.ok(Number.isFinite(stop.valMiou), 'validated when it stopped');

    const b2 = await train({ ...base(), out, resume: true });
    try {
      assert.equal(maxStateDiff(a.model.stateDict(), b2.model.stateDict()), 0, 'resumed mid-epoch == uninterrupted, bit for bit');
      const steps = (rs: Record<string, number | string>[]) => stable(rs).filter((r) => r.type === undefined);
      assert.deepEqual(steps(jsonl(out)), steps(jsonl(join(tmp, 'whole'))), 'the same step records (loss, lr) at the same iterations');
      assert.deepEqual(jsonl(out).filter((r) => r.type !== undefined).map((r) => [r.type, r.epoch, r.iter]), [['epoch', 1, 4], ['epoch', 2, 8]], "the 'stop' record went with the resume");
      assert.deepEqual(b2.history.map((h) => h.valMiou), a.history.map((h) => h.valMiou));
      assert.equal(JSON.parse(readFileSync(join(last, 'trainer.json'), 'utf8')).epochBatches, undefined);
    } finally {
      a.model.dispose();
      b2.model.dispose();
    }
    // Resumed again with the maxSteps it already reached: nothing more to do.
    const b3 = await train({ ...base(), out: join(tmp, 'stopped'), resume: true, maxSteps: 6, epochs: 2 });
    assert.deepEqual(b3.history.map((h) => h.iter), [4, 8]);
    b3.model.dispose();
  });
});

describe('train: watching a run (report, validation loss, TensorBoard, CSV)', () => {
  const out = join(tmp, 'watched');
  let res: Awaited<ReturnType<typeof train>>;
  let reportDuringEpoch2 = '';
  before(async () => {
    res = await train({
      ...base(), out, log: 'tensorboard,csv', report: 3,
      onLog: (r) => { if (r.epoch === 2 && !reportDuringEpoch2 && existsSync(join(out, 'report.html'))) reportDuringEpoch2 = readFileSync(join(out, 'report.html'), 'utf8'); },
    });
  });
  after(() => res.model.dispose());

  it('logs the validation loss and scores every validation image', () => {
    const epochs = jsonl(out).filter((r) => r.type === 'epoch');
    assert.equal(epochs.length, 2);
    for (const r of epochs) assert.ok((r.valLoss as number) > 0 && Number.isFinite(r.valLoss), `valLoss ${r.valLoss}`);
    assert.equal(res.lastEval!.loss, epochs[1].valLoss);
    const scores = res.lastEval!.perImage!;
    assert.equal(scores.length, 4);
    for (const s of scores) assert.ok(s.pixelAccuracy >= 0 && s.pixelAccuracy <= 1);
    const worst = worstImages(scores, 2);
    assert.ok(worst[0].miou <= worst[1].miou && worst.every((w) => scores.filter((s) => s.miou < w.miou).length < 2));
  });

  it('rewrites report.html after every validation: worst images, validation loss, resolved hyperparameters', () => {
    assert.match(reportDuringEpoch2, /training: epoch 1 of 2/, 'the report existed, from epoch 1, while epoch 2 trained');
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /Worst 3 of 4 validation images/);
    assert.match(html, /validation loss/);
    assert.match(html, /Hyperparameters \(resolved, defaults included\)/);
    for (const k of ['optimizer.betas', 'optimizer.weightDecay', 'schedule.power', 'augmentation.scaleRange', 'runtime.channelsLast', 'length.stepsPerEpoch']) assert.ok(html.includes(`>${k}<`), `hyperparameter ${k} shown`);
    assert.match(html, /mIoU \d+\.\d%, pixel accuracy/);
    const state = JSON.parse(readFileSync(join(out, REPORT_STATE_FILE), 'utf8'));
    assert.equal(state.evaluation.perImage.length, 4);
    assert.ok(state.dataset.samples.every((s: { imagePath: string }) => s.imagePath.startsWith('/')), 'absolute sample paths');
  });

  it('rewriteTrainingReport rebuilds the report from the run directory alone', async () => {
    rmSync(join(out, 'report.html'));
    const path = await rewriteTrainingReport(out, { checkpoint: 'best', samples: 2, attention: false });
    const html = readFileSync(path, 'utf8');
    assert.match(html, /Worst 2 of 4 validation images/);
    assert.match(html, /checkpoints\/best/);
    await assert.rejects(rewriteTrainingReport(join(tmp, 'nothing')), /report: .*nothing does not exist; give the --out folder of a training run/);
    await assert.rejects(rewriteTrainingReport(data), /report: .* is not a training run \(no metrics\.jsonl or report\.json\)/);
  });

  it('writes TensorBoard event files: scalars equal to metrics.jsonl, validation pictures as PNG', () => {
    const files = readdirSync(out).filter((f) => f.startsWith('events.out.tfevents.'));
    assert.equal(files.length, 1);
    const events = readEvents(join(out, files[0])); // checks every record's CRCs
    assert.equal(events[0].fileVersion, 'brain.Event:2');
    const scalars = (tag: string) => events.flatMap((e: TfEvent) => e.values.filter((v) => v.tag === tag && 'value' in v).map((v) => [e.step, (v as { value: number }).value]));
    const recs = jsonl(out);
    const epochRecs = recs.filter((r) => r.type === 'epoch');
    assert.deepEqual(scalars('val/mIoU'), epochRecs.map((r) => [r.iter, Math.fround(r.valMiou as number)]));
    assert.deepEqual(scalars('val/loss'), epochRecs.map((r) => [r.iter, Math.fround(r.valLoss as number)]));
    assert.deepEqual(scalars('train/loss'), recs.filter((r) => r.type === undefined).map((r) => [r.iter, Math.fround(r.loss as number)]));
    for (const tag of ['train/lr', 'train/img_per_sec', 'val/pixel_accuracy']) assert.ok(scalars(tag).length > 0, tag);
    const images = events.flatMap((e) => e.values.filter((v) => 'image' in v).map((v) => ({ step: e.step, ...(v as { tag: string; image: { width: number; height: number; colorspace: number; encoded: Uint8Array } }) })));
    assert.equal(images.length, 2 * 3, 'three pictures after each of the two validations');
    for (const im of images) {
      assert.match(im.tag, /^val_samples\//);
      const png = Buffer.from(im.image.encoded);
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [im.image.width, im.image.height], 'IHDR matches the Summary.Image size');
      assert.equal(im.image.colorspace, 3);
    }
  });

  it('TensorBoard itself reads the event files (skipped when /usr/bin/python3 has no tensorboard)', (t) => {
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import tensorboard'], { encoding: 'utf8' });
    if (probe.status !== 0) { t.skip('python3 cannot import tensorboard here'); return; }
    const py = 'import sys\nfrom tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n'
      + 'a = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0}); a.Reload()\n'
      + 'print(len(a.Scalars("val/mIoU")), len(a.Scalars("train/loss")), len(a.Tags()["images"]))';
    const r = spawnSync('/usr/bin/python3', ['-c', py, out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const [miou, loss, images] = r.stdout.trim().split(' ').map(Number);
    assert.equal(miou, 2);
    assert.equal(loss, jsonl(out).filter((x) => x.type === undefined).length);
    assert.equal(images, 3);
  });

  it('writes metrics.csv with one row per metrics.jsonl record', () => {
    const lines = readFileSync(join(out, 'metrics.csv'), 'utf8').trim().split('\n');
    assert.equal(lines[0], CSV_COLUMNS.join(','));
    const recs = jsonl(out);
    assert.equal(lines.length - 1, recs.length);
    const last = lines.at(-1)!.split(',');
    assert.equal(last[0], 'epoch');
    assert.equal(Number(last[CSV_COLUMNS.indexOf('valLoss')]), recs.at(-1)!.valLoss);
    assert.throws(() => parseLoggers('train', 'tensorbord'), /train: unknown logger 'tensorbord' for log; expected a comma list of csv, tensorboard, jsonl/);
    assert.deepEqual(parseLoggers('train', 'jsonl, csv,csv'), ['csv']);
  });
});
