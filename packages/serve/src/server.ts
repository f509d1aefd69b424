/**
 * `tamp serve`'s HTTP side: the Open Inference Protocol v2 REST API (with the
 * binary tensor data extension and Triton's repository extension), TF
 * Serving's REST API, and Prometheus metrics on their own port.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { INSECURE, type RpcSecurity } from '@tamp/rpc';
import { securedHttpServer } from './http-security.js';
import type { AddressInfo } from 'node:net';
import { TAMP_VERSION } from '@tamp/core';
import { infer } from './inference.js';
import type { ServeMetrics } from './metrics.js';
import type { ModelStore, ServedModel } from './model-store.js';
import type { ModelRepository } from './repository.js';
import { parseTfsRequest, tfsResponse, tfsStatus } from './tfserving.js';
import { readBody, sendEmpty, sendError, sendJson } from './http-util.js';
import { HEADER_LENGTH, parseV2Request, selectOutputs, v2Metadata, v2Response } from './v2-rest.js';

export interface HttpOptions {
  readonly store: ModelStore;
  readonly repository: ModelRepository | undefined;
  readonly metrics: ServeMetrics;
  readonly maxBodyBytes: number;
  /** Most elements one request may carry (bounds what a request can make the server allocate). */
  readonly maxElements: number;
  /** Default deadline of a request, ms (0: none). */
  readonly requestTimeoutMs: number;
  readonly log: (m: string) => void;
}

const MODEL = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?$/;
const TFS = /^\/v1\/models\/([^/:]+)(?:\/versions\/([^/:]+))?(:predict|\/metadata)?$/;
const REPO = /^\/v2\/repository\/models\/([^/]+)\/(load|unload)$/;

export function serverMetadata() {
  return { name: 'tamp', version: TAMP_VERSION, extensions: ['binary_tensor_data', 'model_repository'] };
}

async function runInfer(o: HttpOptions, served: ServedModel, protocol: string, body: Buffer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  let outcome = 'error';
  try {
    if (protocol === 'v2') {
      const header = req.headers[HEADER_LENGTH];
      const request = parseV2Request(body, typeof header === 'string' ? header : undefined);
      const timeoutMs = request.timeoutUs !== undefined ? request.timeoutUs / 1000 : o.requestTimeoutMs;
      const result = await infer(served, request.inputs, { maxElements: o.maxElements, ...(timeoutMs > 0 ? { deadline: performance.now() + timeoutMs } : {}) });
      o.metrics.queue.observe({ model: served.name, version: served.version }, result.queueMs / 1000);
      o.metrics.batchSize.observe({ model: served.name, version: served.version }, result.batch);
      const { body: out, headerLength } = v2Response(served, request.id, selectOutputs(result.outputs, request));
      res.writeHead(200, {
        'content-type': headerLength !== undefined ? 'application/octet-stream' : 'application/json',
        'content-length': out.length,
        ...(headerLength !== undefined ? { [HEADER_LENGTH]: headerLength } : {}),
      });
      res.end(out);
    } else {
      const request = parseTfsRequest(body, served);
      const result = await infer(served, [request.input], { maxElements: o.maxElements, ...(o.requestTimeoutMs > 0 ? { deadline: performance.now() + o.requestTimeoutMs } : {}) });
      o.metrics.queue.observe({ model: served.name, version: served.version }, result.queueMs / 1000);
      o.metrics.batchSize.observe({ model: served.name, version: served.version }, result.batch);
      sendJson(res, 200, tfsResponse(result.outputs, request.rows));
    }
    outcome = 'ok';
  } finally {
    o.metrics.requests.inc({ model: served.name, version: served.version, protocol, outcome });
    o.metrics.latency.observe({ model: served.name, version: served.version }, (performance.now() - started) / 1000);
  }
}

