// PAN's attention capture and pictures against PyTorch (scripts/reference/attention_ref.py: smp's PAN
// with forward hooks, same weights as safetensors). Tolerances (float32, CPU): captured maps, weights and
// derived per-channel means <= 1e-4 absolute (values are O(1)); logits with capture on are bitwise equal
// to capture off.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { VOC_PALETTE } from '../../src/common/palette.js';
import type { RgbImage } from '../../src/data/decode.js';
import type { Dataset } from '../../src/data/index.js';
import { liveTensors, noGrad, type Tensor, tidy } from '../../src/engine/index.js';
import { attentionReportSection, explain, type Explanation, writeExplanation } from '../../src/explain/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { optionsFromSmp, PAN, PAN_SPEC } from '../../src/models/index.js';
import { writeTrainingReport } from '../../src/train/report.js';
import { reference, ROOT } from '../helpers/reference.js';
import { assertBalanced } from '../helpers/markup.js';

const ref = reference('attention_ref.py', [], ['pan_model.py', 'st.py']);
const index = JSON.parse(readFileSync(join(ref, 'index.json'), 'utf8')) as { cases: string[] };
const tmp = mkdtempSync(join(tmpdir(), 'panseg-explain-'));
after(() => {
  rmSync(tmp, { recursive: true, force: true });
  for (const { c } of explained.values()) { c.model.dispose(); for (const t of c.io.values()) t.dispose(); }
});

const PNG_SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CLASSES = ['background', 'disc', 'bar'];
const COLORS = VOC_PALETTE.slice(0, 3);

interface Case { model: PAN; io: Map<string, Tensor>; image: RgbImage }

function loadCase(name: string): Case {
  const dir = join(ref, name);
  const { seed: _s, image: _i, ...smp } = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown> & { seed: number; image: number[] };
  const model = new PAN(optionsFromSmp(PAN_SPEC, smp));
  const sd = loadSafetensors(join(dir, 'model.safetensors'));
  model.loadStateDict(sd);
  for (const t of sd.values()) t.dispose();
  model.eval();
  const io = loadSafetensors(join(dir, 'io.safetensors'));
  const u8 = io.get('image')!;
  const [h, w] = u8.shape;
  return { model, io, image: { data: new Uint8Array(u8.toArray() as Uint8Array), width: w, height: h } };
}

function arr(t: Tensor): number[] {
  return Array.from(tidy(() => t.to('float32').contiguous().toArray() as Float32Array));
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-4): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  assert.ok(worst <= tol, `${what}: max |diff| ${worst} > ${tol}`);
}

function assertPng(buf: Buffer, what: string): void {
  assert.ok(buf.subarray(0, 8).equals(PNG_SIG), `${what}: PNG signature`);
}

const explained = new Map<string, { c: Case; e: Explanation }>();

