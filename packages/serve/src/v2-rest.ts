/**
 * The Open Inference Protocol v2 over REST (the "KServe v2" protocol of
 * KServe, Triton, Seldon MLServer and OpenVINO Model Server): JSON tensors,
 * and the binary tensor data extension, where the JSON header is followed by
 * raw tensor bytes (`Inference-Header-Content-Length` says where the JSON
 * ends; each binary input carries `parameters.binary_data_size`).
 */
import { InvalidArgumentError } from '@tamp/core';
import { type InputTensor, OUTPUT_NAME, DETECTION_OUTPUTS, type OutputTensor, INPUT_NAME } from './inference.js';
import type { ServedModel } from './model-store.js';
import { isDatatype } from './tensors.js';

export const HEADER_LENGTH = 'inference-header-content-length';

interface JsonTensor {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  parameters?: Record<string, unknown>;
  data?: unknown;
}

export interface V2Request {
  readonly id: string | undefined;
  readonly inputs: InputTensor[];
  /** Outputs asked for by name (all when empty), and which of them go back as binary. */
  readonly outputs: ReadonlyArray<{ name: string; binary: boolean }>;
  readonly binaryOutputs: boolean;
  /** Triton's per-request timeout, microseconds. */
  readonly timeoutUs: number | undefined;
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

/** Parse a v2 infer body: JSON alone, or JSON then binary tensor data. */
export function parseV2Request(body: Buffer, headerLength: string | undefined): V2Request {
  let jsonBytes = body;
  let binary: Buffer | undefined;
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!Number.isSafeInteger(n) || n < 0 || n > body.length) throw new InvalidArgumentError(`${HEADER_LENGTH} is ${headerLength}, but the body has ${body.length} bytes`);
    jsonBytes = body.subarray(0, n);
    binary = body.subarray(n);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(jsonBytes.toString('utf8'));
  } catch (e) {
    throw new InvalidArgumentError(`the request is not valid JSON${binary !== undefined ? ` (the first ${jsonBytes.length} bytes, per ${HEADER_LENGTH})` : ''}: ${(e as Error).message}`);
  }
  const req = object(parsed, 'the request');
  if (!Array.isArray(req.inputs)) throw new InvalidArgumentError('the request needs "inputs": an array of tensors');
  let offset = 0;
  const inputs = (req.inputs as unknown[]).map((raw, i): InputTensor => {
    const t = object(raw, `inputs[${i}]`) as JsonTensor;
    const what = `inputs[${i}]`;
    if (typeof t.name !== 'string') throw new InvalidArgumentError(`${what} needs a "name"`);
    if (!isDatatype(t.datatype)) throw new InvalidArgumentError(`${what} ("${t.name}"): "datatype" must be one of the protocol's types (FP32, UINT8, BYTES, ...), got ${JSON.stringify(t.datatype)}`);
    const size = t.parameters?.binary_data_size;
    if (size !== undefined) {
      if (binary === undefined) throw new InvalidArgumentError(`${what} ("${t.name}") has binary_data_size but the request has no ${HEADER_LENGTH} header`);
      if (!Number.isSafeInteger(size) || (size as number) < 0 || offset + (size as number) > binary.length) {
        throw new InvalidArgumentError(`${what} ("${t.name}"): binary_data_size ${JSON.stringify(size)} runs past the ${binary.length - offset} binary bytes left`);
      }
      const raw = new Uint8Array(binary.buffer, binary.byteOffset + offset, size as number);
      offset += size as number;
      return { name: t.name, shape: t.shape, datatype: t.datatype, raw };
    }
    if (t.data === undefined) throw new InvalidArgumentError(`${what} ("${t.name}") has neither "data" nor parameters.binary_data_size`);
    if (t.datatype === 'BYTES') {
      const items = (Array.isArray(t.data) ? (t.data as unknown[]).flat(8) : [t.data]).map((s, j) => {
        if (typeof s !== 'string') throw new InvalidArgumentError(`${what}: BYTES element ${j} must be a string (base64 of the image)`);
        return new Uint8Array(Buffer.from(s, 'base64'));
      });
      return { name: t.name, shape: t.shape, datatype: 'BYTES', images: items };
    }
    return { name: t.name, shape: t.shape, datatype: t.datatype, data: t.data };
  });
  if (binary !== undefined && offset !== binary.length) throw new InvalidArgumentError(`${binary.length - offset} binary bytes follow the inputs' binary_data_size total`);
  const params = req.parameters === undefined ? {} : object(req.parameters, 'parameters');
  const outputs = req.outputs === undefined ? [] : Array.isArray(req.outputs) ? (req.outputs as unknown[]) : undefined;
  if (outputs === undefined) throw new InvalidArgumentError('"outputs" must be an array');
  const timeout = params.timeout;
  if (timeout !== undefined && !(Number.isFinite(timeout) && (timeout as number) > 0)) throw new InvalidArgumentError(`parameters.timeout is microseconds (a positive number), got ${JSON.stringify(timeout)}`);
  return {
    id: typeof req.id === 'string' ? req.id : undefined,
    inputs,
    outputs: outputs.map((o, i) => {
      const t = object(o, `outputs[${i}]`);
      if (typeof t.name !== 'string') throw new InvalidArgumentError(`outputs[${i}] needs a "name"`);
      return { name: t.name, binary: (t.parameters as Record<string, unknown> | undefined)?.binary_data === true };
    }),
    binaryOutputs: params.binary_data_output === true,
    timeoutUs: timeout as number | undefined,
  };
}

