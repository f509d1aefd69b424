/**
 * pnpm bench:serve [--duration S] [--soak S] [--no-write]: `tamp serve` under HTTP load
 * (autocannon) and gRPC load on this machine's WASM device. LeNet-5 int8 (the digits demo's
 * compressed model) and the shapes detector, at concurrency 1, 8 and 64, with
 * and without dynamic batching, JSON and binary bodies; against the server a
 * user would write by hand (stock tfjs `model.predict` per request, fp32;
 * serve-baseline.ts); and gRPC load (a bounded loop of concurrent ModelInfer
 * calls through @tamp/client/grpc, raw tensor contents). Then a soak: RSS of the batching server over --soak
 * seconds at concurrency 64. Also the batching server with `--inference-thread off`
 * (its model on the event loop's thread, as before the inference thread) at
 * concurrency 64, binary and gRPC, to show what the thread pays. Rewrites its
 * section of BENCHMARKS.md; --no-write prints it instead.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { GrpcInferenceClient } from '@tamp/client/grpc';
import { renderScene, sceneSeed } from '@tamp/core';
import { loadModel } from '@tamp/webgpu/node';
import { freePorts } from '../helpers/ports.js';
import { TAMP_BIN } from '../helpers/tamp.js';
import { fmt, machine, markdownTable, REPO, writeSection } from './report.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const DURATION = flag('duration', 10);
const WRITE = !args.includes('--no-write');
const SOAK = flag('soak', 60);
const CONCURRENCY = [1, 8, 64];
const DIGITS = join(REPO, 'demos/digits/public/models/compressed.tamp');
const DIGITS_FP32 = join(REPO, 'demos/digits/public/models/fp32/model.json');
const DETECTOR = join(REPO, 'demos/objects/public/models/detector.tamp');
const BATCHING = ['--max-batch-size', '32', '--max-queue-delay-ms', '2', '--max-queue-size', '4096'];

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}) before it was ready`);
    if (await fetch(url).then((r) => r.status === 200, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never became ready`);
}

async function startTamp(batching: boolean, extra: readonly string[] = []): Promise<{ url: string; grpc: string; child: ChildProcess }> {
  const [port, grpcPort] = await freePorts(2);
  const child = spawn(
    process.execPath,
    [TAMP_BIN, 'serve', '--model', `digits=${DIGITS}`, '--model', `objects=${DETECTOR}`, '--device', 'wasm', '--http-port', String(port), '--grpc-port', String(grpcPort), ...(batching ? BATCHING : []), ...extra],
    { stdio: 'ignore' },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/v2/health/ready`, child);
  // The gRPC port binds just after the HTTP one: wait for it too.
  const grpc = `127.0.0.1:${grpcPort}`;
  const probe = new GrpcInferenceClient(grpc, { timeoutMs: 1_000 });
  try {
    for (let i = 0; !(await probe.ready().catch(() => false)); i++) {
      if (i >= 100) throw new Error(`gRPC at ${grpc} never became ready`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    probe.close();
  }
  return { url, grpc, child };
}

async function startBaseline(): Promise<{ url: string; child: ChildProcess }> {
  const [port] = await freePorts(1);
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/bench/serve-baseline.ts'), DIGITS_FP32, String(port)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (c) => reject(new Error(`the baseline server exited (${c})`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

interface Body {
  readonly body: Buffer;
  readonly headers: Record<string, string>;
}

function jsonBody(shape: number[], data: ArrayLike<number>): Body {
  return { body: Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape, datatype: 'FP32', data: Array.from(data) }] })), headers: { 'content-type': 'application/json' } };
}

function binaryBody(shape: number[], data: Float32Array): Body {
  const head = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape, datatype: 'FP32', parameters: { binary_data_size: data.byteLength } }], parameters: { binary_data_output: true } }));
  return { body: Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) } };
}

interface Load {
  readonly rps: number;
  readonly p50: number;
  readonly p90: number;
  /** From every response's own latency (autocannon's summary has no p95; its 'response' event gives each one). */
  readonly p95: number;
  readonly p975: number;
  readonly p99: number;
  readonly errors: number;
  /** What the errors were (autocannon: connection errors, timeouts, non-2xx answers). */
  readonly errorKinds: string;
}

