/**
 * TF Serving's REST API, for users with TF Serving clients: `:predict` with
 * `instances` (row format: one entry per sample) or `inputs` (columnar: the
 * batch as one tensor), answered with `predictions` or `outputs`; images as
 * `{"b64": "..."}`. Model status answers as TF Serving's GetModelStatus does.
 */
import { InvalidArgumentError } from '@tamp/core';
import { INPUT_NAME, type InputTensor, type OutputTensor } from './inference.js';
import type { ServedModel } from './model-store.js';
import { elementCount } from './tensors.js';

function isB64(v: unknown): v is { b64: string } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { b64?: unknown }).b64 === 'string';
}

/** Unwrap `{"input": x}` (a named input) to x; refuse other names. */
function unwrapNamed(v: unknown, what: string): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || isB64(v)) return v;
  const keys = Object.keys(v);
  if (keys.length !== 1 || keys[0] !== INPUT_NAME) throw new InvalidArgumentError(`${what}: Tamp models have one input, "${INPUT_NAME}"; got ${keys.map((k) => `"${k}"`).join(', ')}`);
  return (v as Record<string, unknown>)[INPUT_NAME];
}

export interface TfsRequest {
  readonly input: InputTensor;
  readonly rows: boolean;
}

export function parseTfsRequest(body: Buffer, served: ServedModel): TfsRequest {
  let req: unknown;
  try {
    req = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new InvalidArgumentError(`the request is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof req !== 'object' || req === null) throw new InvalidArgumentError('the request must be a JSON object with "instances" or "inputs"');
  const r = req as { instances?: unknown; inputs?: unknown };
  if ((r.instances === undefined) === (r.inputs === undefined)) throw new InvalidArgumentError('give exactly one of "instances" (one entry per sample) or "inputs" (the batch as one tensor)');
  const per = served.info.inputShape;
  if (r.instances !== undefined) {
    if (!Array.isArray(r.instances) || r.instances.length === 0) throw new InvalidArgumentError('"instances" must be a non-empty array, one entry per sample');
    const rows = (r.instances as unknown[]).map((x, i) => unwrapNamed(x, `instances[${i}]`));
    if (rows.every(isB64)) return { rows: true, input: { name: INPUT_NAME, datatype: 'BYTES', shape: [rows.length], images: rows.map((x) => new Uint8Array(Buffer.from(x.b64, 'base64'))) } };
    return { rows: true, input: { name: INPUT_NAME, datatype: 'FP32', shape: [rows.length, ...per], data: rows } };
  }
  const cols = unwrapNamed(r.inputs, '"inputs"');
  if (!Array.isArray(cols) || cols.length === 0) throw new InvalidArgumentError('"inputs" must hold the batch as a non-empty array');
  if (cols.every(isB64)) return { rows: false, input: { name: INPUT_NAME, datatype: 'BYTES', shape: [cols.length], images: cols.map((x: { b64: string }) => new Uint8Array(Buffer.from(x.b64, 'base64'))) } };
  return { rows: false, input: { name: INPUT_NAME, datatype: 'FP32', shape: [cols.length, ...per], data: cols } };
}

/** Flat row-major data as nested arrays of `shape`. */
function nest(data: ArrayLike<number>, shape: readonly number[], offset = 0): unknown {
  if (shape.length === 0) return data[offset];
  const [d, ...rest] = shape;
  const step = elementCount(rest);
  return Array.from({ length: d as number }, (_, i) => nest(data, rest, offset + i * step));
}

export function tfsResponse(outputs: readonly OutputTensor[], rows: boolean): unknown {
  if (rows) {
    const batch = outputs[0]?.shape[0] ?? 0;
    const sample = (o: OutputTensor, i: number) => nest(o.data, o.shape.slice(1), i * elementCount(o.shape.slice(1)));
    const predictions = Array.from({ length: batch }, (_, i) => (outputs.length === 1 ? sample(outputs[0] as OutputTensor, i) : Object.fromEntries(outputs.map((o) => [o.name, sample(o, i)]))));
    return { predictions };
  }
  return { outputs: outputs.length === 1 ? nest((outputs[0] as OutputTensor).data, (outputs[0] as OutputTensor).shape) : Object.fromEntries(outputs.map((o) => [o.name, nest(o.data, o.shape)])) };
}

export function tfsStatus(versions: ReadonlyArray<{ version: string; state: 'AVAILABLE' | 'LOADING' }>) {
  return { model_version_status: versions.map((v) => ({ version: v.version, state: v.state, status: { error_code: 'OK', error_message: '' } })) };
}
