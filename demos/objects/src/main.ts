/**
 * The objects demo: the shapes detector on sample scenes (drawn by
 * @tamp/core's scene generator, the same one it was trained on, from fixed
 * seeds), on an image you choose, or on the webcam. Boxes are decoded and
 * NMS'd after the GPU pass (@tamp/core's decodeGrid), drawn with labels and
 * scores (`detect` from @tamp/webgpu, imported as detectBoxes: the GPU pass, then decodeGrid). `window.objects` exposes the state for the end-to-end test.
 */
import '@tamp/demo-kit/style.css';
import { type Detection, SHAPE_CLASSES, renderScene, rgbToRgba } from '@tamp/core';
import { type DemoManifest, Latency, type OpenedModel, manifestBytes, openModel, showError as showPageError, showModel } from '@tamp/demo-kit';
import { type ImageInput, detect as detectBoxes } from '@tamp/webgpu';
import manifestJson from '../../models.json' with { type: 'json' };

const MODEL_URL = './models/detector.tamp';
const SAMPLE_SEEDS = [11, 23, 37, 41, 53, 67];
const COLOURS = ['#ff3b30', '#34c759', '#ffcc00'];

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const view = $<HTMLCanvasElement>('view');
const ctx = view.getContext('2d') as CanvasRenderingContext2D;
const latency = new Latency();

interface State {
  ready: boolean;
  deviceName: string;
  /** Every detection of the last image (score ≥ 0.05, after NMS), boxes in [0, 1]. */
  detections: Detection[];
  runs: number;
  error: string | undefined;
}
const state: State = { ready: false, deviceName: '', detections: [], runs: 0, error: undefined };
let model: OpenedModel | undefined;
let shown: { source: CanvasImageSource; input: ImageInput } | undefined;
let threshold = 0.5;
let webcam: { stream: MediaStream; video: HTMLVideoElement } | undefined;

declare global {
  interface Window {
    objects: State & { showScene(seed: number): Promise<Detection[]> };
  }
}

function showError(message: string): void {
  state.error = message;
  showPageError(message);
}

function draw(): void {
  if (shown === undefined) return;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(shown.source, 0, 0, view.width, view.height);
  const kept = state.detections.filter((d) => d.score >= threshold);
  ctx.lineWidth = 3;
  ctx.font = '600 14px system-ui, sans-serif';
  for (const d of kept) {
    const colour = COLOURS[d.label] ?? '#fff';
    const [x, y, w, h] = [d.x1 * view.width, d.y1 * view.height, (d.x2 - d.x1) * view.width, (d.y2 - d.y1) * view.height];
    ctx.strokeStyle = colour;
    ctx.strokeRect(x, y, w, h);
    const text = `${SHAPE_CLASSES[d.label] ?? d.label} ${(d.score * 100).toFixed(0)}%`;
    const tw = ctx.measureText(text).width + 8;
    ctx.fillStyle = colour;
    ctx.fillRect(x - 1.5, Math.max(0, y - 20), tw, 20);
    ctx.fillStyle = '#000';
    ctx.fillText(text, x + 3, Math.max(15, y - 5));
  }
  $('found').textContent = kept.length === 0 ? 'nothing' : kept.map((d) => SHAPE_CLASSES[d.label]).join(', ');
}

async function detect(source: CanvasImageSource, input: ImageInput): Promise<Detection[]> {
  if (model === undefined) throw new Error('the model is not loaded yet');
  const started = performance.now();
  // The GPU pass, then the grid decoded into boxes and NMS'd (score ≥ 0.05, kept for the threshold slider).
  state.detections = (await detectBoxes(model.model, input))[0] ?? [];
  latency.add(performance.now() - started);
  state.runs++;
  shown = { source, input };
  $('latency').textContent = `${latency.median().toFixed(1)} ms (median of the last ${Math.min(20, state.runs)})`;
  draw();
  return state.detections;
}

/** A generated scene (96x96, the detector's own input size): its exact pixels go to the model. */
async function showScene(seed: number): Promise<Detection[]> {
  stopWebcam();
  const scene = renderScene(seed);
  const image = new ImageData(rgbToRgba(scene.pixels), 96, 96);
  const bitmap = await createImageBitmap(image);
  return detect(bitmap, image);
}

async function showUpload(file: File): Promise<void> {
  stopWebcam();
  const bitmap = await createImageBitmap(file);
  await detect(bitmap, bitmap);
}

function stopWebcam(): void {
  if (webcam === undefined) return;
  for (const t of webcam.stream.getTracks()) t.stop();
  webcam = undefined;
  $('webcam').textContent = 'Webcam';
}

async function startWebcam(): Promise<void> {
  if (webcam !== undefined) return stopWebcam();
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 320 } });
  const video = document.createElement('video');
  video.srcObject = stream;
  video.muted = true;
  await video.play();
  webcam = { stream, video };
  $('webcam').textContent = 'Stop webcam';
  const loop = async () => {
    if (webcam?.video !== video) return;
    await detect(video, video);
    requestAnimationFrame(() => void loop());
  };
  void loop();
}

async function main(): Promise<void> {
  for (const [i, seed] of SAMPLE_SEEDS.entries()) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = `Scene ${i + 1}`;
    b.addEventListener('click', () => void showScene(seed).catch((e: unknown) => showError(String(e))));
    $('samples').append(b);
  }
  $('random').addEventListener('click', () => void showScene(Math.floor(Math.random() * 2 ** 31)).catch((e: unknown) => showError(String(e))));
  $<HTMLInputElement>('upload').addEventListener('change', (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (file !== undefined) void showUpload(file).catch((err: unknown) => showError(`could not read ${file.name}: ${String(err)}`));
  });
  const hasCamera = typeof navigator.mediaDevices?.getUserMedia === 'function' && (await navigator.mediaDevices.enumerateDevices()).some((d) => d.kind === 'videoinput');
  if (hasCamera) {
    $('webcam').addEventListener('click', () => void startWebcam().catch((e: unknown) => showError(`webcam: ${String(e)}`)));
  } else {
    $<HTMLButtonElement>('webcam').disabled = true;
    const note = $('webcam-note');
    note.hidden = false;
    note.textContent = 'No webcam found (or this page is not on https/localhost).';
  }
  $<HTMLInputElement>('threshold').addEventListener('input', (e) => {
    threshold = Number((e.target as HTMLInputElement).value);
    $('threshold-value').textContent = threshold.toFixed(2);
    draw();
  });
  window.objects = Object.assign(state, { showScene });
  try {
    model = await openModel(MODEL_URL);
  } catch (error) {
    showError(`could not load the detector: ${error instanceof Error ? error.message : String(error)}`);
    return;
  }
  state.deviceName = model.deviceName;
  showModel(model, 'int8', manifestBytes(manifestJson as DemoManifest, 'objects', /detector\.tamp$/));
  state.ready = true;
  await showScene(SAMPLE_SEEDS[0] as number);
}

void main();