/** The q-quantile of sorted latencies (nearest rank). */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function load(url: string, body: Body, connections: number, duration = DURATION): Promise<Load> {
  const latencies: number[] = [];
  const r = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({ url, method: 'POST', headers: body.headers, body: body.body, connections, duration }, (error: unknown, result: autocannon.Result) => (error ? reject(error instanceof Error ? error : new Error(`autocannon failed: ${JSON.stringify(error)}`)) : resolve(result)));
    instance.on('response', (_client, _status, _bytes, ms) => latencies.push(ms));
  });
  latencies.sort((a, b) => a - b);
  return { rps: r.requests.total / r.duration, p50: r.latency.p50, p90: r.latency.p90, p95: quantile(latencies, 0.95), p975: r.latency.p97_5, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx, errorKinds: `${r.errors} connection errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx` };
}

/**
 * gRPC load: `connections` ModelInfer loops over one channel (HTTP/2
 * multiplexes them, as gRPC clients do) until `duration` seconds pass; each
 * loop waits for its answer before the next call, as autocannon's connections do.
 */
async function grpcLoad(address: string, model: string, shape: number[], data: Float32Array, connections: number, duration = DURATION): Promise<Load> {
  const client = new GrpcInferenceClient(address, { timeoutMs: 30_000 });
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const end = started + duration * 1000;
  const loop = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        await client.infer(model, [{ name: 'input', shape, datatype: 'FP32', data }]);
        latencies.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: connections }, loop));
  } finally {
    client.close();
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => quantile(latencies, p);
  return { rps: latencies.length / seconds, p50: q(0.5), p90: q(0.9), p95: q(0.95), p975: q(0.975), p99: q(0.99), errors, errorKinds: `${errors} failed calls` };
}

const digit = Float32Array.from({ length: 784 }, (_, i) => ((i * 7919) % 997) / 997);
const scene = renderScene(sceneSeed(2026, 'bench', 0));
const scenePixels = Float32Array.from(scene.pixels, (v) => v / 255);

/**
 * The model alone, in this process on the servers' device (no HTTP, no thread hop): what batching can buy at
 * most here is batch 1's time per sample over batch 32's, measured before any server starts.
 */
async function modelAlone(): Promise<{ one: number; batch: number; ceiling: number }> {
  const model = await loadModel(DIGITS, { device: 'wasm' });
  try {
    // Each size runs for a second before it is timed for two: batch 1 gets about 2.5x faster over its first
    // thousand calls as V8 optimises tfjs's JavaScript, and a server reaches that state within its first second.
    const time = async (batch: number) => {
      const input = new Float32Array(batch * 784).map((_, i) => digit[i % 784] as number);
      const run = async (ms: number) => {
        let runs = 0;
        const t = performance.now();
        while (performance.now() - t < ms) {
          await model.predict(input);
          runs++;
        }
        return (performance.now() - t) / runs;
      };
      await run(1_000);
      return run(2_000);
    };
    const one = await time(1);
    const batch = await time(32);
    return { one, batch, ceiling: one / (batch / 32) };
  } finally {
    model.dispose();
  }
}
const alone = await modelAlone();
process.stderr.write(`LeNet-5 int8 alone on wasm: batch 1 ${fmt(alone.one, 3)} ms, batch 32 ${fmt(alone.batch, 2)} ms: ceiling ${fmt(alone.ceiling, 2)}x\n`);

const rows: Array<Array<string | number>> = [];
const summary: Record<string, Load> = {};
const row = (model: string, server: string, body: string, c: number, l: Load) => {
  summary[`${model}|${server}|${body}|${c}`] = l;
  rows.push([model, server, body, c, fmt(l.rps), fmt(l.p50, 1), fmt(l.p90, 1), fmt(l.p95, 1), fmt(l.p975, 1), fmt(l.p99, 1), l.errors === 0 ? 0 : `${l.errors} (${l.errorKinds})`]);
  process.stderr.write(`${model} ${server} ${body} c=${c}: ${fmt(l.rps)} req/s, p50 ${fmt(l.p50, 1)} ms, p95 ${fmt(l.p95, 1)} ms, p97.5 ${fmt(l.p975, 1)} ms, errors ${l.errors} (${l.errorKinds})\n`);
};

