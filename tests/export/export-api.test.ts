// The protobuf writer's wire format, the sidecar's content, option validation and the graph's shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { exportOnnx, GraphBuilder, attr, readSidecar, writeMessage } from '../../src/export/index.js';
import { Message } from '../../src/export/onnx-proto.js';
import { PAN } from '../../src/models/index.js';
import { tempDir } from './helpers.js';

const hex = (m: Message) => Buffer.from(m.toBytes()).toString('hex');

test('protobuf writer: varints, negative int64, floats, strings, nested messages', () => {
  assert.equal(hex(new Message().int(1, 150)), '089601');
  assert.equal(hex(new Message().int(2, -1)), `10${'ff'.repeat(9)}01`);
  assert.equal(hex(new Message().float(2, 1)), '150000803f');
  assert.equal(hex(new Message().string(1, 'hi')), '0a026869');
  assert.equal(hex(new Message().message(3, new Message().int(1, 1))), '1a020801');
  assert.equal(new Message().int(1, 2 ** 40).length, 7);
});

test('GraphBuilder: a tiny graph runs in onnxruntime (shared constants, Identity-renamed output)', async () => {
  using tmp = tempDir();
  const g = new GraphBuilder('tiny');
  const x = g.input('x', ['n', 3]);
  const twice = g.op('Mul', [x, g.float32([2, 2, 2])]);
  const y = g.op('Add', [twice, g.float32([2, 2, 2])]);
  assert.equal(g.float32([2, 2, 2]), g.float32([2, 2, 2]));
  g.output(y, 'y', ['n', 3]);
  g.output(g.op('Shape', [x]), 'shape', [2], 7);
  g.output(g.op('Transpose', [x], { perm: attr.ints([1, 0]) }), 't', [3, 'n']);
  assert.throws(() => g.op('Relu', ['missing']), /GraphBuilder: Relu reads undefined value 'missing'/);
  assert.deepEqual([...g.opTypes].sort(), ['Add', 'Identity', 'Mul', 'Shape', 'Transpose']);
  const path = join(tmp.dir, 'tiny.onnx');
  writeMessage(path, g.build({ opset: 17, producerVersion: 'test', metadata: { k: 'v' } }));
  const s = await ort.InferenceSession.create(path);
  const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]) });
  assert.deepEqual([...(out.y.data as Float32Array)], [4, 6, 8, 10, 12, 14]);
  assert.deepEqual([...(out.shape.data as BigInt64Array)], [2n, 3n]);
  assert.deepEqual([...out.t.dims], [3, 2]);
  assert.deepEqual([...(out.t.data as Float32Array)], [1, 4, 2, 5, 3, 6]);
  await s.release();
});

test('exportOnnx: sidecar JSON, model metadata and file layout', async () => {
  using tmp = tempDir();
  const model = new PAN({ encoderName: 'resnet18', classes: 3, auxParams: { classes: 3 } }).eval();
  const path = join(tmp.dir, 'sub', 'pan.onnx');
  const meta = { classNames: ['bg', 'cat', 'dog'], colors: [[0, 0, 0], [255, 0, 0], [0, 255, 0]] as [number, number, number][], ignoreIndex: 255 };
  const r = exportOnnx(model, { path, height: 128, width: 256, meta });
  assert.equal(r.sidecarPath, `${path}.json`);
  assert.ok(existsSync(path) && !existsSync(`${path}.tmp-${process.pid}`));
  const s = readSidecar(path);
  assert.deepEqual(s, JSON.parse(readFileSync(r.sidecarPath, 'utf8')));
  assert.equal(s.format, 'panseg-onnx');
  assert.equal(s.model, 'pan.onnx');
  assert.equal(s.opset, 17);
  assert.deepEqual(s.input, { name: 'input', layout: 'NCHW', dtype: 'float32', channels: 3, height: 128, width: 256, dynamicSize: false, dynamicBatch: true });
  assert.deepEqual(s.outputs, { logits: 'logits', labels: 'labels', attention: null });
  assert.equal(s.attention, false);
  assert.deepEqual(s.classes, meta.classNames);
  assert.deepEqual(s.colors, meta.colors);
  assert.equal(s.ignoreIndex, 255);
  assert.equal(s.numClasses, 3);
  assert.deepEqual(s.preprocessing, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], inputRange: [0, 1], inputSpace: 'RGB' });
  assert.equal(s.outputStride, 16);
  assert.equal(s.minInputSize, 128);
  assert.equal(s.architecture.encoder_name, 'resnet18');
  assert.match(s.pansegVersion, /^\d+\.\d+\.\d+/);

  const session = await ort.InferenceSession.create(path);
  assert.deepEqual(session.inputNames, ['input']);
  assert.deepEqual(session.outputNames, ['logits', 'labels']);
  await session.release();
  // No BatchNormalization survives: every BN was folded into its conv.
  const bytes = readFileSync(path);
  assert.equal(bytes.includes('BatchNormalization'), false);
  assert.ok(bytes.includes('"format":"panseg-onnx"'), 'sidecar copy in metadata_props');

  // Defaults: 512x512, VOC colours and generic names.
  const d = exportOnnx(model, { path: join(tmp.dir, 'd.onnx') }).sidecar;
  assert.deepEqual([d.input.height, d.input.width], [512, 512]);
  assert.deepEqual(d.classes, ['class 0', 'class 1', 'class 2']);
  assert.deepEqual(d.colors[1], [128, 0, 0]);
  model.dispose();
});

test('exportOnnx: invalid options name the option and a fix', () => {
  using tmp = tempDir();
  const model = new PAN({ encoderName: 'resnet18', classes: 2 }).eval();
  const path = join(tmp.dir, 'x.onnx');
  assert.throws(() => exportOnnx(model, { path, height: 200 }), {
    message: 'exportOnnx: height 200 is not a valid input size: it must be a multiple of the output stride 16 and at least 128; use 208',
  });
  assert.throws(() => exportOnnx(model, { path, height: 128, width: 64 }), { message: 'exportOnnx: width 64 is not a valid input size: it must be a multiple of the output stride 16 and at least 128; use 128' });
  assert.throws(() => exportOnnx(model, { path, opset: 11 }), /exportOnnx: .*opset.*11/);
  assert.throws(() => exportOnnx(model, { path, dynamicSize: true, height: 256 }), { message: 'exportOnnx: height/width fix the input size; leave them out with dynamicSize' });
  assert.throws(() => exportOnnx(model, { path: '' }), /exportOnnx: expected a file path for path/);
  assert.throws(() => readSidecar(join(tmp.dir, 'none.onnx')), /readSidecar: .*none\.onnx\.json not found/);
  model.dispose();
});
