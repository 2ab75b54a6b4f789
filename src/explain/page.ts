// The HTML around the pictures: one page per image that walks a student through PAN's attention,
// an index over several images, and a compact section for the training report.
import type { RGB } from '../common/palette.js';
import { escapeXml, formatNumber } from '../eval/charts.js';
import { BASE_CSS, htmlPage, type PageSection } from '../eval/html-page.js';
import { classAreas } from '../eval/visualize.js';
import type { Explanation, GauCapture, Stats } from './capture.js';
import type { ExplanationFiles } from './pictures.js';

const CSS = `${BASE_CSS}body{font-size:15px;line-height:1.5}
figure{margin:8px 0}
figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:13px;color:#555}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.explain{background:#f3f7fc;border-left:3px solid #1f5fa8;padding:8px 12px;margin:8px 0;font-size:14px}
.muted{color:#777}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #999;vertical-align:middle;margin-right:4px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:10px}
.card img{width:100%;height:auto;border:1px solid #ddd}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
`;

function page(title: string, subtitle: string, sections: PageSection[]): string {
  return htmlPage({ title, subtitle, css: CSS, generator: 'panseg explain', sections });
}

const n = (x: number): string => escapeXml(formatNumber(x));
const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');

function img(href: string, alt: string, caption?: string): string {
  return `<figure><img src="${escapeXml(href)}" alt="${escapeXml(alt)}" loading="lazy">${caption ? `<figcaption>${caption}</figcaption>` : ''}</figure>`;
}

function swatch(c: RGB | undefined): string {
  const [r, g, b] = c ?? [128, 128, 128];
  return `<span class="sw" style="background:rgb(${r | 0},${g | 0},${b | 0})"></span>`;
}

function statsRow(name: string, size: string, s: Stats, extra = ''): string {
  return `<tr><td>${name}</td><td>${escapeXml(size)}</td><td class="num">${n(s.min)}</td><td class="num">${n(s.mean)}</td><td class="num">${n(s.max)}</td><td class="num">${n(s.std)}</td>${extra}</tr>`;
}

/** The classes the prediction covers, largest first, with colours and shares. */
export function predictionLegend(e: Explanation, classes: readonly string[], colors: readonly RGB[]): string {
  const names = classes.length ? classes : Array.from({ length: Math.max(2, e.model.classes) }, (_, i) => `class ${i}`);
  const areas = classAreas(e.labels, names).filter((a) => a.pixels > 0).sort((a, b) => b.pixels - a.pixels);
  return `<div class="legend">${areas.map((a) => `<span>${swatch(colors[a.index])}${escapeXml(a.class)} ${a.percent.toFixed(1)}%</span>`).join('')}</div>`;
}

function gauHtml(g: GauCapture, f: { svg: string } | undefined): string {
  const c = g.weights.length;
  const hasParts = g.lowLevel.length === c;
  const rows = g.top.map((i) => `<tr><td class="num">${i}</td><td class="num">${n(g.weights[i])}</td>${hasParts ? `<td class="num">${n(g.lowLevel[i])}</td><td class="num">${n(g.gated[i])}</td>` : ''}</tr>`).join('');
  const head = `<tr><th class="num">channel</th><th class="num">weight</th>${hasParts ? '<th class="num">mean |low-level|</th><th class="num">mean |gated|</th>' : ''}</tr>`;
  // The channels that actually pass the most detail can differ from those with the largest weights.
  let passing = '';
  if (hasParts) {
    const byGated = g.gated.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0]).slice(0, g.top.length).map(([, i]) => i);
    passing = `<p>Channels passing the most detail (weight x feature strength): ${byGated.map((i) => `<b>${i}</b>`).join(', ')}.`
      + ` Gated detail is <b>${pct(g.detailShare)}</b> of this block's output (by mean magnitude); the rest is the upsampled deeper feature.`
      + ` Global context strength (norm of the pooled deeper feature): ${n(g.contextNorm)}.</p>`;
  }
  return `<h3>${escapeXml(g.name)}${Number.isFinite(g.stride) ? ` <span class="muted">skip feature at 1/${Math.round(g.stride)} of the input</span>` : ''}</h3>
<div class="row">${f ? img(f.svg, `${g.name} channel weights`) : ''}<div>
<p>Weights: min ${n(g.stats.min)}, mean ${n(g.stats.mean)}, max ${n(g.stats.max)}, spread (std) ${n(g.stats.std)}.
<b>${g.stats.closed}</b> of ${c} channels are nearly closed (&lt; 0.1), <b>${g.stats.open}</b> nearly open (&gt; 0.9).</p>
<table>${head}${rows}</table>${passing}</div></div>`;
}

/** Options of {@link explanationPageHtml}. */
export interface PageOptions {
  title?: string;
  classes: readonly string[];
  colors: readonly RGB[];
  /** A link back to an index page. */
  indexHref?: string;
}