// Interleaved: the unbatched server, the batching one and the hand-written baseline all run at once, and each
// (concurrency, body) load goes to each in turn, back to back, so a shared machine's changing load hits them alike.
const plain = await startTamp(false);
const batched = await startTamp(true);
const unthreaded = await startTamp(true, ['--inference-thread', 'off']);
const baseline = await startBaseline();
const NO_THREAD = 'tamp serve, batching, --inference-thread off';
try {
  for (const c of CONCURRENCY) {
    for (const [name, server] of [['tamp serve', plain], ['tamp serve, batching', batched]] as const) {
      row('LeNet-5 int8', name, 'JSON', c, await load(`${server.url}/v2/models/digits/infer`, jsonBody([1, 28, 28, 1], digit), c));
    }
    row('LeNet-5 fp32', 'hand-written (stock tfjs)', 'JSON', c, await load(baseline.url, jsonBody([1, 28, 28, 1], digit), c));
    // At concurrency 64 the batching server without its inference thread too, between the two, under the same load.
    const binaryServers = c === 64 ? ([['tamp serve', plain], [NO_THREAD, unthreaded], ['tamp serve, batching', batched]] as const) : ([['tamp serve', plain], ['tamp serve, batching', batched]] as const);
    for (const [name, server] of binaryServers) {
      row('LeNet-5 int8', name, 'binary', c, await load(`${server.url}/v2/models/digits/infer`, binaryBody([1, 28, 28, 1], digit), c));
    }
    for (const [name, server] of binaryServers) {
      row('LeNet-5 int8', name, 'gRPC (raw)', c, await grpcLoad(server.grpc, 'digits', [1, 28, 28, 1], digit, c));
    }
  }
  for (const c of [1, 64]) {
    for (const [name, server] of [['tamp serve', plain], ['tamp serve, batching', batched]] as const) {
      row('detector int8', name, 'binary', c, await load(`${server.url}/v2/models/objects/infer`, binaryBody([1, 96, 96, 3], scenePixels), c));
    }
  }
} finally {
  await Promise.all([stop(plain.child), stop(batched.child), stop(unthreaded.child), stop(baseline.child)]);
}

// Soak: the batching server at concurrency 64 for SOAK seconds; RSS after a warm-up third against the end.
const soakServer = await startTamp(true);
const rss: number[] = [];
const sampler = setInterval(() => rss.push(rssMiB(soakServer.child.pid as number)), 1000);
const soak = await load(`${soakServer.url}/v2/models/digits/infer`, binaryBody([1, 28, 28, 1], digit), 64, SOAK);
clearInterval(sampler);
await stop(soakServer.child);
row('LeNet-5 int8', `tamp serve, batching (soak, ${SOAK} s)`, 'binary', 64, soak);
const warm = rss[Math.floor(rss.length / 3)] as number;
const end = rss.at(-1) as number;

