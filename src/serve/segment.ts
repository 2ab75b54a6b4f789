// POST /api/segment: admit (503 when full) -> upload (sniffed, timed) -> decode (pixel budget from the header) -> queue (the thread segments and encodes) -> palette PNG mask + per-class areas.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RGB } from '../common/palette.js';
import type { ClassArea } from '../eval/visualize.js';
import { asciiJson, HttpError, sendJson } from './http.js';
import { decodeUploadedImage } from './image.js';
import type { ServerContext } from './server.js';
import { readUpload, type Upload } from './upload.js';

/** The statistics of one segmentation (the JSON body, less the mask; or the `X-Panseg-Stats` header). */
export interface SegmentStats {
  width: number;
  height: number;
  classes: string[];
  colors: RGB[];
  /** Per-class pixels and percent of the image, in class order. */
  areas: ClassArea[];
  /** Inference time in the model, ms (as `panseg predict` reports). */
  ms: number;
  /** Time waiting for the inference thread, ms. */
  queuedMs: number;
  /** The whole request on the server (upload, decode, queue, inference, encoding), ms. */
  totalMs: number;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

export async function handleSegment(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const t0 = performance.now();
  const format = new URL(req.url ?? '/', 'http://localhost').searchParams.get('format') ?? 'json';
  if (format !== 'json' && format !== 'png') throw new HttpError(400, 'bad_format', `expected format=json or format=png but received format=${format}`);
  // A place in the queue first: a full server answers 503 before reading or decoding anything.
  const release = ctx.queue.admit();
  res.on('close', release);
  const { opts } = ctx;
  let upload: Upload | null = await readUpload(req, { maxBytes: opts.maxUploadBytes, timeoutMs: opts.bodyTimeoutMs });
  const tRead = performance.now();
  // From here the client waits on us: the idle timeout leaves its socket alone.
  const socket = req.socket;
  ctx.awaiting.add(socket);
  res.on('close', () => ctx.awaiting.delete(socket));
  const image = await decodeUploadedImage(upload.bytes, { maxSide: opts.maxImageSide, maxPixels: opts.maxPixels });
  upload = null; // the encoded bytes are not needed any more
  const tDecode = performance.now();
  // Drop the job if the client leaves while it waits.
  const gone = new AbortController();
  res.on('close', () => { if (!res.writableFinished) gone.abort(); });
  const r = await ctx.queue.segment(image, gone.signal, true);
  const { classes, colors } = ctx.queue.info;
  const mask = r.mask;
  const stats: SegmentStats = {
    width: r.width, height: r.height, classes, colors, areas: r.areas,
    ms: round1(r.ms), queuedMs: round1(r.queuedMs), totalMs: round1(performance.now() - t0),
  };
  const timing = `upload;dur=${round1(tRead - t0)}, decode;dur=${round1(tDecode - tRead)}, queue;dur=${stats.queuedMs}, inference;dur=${stats.ms}`;
  if (format === 'png') {
    res.writeHead(200, {
      'Content-Type': 'image/png', 'Content-Length': String(mask.length), 'Cache-Control': 'no-store',
      'X-Panseg-Stats': asciiJson(stats), 'Server-Timing': timing,
    });
    res.end(mask);
    return;
  }
  sendJson(res, 200, { ...stats, mask: mask.toString('base64') }, { 'Server-Timing': timing });
}
