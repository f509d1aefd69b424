/**
 * @tamp/client: the Open Inference Protocol v2 (KServe v2: Tamp, Triton,
 * KServe, Seldon MLServer, OpenVINO Model Server) over REST, with `fetch`, so
 * it runs in browsers and in Node. Tensors travel with the binary tensor data
 * extension by default (raw bytes after a JSON header), the fast path that
 * JSON number arrays are not. No dependencies, no Node built-ins. A gRPC
 * client for Node is the subpath `@tamp/client/grpc`.
 */
import { fromBytes, toBytes } from './bytes.js';

export type Datatype = 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'INT8' | 'INT16' | 'INT32' | 'FP32' | 'FP64' | 'BYTES';
export type TypedArray = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array;

export interface Tensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: Datatype;
  /** Numbers (typed array or plain array), or for BYTES the encoded items (e.g. PNG files). */
  readonly data: TypedArray | readonly number[] | readonly Uint8Array[];
}

export interface InferOptions {
  readonly version?: string;
  readonly id?: string;
  /** Outputs to return (default: all). */
  readonly outputs?: readonly string[];
  /** Send and receive tensors as raw bytes (default true); false uses JSON arrays. */
  readonly binary?: boolean;
  /** Triton's per-request timeout, microseconds. */
  readonly timeoutUs?: number;
  readonly signal?: AbortSignal;
}

export interface InferResponse {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id: string | undefined;
  readonly outputs: ReadonlyArray<{ readonly name: string; readonly shape: readonly number[]; readonly datatype: string; readonly data: Float32Array | Int32Array | Float64Array | Uint8Array }>;
  output(name: string): { readonly shape: readonly number[]; readonly data: Float32Array | Int32Array | Float64Array | Uint8Array };
}

/** A request the server refused: `status` is the HTTP status, the message the server's `error`. */
export class InferenceError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'InferenceError';
  }
}

const HEADER = 'inference-header-content-length';

function base64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export class InferenceClient {
  private readonly base: string;
  private readonly fetcher: typeof fetch;

  constructor(
    baseUrl: string,
    private readonly options: { readonly fetch?: typeof fetch; readonly headers?: Readonly<Record<string, string>>; readonly token?: string } = {},
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
    this.fetcher = options.fetch ?? fetch;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...this.options.headers, ...(this.options.token !== undefined ? { authorization: `Bearer ${this.options.token}` } : {}), ...extra };
  }

  private async get(path: string, signal?: AbortSignal): Promise<Response> {
    return this.fetcher(`${this.base}${path}`, { headers: this.headers(), ...(signal !== undefined ? { signal } : {}) });
  }

  private async json<T>(r: Response): Promise<T> {
    const text = await r.text();
    if (!r.ok) throw new InferenceError(r.status, text === '' ? `HTTP ${r.status}` : ((JSON.parse(text) as { error?: string }).error ?? text));
    return JSON.parse(text) as T;
  }

  private static path(model: string, version?: string): string {
    return `/v2/models/${encodeURIComponent(model)}${version !== undefined ? `/versions/${encodeURIComponent(version)}` : ''}`;
  }

  async live(): Promise<boolean> {
    return (await this.get('/v2/health/live')).status === 200;
  }

  async ready(): Promise<boolean> {
    return (await this.get('/v2/health/ready')).status === 200;
  }

  async modelReady(model: string, version?: string): Promise<boolean> {
    return (await this.get(`${InferenceClient.path(model, version)}/ready`)).status === 200;
  }

  async serverMetadata(): Promise<{ name: string; version: string; extensions: string[] }> {
    return this.json(await this.get('/v2'));
  }

  async modelMetadata(model: string, version?: string): Promise<{ name: string; versions: string[]; platform: string; inputs: Array<{ name: string; datatype: string; shape: number[] }>; outputs: Array<{ name: string; datatype: string; shape: number[] }> }> {
    return this.json(await this.get(InferenceClient.path(model, version)));
  }

  async infer(model: string, inputs: readonly Tensor[], options: InferOptions = {}): Promise<InferResponse> {
    const binary = options.binary ?? true;
    const raw = binary ? inputs.map(toBytes) : [];
    const head = {
      ...(options.id !== undefined ? { id: options.id } : {}),
      ...(options.timeoutUs !== undefined || binary ? { parameters: { ...(options.timeoutUs !== undefined ? { timeout: options.timeoutUs } : {}), ...(binary ? { binary_data_output: true } : {}) } } : {}),
      inputs: inputs.map((t, i) => ({
        name: t.name,
        shape: t.shape,
        datatype: t.datatype,
        ...(binary ? { parameters: { binary_data_size: (raw[i] as Uint8Array).length } } : { data: t.datatype === 'BYTES' ? (t.data as readonly Uint8Array[]).map(base64) : Array.from(t.data as ArrayLike<number>) }),
      })),
      ...(options.outputs !== undefined ? { outputs: options.outputs.map((name) => ({ name, ...(binary ? { parameters: { binary_data: true } } : {}) })) } : {}),
    };
    const headBytes = new TextEncoder().encode(JSON.stringify(head));
    const body = new Uint8Array(headBytes.length + raw.reduce((s, b) => s + b.length, 0));
    body.set(headBytes);
    let o = headBytes.length;
    for (const b of raw) {
      body.set(b, o);
      o += b.length;
    }
    const r = await this.fetcher(`${this.base}${InferenceClient.path(model, options.version)}/infer`, {
      method: 'POST',
      headers: this.headers(binary ? { 'content-type': 'application/octet-stream', [HEADER]: String(headBytes.length) } : { 'content-type': 'application/json' }),
      body,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    const bytes = new Uint8Array(await r.arrayBuffer());
    const headerLength = r.headers.get(HEADER);
    const jsonEnd = headerLength !== null ? Number(headerLength) : bytes.length;
    const text = new TextDecoder().decode(bytes.subarray(0, jsonEnd));
    if (!r.ok) throw new InferenceError(r.status, text === '' ? `HTTP ${r.status}` : ((JSON.parse(text) as { error?: string }).error ?? text));
    const res = JSON.parse(text) as { model_name: string; model_version: string; id?: string; outputs: Array<{ name: string; shape: number[]; datatype: string; data?: number[]; parameters?: { binary_data_size?: number } }> };
    let at = jsonEnd;
    const outputs = res.outputs.map((out) => {
      const size = out.parameters?.binary_data_size;
      let data: Float32Array | Int32Array | Float64Array | Uint8Array;
      if (size !== undefined) {
        data = fromBytes(out.datatype, bytes.subarray(at, at + size));
        at += size;
      } else data = out.datatype === 'INT32' ? Int32Array.from(out.data ?? []) : out.datatype === 'FP64' ? Float64Array.from(out.data ?? []) : Float32Array.from(out.data ?? []);
      return { name: out.name, shape: out.shape, datatype: out.datatype, data };
    });
    return {
      modelName: res.model_name,
      modelVersion: res.model_version,
      id: res.id,
      outputs,
      output(name: string) {
        const found = outputs.find((x) => x.name === name);
        if (found === undefined) throw new InferenceError(0, `no output "${name}" in the response (outputs: ${outputs.map((x) => x.name).join(', ')})`);
        return found;
      },
    };
  }
}
