import { basename, extname, join } from 'node:path';
import { fail } from '../../common/errors.js';
import { type RGB, VOC_PALETTE } from '../../common/palette.js';
import { decodeImage, type RgbImage } from '../../data/index.js';
import { setNumThreads } from '../../engine/index.js';
import { collectInputs } from '../../eval/predict.js';
import { COLORMAPS, type ColormapName } from '../../eval/visualize.js';
import { explain, type IndexEntry, writeExplanation, writeExplanationIndex } from '../../explain/index.js';
import { loadModelWithMeta } from '../../models/index.js';
import { type CommandSpec, required, UsageError } from '../args.js';

export const spec: CommandSpec = {
  name: 'explain',
  summary: "draw PAN's attention: the FPA spatial map, its pyramid, and each GAU's channel weights, with an HTML page",
  usage: 'panseg explain --model DIR --out DIR --input IMG [IMG|folder|list.txt]... [options]',
  positionals: true,
  flags: [
    { name: 'model', type: 'string', desc: 'model directory (config.json + model.safetensors)' },
    { name: 'input', type: 'list', desc: 'images, folders or list files (also accepted as positional arguments)' },
    { name: 'out', type: 'string', desc: 'output directory: one folder per image and an index.html' },
    { name: 'top-k', type: 'int', desc: 'channels highlighted per GAU block', default: 5 },
    { name: 'colormap', type: 'string', desc: 'heatmap colours', choices: COLORMAPS, default: 'jet' },
    { name: 'threads', type: 'int', desc: 'libtorch threads (default: all cores)' },
    { name: 'json', type: 'boolean', desc: 'print per-image results as JSON' },
  ],
  examples: [
    'panseg explain --model runs/shapes/checkpoints/best --input photo.jpg --out attention',
    'panseg explain --model model/ --out attention --top-k 8 --colormap viridis photos/',
  ],
};

export async function run(o: Record<string, unknown>, positionals: string[]): Promise<void> {
  const dir = required<string>(o, 'model', 'model', 'explain');
  const out = required<string>(o, 'out', 'out', 'explain');
  const inputs = [...((o.input as string[] | undefined) ?? []), ...positionals];
  if (!inputs.length) throw new UsageError("'panseg explain' needs at least one image, folder or list file (see panseg explain --help)");
  const topK = o.topK as number;
  if (!(topK >= 1)) throw new UsageError(`--top-k expects a positive integer, got '${topK}'`);
  if (o.threads !== undefined) setNumThreads(o.threads as number);
  const files = collectInputs(inputs);
  const { model, meta } = loadModelWithMeta(dir);
  if (!model.spec.attentionMaps) {
    const arch = model.architecture;
    model.dispose();
    throw new UsageError(`'panseg explain' draws PAN's attention (FPA and GAU); ${dir} holds a ${arch}, which has none. Use 'panseg predict' for its masks`);
  }
  const n = Math.max(2, model.config.classes);
  const classes = meta.classNames ?? Array.from({ length: n }, (_, i) => `class ${i}`);
  const colors = (meta.colors as RGB[] | undefined) ?? VOC_PALETTE.slice(0, n);
  const colormap = o.colormap as ColormapName;
  const entries: IndexEntry[] = [];
  const used = new Set<string>();
  try {
    for (const file of files) {
      let img: RgbImage;
      try { img = await decodeImage(file); } catch (e) { fail('explain', `cannot decode ${file}: ${(e as Error).message}`); }
      const e = explain(model, img, { topK });
      const folder = uniqueName(basename(file, extname(file)), used);
      const written = await writeExplanation(join(out, folder), e, img, { classes, colors, colormap, title: `Where PAN looks: ${basename(file)}`, indexHref: '../index.html' });
      entries.push({ name: basename(file), href: `${folder}/index.html`, thumb: `${folder}/${written.files.overview}`, explanation: e });
      if (o.json) continue;
      const gau = e.gau.map((g) => `${g.name} top ${g.top.join(',')}`).join('; ');
      console.log(`${file} -> ${written.html} (attention ${e.fpa.attention.width}x${e.fpa.attention.height}, ${e.fpa.stats.min.toFixed(3)}..${e.fpa.stats.max.toFixed(3)}; ${gau})`);
    }
    const index = await writeExplanationIndex(out, entries, { title: 'Where PAN looks', classes, colors });
    if (o.json) {
      console.log(JSON.stringify(entries.map((en) => ({
        input: en.name, page: join(out, en.href), attention: { width: en.explanation.fpa.attention.width, height: en.explanation.fpa.attention.height, ...en.explanation.fpa.stats },
        gau: en.explanation.gau.map((g) => ({ name: g.name, top: g.top, weights: g.top.map((i) => g.weights[i]) })),
      }))));
    } else {
      console.log(`${entries.length} image(s) explained; open ${index}`);
    }
  } finally {
    model.dispose();
  }
}

/** A folder name from a file stem: safe characters, unique among those already used. */
function uniqueName(stem: string, used: Set<string>): string {
  const base = stem.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 60) || 'image';
  let name = base;
  for (let i = 2; used.has(name) || name === 'index.html'; i++) name = `${base}-${i}`;
  used.add(name);
  return name;
}
