/** Start a server: models from flags or a repository, REST (v2 + TF Serving), gRPC (v2) and metrics. */
import type { Server } from 'node:http';
import { UsageError } from '@tamp/core';
import type { DeviceRequest } from '@tamp/webgpu';
import type { BatcherOptions } from './batcher.js';
import { startGrpc } from './grpc.js';
import { ServeMetrics } from './metrics.js';
import { ModelStore } from './model-store.js';
import { ModelRepository } from './repository.js';
import { startHttp, startMetricsHttp } from './server.js';
import { INSECURE, type RpcSecurity } from '@tamp/rpc';

export interface ServeOptions {
  /** name → path of a model.tamp or model.json, served as version 1. */
  readonly models?: ReadonlyMap<string, string>;
  /** DIR/<name>/<version>/model.tamp|model.json, polled for changes. */
  readonly repository?: string;
  readonly host?: string;
  readonly httpPort?: number;
  /** The Open Inference Protocol's gRPC service on this port (0: a free one); undefined: no gRPC server. */
  readonly grpcPort?: number;
  /** TLS, mutual TLS and a bearer token, as the cluster roles take them (@tamp/rpc); default plaintext on loopback only. */
  readonly security?: RpcSecurity;
  /** undefined: no metrics server. */
  readonly metricsPort?: number;
  readonly device?: DeviceRequest;
  readonly batching?: Partial<BatcherOptions>;
  /** Run WASM and CPU models on a worker thread, so requests are read and answered while a batch computes; default: when batching. */
  readonly inferenceThread?: boolean;
  readonly maxBodyBytes?: number;
  readonly requestTimeoutMs?: number;
  readonly pollMs?: number;
  readonly log?: (m: string) => void;
}

export interface RunningServer {
  readonly httpPort: number;
  readonly grpcPort: number | undefined;
  readonly metricsPort: number | undefined;
  readonly store: ModelStore;
  readonly metrics: ServeMetrics;
  close(): Promise<void>;
}

function closeServer(s: Server): Promise<void> {
  return new Promise((resolve) => {
    s.close(() => resolve());
    s.closeAllConnections();
  });
}

export const DEFAULT_BATCHING: BatcherOptions = { maxBatchSize: 1, maxQueueDelayMs: 0, maxQueueSize: 1024 };

export async function startServe(options: ServeOptions): Promise<RunningServer> {
  const log = options.log ?? (() => {});
  if ((options.models === undefined || options.models.size === 0) === (options.repository === undefined)) {
    throw new UsageError('give models as --model NAME=PATH (one or more), or --model-repository DIR, not both');
  }
  const batching = { ...DEFAULT_BATCHING, ...options.batching };
  if (!(batching.maxBatchSize >= 1 && batching.maxQueueDelayMs >= 0 && batching.maxQueueSize >= batching.maxBatchSize)) {
    throw new UsageError(`batching: --max-batch-size (${batching.maxBatchSize}) at least 1, --max-queue-delay-ms (${batching.maxQueueDelayMs}) at least 0, and the queue (${batching.maxQueueSize}) at least one batch`);
  }
  const store = new ModelStore({ device: options.device ?? 'auto', batching, log, ...(options.inferenceThread !== undefined ? { inferenceThread: options.inferenceThread } : {}) });
  const metrics = new ServeMetrics();
  let repository: ModelRepository | undefined;
  try {
    if (options.repository !== undefined) {
      repository = new ModelRepository(options.repository, store, log);
      await repository.sync();
      repository.watch(options.pollMs ?? 1000);
    } else {
      for (const [name, path] of options.models ?? []) await store.load(name, '1', path);
    }
  } catch (e) {
    repository?.stop();
    await store.close();
    throw e;
  }
  metrics.loaded.set(store.all().length);
  const host = options.host ?? '127.0.0.1';
  const limits = { maxBodyBytes: options.maxBodyBytes ?? 64 * 1024 * 1024, maxElements: 64 * 1024 * 1024, requestTimeoutMs: options.requestTimeoutMs ?? 0 };
  const started: Array<() => Promise<void>> = [];
  try {
    const security = options.security ?? INSECURE;
    const http = await startHttp({ store, repository, metrics, ...limits, log }, host, options.httpPort ?? 8000, security);
    started.push(async () => {
      http.stop();
      await closeServer(http.server);
    });
    const grpc = options.grpcPort !== undefined ? await startGrpc({ store, metrics, maxMessageBytes: limits.maxBodyBytes, maxElements: limits.maxElements, requestTimeoutMs: limits.requestTimeoutMs, log, security }, host, options.grpcPort) : undefined;
    if (grpc !== undefined) started.push(() => grpc.close());
    const metricsHttp = options.metricsPort !== undefined ? await startMetricsHttp(metrics, () => store.all().length > 0, host, options.metricsPort) : undefined;
    if (metricsHttp !== undefined) started.push(() => closeServer(metricsHttp.server));
    return {
      httpPort: http.port,
      grpcPort: grpc?.port,
      metricsPort: metricsHttp?.port,
      store,
      metrics,
      async close() {
        repository?.stop();
        await Promise.all(started.map((close) => close()));
        await store.close();
      },
    };
  } catch (e) {
    // A port taken: close what did start, so a refused start leaves nothing listening.
    repository?.stop();
    await Promise.all(started.map((close) => close()));
    await store.close();
    throw e;
  }
}