const g = (k: string) => summary[k] as Load;
const batchedGain = g('LeNet-5 int8|tamp serve, batching|binary|64').rps / g('LeNet-5 int8|tamp serve|binary|64').rps;
const vsBaseline = g('LeNet-5 int8|tamp serve, batching|binary|64').rps / g('LeNet-5 fp32|hand-written (stock tfjs)|JSON|64').rps;
const grpcGain = g('LeNet-5 int8|tamp serve, batching|gRPC (raw)|64').rps / g('LeNet-5 int8|tamp serve|gRPC (raw)|64').rps;
const vsBaselineJson = g('LeNet-5 int8|tamp serve, batching|JSON|64').rps / g('LeNet-5 fp32|hand-written (stock tfjs)|JSON|64').rps;
const threadGain = g('LeNet-5 int8|tamp serve, batching|binary|64').rps / g(`LeNet-5 int8|${NO_THREAD}|binary|64`).rps;
const threadGainGrpc = g('LeNet-5 int8|tamp serve, batching|gRPC (raw)|64').rps / g(`LeNet-5 int8|${NO_THREAD}|gRPC (raw)|64`).rps;
const totalErrors = Object.values(summary).reduce((s, l) => s + l.errors, 0);
const rssChange = (end - warm) / warm;
const met = (ok: boolean) => (ok ? 'met' : 'missed');
const p95Ok = g('LeNet-5 int8|tamp serve, batching|binary|64').p95 <= g('LeNet-5 int8|tamp serve|binary|64').p95;
const section = `## Serving: \`pnpm bench:serve\`

\`pnpm bench:serve --duration ${DURATION} --soak ${SOAK}\` on ${machine()}. Every server and autocannon share this machine's two cores; devices are WASM (no GPU here). The three servers run at once and each load (concurrency, body) goes to the unbatched server, the batching one and the baseline back to back, so the ratios compare runs seconds apart under the same load. Batching: \`${BATCHING.join(' ')}\` (its models on the inference thread, the default when batching; the \`--inference-thread off\` rows run them on the event loop's thread). HTTP load is autocannon; gRPC load is a loop of concurrent ModelInfer calls through \`@tamp/client/grpc\` over one channel (raw tensor contents). autocannon's summary has no p95: the p95 column is computed from every response's latency (autocannon's \`response\` event; the gRPC loop times each call itself); p50, p90, p97.5 and p99 are autocannon's own. Latency in ms.

${markdownTable(['model', 'server', 'body', 'concurrency', 'req/s', 'p50', 'p90', 'p95', 'p97.5', 'p99', 'errors'], rows)}

- The model alone on this device (in this process, no HTTP): batch 1 takes ${fmt(alone.one, 3)} ms, batch 32 ${fmt(alone.batch, 2)} ms (${fmt(alone.batch / 32, 3)} ms a sample), so running samples together makes the model itself at most **${alone.ceiling.toFixed(2)}x** faster here${alone.ceiling < 3.5 ? ' (WASM on one CPU core gains little from batch size, where a GPU gains much: the 3.5x goal is Triton\'s on GPUs)' : ''}; what the batching server gains beyond that comes from the rest of a request's path: its model runs on the inference thread beside the event loop (the unbatched server runs it on the event loop), and the thread hop is paid once a batch.
- Dynamic batching at concurrency 64 (binary): **${batchedGain.toFixed(2)}x** the unbatched throughput (goal ≥ 3.5x: ${met(batchedGain >= 3.5)}), p95 ${fmt(g('LeNet-5 int8|tamp serve, batching|binary|64').p95, 1)} ms against ${fmt(g('LeNet-5 int8|tamp serve|binary|64').p95, 1)} ms unbatched (goal no worse: ${met(p95Ok)}; p97.5 ${fmt(g('LeNet-5 int8|tamp serve, batching|binary|64').p975, 1)} against ${fmt(g('LeNet-5 int8|tamp serve|binary|64').p975, 1)} ms).
- Against the hand-written stock-tfjs server at concurrency 64: **${vsBaseline.toFixed(2)}x** its throughput with binary bodies (goal ≥ 4x: ${met(vsBaseline >= 4)}); JSON against its JSON: ${vsBaselineJson.toFixed(2)}x.
- Errors over every run, the soak included: ${totalErrors} (goal 0: ${met(totalErrors === 0)})${totalErrors === 0 ? '' : `; by run: ${Object.entries(summary).filter(([, l]) => l.errors > 0).map(([k, l]) => `${k.replaceAll('|', ', ')}: ${l.errorKinds}`).join('; ')}`}.
- Soak, ${SOAK} s at concurrency 64 with batching (${fmt(soak.rps)} req/s): RSS ${warm.toFixed(0)} MiB after the first third, ${end.toFixed(0)} MiB at the end (**${(rssChange * 100).toFixed(1)}%**; goal within ±10%: ${met(Math.abs(rssChange) <= 0.1)}).
- gRPC at concurrency 64: dynamic batching gives **${grpcGain.toFixed(2)}x** the unbatched throughput (${fmt(g('LeNet-5 int8|tamp serve, batching|gRPC (raw)|64').rps)} against ${fmt(g('LeNet-5 int8|tamp serve|gRPC (raw)|64').rps)} req/s); against binary REST with batching: ${fmt(g('LeNet-5 int8|tamp serve, batching|binary|64').rps)} req/s.
- The inference thread at concurrency 64 with batching: **${threadGain.toFixed(2)}x** the throughput of the same server with \`--inference-thread off\` (binary), ${threadGainGrpc.toFixed(2)}x over gRPC; without it, batching gives ${(g(`LeNet-5 int8|${NO_THREAD}|binary|64`).rps / g('LeNet-5 int8|tamp serve|binary|64').rps).toFixed(2)}x the unbatched throughput (binary) and ${(g(`LeNet-5 int8|${NO_THREAD}|gRPC (raw)|64`).rps / g('LeNet-5 int8|tamp serve|gRPC (raw)|64').rps).toFixed(2)}x (gRPC).`;
if (WRITE) {
  writeSection('bench:serve', section);
  process.stderr.write('bench:serve: BENCHMARKS.md updated\n');
} else process.stdout.write(`${section}\n`);
