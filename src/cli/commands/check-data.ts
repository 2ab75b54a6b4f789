import { type DatasetReport, inspectDataset } from '../../data/index.js';
import { ProgressBar } from '../../common/progress.js';
import { type CommandSpec, UsageError } from '../args.js';
import { openDatasetFromFlags } from '../data-flags.js';
import { DATA_FLAGS } from '../flags.js';

export const spec: CommandSpec = {
  name: 'check-data',
  summary: 'check a dataset before training: counts, image sizes, mask values, class shares, unmatched and unreadable files',
  usage: 'panseg check-data --dataset <layout> --data-root DIR [--split NAME] [--json]',
  flags: [
    ...DATA_FLAGS,
    { name: 'json', type: 'boolean', desc: 'print the report as one JSON object' },
    { name: 'concurrency', type: 'int', desc: 'files decoded at once', default: 4 },
  ],
  examples: [
    'panseg check-data --dataset folder --data-root data/cats',
    'panseg check-data --dataset voc --data-root VOCdevkit/VOC2012 --split val --json',
  ],
};

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** The report as aligned text lines. */
export function reportLines(r: DatasetReport, limit = 10): string[] {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${k.padEnd(22)}${v}`);
  const few = (list: string[]) => `${list.slice(0, 3).join(', ')}${list.length > 3 ? `, ... (${list.length})` : ''}`;
  lines.push(`${r.dataset} dataset at ${r.root}, split ${r.split}`);
  row('samples', `${r.samples} image/mask pairs, ${r.classes.length} classes, ignore index ${r.ignoreIndex}`);
  row('images without masks', r.imagesWithoutMasks.length ? `${r.imagesWithoutMasks.length}: ${few(r.imagesWithoutMasks)}` : '0');
  row('masks without images', r.masksWithoutImages.length ? `${r.masksWithoutImages.length}: ${few(r.masksWithoutImages)}` : '0');
  row('problems', String(r.problems.length));
  const s = r.sizes;
  if (s.distinct) {
    row('image sizes', `${s.distinct} distinct; smallest ${s.minWidth}x${s.minHeight}, largest ${s.maxWidth}x${s.maxHeight}`);
    const top = s.common[0]?.count ?? 1;
    for (const c of s.common.slice(0, 5)) row('', `${c.size.padEnd(12)}${String(c.count).padStart(7)}  ${'#'.repeat(Math.max(1, Math.round((20 * c.count) / top)))}`);
  }
  const values = Object.entries(r.maskValues);
  const total = values.reduce((a, [, n]) => a + n, 0) || 1;
  row('mask values (stored)', values.slice(0, 12).map(([v, n]) => `${v} ${pct(n / total)}`).join(', ') + (values.length > 12 ? `, ... (${values.length} values)` : ''));
  lines.push('', `${'class'.padEnd(24)}${'pixels'.padStart(14)}${'share'.padStart(8)}`);
  const w = 24;
  r.classes.forEach((c, i) => lines.push(`${`${i} ${c}`.slice(0, w - 1).padEnd(w)}${String(r.classPixels[i]).padStart(14)}${pct(r.classShare[i]).padStart(8)}${r.classPixels[i] ? '' : '  (absent)'}`));
  lines.push(`${`${r.ignoreIndex} ignored`.padEnd(w)}${String(r.ignoredPixels).padStart(14)}`);
  if (r.problems.length) {
    lines.push('', 'problems:');
    for (const p of r.problems.slice(0, limit)) lines.push(`  ${p.id}: ${p.message}`);
    if (r.problems.length > limit) lines.push(`  ... and ${r.problems.length - limit} more (--json lists all)`);
  }
  return lines;
}

export async function run(o: Record<string, unknown>): Promise<void> {
  if ((o.concurrency as number) < 1) throw new UsageError(`--concurrency expects a positive integer, got ${String(o.concurrency)}`);
  const defaultSplit = o.splitFile === undefined && o.dataset === 'folder' ? 'all' : 'train';
  const ds = openDatasetFromFlags(o, 'check-data', defaultSplit, o.json ? () => {} : console.error, { allowUnmatched: true });
  const bar = new ProgressBar('check-data', ds.length, { silent: Boolean(o.json) });
  const r = await inspectDataset(ds, { concurrency: o.concurrency as number, onProgress: (d) => bar.update(d) });
  bar.finish();
  if (o.json) console.log(JSON.stringify(r));
  else for (const l of reportLines(r)) console.log(l);
  const bad = r.problems.length + r.imagesWithoutMasks.length + r.masksWithoutImages.length;
  if (bad) {
    throw new UsageError(`found ${r.problems.length} problem(s), ${r.imagesWithoutMasks.length} image(s) without masks and ${r.masksWithoutImages.length} mask(s) without images; fix or remove those files before training`);
  }
}
