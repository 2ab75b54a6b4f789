import { DataLoader } from '../../data/index.js';
import { resolvePrecision, setNumThreads } from '../../engine/index.js';
import { evaluate, type EvaluationResult } from '../../eval/evaluate.js';
import type { OnnxSegmenter } from '../../eval/onnx-engine.js';
import { loadModel } from '../../models/index.js';
import { ProgressBar } from '../../common/progress.js';
import { type CommandSpec, required, UsageError } from '../args.js';
import { openDatasetFromFlags } from '../data-flags.js';
import { DATA_FLAGS, RUN_FLAGS, SIZE_FLAGS, sizeOptions, TTA_FLAGS } from '../flags.js';
import { metricsJson, printMetrics } from '../output.js';
import { ENGINE_FLAGS, onnxSegmenterFor } from './export.js';

export const spec: CommandSpec = {
  name: 'eval',
  summary: 'measure mIoU, pixel accuracy and per-class IoU of a model on a dataset split',
  usage: 'panseg eval --model DIR --dataset <layout> --data-root DIR [--split val] [--engine torch|onnx] [options]',
  flags: [
    { name: 'model', type: 'string', desc: 'model directory (save_pretrained / savePretrained format), or a training run folder (uses its checkpoints/best)' },
    ...DATA_FLAGS,
    ...SIZE_FLAGS,
    ...TTA_FLAGS,
    { name: 'json', type: 'boolean', desc: 'print one JSON object (miou, pixel_accuracy, per_class_iou, ...)' },
    ...RUN_FLAGS,
    ...ENGINE_FLAGS,
  ],
  examples: [
    'panseg eval --model runs/voc/checkpoints/best --dataset voc --data-root VOCdevkit/VOC2012 --split val --json',
    'panseg eval --engine onnx --model runs/voc/checkpoints/best --dataset voc --data-root VOCdevkit/VOC2012',
  ],
};

export async function run(o: Record<string, unknown>): Promise<void> {
  const onnx = o.engine === 'onnx' || o.onnx !== undefined;
  const ds = openDatasetFromFlags(o, 'eval', 'val');
  if (o.threads !== undefined && !onnx) setNumThreads(o.threads as number);
  // One of the two engines: a model on libtorch, or an ONNX export on onnxruntime.
  const seg: OnnxSegmenter | null = onnx ? await onnxSegmenterFor(o, 'eval') : null;
  const model = seg ? null : loadModel(required<string>(o, 'model', 'model', 'eval'));
  const classes = seg ? seg.numClasses : model!.config.classes;
  const [stride, pre] = seg ? [seg.outputStride, seg.preprocessing] : [model!.inputSizeRule.stride, model!.preprocessing];
  let loader: DataLoader | null = null;
  try {
    if (classes !== ds.numClasses && classes !== 1) {
      throw new UsageError(`the model predicts ${classes} classes but the ${ds.name} dataset at ${ds.root} has ${ds.numClasses}`);
    }
    loader = new DataLoader(ds, { mode: 'eval', batchSize: 1, stride, mean: pre.mean, std: pre.std, workers: o.workers as number | undefined });
    const bar = new ProgressBar('eval', ds.length, { silent: Boolean(o.json) });
    const tta = { flip: Boolean(o.ttaFlip), scales: (o.ttaScales as string[] | undefined)?.map(Number), ...sizeOptions(o), onProgress: (d: number) => bar.update(d) };
    const r: EvaluationResult = await evaluate(seg ?? model!, loader, { ...tta, precision: (o.precision as 'fp32' | undefined) ?? 'auto' });
    bar.finish();
    const precision = seg ? 'fp32' : resolvePrecision((o.precision as 'auto' | undefined) ?? 'auto', String(o.device ?? 'cpu'));
    const engine = seg ? 'onnxruntime' : 'torch';
    if (o.json) console.log(JSON.stringify({ ...metricsJson(r, ds.classes), images: r.images, seconds: r.seconds, precision, engine }));
    else {
      printMetrics(r, ds.classes);
      console.log(`${r.images} images in ${r.seconds.toFixed(1)} s (${engine}, precision ${precision})`);
    }
  } finally {
    await loader?.close();
    model?.dispose();
    await seg?.release();
  }
}
