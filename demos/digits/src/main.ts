/**
 * The digits demo: a drawing pad, MNIST-style preprocessing (crop to the
 * ink, scale to 20x20, centre of mass in 28x28: @tamp/core's
 * mnistPreprocess), and LeNet-5 on the best device present, fp32 or the
 * compressed model. `window.digits` exposes the state for the end-to-end test.
 */
import '@tamp/demo-kit/style.css';
import { mnistPreprocess, rgbaToGrey } from '@tamp/core';
import { type DemoManifest, Latency, type OpenedModel, manifestBytes, openModel, showError as showPageError, showModel } from '@tamp/demo-kit';
import manifestJson from '../../models.json' with { type: 'json' };

type ModelKind = 'compressed' | 'fp32';
const MODEL_URLS: Record<ModelKind, string> = { compressed: './models/compressed.tamp', fp32: './models/fp32/model.json' };

const manifest = manifestJson as DemoManifest;
const modelBytes = (kind: ModelKind) => manifestBytes(manifest, 'digits', kind === 'fp32' ? /\/fp32\// : /compressed\.tamp$/);

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const pad = $<HTMLCanvasElement>('pad');
const ctx = pad.getContext('2d', { willReadFrequently: true }) as CanvasRenderingContext2D;
const preview = $<HTMLCanvasElement>('preview').getContext('2d') as CanvasRenderingContext2D;
const latency = new Latency();

interface State {
  ready: boolean;
  kind: ModelKind;
  deviceName: string;
  /** Incremented by every stroke segment and by Clear. */
  inkVersion: number;
  /** The inkVersion the latest finished prediction saw. */
  predictedVersion: number;
  busy: boolean;
  top: Array<{ digit: number; probability: number }>;
  error: string | undefined;
}
const state: State = { ready: false, kind: 'compressed', deviceName: '', inkVersion: 0, predictedVersion: 0, busy: false, top: [], error: undefined };
declare global {
  interface Window {
    digits: State & { settled(): boolean };
  }
}
window.digits = Object.assign(state, { settled: () => state.ready && !state.busy && state.predictedVersion === state.inkVersion });

let current: OpenedModel | undefined;

function showError(message: string): void {
  state.error = message;
  showPageError(message);
}

function clearPad(): void {
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, pad.width, pad.height);
  state.inkVersion++;
  state.predictedVersion = state.inkVersion;
  state.top = [];
  renderBars();
  $('prediction').textContent = 'draw a digit';
  preview.clearRect(0, 0, 56, 56);
}

function hasInk(x: Float32Array): boolean {
  return x.some((v) => v > 0);
}

function renderBars(): void {
  const bars = $('bars');
  bars.replaceChildren(
    ...state.top.map(({ digit, probability }) => {
      const row = document.createElement('div');
      row.className = 'bar';
      row.dataset.digit = String(digit);
      row.innerHTML = `<span class="digit">${digit}</span><span class="track"><span class="fill" style="width:${(probability * 100).toFixed(1)}%"></span></span><span class="p">${(probability * 100).toFixed(1)}%</span>`;
      return row;
    }),
  );
}

function drawPreview(x: Float32Array): void {
  const img = preview.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = 255 - Math.round((x[i] as number) * 255);
    img.data.set([v, v, v, 255], i * 4);
  }
  const tmp = new OffscreenCanvas(28, 28);
  (tmp.getContext('2d') as OffscreenCanvasRenderingContext2D).putImageData(img, 0, 0);
  preview.imageSmoothingEnabled = false;
  preview.drawImage(tmp, 0, 0, 56, 56);
}

/** Predict the pad as it is now; if more ink arrives meanwhile, predict again after. */
async function predict(): Promise<void> {
  if (state.busy || current === undefined) return;
  state.busy = true;
  try {
    while (state.predictedVersion !== state.inkVersion && current !== undefined) {
      const version = state.inkVersion;
      const pixels = ctx.getImageData(0, 0, pad.width, pad.height);
      const x = mnistPreprocess(rgbaToGrey(pixels.data, pixels.width, pixels.height));
      drawPreview(x);
      if (!hasInk(x)) {
        state.predictedVersion = version;
        continue;
      }
      const started = performance.now();
      const y = await current.model.predict(x);
      latency.add(performance.now() - started);
      state.top = Array.from(y.data)
        .map((probability, digit) => ({ digit, probability }))
        .sort((a, b) => b.probability - a.probability)
        .slice(0, 3);
      state.predictedVersion = version;
      renderBars();
      const best = state.top[0];
      $('prediction').textContent = best === undefined ? '' : `it's a ${best.digit}`;
      $('latency').textContent = `${latency.median().toFixed(1)} ms (median of the last ${Math.min(20, state.predictedVersion)} runs)`;
    }
  } catch (error) {
    showError(`prediction failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    state.busy = false;
  }
}

async function useModel(kind: ModelKind): Promise<void> {
  state.ready = false;
  current?.model.dispose();
  current = undefined;
  $('device').textContent = 'loading…';
  try {
    current = await openModel(MODEL_URLS[kind]);
  } catch (error) {
    showError(`could not load the ${kind} model: ${error instanceof Error ? error.message : String(error)}`);
    return;
  }
  state.kind = kind;
  state.deviceName = current.deviceName;
  showModel(current, kind, modelBytes(kind));
  state.ready = true;
  state.predictedVersion = -1; // predict the pad again with the new model
  await predict();
}

// Drawing with mouse, pen or touch (pointer events; touch-action none keeps the page from scrolling).
pad.style.touchAction = 'none';
let last: { x: number; y: number } | undefined;
function point(e: PointerEvent): { x: number; y: number } {
  const r = pad.getBoundingClientRect();
  return { x: ((e.clientX - r.left) * pad.width) / r.width, y: ((e.clientY - r.top) * pad.height) / r.height };
}
pad.addEventListener('pointerdown', (e) => {
  pad.setPointerCapture(e.pointerId);
  last = point(e);
  ctx.fillStyle = '#000';
  ctx.beginPath();
  ctx.arc(last.x, last.y, 9, 0, Math.PI * 2);
  ctx.fill();
  state.inkVersion++;
});
pad.addEventListener('pointermove', (e) => {
  if (last === undefined) return;
  const p = point(e);
  ctx.strokeStyle = '#000';
  ctx.lineWidth = 18;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.beginPath();
  ctx.moveTo(last.x, last.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  last = p;
  state.inkVersion++;
  void predict();
});
const end = () => {
  last = undefined;
  void predict();
};
pad.addEventListener('pointerup', end);
pad.addEventListener('pointercancel', end);
$('clear').addEventListener('click', clearPad);
$<HTMLSelectElement>('model').addEventListener('change', (e) => void useModel((e.target as HTMLSelectElement).value as ModelKind));

clearPad();
void useModel('compressed');
