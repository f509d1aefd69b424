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
import { type MetricsServer, serveMetrics } from './metrics.js';

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
    expect(series.get('tamp_rpc_server_refused_total{reason="FAILED_PRECONDITION"}')).toBe(1);
    expect(series.get(`tamp_rpc_client_handled_total{${method},code="OK"}`)).toBe(2);
    expect(series.get(`tamp_rpc_server_handling_seconds_count{${method}}`)).toBe(3);
    expect(series.has('process_cpu_seconds_total')).toBe(true);
    expect((await fetch(`http://127.0.0.1:${http.port}/healthz`)).status).toBe(200);
  });
});
