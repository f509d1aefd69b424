/**
 * Images as model inputs (browser-safe, no Node built-ins): ImageData (or
 * anything shaped like it: width, height, RGBA bytes), and in a browser an
 * ImageBitmap, a canvas (HTML or offscreen), an <img>, a <video> or a
 * VideoFrame. Drawable sources are drawn straight at the model's input
 * size on a 2-D canvas (the browser scales them); RGBA bytes are resized
 * bilinearly here. Three-channel models get RGB in [0, 1]; one-channel
 * models get luminance in [0, 1] with transparent pixels as black. Digits
 * drawn by hand want MNIST's own framing first (crop, 20x20, centre of
 * mass): `mnistPreprocess` in @tamp/core does that, and its output goes to
 * `predict` as numbers.
 */
import { InvalidArgumentError, rgbaToRgbInput } from '@tamp/core';

export interface ImageDataLike {
  readonly width: number;
  readonly height: number;
  /** width × height × 4 bytes, RGBA, row-major. */
  readonly data: Uint8ClampedArray | Uint8Array;
}

export type DrawableImage = ImageBitmap | HTMLCanvasElement | OffscreenCanvas | HTMLImageElement | HTMLVideoElement | VideoFrame;
export type ImageInput = ImageDataLike | DrawableImage;

export function isImageDataLike(x: unknown): x is ImageDataLike {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Partial<ImageDataLike>;
  return typeof o.width === 'number' && typeof o.height === 'number' && (o.data instanceof Uint8ClampedArray || o.data instanceof Uint8Array);
}

const DRAWABLE_CLASSES = ['ImageBitmap', 'HTMLCanvasElement', 'OffscreenCanvas', 'HTMLImageElement', 'HTMLVideoElement', 'VideoFrame'] as const;

export function isDrawableImage(x: unknown): x is DrawableImage {
  if (typeof x !== 'object' || x === null) return false;
  const g = globalThis as unknown as Record<string, unknown>;
  return DRAWABLE_CLASSES.some((name) => typeof g[name] === 'function' && x instanceof (g[name] as new () => object));
}

export function isImageInput(x: unknown): x is ImageInput {
  return isImageDataLike(x) || isDrawableImage(x);
}

function sourceSize(image: DrawableImage): [number, number] {
  if (typeof VideoFrame === 'function' && image instanceof VideoFrame) return [image.displayWidth, image.displayHeight];
  if (typeof HTMLVideoElement === 'function' && image instanceof HTMLVideoElement) return [image.videoWidth, image.videoHeight];
  if (typeof HTMLImageElement === 'function' && image instanceof HTMLImageElement) return [image.naturalWidth, image.naturalHeight];
  const sized = image as { width: number; height: number };
  return [sized.width, sized.height];
}

/** The RGBA pixels of a drawable image, drawn at width × height. */
function drawPixels(image: DrawableImage, width: number, height: number): ImageDataLike {
  const [w, h] = sourceSize(image);
  if (!(w > 0 && h > 0)) throw new InvalidArgumentError(`predict: the image has no pixels yet (${w}x${h}); wait until it has loaded (a video: until it plays)`);
  let context: OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D | null;
  if (typeof OffscreenCanvas === 'function') {
    context = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  } else if (typeof document === 'object') {
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    context = canvas.getContext('2d', { willReadFrequently: true });
  } else {
    throw new InvalidArgumentError('predict: drawing an image needs a 2-D canvas (a browser); pass ImageData-like pixels ({ width, height, data }) instead');
  }
  if (context === null) throw new InvalidArgumentError('predict: could not get a 2-D canvas context to read the image');
  context.drawImage(image as CanvasImageSource, 0, 0, width, height);
  return context.getImageData(0, 0, width, height);
}

/** One image as one sample of a model whose input is [height, width, channels] (channels 1 or 3). */
export function imageToInput(image: ImageInput, inputShape: readonly number[]): Float32Array {
  const [height, width, channels] = inputShape as [number, number, number];
  if (inputShape.length !== 3 || (channels !== 1 && channels !== 3)) {
    throw new InvalidArgumentError(`predict: an image can only feed a model whose input is [height, width, 1 or 3]; this one takes [${inputShape.join(', ')}]: pass numbers instead`);
  }
  let pixels: ImageDataLike;
  if (isImageDataLike(image)) {
    if (!(Number.isInteger(image.width) && Number.isInteger(image.height) && image.width > 0 && image.height > 0) || image.data.length !== image.width * image.height * 4) {
      throw new InvalidArgumentError(`predict: image data of ${image.data.length} bytes is not a ${image.width}x${image.height} RGBA image (${image.width * image.height * 4} bytes)`);
    }
    pixels = image;
  } else {
    pixels = drawPixels(image, width, height);
  }
  const rgb = rgbaToRgbInput(pixels.data, pixels.width, pixels.height, width, height);
  if (channels === 3) return rgb;
  // Luminance, weighted by alpha: a transparent canvas reads as black, MNIST's background.
  const rgba = pixels.data;
  const alpha = pixels.width === width && pixels.height === height ? (i: number) => (rgba[i * 4 + 3] as number) / 255 : alphaResized(pixels, width, height);
  const grey = new Float32Array(width * height);
  for (let i = 0; i < grey.length; i++) {
    grey[i] = (0.299 * (rgb[i * 3] as number) + 0.587 * (rgb[i * 3 + 1] as number) + 0.114 * (rgb[i * 3 + 2] as number)) * alpha(i);
  }
  return grey;
}

function alphaResized(pixels: ImageDataLike, width: number, height: number): (i: number) => number {
  // Resize the alpha channel by reusing the RGB resampler on an image whose red channel is the alpha.
  const swapped = new Uint8ClampedArray(pixels.data.length);
  for (let i = 0; i < pixels.width * pixels.height; i++) swapped[i * 4] = pixels.data[i * 4 + 3] as number;
  const resized = rgbaToRgbInput(swapped, pixels.width, pixels.height, width, height);
  return (i) => resized[i * 3] as number;
}

/** Several images (or one) as a batch. */
export function imagesToInput(images: ImageInput | readonly ImageInput[], inputShape: readonly number[]): { data: Float32Array; batch: number } {
  const list = Array.isArray(images) ? (images as readonly ImageInput[]) : [images as ImageInput];
  const per = inputShape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(list.length * per);
  list.forEach((image, i) => data.set(imageToInput(image, inputShape), i * per));
  return { data, batch: list.length };
}
