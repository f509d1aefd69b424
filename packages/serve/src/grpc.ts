/**
 * `tamp serve`'s gRPC side: the Open Inference Protocol v2's
 * `inference.GRPCInferenceService` (proto/inference/grpc_predict_v2.proto),
 * over the same model store, inference path and batching as REST. Tensors
 * arrive as `raw_input_contents` (little-endian bytes, as the binary
 * extension) or as `InferTensorContents`; the answer comes back the same way
 * the inputs came. Errors are the call's status: INVALID_ARGUMENT, NOT_FOUND,
 * UNAVAILABLE (queue full), DEADLINE_EXCEEDED (the call's deadline, or the
 * request's `timeout` parameter in microseconds as Triton's, passed to the batcher).
 */
import { InvalidArgumentError } from '@tamp/core';
import {
  GRPCInferenceServiceService,
  type InferParameter,
  type InferTensorContents,
  type ModelInferRequest,
  type ModelInferRequest_InferInputTensor,
  type ModelInferResponse,
  type ModelMetadataResponse,
} from '@tamp/proto/inference/grpc_predict_v2';
import { type PublicCall, publicUnary, type RpcSecurity, type RunningRpcServer, startServer } from '@tamp/rpc';
import { infer, type InputTensor, type OutputTensor } from './inference.js';
import type { ServeMetrics } from './metrics.js';
import type { ModelStore, ServedModel } from './model-store.js';
import { serverMetadata } from './server.js';
import { isDatatype } from './tensors.js';
import { selectOutputs, v2Metadata } from './v2-rest.js';
import { FILE_DESCRIPTOR_SET_BASE64 } from '@tamp/proto/tamp/v1/descriptor_set';

export interface GrpcOptions {
  /** TLS, mutual TLS and a bearer token (@tamp/rpc); default plaintext. */
  readonly security?: RpcSecurity;
  readonly store: ModelStore;
  readonly metrics: ServeMetrics;
  /** Largest message received or sent. */
  readonly maxMessageBytes: number;
  /** Most elements one request may carry. */
  readonly maxElements: number;
  /** Default deadline of a request, ms (0: none); the call's own deadline wins when sooner. */
  readonly requestTimeoutMs: number;
  readonly log: (m: string) => void;
}

/** Wire shapes are int64: numbers here, refusing any a double cannot hold exactly. */
function shapeOf(shape: readonly bigint[], what: string): number[] {
  return shape.map((d) => {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError(`${what}: shape [${shape.join(', ')}] must hold non-negative integers`);
    return Number(d);
  });
}

/** The repeated field of InferTensorContents that carries `datatype`. */
function contentsData(c: InferTensorContents, datatype: string, what: string): unknown[] {
  switch (datatype) {
    case 'BOOL':
      return c.boolContents;
    case 'INT8':
    case 'INT16':
    case 'INT32':
      return c.intContents;
    case 'INT64':
      return c.int64Contents.map(Number);
    case 'UINT8':
    case 'UINT16':
    case 'UINT32':
      return c.uintContents;
    case 'UINT64':
      return c.uint64Contents.map(Number);
    case 'FP32':
      return c.fp32Contents;
    case 'FP64':
      return c.fp64Contents;
    default:
      throw new InvalidArgumentError(`${what}: ${datatype} has no InferTensorContents field; send it in raw_input_contents`);
  }
}

export function grpcInputs(request: ModelInferRequest): { inputs: InputTensor[]; raw: boolean } {
  const raw = request.rawInputContents.length > 0;
  if (raw && request.rawInputContents.length !== request.inputs.length) {
    throw new InvalidArgumentError(`raw_input_contents has ${request.rawInputContents.length} entries for ${request.inputs.length} inputs; give one per input, in order`);
  }
  const inputs = request.inputs.map((t: ModelInferRequest_InferInputTensor, i): InputTensor => {
    const what = `inputs[${i}] ("${t.name}")`;
    if (!isDatatype(t.datatype)) throw new InvalidArgumentError(`${what}: datatype must be one of the protocol's types (FP32, UINT8, BYTES, ...), got ${JSON.stringify(t.datatype)}`);
    const shape = shapeOf(t.shape, what);
    if (raw) {
      if (t.contents !== undefined) throw new InvalidArgumentError(`${what}: has contents, but the request uses raw_input_contents; use one or the other`);
      return { name: t.name, shape, datatype: t.datatype, raw: request.rawInputContents[i] as Uint8Array };
    }
    if (t.contents === undefined) throw new InvalidArgumentError(`${what}: has neither contents nor an entry in raw_input_contents`);
    if (t.datatype === 'BYTES') return { name: t.name, shape, datatype: 'BYTES', images: t.contents.bytesContents };
    return { name: t.name, shape, datatype: t.datatype, data: contentsData(t.contents, t.datatype, what) };
  });
  return { inputs, raw };
}

