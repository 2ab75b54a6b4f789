// Reading an uploaded image from a request: a raw body with an image content type, or the first
// file of a multipart/form-data form. Enforces the size limit while reading and checks types.
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { formatBytes, HttpError } from './http.js';

/** The content types /api/segment accepts. */
export const IMAGE_TYPES: readonly string[] = Object.freeze(['image/png', 'image/jpeg', 'image/webp']);

/** An uploaded image, before decoding. */
export interface Upload {
  bytes: Buffer;
  /** The declared type (one of {@link IMAGE_TYPES}). */
  contentType: string;
  /** The form's file name, for multipart uploads. */
  filename?: string;
}

// Room for the multipart boundaries and part headers around the file.
const MULTIPART_OVERHEAD = 64 * 1024;

/** The media type of a Content-Type header, lower-cased, without parameters ('' when absent). */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0].trim().toLowerCase();
}

/** The image type the bytes start with (PNG, JPEG or WebP signature), or null. */
export function sniffImageType(b: Uint8Array): string | null {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'image/webp';
  return null;
}

const ascii = (b: Uint8Array, from: number, to: number): string => String.fromCharCode(...b.subarray(from, to));

/** What refused bytes look like, for the 415 message: 'GIF', 'TIFF', 'SVG', ... or 'not a known image format'. */
export function describeBytes(b: Uint8Array): string {
  const head = ascii(b, 0, 16);
  if (head.startsWith('GIF8')) return 'GIF';
  if (head.startsWith('II*\0') || head.startsWith('MM\0*')) return 'TIFF';
  if (head.startsWith('BM')) return 'BMP';
  if (head.startsWith('%PDF')) return 'PDF';
  if (ascii(b, 4, 8) === 'ftyp') return 'HEIF/AVIF';
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0x0a) return 'JPEG XL';
  if (head.startsWith('\0\0\0\x0cJXL')) return 'JPEG XL';
  const text = Buffer.from(b.subarray(0, 512)).toString('latin1').replace(/^\uFEFF/, '').trimStart().toLowerCase();
  if (text.startsWith('<svg') || (text.startsWith('<') && text.includes('<svg'))) return 'SVG';
  if (text.startsWith('<')) return 'XML or HTML';
  if (b.length >= 4 && b[0] === 0x89 && ascii(b, 1, 4) === 'PNG') return 'a PNG with a damaged signature';
  return 'not a known image format';
}

function tooLarge(received: string, maxBytes: number): HttpError {
  return new HttpError(413, 'upload_too_large', `the upload is ${received}, over the limit of ${formatBytes(maxBytes)}; send a smaller or more compressed image`);
}

function unsupported(type: string): HttpError {
  const got = type ? `'${type}'` : 'no Content-Type';
  return new HttpError(415, 'unsupported_media_type', `expected an image (${IMAGE_TYPES.join(', ')}) as the request body, or a multipart/form-data form with an image file, but received ${got}`);
}

function wrongBytes(declared: string, bytes: Uint8Array): HttpError {
  const label = declared ? `labelled ${declared}` : 'unlabelled';
  return new HttpError(415, 'unsupported_image_format', `the upload is ${label} but its bytes are ${describeBytes(bytes)}; send a PNG, JPEG or WebP file`);
}

function timedOut(ms: number): HttpError {
  // Connection: close: the rest of a stalled body is not worth waiting for.
  return new HttpError(408, 'upload_timeout', `the upload did not arrive within ${+(ms / 1000).toFixed(1)} s; send it over a faster link, or start the server with a larger --body-timeout`, { Connection: 'close' });
}

/** Limits of {@link readUpload}. */
export interface UploadLimits {
  /** Largest image, bytes. */
  maxBytes: number;
  /** The whole body must arrive within this time, ms (a slow or stalled body gets 408). Default: no limit. */
  timeoutMs?: number;
}

