import { ProgressBar } from '../../common/progress.js';
import { type ConvertSummary, convertCoco, convertLabelme, DEFAULT_LIMITS } from '../../data/import/index.js';
import { type CommandSpec, required, UsageError } from '../args.js';

export const spec: CommandSpec = {
  name: 'convert',
  summary: 'convert COCO or labelme annotations into a folder dataset (images/, palette PNG masks/, classes.json)',
  usage: 'panseg convert coco --annotations instances.json --images DIR --out DIR | panseg convert labelme --input DIR --out DIR',
  positionals: true,
  flags: [
    { name: 'annotations', type: 'string', desc: 'coco: the instances JSON (polygons, RLE lists or compressed RLE)' },
    { name: 'images', type: 'string', desc: "coco: the folder the images' file_name are relative to" },
    { name: 'input', type: 'string', desc: 'labelme: the folder of .json files (images beside them, or embedded)' },
    { name: 'labels', type: 'string', desc: "labelme: a labels.txt fixing the class order (labelme's format: __ignore__, _background_, then one label a line)" },
    { name: 'out', type: 'string', desc: 'the new folder dataset (must not hold images/ or masks/ already)' },
    { name: 'max-pixels', type: 'int', desc: 'refuse images larger than this many pixels, before allocating', default: DEFAULT_LIMITS.maxPixels },
    { name: 'json', type: 'boolean', desc: 'print the summary as JSON' },
    { name: 'quiet', type: 'boolean', desc: 'no progress bar' },
  ],
  examples: [
    'panseg convert coco --annotations annotations/instances_val2017.json --images val2017 --out data/coco-val',
    'panseg convert labelme --input labelme/ --out data/mine --labels labels.txt',
    'panseg check-data --dataset folder --data-root data/mine   (then train with --split all --val-fraction 0.1)',
  ],
};

export async function run(o: Record<string, unknown>, positionals: string[]): Promise<void> {
  const [format, ...extra] = positionals;
  if (!format || extra.length) throw new UsageError(`'panseg convert' takes one format, coco or labelme, e.g. panseg convert coco --annotations instances.json --images DIR --out DIR${extra.length ? `; got ${positionals.join(' ')}` : ''}`);
  if ((o.maxPixels as number) < 1) throw new UsageError(`--max-pixels expects a positive integer, got ${String(o.maxPixels)}`);
  const out = required<string>(o, 'out', 'out', 'convert');
  let bar: ProgressBar | null = null;
  const onProgress = (done: number, total: number) => {
    bar ??= new ProgressBar(`convert ${format}`, total, { silent: Boolean(o.quiet || o.json) });
    bar.update(done);
  };
  const limits = { maxPixels: o.maxPixels as number };
  let s: ConvertSummary;
  if (format === 'coco') {
    s = await convertCoco({ annotations: required(o, 'annotations', 'annotations', 'convert coco'), images: required(o, 'images', 'images', 'convert coco'), out, onProgress, ...limits });
  } else if (format === 'labelme') {
    s = await convertLabelme({ input: required(o, 'input', 'input', 'convert labelme'), out, labels: o.labels as string | undefined, onProgress, ...limits });
  } else throw new UsageError(`unknown format '${format}'; expected coco or labelme`);
  (bar as ProgressBar | null)?.finish();
  if (o.json) {
    console.log(JSON.stringify(s));
    return;
  }
  const total = s.pixels.reduce((a, b) => a + b, 0) || 1;
  console.log(`wrote ${s.images} images and masks, ${s.classes.length} classes, to ${s.out}`);
  console.log(`painted ${s.painted} regions, ${s.ignored} as ignore (255)${Object.keys(s.skipped).length ? `; skipped ${Object.entries(s.skipped).map(([k, n]) => `${n} ${k}`).join(', ')}` : ''}`);
  console.log(`class shares: ${s.classes.map((c, i) => `${c} ${((100 * s.pixels[i]) / total).toFixed(1)}%`).join(', ')}, ignored ${((100 * s.pixels[s.classes.length]) / total).toFixed(1)}%`);
  console.log(`next: panseg check-data --dataset folder --data-root ${s.out}`);
}
