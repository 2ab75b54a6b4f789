// The model family end to end, as users run it: `panseg train --arch unet|fpn` on a folder dataset, then
// info, eval, predict, export, eval on the ONNX export and serve on the result; explain refuses non-PAN models.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { generateSynthetic } from '../../src/data/index.js';
import { type RunningServer, startServer } from '../../src/serve/index.js';
import { cli } from '../helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-family-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let data: string;
let img: string;
before(async () => {
  data = (await generateSynthetic(join(tmp, 'shapes'), { train: 4, val: 2, size: 64, seed: 5 })).dir;
  img = join(tmp, 'photo.png');
  await sharp(Buffer.from(Array.from({ length: 70 * 50 * 3 }, (_, i) => (i * 37) % 251)), { raw: { width: 70, height: 50, channels: 3 } }).png().toFile(img);
});

for (const [arch, smpName, extra] of [['unet', 'Unet', ['--decoder-channels', '32,16,16,16,16', '--arch-options', '{"decoderAttentionType":"scse"}']], ['fpn', 'FPN', []]] as const) {
  describe(`panseg train --arch ${arch}, then every command on the result`, () => {
    const out = join(tmp, `run-${arch}`);
    const model = join(out, 'checkpoints', 'best');

    it('trains one epoch and saves an smp directory naming the architecture', async () => {
      const r = await cli(['train', '--arch', arch, ...extra, '--dataset', 'folder', '--data-root', data, '--split', 'train', '--val-split', 'val', '--encoder', 'resnet18',
        '--crop', '64', '--batch-size', '2', '--epochs', '1', '--workers', '0', '--threads', '1', '--precision', 'fp32', '--out', out, '--quiet', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const res = JSON.parse(r.stdout) as { best_miou: number };
      assert.ok(res.best_miou >= 0 && res.best_miou <= 1);
      const cfg = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg._model_class, smpName);
      if (arch === 'unet') {
        assert.deepEqual(cfg.decoder_channels, [32, 16, 16, 16, 16]);
        assert.equal(cfg.decoder_attention_type, 'scse');
      }
      assert.ok(existsSync(join(out, 'report.html')));
    });

    it('info names the architecture', async () => {
      const r = await cli(['info', '--model', model, '--size', '64']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^${smpName} \\(`));
    });

    it('eval, predict, export and eval on the ONNX export agree', async () => {
      const ev = await cli(['eval', '--model', model, '--dataset', 'folder', '--data-root', data, '--split', 'val', '--json', '--precision', 'fp32', '--threads', '1', '--workers', '0']);
      assert.equal(ev.code, 0, ev.stderr);
      const pred = await cli(['predict', '--model', model, '--out', join(out, 'pred'), '--threads', '1', '--json', img]);
      assert.equal(pred.code, 0, pred.stderr);
      assert.deepEqual((await sharp(join(out, 'pred', 'photo_mask.png')).metadata()).width, 70);
      const onnx = join(out, 'model.onnx');
      const ex = await cli(['export', '--model', model, '--out', onnx, '--dynamic-size']);
      assert.equal(ex.code, 0, ex.stderr);
      const ev2 = await cli(['eval', '--engine', 'onnx', '--onnx', onnx, '--dataset', 'folder', '--data-root', data, '--split', 'val', '--json', '--workers', '0']);
      assert.equal(ev2.code, 0, ev2.stderr);
      const [a, b] = [JSON.parse(ev.stdout), JSON.parse(ev2.stdout)] as { miou: number }[];
      assert.ok(Math.abs(a.miou - b.miou) <= 1e-3, `torch mIoU ${a.miou} vs onnxruntime ${b.miou}`);
    });

    it('serve segments an image', async () => {
      let server: RunningServer | undefined;
      try {
        server = await startServer({ model, port: 0, log: () => {} });
        const info = await (await fetch(new URL('/api/info', server.url))).json() as { model: { architecture: string } };
        assert.equal(info.model.architecture, smpName);
        // The page's model: exported on start, without PAN's attention output.
        const sidecar = await (await fetch(new URL('/model.onnx.json', server.url))).json() as { architecture: { _model_class: string }; attention: boolean };
        assert.deepEqual([sidecar.architecture._model_class, sidecar.attention], [smpName, false]);
        const res = await fetch(new URL('/api/segment', server.url), { method: 'POST', body: readFileSync(img), headers: { 'Content-Type': 'image/png' } });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      } finally {
        await server?.close();
      }
    });

    it('explain says it is PAN-only', async () => {
      const r = await cli(['explain', '--model', model, '--out', join(out, 'explain'), img]);
      assert.equal(r.code, 2);
      assert.equal(r.stderr, `panseg explain: 'panseg explain' draws PAN's attention (FPA and GAU); ${model} holds a ${smpName}, which has none. Use 'panseg predict' for its masks\n`);
    });
  });
}