/** The deadline in performance.now() time: the call's, the request's `timeout` (µs) or the server's default, whichever is soonest. */
function deadlineOf(call: PublicCall, params: Readonly<Record<string, InferParameter>>, defaultMs: number): number | undefined {
  const now = performance.now();
  const candidates: number[] = [];
  if (call.deadline !== undefined) candidates.push(now + (call.deadline - Date.now()));
  const timeout = params.timeout?.int64Param;
  if (timeout !== undefined) {
    if (timeout <= 0n) throw new InvalidArgumentError(`parameters.timeout is microseconds (a positive int64), got ${timeout}`);
    candidates.push(now + Number(timeout) / 1000);
  }
  if (defaultMs > 0) candidates.push(now + defaultMs);
  return candidates.length > 0 ? Math.min(...candidates) : undefined;
}

function outputTensor(o: OutputTensor, raw: boolean): ModelInferResponse['outputs'][number] {
  const contents: InferTensorContents = { boolContents: [], intContents: [], int64Contents: [], uintContents: [], uint64Contents: [], fp32Contents: [], fp64Contents: [], bytesContents: [] };
  if (!raw) {
    if (o.datatype === 'INT32') contents.intContents = Array.from(o.data);
    else contents.fp32Contents = Array.from(o.data);
  }
  return { name: o.name, datatype: o.datatype, shape: o.shape.map(BigInt), parameters: {}, contents: raw ? undefined : contents };
}

async function modelInfer(o: GrpcOptions, served: ServedModel, request: ModelInferRequest, call: PublicCall): Promise<ModelInferResponse> {
  const started = performance.now();
  const labels = { model: served.name, version: served.version };
  let outcome = 'error';
  try {
    const { inputs, raw } = grpcInputs(request);
    const deadline = deadlineOf(call, request.parameters, o.requestTimeoutMs);
    const result = await infer(served, inputs, { maxElements: o.maxElements, ...(deadline !== undefined ? { deadline } : {}) });
    o.metrics.queue.observe(labels, result.queueMs / 1000);
    o.metrics.batchSize.observe(labels, result.batch);
    const outputs = selectOutputs(result.outputs, { id: undefined, inputs, outputs: request.outputs.map((r) => ({ name: r.name, binary: raw })), binaryOutputs: raw, timeoutUs: undefined });
    outcome = 'ok';
    return {
      modelName: served.name,
      modelVersion: served.version,
      id: request.id,
      parameters: {},
      outputs: outputs.map((t) => outputTensor(t, raw)),
      rawOutputContents: raw ? outputs.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)) : [],
    };
  } finally {
    o.metrics.requests.inc({ ...labels, protocol: 'grpc', outcome });
    o.metrics.latency.observe(labels, (performance.now() - started) / 1000);
  }
}

function metadata(store: ModelStore, name: string, version: string): ModelMetadataResponse {
  const m = v2Metadata(store.get(name, version || undefined), version !== '' ? [version] : store.versions(name));
  const tensor = (t: { name: string; datatype: string; shape: number[] }) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(BigInt) });
  return { name: m.name, versions: [...m.versions], platform: m.platform, inputs: m.inputs.map(tensor), outputs: m.outputs.map(tensor) };
}

/** Bind GRPCInferenceService on host:port (0: a free port). */
export function startGrpc(o: GrpcOptions, host: string, port: number): Promise<RunningRpcServer> {
  const { log, store } = o;
  const implementation = {
    serverLive: publicUnary(() => ({ live: true }), log),
    serverReady: publicUnary(() => ({ ready: store.all().length > 0 }), log),
    modelReady: publicUnary((r: { name: string; version: string }) => ({ ready: store.has(r.name, r.version || undefined) }), log),
    serverMetadata: publicUnary(() => serverMetadata(), log),
    modelMetadata: publicUnary((r: { name: string; version: string }) => metadata(store, r.name, r.version), log),
    modelInfer: publicUnary((r: ModelInferRequest, call) => store.get(r.modelName, r.modelVersion || undefined).use((s) => modelInfer(o, s, r, call)), log),
  };
  return startServer([{ definition: GRPCInferenceServiceService, implementation, descriptors: FILE_DESCRIPTOR_SET_BASE64 }], { host, port }, { maxMessageBytes: o.maxMessageBytes, ...(o.security !== undefined ? { security: o.security, warn: log } : {}) });
}
