/**
 * @tamp/client/grpc: the Open Inference Protocol v2 over gRPC
 * (`inference.GRPCInferenceService`), for Node: Tamp, Triton, KServe and the
 * other v2 servers alike. Tensors travel as `raw_input_contents` by default
 * (bytes, no per-element encoding); `raw: false` sends `InferTensorContents`.
 * Refusals reject with @tamp/rpc's `RpcError`: `grpcCode` is the status
 * (e.g. GrpcStatus.NOT_FOUND), the message the server's.
 */
import {
  GRPCInferenceServiceClient,
  type InferTensorContents,
  type ModelInferRequest_InferInputTensor,
  type ModelInferResponse,
} from '@tamp/proto/inference/grpc_predict_v2';
import { callUnary, createClient, type RpcClientOptions } from '@tamp/rpc';
import { fromBytes, toBytes } from './bytes.js';
import type { InferResponse, Tensor } from './index.js';

export { GrpcStatus, RpcError } from '@tamp/rpc';

export interface GrpcInferOptions {
  readonly version?: string;
  readonly id?: string;
  /** Outputs to return (default: all). */
  readonly outputs?: readonly string[];
  /** Send tensors as raw_input_contents (default true); false uses InferTensorContents. */
  readonly raw?: boolean;
  /** The call's deadline, ms from now (default: the client's timeoutMs). */
  readonly timeoutMs?: number;
}

export interface GrpcClientOptions extends RpcClientOptions {
  /** Default deadline of each call, ms (default 60,000). */
  readonly timeoutMs?: number;
}

function emptyContents(): InferTensorContents {
  return { boolContents: [], intContents: [], int64Contents: [], uintContents: [], uint64Contents: [], fp32Contents: [], fp64Contents: [], bytesContents: [] };
}

/** A tensor's elements in the InferTensorContents field of its datatype. */
function contentsOf(t: Tensor): InferTensorContents {
  const c = emptyContents();
  if (t.datatype === 'BYTES') c.bytesContents = [...(t.data as readonly Uint8Array[])];
  else {
    const values = Array.from(t.data as ArrayLike<number>);
    if (t.datatype === 'BOOL') c.boolContents = values.map((v) => v !== 0);
    else if (t.datatype === 'FP32') c.fp32Contents = values;
    else if (t.datatype === 'FP64') c.fp64Contents = values;
    else if (t.datatype.startsWith('UINT')) c.uintContents = values;
    else c.intContents = values;
  }
  return c;
}

function dataOf(datatype: string, c: InferTensorContents | undefined): Float32Array | Int32Array | Float64Array | Uint8Array {
  if (c === undefined) return new Float32Array(0);
  if (datatype === 'FP64') return Float64Array.from(c.fp64Contents);
  if (datatype === 'BOOL') return Uint8Array.from(c.boolContents, Number);
  if (datatype.startsWith('INT')) return Int32Array.from(c.intContents);
  if (datatype === 'UINT8') return Uint8Array.from(c.uintContents);
  // UINT16 and UINT32 do not fit the byte array: as doubles, exactly.
  if (datatype.startsWith('UINT')) return Float64Array.from(c.uintContents);
  return Float32Array.from(c.fp32Contents);
}

function response(res: ModelInferResponse): InferResponse {
  const outputs = res.outputs.map((o, i) => {
    const raw = res.rawOutputContents[i];
    return { name: o.name, shape: o.shape.map(Number), datatype: o.datatype, data: raw !== undefined ? fromBytes(o.datatype, raw) : dataOf(o.datatype, o.contents) };
  });
  return {
    modelName: res.modelName,
    modelVersion: res.modelVersion,
    id: res.id === '' ? undefined : res.id,
    outputs,
    output(name: string) {
      const found = outputs.find((x) => x.name === name);
      // A caller's mistake about the model, not a server refusal: a plain error naming what there is.
      if (found === undefined) throw new RangeError(`no output "${name}" in the response (outputs: ${outputs.map((x) => x.name).join(', ')})`);
      return found;
    },
  };
}

export class GrpcInferenceClient {
  private readonly client: GRPCInferenceServiceClient;
  private readonly timeoutMs: number;

  /** `address`: host:port of the server's gRPC port (`tamp serve --grpc-port`, 8001 by default). */
  constructor(
    readonly address: string,
    options: GrpcClientOptions = {},
  ) {
    this.client = createClient(GRPCInferenceServiceClient, address, options);
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  private opts(what: string, timeoutMs = this.timeoutMs) {
    return { what: `${what} at ${this.address}`, timeoutMs };
  }

  async live(): Promise<boolean> {
    return (await callUnary(this.client, 'serverLive', {}, this.opts('ServerLive'))).live;
  }

  async ready(): Promise<boolean> {
    return (await callUnary(this.client, 'serverReady', {}, this.opts('ServerReady'))).ready;
  }

  async modelReady(model: string, version?: string): Promise<boolean> {
    return (await callUnary(this.client, 'modelReady', { name: model, version: version ?? '' }, this.opts('ModelReady'))).ready;
  }

  async serverMetadata(): Promise<{ name: string; version: string; extensions: string[] }> {
    return callUnary(this.client, 'serverMetadata', {}, this.opts('ServerMetadata'));
  }

  async modelMetadata(model: string, version?: string): Promise<{ name: string; versions: string[]; platform: string; inputs: Array<{ name: string; datatype: string; shape: number[] }>; outputs: Array<{ name: string; datatype: string; shape: number[] }> }> {
    const m = await callUnary(this.client, 'modelMetadata', { name: model, version: version ?? '' }, this.opts('ModelMetadata'));
    const tensor = (t: { name: string; datatype: string; shape: bigint[] }) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(Number) });
    return { name: m.name, versions: m.versions, platform: m.platform, inputs: m.inputs.map(tensor), outputs: m.outputs.map(tensor) };
  }

  async infer(model: string, inputs: readonly Tensor[], options: GrpcInferOptions = {}): Promise<InferResponse> {
    const raw = options.raw ?? true;
    const tensors: ModelInferRequest_InferInputTensor[] = inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(BigInt), parameters: {}, contents: raw ? undefined : contentsOf(t) }));
    const res = await callUnary(
      this.client,
      'modelInfer',
      {
        modelName: model,
        modelVersion: options.version ?? '',
        id: options.id ?? '',
        parameters: {},
        inputs: tensors,
        outputs: (options.outputs ?? []).map((name) => ({ name, parameters: {} })),
        rawInputContents: raw ? inputs.map(toBytes) : [],
      },
      this.opts(`ModelInfer of ${model}`, options.timeoutMs),
    );
    return response(res);
  }

  close(): void {
    this.client.close();
  }
}
