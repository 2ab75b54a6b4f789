import { resolvePrecision, setNumThreads } from '../../engine/index.js';
import { collectInputs, type PredictedFile, predictFiles } from '../../eval/predict.js';
import { loadModelWithMeta } from '../../models/index.js';
import type { RGB } from '../../common/palette.js';
import { ProgressBar } from '../../common/progress.js';
import { type CommandSpec, required, UsageError } from '../args.js';
import { RUN_FLAGS, SIZE_FLAGS, sizeOptions, TTA_FLAGS } from '../flags.js';
import { ENGINE_FLAGS, onnxSegmenterFor } from './export.js';

export const spec: CommandSpec = {
  name: 'predict',
  summary: 'segment images: palette PNG masks, colour overlays, class-area stats (and probabilities)',
  usage: 'panseg predict --model DIR --out DIR <image|folder|list.txt>... [--engine torch|onnx] [options]',
  positionals: true,
  flags: [
    { name: 'model', type: 'string', desc: 'model directory, or a training run folder (uses its checkpoints/best)' },
    { name: 'input', type: 'list', desc: 'inputs (also accepted as positional arguments)' },
    { name: 'out', type: 'string', desc: 'output directory' },
    { name: 'probs', type: 'boolean', desc: 'also write class probabilities as <name>_probs.npy' },
    { name: 'no-overlay', type: 'boolean', desc: 'skip the colour overlays' },
    { name: 'alpha', type: 'number', desc: 'overlay opacity', default: 0.5 },
    { name: 'json', type: 'boolean', desc: 'print per-image results as JSON' },
    ...SIZE_FLAGS,
    ...TTA_FLAGS,
    ...RUN_FLAGS,
    ...ENGINE_FLAGS,
  ],
  examples: [
    'panseg predict --model runs/shapes --out preds photos/',
    'panseg predict --model runs/shapes --out preds --tile 512 --overlap 0.25 big-photo.jpg',
    'panseg predict --engine onnx --onnx pan.onnx --out preds photos/',
  ],
};

export async function run(o: Record<string, unknown>, positionals: string[]): Promise<void> {
  const onnx = o.engine === 'onnx' || o.onnx !== undefined;
  const out = required<string>(o, 'out', 'out', 'predict');
  const inputs = [...((o.input as string[] | undefined) ?? []), ...positionals];
  if (!inputs.length) throw new UsageError("'panseg predict' needs at least one image, folder or list file (see panseg predict --help)");
  if (o.threads !== undefined && !onnx) setNumThreads(o.threads as number);
  const files = collectInputs(inputs);
  const bar = new ProgressBar('predict', files.length, { silent: Boolean(o.json) });
  const common = {
    overlay: !o.noOverlay, probs: Boolean(o.probs), alpha: o.alpha as number, flip: Boolean(o.ttaFlip), scales: (o.ttaScales as string[] | undefined)?.map(Number),
    ...sizeOptions(o),
    onProgress: (d: number) => bar.update(d),
  };
  let res: PredictedFile[];
  if (onnx) {
    const seg = await onnxSegmenterFor(o, 'predict');
    try { res = await predictFiles(seg, files, out, { ...common, classNames: seg.sidecar.classes, colors: seg.sidecar.colors }); } finally { await seg.release(); }
  } else {
    const { model, meta } = loadModelWithMeta(required<string>(o, 'model', 'model', 'predict'));
    try {
      res = await predictFiles(model, files, out, {
        ...common, classNames: meta.classNames, colors: meta.colors as RGB[] | undefined, precision: (o.precision as 'fp32' | undefined) ?? 'auto',
      });
    } finally {
      model.dispose();
    }
  }
  bar.finish();
  if (o.json) console.log(JSON.stringify(res));
  else {
    for (const r of res) {
      const top = [...r.areas].sort((a, b) => b.percent - a.percent).slice(0, 3).map((a) => `${a.class} ${a.percent.toFixed(1)}%`).join(', ');
      console.log(`${r.input} -> ${r.mask} (${r.width}x${r.height}, ${r.ms.toFixed(0)} ms): ${top}`);
    }
    const size = sizeOptions(o);
    const how = [
      ...(size.resizeLong ? [`inferred at ${size.resizeLong} px on the long side`] : []),
      ...(size.tile ? [`${size.tile} px tiles, overlap ${size.overlap ?? 0.25}`] : []),
    ];
    const engine = [onnx ? 'onnxruntime, fp32' : `precision ${resolvePrecision((o.precision as 'auto' | undefined) ?? 'auto', String(o.device ?? 'cpu'))}`, ...how].join(', ');
    console.log(`${res.length} image(s) segmented into ${out} (stats.json has the class areas); ${engine}`);
  }
}
