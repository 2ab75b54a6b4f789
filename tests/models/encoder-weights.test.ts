// Encoder weights by name (smp's pretrained_settings) and models by Hub repo, end to end against a
// local fake Hub (tests/helpers/fake-hub.ts): createModel(..., { encoderWeights: 'imagenet' }),
// loadModel('org/name'), PAN.fromPretrained('org/name'). Nothing here reaches the internet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed, randn, type Tensor, tidy } from '../../src/engine/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { createEncoder, createModel, loadModel, loadModelWithMeta, PAN } from '../../src/models/index.js';
import { encoderWeightsFile, encoderWeightsNames, encoderWeightsSource, registerEncoderWeights } from '../../src/models/encoders/weights.js';
import { closedEndpoint, FakeHub, withHubEnv } from '../helpers/fake-hub.js';

const RESNET18_IMAGENET = '3f2325ff978283d47aa6a1d6878ca20565622683'; // smp's pinned revision

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.to('float32').sub(b.to('float32')).abs().max().item());
}

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), 'panseg-ew-'));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The files of a folder, as a fake Hub repo serves them. */
const filesOf = (dir: string): Record<string, Uint8Array> => Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));

test("the registry holds smp's repos and pinned revisions; users register their own", () => {
  assert.deepEqual(encoderWeightsSource('resnet34', 'imagenet'), { repoId: 'smp-hub/resnet34.imagenet', revision: '7a57b34f723329ff020b3f8bc41771163c519d0c' });
  assert.deepEqual(encoderWeightsSource('resnet18', 'imagenet'), { repoId: 'smp-hub/resnet18.imagenet', revision: RESNET18_IMAGENET });
  assert.deepEqual(encoderWeightsNames('resnet18'), ['imagenet', 'ssl', 'swsl']);
  assert.deepEqual(encoderWeightsNames('resnet50'), ['imagenet', 'ssl', 'swsl']);
  assert.deepEqual(encoderWeightsNames('resnet101'), ['imagenet']);
  assert.equal(encoderWeightsSource('resnet34', 'ssl'), undefined);
  registerEncoderWeights('resnet34', 'lab', { repoId: 'my-lab/resnet34.scans', revision: 'v1' });
  assert.deepEqual(encoderWeightsSource('resnet34', 'lab'), { repoId: 'my-lab/resnet34.scans', revision: 'v1' });
  assert.deepEqual(encoderWeightsNames('resnet34'), ['imagenet', 'lab']);
  const bad = (args: unknown[], message: string | RegExp) => assert.throws(() => (registerEncoderWeights as (...a: unknown[]) => void)(...args), { name: 'PansegError', message });
  bad(['resnet35', 'x', { repoId: 'a/b', revision: 'main' }], /^registerEncoderWeights: unknown encoder 'resnet35' of type string; valid encoders: resnet18, resnet34/);
  bad(['resnet34', 'w.pth', { repoId: 'a/b', revision: 'main' }], "registerEncoderWeights: expected a weights name like 'imagenet' (letters, digits, '_', '-', '.'; not a file name) but received 'w.pth' of type string");
  bad(['resnet34', 'x', { repoId: 'nope', revision: 'main' }], "registerEncoderWeights: expected a Hub repo id like 'org/name' for repoId but received 'nope' of type string");
  bad(['resnet34', 'x', { repoId: 'a/b', revision: '' }], "registerEncoderWeights: expected a branch, tag or commit hash for revision but received '' of type string");
});

test('an unknown weights name is answered with the valid ones; a path is still a path', () => {
  assert.throws(() => createModel('unet', { encoderName: 'resnet18', encoderWeights: 'instagram' }),
    { message: "encoderWeights: 'instagram' is neither a weights name of resnet18 (available: imagenet, ssl, swsl) nor a weight file (.safetensors, .pth, .pt, .bin)" });
  assert.equal(encoderWeightsFile('resnet34', 'weights/r34.pth'), 'weights/r34.pth');
  assert.throws(() => createModel('unet', { encoderName: 'resnet34', encoderWeights: '/no/such/r34.safetensors' }), /no such file/);
});