async function route(o: HttpOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = (req.url ?? '/').split('?')[0] as string;
  const method = req.method ?? 'GET';
  if (method === 'GET' && url === '/v2/health/live') return sendEmpty(res, 200);
  if (method === 'GET' && url === '/v2/health/ready') return sendEmpty(res, o.store.all().length > 0 ? 200 : 400);
  if (method === 'GET' && url === '/v2') return sendJson(res, 200, serverMetadata());
  let m = MODEL.exec(url);
  if (m !== null) {
    const [, name = '', version, action] = m.map((s) => (s === undefined ? undefined : decodeURIComponent(s)));
    if (action === '/ready' && method === 'GET') return sendEmpty(res, o.store.has(name, version) ? 200 : 400);
    const served = o.store.get(name, version);
    if (action === undefined && method === 'GET') return sendJson(res, 200, v2Metadata(served, version !== undefined ? [version] : o.store.versions(name)));
    if (action === '/infer' && method === 'POST') return served.use(async (s) => runInfer(o, s, 'v2', await readBody(req, o.maxBodyBytes), req, res));
  }
  m = TFS.exec(url);
  if (m !== null) {
    const [, name = '', version, action] = m.map((s) => (s === undefined ? undefined : decodeURIComponent(s)));
    if (action === undefined && method === 'GET') {
      const versions = version !== undefined ? [o.store.get(name, version).version] : o.store.versions(name);
      if (versions.length === 0) o.store.get(name);
      return sendJson(res, 200, tfsStatus(versions.map((v) => ({ version: v, state: 'AVAILABLE' as const }))));
    }
    if (action === '/metadata' && method === 'GET') return sendJson(res, 200, { model_spec: { name, version: o.store.get(name, version).version }, metadata: v2Metadata(o.store.get(name, version), o.store.versions(name)) });
    if (action === ':predict' && method === 'POST') return o.store.get(name, version).use(async (s) => runInfer(o, s, 'tfserving', await readBody(req, o.maxBodyBytes), req, res));
  }
  if (o.repository !== undefined && method === 'POST') {
    if (url === '/v2/repository/index') return sendJson(res, 200, o.repository.index());
    m = REPO.exec(url);
    if (m !== null) {
      const name = decodeURIComponent(m[1] as string);
      await readBody(req, o.maxBodyBytes);
      if (m[2] === 'load') await o.repository.load(name);
      else await o.repository.unload(name);
      o.metrics.loaded.set(o.store.all().length);
      return sendEmpty(res, 200);
    }
  }
  sendJson(res, 404, { error: `no route for ${method} ${url}` });
}

export function startHttp(o: HttpOptions, host: string, port: number, security: RpcSecurity = INSECURE): Promise<{ server: Server | HttpsServer; port: number; stop: () => void }> {
  const secured = securedHttpServer(security, host, (req, res) => {
    if (!secured.authorize((req.url ?? '/').split('?')[0] as string, req.headers.authorization)) {
      // Nothing is read or run for a request without the token.
      req.resume();
      sendJson(res, 401, { error: req.headers.authorization === undefined ? 'no bearer token: send authorization: Bearer <token>' : 'wrong bearer token' });
      return;
    }
    route(o, req, res).catch((e: unknown) => {
      if (!res.headersSent) sendError(res, e, o.log);
      else res.destroy(e instanceof Error ? e : undefined);
    });
  }, o.log);
  const server = secured.server;
  // Keep-alive connections outlive requests: a server closing waits for none of them.
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, port: (server.address() as AddressInfo).port, stop: secured.stop }));
  });
}

export function startMetricsHttp(metrics: ServeMetrics, ready: () => boolean, host: string, port: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (e: unknown) => sendError(res, e, () => {}),
      );
    } else if (req.url === '/healthz') sendJson(res, ready() ? 200 : 503, { ready: ready() });
    else sendJson(res, 404, { error: 'try /metrics or /healthz' });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, port: (server.address() as AddressInfo).port }));
  });
}

