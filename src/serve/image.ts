// Decoding an uploaded image, with its size checked from the header before any pixel is decoded.
import sharp from 'sharp';
import { type RgbImage, toRgb } from '../data/decode.js';
import { HttpError } from './http.js';

/** Limits of {@link decodeUploadedImage}. */
export interface DecodeLimits {
  /** Largest side, pixels (422 above). */
  maxSide: number;
  /** Largest width x height (413 above). Default: maxSide squared. */
  maxPixels?: number;
}

// The formats sharp may decode here; upload.ts sniffs the same three from the bytes first.
const FORMATS = new Set(['png', 'jpeg', 'webp']);

const mp = (n: number): string => `${(n / 1e6).toFixed(1)} MP`;

/**
 * Decodes image bytes with panseg's decodeImage rule (toRgb: 8-bit sRGB, alpha dropped, grey expanded, EXIF
 * orientation applied: a phone photo comes out upright), so the server segments the same pixels as `panseg predict`. The header is read
 * first (sharp's metadata does not decode pixels), so an oversized image costs nothing.
 * @throws HttpError 413 over `maxPixels`, 422 when a side exceeds `maxSide`, 415 for a format other than
 *   PNG, JPEG or WebP, 400 when the bytes do not decode (truncated, corrupt)
 */
export async function decodeUploadedImage(bytes: Buffer, limits: DecodeLimits | number): Promise<RgbImage> {
  const { maxSide, maxPixels = maxSide * maxSide } = typeof limits === 'number' ? { maxSide: limits } : limits;
  let width: number | undefined;
  let height: number | undefined;
  let format: string | undefined;
  let orientation: number | undefined;
  try {
    ({ width, height, format, orientation } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch (e) {
    throw undecodable(e);
  }
  if (!format || !FORMATS.has(format)) {
    throw new HttpError(415, 'unsupported_image_format', `the upload decodes as ${format ?? 'an unknown format'}; send a PNG, JPEG or WebP file`);
  }
  if (!width || !height) throw new HttpError(400, 'bad_image', 'the image has no width or height');
  if (width > maxSide || height > maxSide) {
    throw new HttpError(422, 'image_too_large', `the image is ${width}x${height}; the server takes at most ${maxSide}x${maxSide} pixels; downscale it first`);
  }
  if (width * height > maxPixels) {
    throw new HttpError(413, 'too_many_pixels', `the image is ${width}x${height} (${mp(width * height)}), over this server's limit of ${mp(maxPixels)} (${maxPixels} pixels); downscale it first, or start the server with a larger --max-pixels`);
  }
  try {
    // pages: 1 decodes the first frame of an animated WebP only; failOn 'truncated' refuses cut-off files.
    const img = await toRgb(sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated', pages: 1 }));
    // EXIF orientations 5 to 8 turn the image a quarter: it comes out height x width.
    const [w, h] = orientation !== undefined && orientation >= 5 ? [height, width] : [width, height];
    if (img.width !== w || img.height !== h) throw new Error(`decoded to ${img.width}x${img.height}, not the ${w}x${h} of the header`);
    return img;
  } catch (e) {
    throw undecodable(e);
  }
}

function undecodable(e: unknown): HttpError {
  const why = String((e as Error)?.message ?? e).split('\n')[0].replace(/^Input buffer /, '');
  return new HttpError(400, 'bad_image', `cannot decode the image (${why}); send a complete PNG, JPEG or WebP file`);
}

/**
 * Blocks every libvips loader except the PNG, JPEG and WebP buffer loaders, for the whole process (sharp.block).
 * `panseg serve` calls it, as its process only decodes uploads; a program embedding startServer may call it too,
 * if nothing else in it needs other formats. The byte sniffing of the uploads refuses other formats either way.
 */
export function restrictDecoders(): void {
  sharp.block({ operation: ['VipsForeignLoad'] });
  sharp.unblock({ operation: ['VipsForeignLoadPngBuffer', 'VipsForeignLoadJpegBuffer', 'VipsForeignLoadWebpBuffer'] });
}
