/**
 * Metrics recorded by the interceptors every server and client get: a real
 * server, calls accepted and refused, and a scrape of /metrics parsed as
 * Prometheus text.
 */
import { type CallOptions, type Client, type ClientUnaryCall, Metadata, type ServiceError } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { clientConstructor, createClient, startServer } from './channel.js';
import { requestHeader } from './header.js';
import { serviceHandlers } from './handlers.js';
import { Counter, Histogram } from 'prom-client';
import { type CallEnd, type MetricsServer, RpcMetrics, observeCalls, rpcMetrics, serveMetrics } from './metrics.js';

const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString('utf8')) as unknown,
};
const PING = { ping: { path: '/tamp.test.Metered/Ping', requestStream: false, responseStream: false, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize } };
interface PingClient extends Client {
  ping(request: object, metadata: Metadata, options: Partial<CallOptions>, callback: (e: ServiceError | null, r: object) => void): ClientUnaryCall;
}

let http: MetricsServer | undefined;
afterAll(async () => http?.close());

/** `name{labels} value` lines of the text format, by series. */
function parse(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    // Prometheus parses values with Go's ParseFloat: NaN in any case (prom-client writes `Nan`).
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.eE+-]+|[Nn]a[Nn]|\+Inf|-Inf)$/.exec(line);
    if (m === null) throw new Error(`not Prometheus text: ${line}`);
    series.set(m[1] as string, Number(m[2]));
  }
  return series;
}

