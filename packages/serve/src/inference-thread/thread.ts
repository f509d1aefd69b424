/**
 * `tamp serve`'s inference thread: the models on tfjs devices (WASM, CPU) are
 * loaded and run here, so the event loop keeps reading, checking and
 * answering requests while a batch computes (WASM's `predict` is synchronous
 * and would block it). Batches come one at a time per model; inputs and
 * outputs move by transfer, not copy.
 */
import { parentPort } from 'node:worker_threads';
import { TampError, errorMessage } from '@tamp/core';
import type { InferenceModel } from '@tamp/webgpu';
import { loadModel } from '@tamp/webgpu/node';
import type { FromThread, ToThread } from './messages.js';

// Started only as a worker thread (bootstrap.mjs), which always has a parent port.
if (parentPort === null) throw new Error('the inference thread runs only as a worker thread');
const port = parentPort;
const models = new Map<number, InferenceModel>();
let nextModel = 1;

function fail(id: number, e: unknown): void {
  const reply: FromThread = { type: 'error', id, code: e instanceof TampError ? e.code : undefined, message: e instanceof TampError ? e.message : errorMessage(e) };
  port.postMessage(reply);
}

async function handle(m: ToThread): Promise<void> {
  if (m.type === 'dispose') {
    models.get(m.model)?.dispose();
    models.delete(m.model);
    return;
  }
  try {
    if (m.type === 'load') {
      const model = await loadModel(m.path, { device: m.device });
      try {
        // Warm before it is visible: the first batch should not pay for tfjs's set-up.
        await model.warmup(1);
      } catch (e) {
        model.dispose();
        throw e;
      }
      const id = nextModel++;
      models.set(id, model);
      port.postMessage({ type: 'loaded', id: m.id, model: id, info: model.info() } satisfies FromThread);
      return;
    }
    const model = models.get(m.model);
    // The host sends runs only for models it loaded and has not disposed (ServedModel.retire waits for its requests).
    if (model === undefined) throw new Error(`inference thread: no model ${m.model}`);
    // A copy we own whole: a backend may hand back a view of memory it keeps (tfjs's CPU backend does).
    const output = (await model.predict(m.input)).data.slice();
    port.postMessage({ type: 'ran', id: m.id, output } satisfies FromThread, [output.buffer as ArrayBuffer]);
  } catch (e) {
    fail(m.id, e);
  }
}

port.on('message', (m: ToThread) => void handle(m));