/** The per-image page: every picture with a short explanation of what it shows. */
export function explanationPageHtml(e: Explanation, files: ExplanationFiles, o: PageOptions): string {
  const os = e.model.outputStride;
  const f = e.fpa;
  const [bw, bh] = [f.attention.width, f.attention.height];
  const sections: { id: string; title: string; html: string }[] = [];
  const back = o.indexHref ? `<p><a href="${escapeXml(o.indexHref)}">&larr; all images</a></p>` : '';
  sections.push({ id: 'overview', title: 'At a glance', html: `${back}${img(files.overview, 'image, FPA attention, prediction', 'Left: the image. Middle: where the FPA block puts its weight (red = high, blue = low). Right: the prediction.')}
${predictionLegend(e, o.classes, o.colors)}
<div class="explain"><b>PAN in one paragraph.</b> A ResNet encoder turns the image into features at 1/2 … 1/${os} of its size.
The deepest feature (one cell per ${os}x${os} pixels) goes through <b>Feature Pyramid Attention (FPA)</b>, which decides <i>where</i> to look:
it computes one weight per cell and multiplies the feature by it. Then <b>Global Attention Upsample (GAU)</b> blocks climb back to 1/4 of the image:
each adds a shallower, sharper feature, but first scales its channels by weights computed from the whole image: they decide <i>which kinds</i> of detail to use.
A 3x3 conv turns the result into class scores, upsampled to the image.</div>` });

  sections.push({ id: 'fpa', title: '1. FPA: where the model looks', html: `<div class="row">${img(files.attention, 'FPA attention over the image')}<div>
<div class="explain">This is the <b>spatial attention map</b> of the FPA block: ${bw}x${bh} numbers, one per ${os}x${os}-pixel cell of the (padded) input, smoothly upsampled here.
FPA's output is <code>attention x mid + global</code>: every channel of the projected feature <code>mid</code> is multiplied by this one number per cell.
High values (red) amplify the feature there, low values (blue) damp it. The values are sums of ReLU outputs, so they are &ge; 0 but not probabilities:
read the colour bar for the real range. In a trained model high values often sit on or around the objects it segments; high values along the image border
are common too (the encoder sees zero padding there), and a model early in training may look almost anywhere.</div>
<table><tr><th></th><th>cells</th><th class="num">min</th><th class="num">mean</th><th class="num">max</th><th class="num">std</th></tr>
${statsRow('attention', `${bw}x${bh}`, f.stats)}</table>
<p class="muted">A flat map (small std compared with the mean) means FPA treats the whole image alike; then the global branch and the GAUs do most of the work.</p>
</div></div>` });

  const [c1, c2, x3] = f.levels;
  sections.push({ id: 'pyramid', title: '2. The attention pyramid', html: `${img(files.pyramid, 'FPA pyramid levels')}
<div class="explain">How the map is built: FPA max-pools the deepest feature three times (to 1/2, 1/4 and 1/8 of its size) and convolves each level with a big kernel
(7x7, 5x5, then two 3x3), each down to <b>one channel</b>. Coarse levels see large context (a cell of down3 covers ${os * 8}x${os * 8} pixels), fine levels keep position.
The levels are then added from coarse to fine, upsampling in between: <code>attention = up(up(down3 + conv2) + conv1)</code>. All panels share one colour range,
so you can see which level contributes most. On small images the coarse levels are only a few cells (down3 can be a single value, the same everywhere).</div>
<table><tr><th>level</th><th>cells</th><th class="num">min</th><th class="num">mean</th><th class="num">max</th><th class="num">std</th></tr>
${statsRow(`down3 (1/${os * 8}, drawn at 1/${os * 4})`, `${x3.width}x${x3.height}`, x3.stats)}
${statsRow(`conv2 (1/${os * 4})`, `${c2.width}x${c2.height}`, c2.stats)}
${statsRow(`conv1 (1/${os * 2})`, `${c1.width}x${c1.height}`, c1.stats)}
${statsRow(`sum = attention (1/${os})`, `${bw}x${bh}`, f.stats)}</table>` });

  sections.push({ id: 'branches', title: '3. Attention x mid + global', html: `${img(files.branches, 'mid norm, attention, attended feature')}
<div class="explain">Left: how strong the projected feature <code>mid</code> is at each cell (its length over the ${e.model.decoderChannels} channels).
Middle: the attention. Right: their product, what FPA passes on from each place. Where attention is high but the feature is weak, little survives, and the other way round.
Below: the <b>global branch</b>, an average of the whole feature map turned into ${e.model.decoderChannels} numbers that are added at every pixel: context about the whole scene, the same everywhere.
Here it is <b>${pct(f.globalShare)}</b> of FPA's output by magnitude (the attended local feature is the rest).</div>
${img(files.globalBranch.svg, 'global branch per channel')}` });

  const gauFiles = new Map(files.gau.map((g) => [g.name, g]));
  sections.push({ id: 'gau', title: '4. GAU: which channels pass', html: `<div class="explain">Each <b>Global Attention Upsample</b> block takes the deeper feature, averages it over the whole image into one vector,
and turns that (1x1 conv, BatchNorm, sigmoid) into <b>one weight in (0, 1) per channel</b>. The shallower feature (after a 3x3 conv) is multiplied by these weights
and added to the upsampled deeper feature: <code>out = up(deep) + conv(shallow) x weights</code>. A weight near 1 lets that channel's detail through, near 0 closes it.
The weights are the same at every pixel: the gate picks <i>which kinds</i> of detail suit this image (its objects, its scale), not <i>where</i>.
Bars in red are the ${e.gau[0]?.top.length ?? 0} channels with the largest weights.</div>
${e.gau.map((g) => gauHtml(g, gauFiles.get(g.name))).join('\n')}
${files.gauDetail ? `<h3>Where the gated detail goes</h3>${img(files.gauDetail, 'GAU detail maps', 'The strength of <code>conv(shallow) x weights</code> at each place, over the image. Shallow features respond to edges and texture, so in a trained model this often traces object outlines: it is what sharpens the coarse FPA result.')}` : ''}` });

  sections.push({ id: 'prediction', title: '5. Prediction', html: `<div class="row">${img(files.prediction, 'prediction', 'Predicted classes')}${img(files.predictionOverlay, 'prediction over the image', 'Over the image')}</div>
${predictionLegend(e, o.classes, o.colors)}
<div class="explain">Compare with section 1: objects the model finds usually sit under high attention. If a class is missed where attention is low,
FPA damped that region; if attention is high but the class is wrong, the features there were misread rather than ignored.</div>
<p class="muted">All numbers are in <code>attention.json</code> beside this page.</p>` });

  return page(o.title ?? 'Where PAN looks', `${e.model.encoderName}, output stride ${os}, ${e.model.decoderChannels} decoder channels, ${e.model.classes} classes; image ${e.image.width}x${e.image.height}, network input ${e.input.width}x${e.input.height}`, sections);
}

