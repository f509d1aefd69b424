/**
 * pnpm bench:codecs: what each wire codec costs the CPU, per tensor of
 * LeNet-300-100's size (266,610 float32 values, 1.07 MB), in one process:
 * encode and decode, the change-coded pull's server side (code live − held and
 * move held), and a push with error feedback. On a 2-core machine that runs a
 * worker's training thread, its comm thread, a parameter server and a chief,
 * this CPU is part of every step (BENCHMARKS.md, the wire sections).
 */
import { cpus } from 'node:os';
import {
  AdamDirection,
  DgcSender,
  INT4_BLOCK,
  INT8_BLOCK,
  decodeFp16,
  decodeInt4,
  decodeInt8,
  decodeTopk,
  encodeFp16,
  encodeInt4,
  encodeInt4Change,
  encodeInt8,
  encodeInt8Change,
  encodeTopk,
  addFloats,
  setQuantizeKernels,
} from '@tamp/core/base';
import { fmt, machine, markdownTable, median, writeSection } from './report.js';

const N = 266_610;
const WARM_MS = 1000;
const RUNS = 15;
const REPS = 20;
const write = !process.argv.includes('--no-write');

// Gradient-like values: mostly small, a few large.
let seed = 1;
const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31) - 0.5;
const grad = Float32Array.from({ length: N }, () => random() * 0.01 * (random() > 0.49 ? 20 : 1));
const held = grad.map((x) => x + random() * 1e-3);

/** Milliseconds per call: the median of RUNS timed blocks of REPS calls, after at least WARM_MS of calls (V8 tiers up) or WARM_CALLS calls. */
/** --warm-calls N: warm up with N calls instead of WARM_MS (a job calls a codec once a step, so its first hundreds of steps run code V8 has not fully optimized yet). */
const warmAt = process.argv.indexOf('--warm-calls');
const WARM_CALLS = warmAt === -1 ? undefined : Number(process.argv[warmAt + 1]);
function time(f: () => unknown): number {
  if (WARM_CALLS !== undefined) for (let i = 0; i < WARM_CALLS; i++) f();
  const until = performance.now() + WARM_MS;
  while (WARM_CALLS === undefined && performance.now() < until) f();
  const runs: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < REPS; i++) f();
    runs.push((performance.now() - t0) / REPS);
  }
  return median(runs);
}

const feedback = (encode: (g: Float32Array, block: number, fb: { owed: Float32Array; next: Float32Array }) => Uint8Array, block: number) => {
  let owed = new Float32Array(N);
  return () => {
    const next = new Float32Array(N);
    encode(grad, block, { owed, next });
    owed = next;
  };
};
const change = (encode: (live: Float32Array, held: Float32Array) => Uint8Array) => {
  const h = held.slice();
  return () => encode(grad, h);
};

const rows: Array<Array<string | number>> = [];
const fp32Copy = time(() => grad.slice());
const row = (codec: string, bytes: number, encodeMs: number, decodeMs: number, extra: string) => {
  rows.push([codec, `${fmt(bytes)} (${fmt(bytes / (4 * N), 3)}x)`, fmt(encodeMs, 2), fmt(decodeMs, 2), extra]);
  process.stderr.write(`${codec}: encode ${fmt(encodeMs, 2)} ms, decode ${fmt(decodeMs, 2)} ms; ${extra}\n`);
};
row('fp32 (a copy, for scale)', 4 * N, fp32Copy, fp32Copy, '');
// fp16, int8 and int4 with each kernel set (quantize-wasm.ts): WebAssembly SIMD, the default, and the JavaScript loop.
for (const [kernels, label] of [['wasm-simd', 'WebAssembly SIMD'], ['js', 'JavaScript loop']] as const) {
  setQuantizeKernels(kernels);
  const f16 = encodeFp16(grad);
  row(`fp16 (${label})`, f16.length, time(() => encodeFp16(grad)), time(() => decodeFp16(f16, N, 'g')), '');
  const i8 = encodeInt8(grad);
  const pulled = new Float32Array(N);
  const add = `; the worker's add of a pull's change ${fmt(time(() => addFloats(pulled, held)), 2)} ms`;
  row(`int8 (${label})`, i8.length, time(() => encodeInt8(grad)), time(() => decodeInt8(i8, N, 'g')), `push with error feedback ${fmt(time(feedback(encodeInt8, INT8_BLOCK)), 2)} ms; pull's change ${fmt(time(change(encodeInt8Change)), 2)} ms${add}`);
  const i4 = encodeInt4(grad);
  row(`int4 (${label})`, i4.length, time(() => encodeInt4(grad)), time(() => decodeInt4(i4, N, 'g')), `push with error feedback ${fmt(time(feedback(encodeInt4, INT4_BLOCK)), 2)} ms; pull's change ${fmt(time(change(encodeInt4Change)), 2)} ms`);
}
setQuantizeKernels('wasm-simd');
const tk = encodeTopk(grad, 0.01);
// A worker's top-k push as a job with Adam runs it (push-encoder.ts): Adam's direction, accumulated, then the top-k of the sum.
const adam = new AdamDirection(0.9, 0.999, 1e-7);
const dgc = new DgcSender({ fraction: 0.01, momentum: 0, warmupSteps: 0 });
let step = 0;
const topkPush = time(() => dgc.encode('g', adam.direction('g', grad), step++));
row('topk:0.01', tk.length, time(() => encodeTopk(grad, 0.01)), time(() => decodeTopk(tk, N, 'g')), `encode: without DGC's accumulation; a worker's push with it and the Adam correction ${fmt(topkPush, 2)} ms`);

const warmed = WARM_CALLS === undefined ? `${WARM_MS / 1000} s of warm-up` : `${WARM_CALLS} calls of warm-up`;
const markdown = `## What the wire codecs cost the CPU (\`pnpm bench:codecs${WARM_CALLS === undefined ? '' : ` --warm-calls ${WARM_CALLS}`}\`)

${machine()}. One process, one tensor of LeNet-300-100's size (${fmt(N)} float32 values, gradient-like: mostly small, a few 20x larger); milliseconds per call, the median of ${RUNS} blocks of ${REPS} calls after ${warmed}. ${cpus().length} cores, but every call runs on one. "pull's change" is the server side of an int8 or int4 pull (code live − held, move held by what the worker adds); "push with error feedback" adds what earlier pushes owe and keeps what this one loses, in the quantizer's own pass; top-k's push with the Adam correction is what a worker pushing top-k under Adam does each step (Adam's direction, DGC's accumulation, the selection, the encoding and what stays owed). fp16, int8 and int4 run with each set of loops (core's quantize-wasm.ts): WebAssembly SIMD, what every role uses where the runtime has it, and the JavaScript loops they replaced (the same bytes, bit for bit).

${markdownTable(['codec', 'bytes', 'encode ms', 'decode ms', 'also'], rows)}
`;
if (write) writeSection('wire:codecs', markdown);
else process.stdout.write(markdown);
