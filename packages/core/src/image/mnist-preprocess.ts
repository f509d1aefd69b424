/**
 * Turn an arbitrary grey image of one digit into an MNIST sample, the way
 * MNIST itself was made: bright digit on a dark background, cropped to its
 * bounding box, scaled so its longer side is 20 pixels (aspect kept), and
 * placed in a 28x28 field with its centre of mass at the centre.
 */

export interface GreyImage {
  readonly width: number;
  readonly height: number;
  /** width × height values in [0, 1], row-major. */
  readonly pixels: Float32Array;
}

/** RGBA bytes (canvas ImageData, decoded PNG) to grey in [0, 1]; transparent pixels count as background. */
export function rgbaToGrey(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): GreyImage {
  const pixels = new Float32Array(width * height);
  for (let i = 0; i < pixels.length; i++) {
    const r = rgba[i * 4] as number;
    const g = rgba[i * 4 + 1] as number;
    const b = rgba[i * 4 + 2] as number;
    const a = (rgba[i * 4 + 3] as number) / 255;
    // Composite over white: a transparent canvas reads as paper.
    pixels[i] = ((0.299 * r + 0.587 * g + 0.114 * b) / 255) * a + (1 - a);
  }
  return { width, height, pixels };
}

/** Bilinear sample of a grey image at (x, y) in pixel units (pixel centres at i + 0.5). */
function sample(img: GreyImage, x: number, y: number): number {
  const fx = Math.min(Math.max(x - 0.5, 0), img.width - 1);
  const fy = Math.min(Math.max(y - 0.5, 0), img.height - 1);
  const x0 = Math.floor(fx);
  const y0 = Math.floor(fy);
  const x1 = Math.min(x0 + 1, img.width - 1);
  const y1 = Math.min(y0 + 1, img.height - 1);
  const tx = fx - x0;
  const ty = fy - y0;
  const p = (xx: number, yy: number) => img.pixels[yy * img.width + xx] as number;
  return (p(x0, y0) * (1 - tx) + p(x1, y0) * tx) * (1 - ty) + (p(x0, y1) * (1 - tx) + p(x1, y1) * tx) * ty;
}

/**
 * MNIST-style 28x28 input ([784] values in [0, 1]). An image with a light
 * background (dark ink) is inverted first. An empty image gives all zeros.
 */
export function mnistPreprocess(image: GreyImage, threshold = 0.1): Float32Array {
  let mean = 0;
  for (const v of image.pixels) mean += v;
  mean /= Math.max(1, image.pixels.length);
  const ink: GreyImage = mean > 0.5 ? { ...image, pixels: image.pixels.map((v) => 1 - v) } : image;
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (let y = 0; y < ink.height; y++) {
    for (let x = 0; x < ink.width; x++) {
      if ((ink.pixels[y * ink.width + x] as number) > threshold) {
        minX = Math.min(minX, x);
        maxX = Math.max(maxX, x);
        minY = Math.min(minY, y);
        maxY = Math.max(maxY, y);
      }
    }
  }
  const out = new Float32Array(28 * 28);
  if (!Number.isFinite(minX)) return out;
  const boxW = maxX - minX + 1;
  const boxH = maxY - minY + 1;
  const scale = 20 / Math.max(boxW, boxH);
  const w = Math.max(1, Math.round(boxW * scale));
  const h = Math.max(1, Math.round(boxH * scale));
  // Area-averaged resize of the box to w × h (several bilinear samples per output pixel).
  const small = new Float32Array(w * h);
  const sub = Math.max(1, Math.ceil(1 / scale));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let sy = 0; sy < sub; sy++) {
        for (let sx = 0; sx < sub; sx++) {
          acc += sample(ink, minX + ((x + (sx + 0.5) / sub) * boxW) / w, minY + ((y + (sy + 0.5) / sub) * boxH) / h);
        }
      }
      small[y * w + x] = acc / (sub * sub);
    }
  }
  let mass = 0;
  let cx = 0;
  let cy = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = small[y * w + x] as number;
      mass += v;
      cx += v * (x + 0.5);
      cy += v * (y + 0.5);
    }
  }
  const offX = Math.round(14 - (mass > 0 ? cx / mass : w / 2));
  const offY = Math.round(14 - (mass > 0 ? cy / mass : h / 2));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const tx = x + offX;
      const ty = y + offY;
      if (tx >= 0 && tx < 28 && ty >= 0 && ty < 28) out[ty * 28 + tx] = Math.min(1, Math.max(0, small[y * w + x] as number));
    }
  }
  return out;
}
