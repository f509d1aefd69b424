import { InvalidArgumentError } from '../errors.js';

/**
 * An RGBA image resized to a model's RGB input (browser-safe): bilinear
 * sampling at pixel centres, values scaled to [0, 1]. The demo feeds canvas
 * pixels through it, `tamp infer --image` PNG pixels.
 */
export function rgbaToRgbInput(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number, outWidth: number, outHeight: number): Float32Array {
  if (rgba.length !== width * height * 4) {
    throw new InvalidArgumentError(`${rgba.length} bytes are not a ${width}x${height} RGBA image (${width * height * 4} bytes): pass the image's own width and height`);
  }
  const out = new Float32Array(outWidth * outHeight * 3);
  const sx = width / outWidth;
  const sy = height / outHeight;
  for (let y = 0; y < outHeight; y++) {
    const fy = Math.min(height - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < outWidth; x++) {
      const fx = Math.min(width - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(width - 1, x0 + 1);
      const wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const p = (yy: number, xx: number) => rgba[(yy * width + xx) * 4 + c] as number;
        const top = p(y0, x0) * (1 - wx) + p(y0, x1) * wx;
        const bottom = p(y1, x0) * (1 - wx) + p(y1, x1) * wx;
        out[(y * outWidth + x) * 3 + c] = (top * (1 - wy) + bottom * wy) / 255;
      }
    }
  }
  return out;
}

/** RGB bytes (a `shapes` scene's pixels) as opaque RGBA, the layout of ImageData, canvases and PNG files. */
export function rgbToRgba(rgb: Uint8Array | Uint8ClampedArray): Uint8ClampedArray<ArrayBuffer> {
  // A RangeError (as its test expects), not a TampError: callers pass scene pixels, always whole RGB pixels.
  if (rgb.length % 3 !== 0) throw new RangeError(`${rgb.length} bytes are not whole RGB pixels`);
  const rgba = new Uint8ClampedArray((rgb.length / 3) * 4);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    rgba[j] = rgb[i] as number;
    rgba[j + 1] = rgb[i + 1] as number;
    rgba[j + 2] = rgb[i + 2] as number;
    rgba[j + 3] = 255;
  }
  return rgba;
}
