// Decoding an uploaded image, with the dimension limit checked from the header before any pixel is decoded.
import sharp from 'sharp';
import type { RgbImage } from '../data/decode.js';
import { HttpError } from './http.js';

/**
 * Decodes image bytes as panseg's decodeImage does (8-bit sRGB, alpha dropped, grey expanded, EXIF
 * orientation not applied), so the server segments the same pixels as `panseg predict`.
 * @throws HttpError 422 when a side exceeds `maxSide`, 400 when the bytes do not decode (not an image, truncated, corrupt)
 */
export async function decodeUploadedImage(bytes: Buffer, maxSide: number): Promise<RgbImage> {
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes).metadata());
  } catch (e) {
    throw undecodable(e);
  }
  if (!width || !height) throw new HttpError(400, 'bad_image', 'the image has no width or height');
  if (width > maxSide || height > maxSide) {
    throw new HttpError(422, 'image_too_large', `the image is ${width}x${height}; the server takes at most ${maxSide}x${maxSide} pixels; downscale it first`);
  }
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxSide * maxSide, failOn: 'truncated' })
      .removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels instead of 3`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
  } catch (e) {
    throw undecodable(e);
  }
}

function undecodable(e: unknown): HttpError {
  const why = (e as Error).message.split('\n')[0].replace(/^Input buffer /, '');
  return new HttpError(400, 'bad_image', `cannot decode the image (${why}); send a complete PNG, JPEG or WebP file`);
}