test("encoderWeights: 'imagenet' downloads smp-hub/resnet18.imagenet at smp's revision into the Hub cache and loads it (torchvision keys, fc dropped, no num_batches_tracked)", async () => {
  using tmp = tempDir();
  manualSeed(7);
  // A stand-in for smp's file: a resnet18 state_dict in torchvision's layout, with fc and without the BatchNorm counters.
  const src = createEncoder('resnet18');
  const served = new Map([...src.stateDict()].filter(([k]) => !k.endsWith('num_batches_tracked')));
  const fc = randn([1000, 512]);
  saveSafetensors(join(tmp.dir, 'model.safetensors'), new Map([...served, ['fc.weight', fc]]));
  fc.dispose();
  const config = JSON.stringify({ input_space: 'RGB', input_range: [0, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  const hub = await FakeHub.start();
  try {
    await hub.addRepo({ repoId: 'smp-hub/resnet18.imagenet', commit: RESNET18_IMAGENET, branches: [], files: { 'config.json': config, 'model.safetensors': readFileSync(join(tmp.dir, 'model.safetensors')) } });
    await withHubEnv(hub.endpoint, async (cache) => {
      const model = createModel('unet', { encoderName: 'resnet18', encoderWeights: 'imagenet', classes: 2 });
      const want = loadSafetensors(join(tmp.dir, 'model.safetensors'));
      for (const [k, t] of model.encoder.stateDict()) {
        if (k.endsWith('num_batches_tracked')) { assert.equal(t.item(), 0, k); continue; }
        assert.equal(maxAbsDiff(t, want.get(k)!), 0, `encoder.${k} differs from the served weights`);
      }
      const snap = join(cache, 'models--smp-hub--resnet18.imagenet', 'snapshots', RESNET18_IMAGENET);
      assert.deepEqual(readdirSync(snap).sort(), ['config.json', 'model.safetensors'], 'config.json too, as smp fetches it');
      const reqs = await hub.settle();
      assert.deepEqual(reqs.filter((r) => r.server === 'hub' && r.method === 'HEAD').map((r) => r.url), [
        `/smp-hub/resnet18.imagenet/resolve/${RESNET18_IMAGENET}/config.json`,
        `/smp-hub/resnet18.imagenet/resolve/${RESNET18_IMAGENET}/model.safetensors`,
      ]);
      model.dispose();
      // Cached now: the next model needs no server, and offline mode is fine.
      await hub.stop();
      process.env.HF_HUB_OFFLINE = '1';
      const again = createModel('pan', { encoderName: 'resnet18', encoderWeights: 'imagenet', inChannels: 1 });
      assert.equal(again.encoder.stateDict().get('layer4.1.bn2.running_var')!.shape[0], 512);
      assert.equal(maxAbsDiff(again.encoder.stateDict().get('layer4.1.bn2.running_var')!, want.get('layer4.1.bn2.running_var')!), 0);
      again.dispose();
      for (const t of want.values()) t.dispose();
    });
  } finally {
    src.dispose();
    await hub.stop().catch(() => {});
  }
});

test("loadModel('org/name') and PAN.fromPretrained('org/name', { revision }) load a served save_pretrained directory", async () => {
  using tmp = tempDir();
  manualSeed(3);
  const unet = createModel('unet', { encoderName: 'resnet18', classes: 3, decoderChannels: [16, 16, 16, 16, 16] });
  unet.savePretrained(join(tmp.dir, 'unet'), { classNames: ['sky', 'road', 'car'] });
  const pan = new PAN({ encoderName: 'resnet18', classes: 2, decoderChannels: 8 });
  pan.savePretrained(join(tmp.dir, 'pan'));
  rmSync(join(tmp.dir, 'pan', 'panseg.json')); // as smp writes it: no panseg.json
  const hub = await FakeHub.start();
  try {
    await hub.addRepo({ repoId: 'org/unet-camvid', files: filesOf(join(tmp.dir, 'unet')) });
    const panCommit = await hub.addRepo({ repoId: 'org/pan-tiny', branches: ['main', 'v2'], files: filesOf(join(tmp.dir, 'pan')) });
    await withHubEnv(hub.endpoint, async (cache) => {
      const { model, meta } = loadModelWithMeta('org/unet-camvid');
      assert.equal(model.architecture, 'Unet');
      assert.deepEqual(meta.classNames, ['sky', 'road', 'car']);
      const want = unet.stateDict();
      for (const [k, t] of model.stateDict()) assert.equal(maxAbsDiff(t, want.get(k)!), 0, k);
      model.dispose();
      const p = PAN.fromPretrained('org/pan-tiny', { revision: 'v2' });
      for (const [k, t] of p.stateDict()) assert.equal(maxAbsDiff(t, pan.stateDict().get(k)!), 0, k);
      p.dispose();
      assert.equal(readFileSync(join(cache, 'models--org--pan-tiny', 'refs', 'v2'), 'utf8'), panCommit);
      // Offline, from the cache: the absent panseg.json was recorded, so nothing is asked.
      await hub.stop();
      process.env.HF_HUB_OFFLINE = '1';
      loadModel('org/pan-tiny', { revision: 'v2' }).dispose();
      loadModel('org/unet-camvid').dispose();
      assert.throws(() => loadModel('runs/nothing'), {
        name: 'PansegError',
        message: /^loadModel: runs\/nothing is not a local directory, and as a Hugging Face Hub repo: runs\/nothing: config\.json \(revision main\) is not in the Hugging Face cache and HF_HUB_OFFLINE is set\. Looked for /,
      });
    });
  } finally {
    unet.dispose();
    pan.dispose();
    await hub.stop().catch(() => {});
  }
});

test('a Hub that cannot be reached: one clear message for a missing weights file, no stack trace', async () => {
  await withHubEnv(await closedEndpoint(), () => {
    assert.throws(() => createModel('fpn', { encoderName: 'resnet50', encoderWeights: 'ssl' }), (e: Error) => {
      assert.equal(e.name, 'PansegError');
      assert.match(e.message, /^encoderWeights: smp-hub\/resnet50\.ssl: config\.json \(revision d07daf5b4377f3700c6ac61906b0aafbc4eca46b\) is not in the Hugging Face cache and the Hub at http:\/\/127\.0\.0\.1:\d+ cannot be reached \(ECONNREFUSED\)\. Looked for .*models--smp-hub--resnet50\.ssl\/snapshots\/d07daf5b4377f3700c6ac61906b0aafbc4eca46b\/config\.json\. To place it by hand, download http:\/\/127\.0\.0\.1:\d+\/smp-hub\/resnet50\.ssl\/resolve\/d07daf5b4377f3700c6ac61906b0aafbc4eca46b\/config\.json on a connected machine and copy it to that path/);
      return true;
    });
  });
});