/**
 * Reads the uploaded image of a POST: a raw body typed image/png, image/jpeg or image/webp, or the
 * first file of a multipart/form-data form. The bytes decide the type: they must start with a PNG, JPEG
 * or WebP signature whatever the label says, so no other decoder (SVG, TIFF, GIF, ...) is reached.
 * @throws HttpError 413 over `maxBytes` (checked against Content-Length before reading, and while reading),
 *   415 for other content types or bytes that are not PNG, JPEG or WebP, 408 when the body is slower than
 *   `timeoutMs`, 400 for an empty body or a form without a file
 */
export async function readUpload(req: IncomingMessage, limits: UploadLimits | number): Promise<Upload> {
  const { maxBytes, timeoutMs } = typeof limits === 'number' ? { maxBytes: limits, timeoutMs: undefined } : limits;
  const type = mediaType(req.headers['content-type']);
  const multipart = type === 'multipart/form-data';
  if (!multipart && !IMAGE_TYPES.includes(type)) throw unsupported(type);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes + (multipart ? MULTIPART_OVERHEAD : 0)) throw tooLarge(formatBytes(declared), maxBytes);
  let timer: NodeJS.Timeout | undefined;
  const deadline = timeoutMs === undefined ? null : new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut(timeoutMs)), timeoutMs);
  });
  const reading = multipart ? readMultipart(req, maxBytes) : readBody(req, maxBytes).then((bytes) => ({ bytes, contentType: type } as Upload));
  let upload: Upload;
  try {
    upload = await (deadline ? Promise.race([reading, deadline]) : reading);
  } catch (e) {
    // Stop reading: a timed-out or refused body is dropped, not buffered.
    req.unpipe();
    req.pause();
    reading.catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
  if (upload.bytes.length === 0) throw new HttpError(400, 'empty_upload', 'the uploaded image is empty (0 bytes)');
  const sniffed = sniffImageType(upload.bytes);
  if (!sniffed) throw wrongBytes(upload.contentType, upload.bytes);
  return { ...upload, contentType: sniffed };
}

function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const fail = (e: Error): void => {
      if (done) return;
      done = true;
      chunks.length = 0;
      reject(e);
    };
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > maxBytes) fail(tooLarge(`over ${formatBytes(maxBytes)}`, maxBytes));
      else chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (e) => fail(new HttpError(400, 'bad_request', `the upload was interrupted: ${e.message}`)));
    req.on('aborted', () => fail(new HttpError(400, 'bad_request', 'the upload was interrupted')));
  });
}

function readMultipart(req: IncomingMessage, maxBytes: number): Promise<Upload> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxBytes, fields: 32, parts: 64, fieldSize: 64 * 1024, headerPairs: 32 } });
    } catch (e) {
      reject(new HttpError(400, 'bad_multipart', `cannot read the multipart form: ${(e as Error).message}`));
      return;
    }
    let settled = false;
    let file: Upload | null = null;
    let pending: Promise<void> = Promise.resolve();
    const fail = (e: HttpError): void => {
      if (settled) return;
      settled = true;
      req.unpipe(bb);
      req.resume();
      reject(e);
    };
    bb.on('file', (_field, stream, info) => {
      const chunks: Buffer[] = [];
      pending = new Promise<void>((done) => {
        stream.on('data', (c: Buffer) => { if (!settled) chunks.push(c); });
        stream.on('limit', () => fail(tooLarge(`over ${formatBytes(maxBytes)}`, maxBytes)));
        stream.on('error', () => done());
        stream.on('end', () => {
          if (!settled) file = { bytes: Buffer.concat(chunks), contentType: info.mimeType.toLowerCase(), filename: info.filename };
          done();
        });
      });
    });
    bb.on('error', (e) => fail(new HttpError(400, 'bad_multipart', `cannot read the multipart form: ${(e as Error).message}`)));
    bb.on('close', () => {
      void pending.then(() => {
        if (settled) return;
        if (!file) fail(new HttpError(400, 'no_file', 'the multipart form has no file; send the image as a file field (e.g. curl -F image=@photo.jpg)'));
        else {
          settled = true;
          resolve(file);
        }
      });
    });
    req.on('aborted', () => fail(new HttpError(400, 'bad_request', 'the upload was interrupted')));
    req.pipe(bb);
  });
}