/** The outputs the request asked for (all when it named none). */
export function selectOutputs(all: readonly OutputTensor[], request: V2Request): Array<OutputTensor & { binary: boolean }> {
  if (request.outputs.length === 0) return all.map((o) => ({ ...o, binary: request.binaryOutputs }));
  return request.outputs.map((want) => {
    const found = all.find((o) => o.name === want.name);
    if (found === undefined) throw new InvalidArgumentError(`unknown output "${want.name}": this model has ${all.map((o) => o.name).join(', ')}`);
    return { ...found, binary: want.binary || request.binaryOutputs };
  });
}

/** The v2 response: JSON, or JSON then the binary outputs' bytes. */
export function v2Response(served: ServedModel, id: string | undefined, outputs: ReadonlyArray<OutputTensor & { binary: boolean }>): { body: Buffer; headerLength: number | undefined } {
  const json = {
    model_name: served.name,
    model_version: served.version,
    ...(id !== undefined ? { id } : {}),
    outputs: outputs.map((o) =>
      o.binary ? { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: o.data.byteLength } } : { name: o.name, datatype: o.datatype, shape: o.shape, data: Array.from(o.data) },
    ),
  };
  const head = Buffer.from(JSON.stringify(json));
  const binary = outputs.filter((o) => o.binary);
  if (binary.length === 0) return { body: head, headerLength: undefined };
  return { body: Buffer.concat([head, ...binary.map((o) => Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength))]), headerLength: head.length };
}

/** Model metadata as the protocol describes it. */
export function v2Metadata(served: ServedModel, versions: readonly string[]) {
  const outputs = [{ name: OUTPUT_NAME, datatype: 'FP32', shape: [-1, ...served.info.outputShape] }];
  if (served.task === 'detection') {
    outputs.push(
      { name: DETECTION_OUTPUTS[0], datatype: 'FP32', shape: [-1, -1, 4] },
      { name: DETECTION_OUTPUTS[1], datatype: 'FP32', shape: [-1, -1] },
      { name: DETECTION_OUTPUTS[2], datatype: 'INT32', shape: [-1, -1] },
      { name: DETECTION_OUTPUTS[3], datatype: 'INT32', shape: [-1] },
    );
  }
  return {
    name: served.name,
    versions,
    platform: `tamp_${served.info.format}`,
    inputs: [{ name: INPUT_NAME, datatype: 'FP32', shape: [-1, ...served.info.inputShape] }],
    outputs,
  };
}
