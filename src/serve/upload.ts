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
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 12 && String.fromCharCode(...b.subarray(0, 4)) === 'RIFF' && String.fromCharCode(...b.subarray(8, 12)) === 'WEBP') return 'image/webp';
  return null;
}

function tooLarge(received: string, maxBytes: number): HttpError {
  return new HttpError(413, 'upload_too_large', `the upload is ${received}, over the limit of ${formatBytes(maxBytes)}; send a smaller or more compressed image`);
}

function unsupported(type: string): HttpError {
  const got = type ? `'${type}'` : 'no Content-Type';
  return new HttpError(415, 'unsupported_media_type', `expected an image (${IMAGE_TYPES.join(', ')}) as the request body, or a multipart/form-data form with an image file, but received ${got}`);
}

/**
 * Reads the uploaded image of a POST: a raw body typed image/png, image/jpeg or image/webp, or the
 * first file of a multipart/form-data form (its part type, or when that is generic, its signature,
 * must be an accepted image type).
 * @throws HttpError 413 over `maxBytes` (checked against Content-Length before reading, and while reading),
 *   415 for other content types, 400 for an empty body or a form without a file
 */
export async function readUpload(req: IncomingMessage, maxBytes: number): Promise<Upload> {
  const type = mediaType(req.headers['content-type']);
  const multipart = type === 'multipart/form-data';
  if (!multipart && !IMAGE_TYPES.includes(type)) throw unsupported(type);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes + (multipart ? MULTIPART_OVERHEAD : 0)) throw tooLarge(formatBytes(declared), maxBytes);
  const upload = multipart ? await readMultipart(req, maxBytes) : { bytes: await readBody(req, maxBytes), contentType: type };
  if (upload.bytes.length === 0) throw new HttpError(400, 'empty_upload', 'the uploaded image is empty (0 bytes)');
  return upload;
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
      bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxBytes, fields: 32, parts: 64, fieldSize: 64 * 1024 } });
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
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('limit', () => fail(tooLarge(`over ${formatBytes(maxBytes)}`, maxBytes)));
        stream.on('end', () => {
          if (settled) return done();
          const bytes = Buffer.concat(chunks);
          const declared = info.mimeType.toLowerCase();
          const contentType = IMAGE_TYPES.includes(declared) ? declared : sniffImageType(bytes);
          if (!contentType) fail(unsupported(declared));
          else file = { bytes, contentType, filename: info.filename };
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