for (const name of index.cases) {
  describe(`attention capture: ${name}`, () => {
    let c: Case;
    before(() => { c = loadCase(name); });

    test('capture leaves the logits bitwise unchanged, and equals the PyTorch hooks', () => {
      const live0 = liveTensors();
      const x = c.io.get('input')!;
      noGrad(() => tidy(() => {
        const plain = c.model.forward(x);
        const { masks, attention } = c.model.forwardWithAttention(x);
        const a = Buffer.from((plain.contiguous().toArray() as Float32Array).buffer);
        const b = Buffer.from((masks.contiguous().toArray() as Float32Array).buffer);
        assert.ok(a.equals(b), 'logits differ with capture on');
        assertClose(arr(masks), arr(c.io.get('logits')!), 'logits vs PyTorch');

        const f = attention.fpa!;
        const want = c.io.get('fpa.attention')!;
        assert.deepEqual(f.attention.shape, want.shape);
        assert.equal(f.attention.shape[1], 1, 'the FPA map has one channel');
        assertClose(arr(f.attention), arr(want), 'FPA attention map');
        const names = ['fpa.conv1', 'fpa.conv2', 'fpa.down3'];
        f.levels.forEach((l, i) => {
          assert.deepEqual(l.shape, c.io.get(names[i])!.shape, names[i]);
          assertClose(arr(l), arr(c.io.get(names[i])!), names[i]);
        });
        assertClose(arr(f.globalBranch.narrow(2, 0, 1).narrow(3, 0, 1)), arr(c.io.get('fpa.global')!), 'global branch');

        const gaus = [...c.io.keys()].filter((k) => k.endsWith('.weights')).map((k) => k.split('.')[0]);
        assert.deepEqual(Object.keys(attention.gau), gaus, 'GAU blocks, deepest first');
        for (const g of gaus) {
          const wts = attention.gau[g];
          assert.deepEqual(wts.shape, [1, c.model.config.decoderChannels, 1, 1], `${g} weights shape`);
          const vals = arr(wts);
          assert.ok(vals.every((v) => v > 0 && v < 1), `${g} weights in (0, 1)`);
          assertClose(vals, arr(c.io.get(`${g}.weights`)!), `${g} weights`);
        }
      }));
      assert.equal(liveTensors(), live0, 'tensors leaked');
    });

    test('explain() gives the same numbers as plain arrays', () => {
      const live0 = liveTensors();
      const e = explain(c.model, c.image, { topK: 4 });
      assert.equal(liveTensors(), live0, 'tensors leaked');
      explained.set(name, { c, e });
      const want = c.io.get('fpa.attention')!;
      const [, , h, w] = want.shape;
      assert.deepEqual([e.fpa.attention.width, e.fpa.attention.height], [w, h]);
      assert.deepEqual(e.input, { width: c.image.width, height: c.image.height });
      assertClose(e.fpa.attention.values, arr(want), 'explain: FPA map');
      assert.deepEqual(e.fpa.levels.map((l) => l.name), ['conv1', 'conv2', 'down3']);
      assertClose(e.fpa.levels[0].values, arr(c.io.get('fpa.conv1')!), 'explain: conv1 level');
      assertClose(e.fpa.levels[2].values, arr(c.io.get('fpa.down3')!), 'explain: down3 level');
      assertClose(e.fpa.globalBranch, arr(c.io.get('fpa.global')!), 'explain: global branch');
      assertClose(e.fpa.midNorm.values, arr(c.io.get('fpa.mid_norm')!), 'explain: mid norm');
      assertClose([e.fpa.globalShare], arr(c.io.get('fpa.global_share')!), 'explain: global share');
      assert.ok(e.fpa.stats.min <= e.fpa.stats.mean && e.fpa.stats.mean <= e.fpa.stats.max);
      for (const g of e.gau) {
        assert.equal(g.weights.length, c.model.config.decoderChannels);
        assert.ok(g.weights.every((v) => v > 0 && v < 1), `${g.name} weights in (0, 1)`);
        assertClose(g.weights, arr(c.io.get(`${g.name}.weights`)!), `explain: ${g.name} weights`);
        assertClose(g.lowLevel, arr(c.io.get(`${g.name}.low_mean`)!), `explain: ${g.name} low-level means`);
        assertClose(g.gated, arr(c.io.get(`${g.name}.gated_mean`)!), `explain: ${g.name} gated means`);
        assertClose(g.upsampled, arr(c.io.get(`${g.name}.up_mean`)!), `explain: ${g.name} upsampled means`);
        assertClose([g.contextNorm], arr(c.io.get(`${g.name}.context`)!), `explain: ${g.name} context`, 1e-3);
        assert.equal(g.top.length, 4);
        const sorted = [...g.weights].sort((a, b) => b - a);
        assert.deepEqual(g.top.map((i) => g.weights[i]), sorted.slice(0, 4), `${g.name} top channels`);
        assert.ok(g.detailShare > 0 && g.detailShare < 1);
        assert.equal(g.detail.values.length, g.detail.width * g.detail.height);
        assert.equal(g.stride, c.image.width / g.detail.width);
      }
      // The labels come from the same pass: argmax of the reference logits (ties aside).
      const logits = c.io.get('logits')!;
      const refLabels = tidy(() => (logits.shape[1] === 1 ? logits.squeeze(1).gt(0) : logits.argmax(1)).to('uint8').toArray() as Uint8Array);
      let same = 0;
      for (let i = 0; i < refLabels.length; i++) if (refLabels[i] === e.labels[i]) same++;
      assert.ok(same / refLabels.length > 0.999, `labels agree on ${same} of ${refLabels.length} pixels`);
    });
  });
}

