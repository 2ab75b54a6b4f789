import { isIP } from 'node:net';
import { DEFAULT_MAX_PIXELS, restrictDecoders, startServer } from '../../serve/index.js';
import { type CommandSpec, required, UsageError } from '../args.js';
import { SIZE_FLAGS, sizeOptions } from '../flags.js';

export const spec: CommandSpec = {
  name: 'serve',
  summary: 'serve a web page that segments images in the browser, and POST /api/segment',
  usage: 'panseg serve --model DIR [--port 8080] [--host 127.0.0.1] [--onnx model.onnx] [options]',
  flags: [
    { name: 'model', type: 'string', desc: 'model directory, or a training run folder (its checkpoints/best); the API runs it on libtorch' },
    { name: 'onnx', type: 'string', desc: "exported model for the page (default: export --model on start, cached as DIR/model.onnx)" },
    { name: 'port', type: 'int', desc: 'port (0 picks a free one)', default: 8080 },
    { name: 'host', type: 'string', desc: 'address to listen on; 0.0.0.0 opens it to the network', default: '127.0.0.1' },
    { name: 'export-size', type: 'int', desc: 'export at this fixed square size instead of any size' },
    { name: 'opset', type: 'int', desc: 'ONNX opset of the export', default: 17 },
    { name: 'max-upload-mb', type: 'number', desc: 'largest upload /api/segment accepts, MB', default: 10 },
    { name: 'max-image-side', type: 'int', desc: 'largest image side /api/segment accepts, pixels', default: 4096 },
    { name: 'max-pixels', type: 'int', desc: 'largest image /api/segment segments, width x height, read from its header before decoding (12 MP photos fit)', default: DEFAULT_MAX_PIXELS },
    { name: 'max-queue', type: 'int', desc: 'uploads in progress or queued before /api/segment answers 503', default: 32 },
    { name: 'body-timeout', type: 'number', desc: 'seconds an upload may take to arrive (then 408)', default: 60 },
    { name: 'idle-timeout', type: 'number', desc: 'seconds a connection may stay silent (not while its image is segmented)', default: 30 },
    { name: 'headers-timeout', type: 'number', desc: 'seconds the request headers may take to arrive', default: 15 },
    { name: 'max-connections', type: 'int', desc: 'open connections at most; more are closed on arrival', default: 256 },
    { name: 'allowed-hosts', type: 'list', desc: "Host names to accept besides localhost and IP addresses (DNS rebinding guard): name, .domain for subdomains, or '*'" },
    { name: 'cors', type: 'list', desc: "origins whose pages may call the API (https://app.example), or '*'; others' POSTs get 403" },
    { name: 'threads', type: 'int', desc: 'libtorch threads for the API (default: all cores)' },
    ...SIZE_FLAGS,
    { name: 'quiet', type: 'boolean', desc: 'do not log requests' },
  ],
  examples: [
    'panseg serve --model runs/voc/checkpoints/best',
    'panseg serve --model runs/voc/checkpoints/best --onnx pan.onnx --port 3000',
    "curl -s --data-binary @photo.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8080/api/segment",
  ],
};

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export async function run(o: Record<string, unknown>): Promise<void> {
  const model = required<string>(o, 'model', 'model', 'serve');
  const mb = o.maxUploadMb as number;
  if (!(mb > 0)) throw new UsageError(`--max-upload-mb expects a positive number, got ${mb}`);
  const host = o.host as string;
  if (!LOOPBACK.has(host) && !isIP(host) && !/^[a-z0-9.-]+$/i.test(host)) throw new UsageError(`--host expects an IP address or host name, got '${host}'`);
  const size = o.exportSize as number | undefined;
  const seconds = (flag: string, key: string): number => {
    const s = o[key] as number;
    if (!(s > 0) || s > 86_400) throw new UsageError(`--${flag} expects seconds in (0, 86400], got ${s}`);
    return Math.round(s * 1000);
  };
  for (const [flag, key] of [['max-pixels', 'maxPixels'], ['max-queue', 'maxQueue'], ['max-connections', 'maxConnections']]) {
    if (!((o[key] as number) >= 1)) throw new UsageError(`--${flag} expects a positive integer, got ${o[key] as number}`);
  }
  const timeouts = { bodyTimeoutMs: seconds('body-timeout', 'bodyTimeout'), idleTimeoutMs: seconds('idle-timeout', 'idleTimeout'), headersTimeoutMs: seconds('headers-timeout', 'headersTimeout') };
  const allowedHosts = (o.allowedHosts as string[] | undefined) ?? [];
  for (const h of allowedHosts) if (h !== '*' && !/^\.?[a-z0-9_.-]+$/i.test(h)) throw new UsageError(`--allowed-hosts expects host names (example.com, .example.com for subdomains, or '*'), got '${h}'`);
  const cors = (o.cors as string[] | undefined) ?? [];
  for (const c of cors) if (c !== '*' && !/^https?:\/\/[^/\s]+$/i.test(c)) throw new UsageError(`--cors expects origins like https://app.example (scheme and host, no path) or '*', got '${c}'`);
  // This process only decodes uploads: libvips' other loaders (SVG, TIFF, GIF, PDF, ...) are switched off.
  restrictDecoders();
  const log = o.quiet ? () => {} : (line: string) => console.log(line);
  const server = await startServer({
    model, onnx: o.onnx as string | undefined, port: o.port as number, host,
    maxUploadBytes: Math.round(mb * 1024 * 1024), maxImageSide: o.maxImageSide as number, threads: o.threads as number | undefined,
    inference: sizeOptions(o), maxPixels: o.maxPixels as number, maxQueue: o.maxQueue as number, maxConnections: o.maxConnections as number, ...timeouts, allowedHosts, cors,
    export: { opset: o.opset as number, ...(size !== undefined ? { dynamicSize: false, height: size, width: size } : {}) },
    log: (line) => (line.startsWith('serve:') ? console.log(line) : log(line)),
  });
  const m = server.info;
  console.log(`panseg serve: ${m.architecture}-${m.encoder}, ${m.classes.length} classes, on ${server.url}`);
  console.log(server.onnx ? `  page model: ${server.onnx.path} (${(server.onnx.bytes / 1e6).toFixed(1)} MB)` : '  page model: none (the page segments on the server)');
  console.log(`  API: POST ${server.url}api/segment (image/png, image/jpeg or image/webp body, or a multipart form)`);
  console.log(`  health: GET ${server.url}healthz`);
  if (!LOOPBACK.has(host)) console.log(`  note: listening on ${host}: other machines can reach this server; it answers Host names localhost, IP addresses${allowedHosts.length ? ` and ${allowedHosts.join(', ')}` : ''} (add yours with --allowed-hosts)`);
  console.log('  Ctrl+C stops it');
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        console.log(`panseg serve: ${signal} again, exiting now`);
        process.exit(130);
      }
      stopping = true;
      console.log(`panseg serve: ${signal}, finishing running requests…`);
      void server.close().then(() => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        console.log('panseg serve: stopped');
        resolve();
      });
    };
    const onInt = (): void => stop('SIGINT');
    const onTerm = (): void => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
}
