/**
 * Prometheus metrics (prom-client) for every gRPC server and client of a
 * process, recorded by interceptors that createServer and clientOptions add
 * themselves: configured once, here. Names follow Prometheus conventions
 * (`tamp_` prefix, seconds, `_total` counters); labels are bounded sets (the
 * method's path, the status code's name), never ids. `serveMetrics` answers
 * `GET /metrics` (text format) and `GET /healthz` for a role's
 * `--metrics-port`.
 */
import { type Server as HttpServer, createServer as createHttpServer } from 'node:http';
import { type Interceptor, InterceptingCall, ServerInterceptingCall, type ServerInterceptor, status } from '@grpc/grpc-js';
import { ClusterError } from '@tamp/core';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The status code's name (`OK`, `UNAUTHENTICATED`, ...): a bounded label. */
function codeName(code: number): string {
  return status[code] ?? 'UNKNOWN';
}

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** This process's metrics: one registry, shared by every server and channel it opens. */
export class RpcMetrics {
  readonly registry = new Registry();
  readonly serverHandled = new Counter({ name: 'tamp_rpc_server_handled_total', help: 'RPCs a server finished, by method and status code', labelNames: ['method', 'code'], registers: [this.registry] });
  readonly serverSeconds = new Histogram({ name: 'tamp_rpc_server_handling_seconds', help: 'Time a server took to finish an RPC, by method', labelNames: ['method'], buckets: BUCKETS, registers: [this.registry] });
  readonly clientHandled = new Counter({ name: 'tamp_rpc_client_handled_total', help: 'RPCs a client finished, by method and status code', labelNames: ['method', 'code'], registers: [this.registry] });
  readonly clientSeconds = new Histogram({ name: 'tamp_rpc_client_handling_seconds', help: 'Time an RPC took as the client saw it, by method', labelNames: ['method'], buckets: BUCKETS, registers: [this.registry] });
  readonly refused = new Counter({ name: 'tamp_rpc_server_refused_total', help: 'RPCs a server refused, by reason (the status code)', labelNames: ['reason'], registers: [this.registry] });
  readonly messagesReceived = new Counter({ name: 'tamp_rpc_server_received_messages_total', help: 'Messages servers received (a push or an assign streams several), by method', labelNames: ['method'], registers: [this.registry] });
  readonly messagesSent = new Counter({ name: 'tamp_rpc_server_sent_messages_total', help: 'Messages servers sent (a pull streams several), by method', labelNames: ['method'], registers: [this.registry] });
  private defaults = false;

  /** Node's process metrics (CPU, memory, event loop lag, GC) in the same registry; once per process. */
  collectProcessMetrics(): void {
    if (this.defaults) return;
    this.defaults = true;
    collectDefaultMetrics({ register: this.registry });
  }

  /** Records every call a server finishes; refusals (any status but OK) also by reason. */
  serverInterceptor(): ServerInterceptor {
    return (descriptor, call) => {
      const started = process.hrtime.bigint();
      const method = descriptor.path;
      return new ServerInterceptingCall(call, {
        start: (next) => {
          next({
            onReceiveMessage: (message, nextMessage) => {
              this.messagesReceived.inc({ method });
              nextMessage(message);
            },
          });
        },
        sendMessage: (message, next) => {
          this.messagesSent.inc({ method });
          next(message);
        },
        sendStatus: (s, next) => {
          const code = codeName(s.code);
          this.serverHandled.inc({ method, code });
          this.serverSeconds.observe({ method }, Number(process.hrtime.bigint() - started) / 1e9);
          if (s.code !== status.OK) this.refused.inc({ reason: code });
          next(s);
        },
      });
    };
  }

  /** Records every call a client finishes. */
  clientInterceptor(): Interceptor {
    return (options, nextCall) => {
      const started = process.hrtime.bigint();
      const method = options.method_definition.path;
      return new InterceptingCall(nextCall(options), {
        start: (metadata, listener, next) => {
          next(metadata, {
            onReceiveStatus: (s, nextStatus) => {
              this.clientHandled.inc({ method, code: codeName(s.code) });
              this.clientSeconds.observe({ method }, Number(process.hrtime.bigint() - started) / 1e9);
              nextStatus(s);
            },
          });
        },
      });
    };
  }
}

/** The process's metrics: every server and client records here. */
export const rpcMetrics = new RpcMetrics();

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serve `GET /metrics` (Prometheus text format) and `GET /healthz` on
 * host:port (port 0: any free port), with the process metrics collected.
 */
export function serveMetrics(host: string, port: number, metrics: RpcMetrics = rpcMetrics): Promise<MetricsServer> {
  metrics.collectProcessMetrics();
  const server: HttpServer = createHttpServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        },
        (error: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`metrics failed: ${String(error)}\n`);
        },
      );
    } else if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('GET /metrics or /healthz\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error) => reject(new ClusterError('CLUSTER_CONFIG', `--metrics-port ${port}: cannot listen on ${host}:${port}: ${error.message}`, { cause: error })));
    server.listen(port, host, () => {
      const address = server.address();
      resolve({
        port: typeof address === 'object' && address !== null ? address.port : port,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