describe('rpc metrics', () => {
  it('counts calls by method and status, refusals by reason; /metrics parses as Prometheus text', async () => {
    const h = serviceHandlers({ jobId: 'metered' });
    const server = await startServer([{ definition: PING, implementation: { ping: h.unary('ping', () => ({})) } }], { host: '127.0.0.1', port: 0 });
    const client = createClient(clientConstructor<PingClient>(PING, 'tamp.test.Metered'), `127.0.0.1:${server.port}`);
    const call = (job: string) => new Promise<void>((resolve) => client.ping({ header: requestHeader(job) }, new Metadata(), { deadline: Date.now() + 5_000 }, () => resolve()));
    await call('metered');
    await call('metered');
    await call('another-job');
    client.close();
    await server.close(0);

    http = await serveMetrics('127.0.0.1', 0);
    const res = await fetch(`http://127.0.0.1:${http.port}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const series = parse(await res.text());
    const method = 'method="/tamp.test.Metered/Ping"';
    expect(series.get(`tamp_rpc_server_handled_total{${method},code="OK"}`)).toBe(2);
    expect(series.get(`tamp_rpc_server_handled_total{${method},code="FAILED_PRECONDITION"}`)).toBe(1);
    // The reason is the status; the error is Tamp's code, carried in the trailing metadata.
    expect(series.get('tamp_rpc_server_refused_total{reason="FAILED_PRECONDITION",error="JOB_MISMATCH"}')).toBe(1);
    expect(series.get(`tamp_rpc_client_handled_total{${method},code="OK"}`)).toBe(2);
    expect(series.get(`tamp_rpc_server_handling_seconds_count{${method}}`)).toBe(3);
    expect(series.has('process_cpu_seconds_total')).toBe(true);
    expect((await fetch(`http://127.0.0.1:${http.port}/healthz`)).status).toBe(200);
  });

  it('counts a method held open for a peer\'s life but leaves it out of the handling-time histograms, server and client', async () => {
    const HELD = { ping: { ...PING.ping, path: '/tamp.test.Held/Ping' } };
    rpcMetrics.holdsOpen(HELD.ping.path);
    const h = serviceHandlers({ jobId: 'held' });
    const server = await startServer([{ definition: HELD, implementation: { ping: h.unary('ping', () => ({})) } }], { host: '127.0.0.1', port: 0 });
    const client = createClient(clientConstructor<PingClient>(HELD, 'tamp.test.Held'), `127.0.0.1:${server.port}`);
    await new Promise<void>((resolve) => client.ping({ header: requestHeader('held') }, new Metadata(), { deadline: Date.now() + 5_000 }, () => resolve()));
    client.close();
    await server.close(0);
    const text = await rpcMetrics.registry.metrics();
    const method = 'method="/tamp.test.Held/Ping"';
    expect(parse(text).get(`tamp_rpc_server_handled_total{${method},code="OK"}`)).toBe(1);
    expect(text).not.toContain(`tamp_rpc_server_handling_seconds_count{${method}}`);
    expect(parse(text).get(`tamp_rpc_client_handled_total{${method},code="OK"}`)).toBe(1);
    expect(text).not.toContain(`tamp_rpc_client_handling_seconds_count{${method}}`);
  });

  it('observeCalls follows the chosen methods: messages each way, the status, the time after half-close', async () => {
    const ends: Array<CallEnd & { method: string; received: number; sent: number }> = [];
    const observer = observeCalls((method) => {
      if (!method.endsWith('/Ping')) return undefined;
      let received = 0;
      let sent = 0;
      return { received: () => received++, sent: () => sent++, end: (e) => ends.push({ ...e, method, received, sent }) };
    });
    const h = serviceHandlers({ jobId: 'observed' });
    const server = await startServer([{ definition: PING, implementation: { ping: h.unary('ping', () => ({})) } }], { host: '127.0.0.1', port: 0 }, { interceptors: [observer] });
    const client = createClient(clientConstructor<PingClient>(PING, 'tamp.test.Metered'), `127.0.0.1:${server.port}`);
    const call = (job: string) => new Promise<void>((resolve) => client.ping({ header: requestHeader(job) }, new Metadata(), { deadline: Date.now() + 5_000 }, () => resolve()));
    await call('observed');
    await call('another-job');
    client.close();
    await server.close(0);
    expect(ends.map((e) => [e.method, e.code, e.received, e.sent])).toEqual([
      ['/tamp.test.Metered/Ping', 'OK', 1, 1],
      ['/tamp.test.Metered/Ping', 'FAILED_PRECONDITION', 1, 0],
    ]);
    for (const e of ends) {
      expect(e.seconds).toBeGreaterThanOrEqual(0);
      expect(e.secondsAfterHalfClose).toBeDefined();
      expect(e.secondsAfterHalfClose as number).toBeLessThanOrEqual(e.seconds);
    }
  });

  it("another thread's snapshot is summed into the scrape: counters and histograms by name and labels", async () => {
    const main = new RpcMetrics();
    const thread = new RpcMetrics();
    const counter = (m: RpcMetrics) => new Counter({ name: 'tamp_test_things_total', help: 'things', labelNames: ['kind'], registers: [m.registry] });
    const histogram = (m: RpcMetrics) => new Histogram({ name: 'tamp_test_seconds', help: 'time', buckets: [1, 10], registers: [m.registry] });
    counter(main).inc({ kind: 'a' }, 2);
    const c = counter(thread);
    c.inc({ kind: 'a' }, 3);
    c.inc({ kind: 'b' }, 1);
    histogram(main).observe(0.5);
    histogram(thread).observe(5);
    const remove = main.addSource(() => thread.snapshot());
    const server = await serveMetrics('127.0.0.1', 0, main);
    try {
      const series = parse(await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text());
      expect(series.get('tamp_test_things_total{kind="a"}')).toBe(5);
      expect(series.get('tamp_test_things_total{kind="b"}')).toBe(1);
      expect(series.get('tamp_test_seconds_bucket{le="1"}')).toBe(1);
      expect(series.get('tamp_test_seconds_bucket{le="10"}')).toBe(2);
      expect(series.get('tamp_test_seconds_count')).toBe(2);
      expect(server.scrapes).toBe(1);
      remove();
      const after = parse(await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text());
      expect(after.get('tamp_test_things_total{kind="a"}')).toBe(2);
      // nextScrape resolves on the next answered scrape.
      const next = server.nextScrape(60_000);
      await fetch(`http://127.0.0.1:${server.port}/metrics`);
      await next;
      expect(server.scrapes).toBe(3);
    } finally {
      await server.close();
    }
  });
});
