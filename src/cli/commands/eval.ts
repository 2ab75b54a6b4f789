import { DataLoader, openDataset } from '../../data/index.js';
import { resolvePrecision, setNumThreads } from '../../engine/index.js';
import { evaluate } from '../../eval/evaluate.js';
import { PAN } from '../../models/index.js';
import { ProgressBar } from '../../train/progress.js';
import { type CommandSpec, required } from '../args.js';
import { DATA_FLAGS, RUN_FLAGS, TTA_FLAGS } from '../flags.js';
import { metricsJson, printMetrics } from '../output.js';

export const spec: CommandSpec = {
  name: 'eval',
  summary: 'measure mIoU, pixel accuracy and per-class IoU of a model on a dataset split',
  usage: 'panseg eval --model DIR --dataset <layout> --data-root DIR [--split val] [options]',
  flags: [
    { name: 'model', type: 'string', desc: 'model directory (save_pretrained / savePretrained format)' },
    ...DATA_FLAGS,
    ...TTA_FLAGS,
    { name: 'json', type: 'boolean', desc: 'print one JSON object (miou, pixel_accuracy, per_class_iou, ...)' },
    ...RUN_FLAGS,
  ],
  examples: ['panseg eval --model runs/voc/checkpoints/best --dataset voc --data-root VOCdevkit/VOC2012 --split val --json'],
};

export async function run(o: Record<string, unknown>): Promise<void> {
  const dir = required<string>(o, 'model', 'model', 'eval');
  const ds = openDataset(required(o, 'dataset', 'dataset', 'eval'), required(o, 'dataRoot', 'data-root', 'eval'), { split: (o.split as string | undefined) ?? 'val' });
  if (o.threads !== undefined) setNumThreads(o.threads as number);
  const model = PAN.fromPretrained(dir);
  if (model.config.classes !== ds.numClasses && model.config.classes !== 1) {
    throw new Error(`the model predicts ${model.config.classes} classes but ${ds.name} has ${ds.numClasses}`);
  }
  const pre = model.preprocessing;
  const loader = new DataLoader(ds, { mode: 'eval', batchSize: 1, stride: model.outputStride, mean: pre.mean, std: pre.std, workers: o.workers as number | undefined });
  const bar = new ProgressBar('eval', ds.length, { silent: Boolean(o.json) });
  try {
    const r = await evaluate(model, loader, {
      flip: Boolean(o.ttaFlip), scales: (o.ttaScales as string[] | undefined)?.map(Number), precision: (o.precision as 'fp32' | undefined) ?? 'auto',
      onProgress: (d) => bar.update(d),
    });
    bar.finish();
    const precision = resolvePrecision((o.precision as 'auto' | undefined) ?? 'auto', String(o.device ?? 'cpu'));
    if (o.json) console.log(JSON.stringify({ ...metricsJson(r, ds.classes), images: r.images, seconds: r.seconds, precision }));
    else {
      printMetrics(r, ds.classes);
      console.log(`${r.images} images in ${r.seconds.toFixed(1)} s (precision ${precision})`);
    }
  } finally {
    await loader.close();
    model.dispose();
  }
}