describe('explain: pictures, page, report, CLI', () => {
  test('writeExplanation writes valid PNGs and SVGs and a page that links them all', async () => {
    const { c, e } = explained.get(index.cases[0])!;
    const dir = join(tmp, 'one');
    const { html, files } = await writeExplanation(dir, e, c.image, { classes: CLASSES, colors: COLORS, colormap: 'viridis' });
    const page = readFileSync(html, 'utf8');
    const pngs = [files.overview, files.attention, files.pyramid, files.branches, files.globalBranch.png, files.prediction, files.predictionOverlay, files.image, files.gauDetail!, ...files.gau.map((g) => g.png)];
    assert.equal(files.gau.length, e.gau.length);
    for (const f of pngs) {
      const buf = readFileSync(join(dir, f));
      assertPng(buf, f);
      const meta = await sharp(buf).metadata();
      assert.equal(meta.format, 'png', f);
      assert.ok(meta.width! > 0 && meta.height! > 0, f);
      assert.equal(meta.channels, 3, `${f} is RGB`);
    }
    const ov = await sharp(join(dir, files.overview)).metadata();
    assert.ok(ov.width! > 3 * c.image.width, 'overview holds image, attention and prediction side by side');
    for (const f of [files.globalBranch.svg, ...files.gau.map((g) => g.svg)]) assert.match(readFileSync(join(dir, f), 'utf8'), /^<svg /, f);
    for (const f of [files.overview, files.attention, files.pyramid, files.branches, files.globalBranch.svg, files.prediction, files.predictionOverlay, files.gauDetail!, ...files.gau.map((g) => g.svg)]) {
      assert.ok(page.includes(`src="${f}"`), `index.html shows ${f}`);
    }
    assertBalanced(page, true);
    assert.match(page, /Feature Pyramid Attention/);
    assert.match(page, /channel/);
    const json = JSON.parse(readFileSync(join(dir, 'attention.json'), 'utf8'));
    assert.equal(json.fpa.attention.values.length, e.fpa.attention.values.length);
    assert.equal(json.labels, undefined);
  });

  test('an image of any size: padded for the network, maps cover the padded input, labels the image', async () => {
    const { c } = explained.get(index.cases[0])!;
    const w = 100, h = 90;
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) data.set(c.image.data.subarray(3 * y * c.image.width, 3 * (y * c.image.width + w)), 3 * y * w);
    const img = { data, width: w, height: h };
    const e = explain(c.model, img);
    assert.deepEqual(e.input, { width: 128, height: 128 }, 'padded to the minimum size');
    assert.deepEqual([e.fpa.attention.width, e.fpa.attention.height], [8, 8]);
    assert.equal(e.labels.length, w * h);
    assert.equal(e.gau[0].top.length, 5, 'top-k defaults to 5');
    const { files } = await writeExplanation(join(tmp, 'small'), e, img, { colors: COLORS });
    assertPng(readFileSync(join(tmp, 'small', files.overview)), 'overview');
    assert.throws(() => explain(c.model, { data: new Uint8Array(5), width: 2, height: 2 }), /^PansegError: explain: expected 12 bytes \(2x2x3\) for image.data but received 5$/);
    assert.throws(() => explain(c.model, img, { topK: 0 }), /explain: expected positive integer for topK but received 0 of type number/);
    await assert.rejects(writeExplanation(join(tmp, 'bad'), e, c.image, { colors: COLORS }), /writeExplanation: the image is 160x128 but the explanation was made for 100x90/);
  });

  test('the training report gains an Attention section with its sample images', async () => {
    const { c } = explained.get(index.cases[0])!;
    const ds = {
      name: 'fake', length: 1, classes: CLASSES, colors: COLORS, ignoreIndex: 255,
      load: async () => ({ id: 'sample a', image: c.image, mask: new Uint8Array(c.image.width * c.image.height), width: c.image.width, height: c.image.height }),
    } as unknown as Dataset;
    const out = join(tmp, 'run');
    const path = await writeTrainingReport({ model: c.model, outDir: out, dataset: ds, evaluation: null, config: {} });
    const html = readFileSync(path, 'utf8');
    assertBalanced(html, true);
    assert.match(html, /<h2>Attention<\/h2>/);
    for (const f of ['report/attention-0-overview.png', 'report/attention-0-pyramid.png']) {
      assert.ok(html.includes(`src="${f}"`), `report shows ${f}`);
      assertPng(readFileSync(join(out, f)), f);
    }
    const section = await attentionReportSection(c.model, [], out, { classes: CLASSES, colors: COLORS });
    assert.equal(section.title, 'Attention');
  });

  test('panseg explain writes a folder per image and an index; --help lists the options', async () => {
    const { c } = explained.get(index.cases[1] ?? index.cases[0])!;
    const modelDir = join(tmp, 'model');
    c.model.savePretrained(modelDir, { classNames: ['bg', 'fg'], colors: [[0, 0, 0], [200, 40, 40]] });
    const input = join(tmp, 'in', 'pic.png');
    mkdirSync(join(tmp, 'in'));
    await sharp(Buffer.from(c.image.data), { raw: { width: c.image.width, height: c.image.height, channels: 3 } }).png().toFile(input);
    const out = join(tmp, 'cli');
    const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], { cwd: ROOT, encoding: 'utf8' });
    const r = cli(['explain', '--model', modelDir, '--input', input, '--out', out, '--top-k', '3', '--threads', '1']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /1 image\(s\) explained/);
    const top = readFileSync(join(out, 'index.html'), 'utf8');
    assert.ok(top.includes('href="pic/index.html"') && top.includes('src="pic/overview.png"'));
    assertBalanced(top, true);
    const page = readFileSync(join(out, 'pic', 'index.html'), 'utf8');
    assert.ok(page.includes('href="../index.html"'));
    assertPng(readFileSync(join(out, 'pic', 'fpa-attention.png')), 'cli attention');
    assert.ok(existsSync(join(out, 'pic', 'gau1-weights.svg')));
    const help = cli(['explain', '--help']);
    assert.equal(help.status, 0);
    for (const flag of ['--model', '--input', '--out', '--top-k', '--colormap']) assert.ok(help.stdout.includes(flag), flag);
    const bad = cli(['explain', '--model', modelDir, '--out', out]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /needs at least one image/);
  });
});
