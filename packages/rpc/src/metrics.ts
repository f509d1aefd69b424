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
import { ClusterError } from '@tamp/core/base';
import { AggregatorRegistry, Counter, Histogram, type MetricObjectWithValues, type MetricValue, Registry, collectDefaultMetrics } from 'prom-client';
import { ERROR_CODE_KEY } from './status.js';

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
  readonly refused = new Counter({
    name: 'tamp_rpc_server_refused_total',
    help: "RPCs a server refused, by reason (the status code) and error (Tamp's error code, e.g. NON_FINITE; none when the refusal carried none)",
    labelNames: ['reason', 'error'],
    registers: [this.registry],
  });
  readonly messagesReceived = new Counter({ name: 'tamp_rpc_server_received_messages_total', help: 'Messages servers received (a push or an assign streams several), by method', labelNames: ['method'], registers: [this.registry] });
  readonly messagesSent = new Counter({ name: 'tamp_rpc_server_sent_messages_total', help: 'Messages servers sent (a pull streams several), by method', labelNames: ['method'], registers: [this.registry] });
  private defaults = false;
  /** Methods whose calls stay open for as long as a peer lives (a worker's Presence): counted, not timed. */
  private readonly heldOpen = new Set<string>();
  /** Other threads' metrics (a worker's comm thread), summed into every scrape. */
  private readonly sources = new Set<() => Promise<ThreadMetrics>>();

  /** Node's process metrics (CPU, memory, event loop lag, GC) in the same registry; once per process. */
  collectProcessMetrics(): void {
    if (this.defaults) return;
    this.defaults = true;
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Calls of `path` (e.g. `/tamp.v1.Coordinator/Presence`) are held open for
   * a peer's whole life, so their length is not a handling time: they are
   * counted in `tamp_rpc_{server,client}_handled_total` but kept out of
   * `tamp_rpc_{server,client}_handling_seconds`, whose buckets would
   * otherwise fill with jobs' lengths. Each process (each thread: a worker's
   * comm thread has its own registry) registers the methods it serves or calls.
   */
  holdsOpen(path: string): void {
    this.heldOpen.add(path);
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
          if (!this.heldOpen.has(method)) this.serverSeconds.observe({ method }, Number(process.hrtime.bigint() - started) / 1e9);
          if (s.code !== status.OK) this.refused.inc({ reason: code, error: String(s.metadata?.get(ERROR_CODE_KEY)[0] ?? 'none') });
          next(s);
        },
      });
    };
  }

  /**
   * Add another thread's metrics (what `snapshot()` returns there) to every
   * scrape of this registry: counters and histograms of the same name and
   * labels are summed. Returns a function that removes the source.
   */
  addSource(source: () => Promise<ThreadMetrics>): () => void {
    this.sources.add(source);
    return () => this.sources.delete(source);
  }

  /** This registry's values as plain data, to hand to another thread's `addSource`. */
  snapshot(): Promise<ThreadMetrics> {
    return this.registry.getMetricsAsJSON();
  }

  /** The text format of this registry and every source. */
  async text(): Promise<string> {
    if (this.sources.size === 0) return this.registry.metrics();
    const parts = [await this.registry.getMetricsAsJSON(), ...(await Promise.all([...this.sources].map((s) => s().catch(() => []))))];
    return AggregatorRegistry.aggregate(parts).metrics();
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
              if (!this.heldOpen.has(method)) this.clientSeconds.observe({ method }, Number(process.hrtime.bigint() - started) / 1e9);
              nextStatus(s);
            },
          });
        },
      });
    };
  }
}

/** A registry's values as plain data (prom-client's JSON form), which crosses threads by postMessage. */
export type ThreadMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** How one call of a chosen method ended. */
export interface CallEnd {
  /** The status code's name (`OK`, `INVALID_ARGUMENT`, ...). */
  readonly code: string;
  /** From the call's start to its status. */
  readonly seconds: number;
  /** From the client's half-close (its last message) to the status; undefined when it never half-closed. */
  readonly secondsAfterHalfClose: number | undefined;
}

/** Follows one call: each message as the handlers see it (deserialized, or as written), then its end. */
export interface CallObserver {
  received?(message: unknown): void;
  sent?(message: unknown): void;
  end(result: CallEnd): void;
}

/**
 * A server interceptor that follows each call of the methods `observe`
 * answers for (it returns undefined for the others): for a service's own
 * metrics, e.g. one parameter server's shard. Add it through
 * `RpcServerOptions.interceptors`.
 */
export function observeCalls(observe: (method: string) => CallObserver | undefined): ServerInterceptor {
  return (descriptor, call) => {
    const observer = observe(descriptor.path);
    if (observer === undefined) return new ServerInterceptingCall(call);
    const started = process.hrtime.bigint();
    let halfClosed: bigint | undefined;
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMessage: (message, nextMessage) => {
            observer.received?.(message);
            nextMessage(message);
          },
          onReceiveHalfClose: (nextHalfClose) => {
            halfClosed = process.hrtime.bigint();
            nextHalfClose();
          },
        });
      },
      sendMessage: (message, next) => {
        observer.sent?.(message);
        next(message);
      },
      sendStatus: (s, next) => {
        const now = process.hrtime.bigint();
        observer.end({
          code: codeName(s.code),
          seconds: Number(now - started) / 1e9,
          secondsAfterHalfClose: halfClosed === undefined ? undefined : Number(now - halfClosed) / 1e9,
        });
        next(s);
      },
    });
  };
}

/** The process's metrics: every server and client records here. */
export const rpcMetrics = new RpcMetrics();

export interface MetricsServer {
  readonly port: number;
  /** Scrapes of /metrics answered so far. */
  readonly scrapes: number;
  /** Resolves once a scrape that began after this call has been answered, or after `timeoutMs`. */
  nextScrape(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Serve `GET /metrics` (Prometheus text format) and `GET /healthz` on
 * host:port (port 0: any free port), with the process metrics collected.
 */
export function serveMetrics(host: string, port: number, metrics: RpcMetrics = rpcMetrics): Promise<MetricsServer> {
  metrics.collectProcessMetrics();
  let scrapes = 0;
  let started = 0;
  /** Waiters for a scrape that starts after they do: an answer computed earlier may hold stale values. */
  const scrapeWaiters: Array<{ after: number; resolve: () => void }> = [];
  const server: HttpServer = createHttpServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      const seq = ++started;
      metrics.text().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text, () => {
            scrapes++;
            for (const w of scrapeWaiters.filter((x) => seq > x.after)) {
              scrapeWaiters.splice(scrapeWaiters.indexOf(w), 1);
              w.resolve();
            }
          });
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
        get scrapes() {
          return scrapes;
        },
        nextScrape: (timeoutMs) =>
          new Promise<void>((r) => {
            const waiter = {
              after: started,
              resolve: () => {
                clearTimeout(timer);
                r();
              },
            };
            const timer = setTimeout(() => {
              scrapeWaiters.splice(scrapeWaiters.indexOf(waiter), 1);
              r();
            }, timeoutMs);
            scrapeWaiters.push(waiter);
          }),
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