/** One image of an {@link explanationIndexHtml} page. */
export interface IndexEntry {
  name: string;
  /** The image's page, relative to the index. */
  href: string;
  /** Its overview picture, relative to the index. */
  thumb: string;
  explanation: Explanation;
}

/** The page listing every explained image with its overview and a few numbers. */
export function explanationIndexHtml(entries: readonly IndexEntry[], o: { title?: string; classes: readonly string[]; colors: readonly RGB[] }): string {
  const cards = entries.map((en) => {
    const e = en.explanation;
    return `<div class="card"><a href="${escapeXml(en.href)}"><img src="${escapeXml(en.thumb)}" alt="${escapeXml(en.name)}" loading="lazy"></a>
<p><a href="${escapeXml(en.href)}"><b>${escapeXml(en.name)}</b></a> <span class="muted">${e.image.width}x${e.image.height}</span><br>
attention ${n(e.fpa.stats.min)} … ${n(e.fpa.stats.max)}; global share ${pct(e.fpa.globalShare)}<br>
${e.gau.map((g) => `${escapeXml(g.name)} top ${g.top.join(', ')}`).join('; ')}</p>${predictionLegend(e, o.classes, o.colors)}</div>`;
  }).join('\n');
  const intro = `<div class="explain">Each card shows an image, the spatial attention of PAN's Feature Pyramid Attention block over it, and the prediction.
Open a card for the pyramid levels, the global branch and each GAU block's channel weights, with explanations.</div>`;
  return page(o.title ?? 'Where PAN looks', `${entries.length} image(s)`, [{ id: 'images', title: 'Images', html: `${intro}<div class="cards">${cards}</div>` }]);
}

/**
 * A compact HTML fragment (for the training report) showing each sample's attention pictures. It
 * styles itself inline, since the host page's CSS does not know these classes.
 * @param base prefix of the picture addresses (e.g. 'report/')
 */
export function attentionSectionHtml(items: readonly { id: string; files: Pick<ExplanationFiles, 'overview' | 'pyramid'>; explanation: Explanation }[], base = ''): string {
  const os = items[0]?.explanation.model.outputStride ?? 16;
  const fig = (href: string, alt: string): string => `<img src="${escapeXml(base + href)}" alt="${escapeXml(alt)}" loading="lazy" style="max-width:100%;height:auto;border:1px solid #ddd">`;
  const intro = `<p style="background:#f3f7fc;border-left:3px solid #1f5fa8;padding:8px 12px">Where the trained model looks. First picture of each row: the image,
the spatial attention map of the FPA block (one weight per ${os}x${os}-pixel cell, multiplied into the deepest feature; red = amplified, blue = damped) and the prediction.
Second: the attention pyramid it is built from, coarse to fine, at its real resolution. Below: the channels each GAU block lets through most (its sigmoid channel weights, in (0, 1)).
<code>panseg explain</code> draws the full set of pictures, with explanations.</p>`;
  const rows = items.map(({ id, files, explanation: e }) => `<h3>${escapeXml(id)}</h3><div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">${fig(files.overview, `${id} attention`)}${fig(files.pyramid, `${id} pyramid`)}</div>
<p class="muted">${e.gau.map((g) => `${escapeXml(g.name)}: top channels ${g.top.join(', ')} (weights ${g.top.map((i) => n(g.weights[i])).join(', ')}; ${g.stats.closed} of ${g.weights.length} nearly closed)`).join('<br>')}</p>`);
  return `${intro}\n${rows.join('\n')}`;
}
