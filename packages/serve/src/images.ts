/**
 * Encoded images (PNG or JPEG, in BYTES tensors) to a model's input: decoded
 * here, resized bilinearly to the model's height and width; RGB for
 * three-channel models, luminance for one-channel ones. PNG goes through
 * core's decoder; JPEG through jpeg-js (pure JavaScript, so the arm64 edge
 * build needs no native image library), with a pixel limit so a small file
 * cannot claim a huge image.
 */
import { InvalidArgumentError, rgbaToRgbInput } from '@tamp/core';
import { decodePng } from '@tamp/core/node';
import jpeg from 'jpeg-js';

const MAX_PIXELS = 16_000_000;

function decode(bytes: Uint8Array, what: string): { rgba: Uint8Array; width: number; height: number } {
  try {
    if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
      const png = decodePng(bytes, what);
      return { rgba: png.rgba, width: png.width, height: png.height };
    }
    if (bytes[0] === 0xff && bytes[1] === 0xd8) {
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_PIXELS / 1e6, maxMemoryUsageInMB: 256 });
      return { rgba: img.data, width: img.width, height: img.height };
    }
  } catch (e) {
    throw new InvalidArgumentError(`${what}: the image could not be decoded (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  throw new InvalidArgumentError(`${what}: not a PNG or JPEG image (BYTES inputs hold encoded images)`);
}

/** Decode each image and lay the resized samples out one after another. */
export function imagesToSamples(images: readonly Uint8Array[], inputShape: readonly number[], what: string): Float32Array {
  const [h, w, c] = inputShape;
  if (inputShape.length !== 3 || h === undefined || w === undefined || (c !== 1 && c !== 3)) {
    throw new InvalidArgumentError(`${what}: this model takes [${inputShape.join(', ')}], not images; send numbers instead of BYTES`);
  }
  const per = h * w * c;
  const out = new Float32Array(images.length * per);
  images.forEach((bytes, i) => {
    const img = decode(bytes, `${what} image ${i}`);
    const rgb = rgbaToRgbInput(img.rgba, img.width, img.height, w, h);
    if (c === 3) out.set(rgb, i * per);
    else for (let p = 0; p < h * w; p++) out[i * per + p] = 0.299 * (rgb[3 * p] as number) + 0.587 * (rgb[3 * p + 1] as number) + 0.114 * (rgb[3 * p + 2] as number);
  });
  return out;
}
