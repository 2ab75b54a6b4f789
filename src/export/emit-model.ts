// Any SegmentationModel -> an ONNX graph, by walking its module tree: the encoder emits its features,
// the decoder and heads emit themselves (see emitter.ts). No architecture has a forward of its own here.
import { fail } from '../common/errors.js';
import { inferenceMode, zeros } from '../engine/index.js';
import type { SegmentationModel } from '../models/base/model.js';
import type { Dim } from './onnx-proto.js';
import { type EmitOptions, Emitter } from './emitter.js';
import type { GraphBuilder } from './graph.js';

export interface EmitModelOptions extends EmitOptions {
  /** Add an `attention` output from the model's 'attention' tap (PAN's FPA map). */
  attention: boolean;
}

export interface EmittedGraph {
  graph: GraphBuilder;
  outputs: { logits: string; labels: string | null; attention: string | null };
}

/** Whether the model's logits have its input's size (true unless the head's upsampling says otherwise). */
function logitsAtInputSize(model: SegmentationModel): boolean {
  const s = model.minInputSize;
  const x = zeros([1, model.config.inChannels, s, s]);
  try {
    const y = inferenceMode(() => model.predict(x));
    const same = y.shape[2] === s && y.shape[3] === s;
    y.dispose();
    return same;
  } finally {
    x.dispose();
  }
}

/** Emits the whole model; input `input`, outputs `logits` (+ `labels` with an aux head, + `attention` on request). */
export function emitModel(model: SegmentationModel, o: EmitModelOptions): EmittedGraph {
  const e = new Emitter(o);
  const g = e.g;
  const c = model.config;
  if (!model.encoder.emitOnnxFeatures) fail('exportOnnx', `the ${model.encoder.constructor.name} encoder cannot be exported to ONNX yet`);
  const [H, W]: [Dim, Dim] = o.size ?? ['height', 'width'];
  const feats = model.encoder.emitOnnxFeatures(e, { name: g.input('input', ['batch', c.inChannels, H, W]), hw: o.size }, 'encoder');
  const dec = e.module(model.decoder, 'decoder', ...feats);
  const y = e.module(model.segmentationHead, 'segmentation_head', dec);
  const outHW: [Dim, Dim] = y.hw ?? (logitsAtInputSize(model) ? ['height', 'width'] : ['logits_height', 'logits_width']);
  g.output(y.name, 'logits', ['batch', c.classes, ...outHW], undefined, 'segmentation logits (after the head activation, if any)');

  let labels: string | null = null;
  if (model.classificationHead) {
    const l = e.module(model.classificationHead, 'classification_head', feats[feats.length - 1]);
    g.output(l.name, 'labels', ['batch', c.auxParams!.classes], undefined, 'auxiliary classification head output');
    labels = 'labels';
  }
  let attention: string | null = null;
  if (o.attention) {
    const a = e.taps.get('attention');
    if (!a) fail('exportOnnx', `attention maps are PAN's (FPA); a ${model.architecture} has none to export`);
    g.output(a.name, 'attention', ['batch', 1, ...(a.hw ?? ['attention_height', 'attention_width'] as [Dim, Dim])], undefined, "FPA's spatial attention map at the bottleneck size");
    attention = 'attention';
  }
  return { graph: g, outputs: { logits: 'logits', labels, attention } };
}
