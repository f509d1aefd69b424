/**
 * tamp score: batch scoring into NDJSON and CSV, a run killed with SIGKILL
 * and resumed (exactly the rows of an uninterrupted run, none twice), and a
 * 100,000-row stream through a reader that stops reading (memory stays flat
 * because the input pauses).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { encodeIdx, saveLayersModel } from '@tamp/core/node';
import { loadModel } from '@tamp/webgpu/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonOf, REPO, runTamp, TAMP_BIN } from './helpers/tamp.js';

const DIGITS = join(REPO, 'demos/digits/public/models/compressed.tamp');

/** Deterministic digit-like bytes. */
function digitBytes(n: number): Uint8Array {
  return Uint8Array.from({ length: n * 784 }, (_, i) => ((i * 2654435761) >>> 24) & (i % 7 === 0 ? 0xff : 0x3f));
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]);
}

describe('tamp score', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tamp-score-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('scores an IDX file into NDJSON and CSV with the top classes, as the model says', async () => {
    const idx = join(dir, 'small-idx3-ubyte');
    writeFileSync(idx, encodeIdx([40, 28, 28], digitBytes(40)));
    const nd = await runTamp(['score', DIGITS, '--input', idx, '--out', join(dir, 'small.ndjson'), '--batch-size', '16', '--device', 'wasm', '--json']);
    expect(nd.code, nd.stderr).toBe(0);
    expect(jsonOf(nd)).toMatchObject({ rows: 40, resumedAfter: 0, device: 'wasm' });
    const rows = readFileSync(join(dir, 'small.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; top: Array<{ class: number; score: number }> });
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
    const model = await loadModel(DIGITS, { device: 'wasm' });
    const y = await model.predict(Float32Array.from(digitBytes(40), (b) => b / 255));
    model.dispose();
    rows.forEach((r, i) => {
      const scores = Array.from(y.data.subarray(i * 10, i * 10 + 10));
      const best = scores.indexOf(Math.max(...scores));
      expect(r.top).toHaveLength(3);
      expect(r.top[0]?.class).toBe(best);
      expect(Math.abs((r.top[0]?.score as number) - (scores[best] as number))).toBeLessThan(1e-5);
    });
    const csv = await runTamp(['score', DIGITS, '--input', idx, '--out', join(dir, 'small.csv'), '--device', 'wasm']);
    expect(csv.code, csv.stderr).toBe(0);
    const lines = readFileSync(join(dir, 'small.csv'), 'utf8').trim().split('\n');
    expect(lines[0]).toBe('id,class1,score1,class2,score2,class3,score3');
    expect(lines).toHaveLength(41);
    expect(Number(lines[1]?.split(',')[1])).toBe(rows[0]?.top[0]?.class);
    // An existing output is not overwritten by accident.
    const again = await runTamp(['score', DIGITS, '--input', idx, '--out', join(dir, 'small.csv'), '--device', 'wasm']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists: pass --resume .* or --overwrite/);
  });

  it('resumes a run killed with SIGKILL: exactly the rows of an uninterrupted run', async () => {
    const n = 2_000;
    const idx = join(dir, 'big-idx3-ubyte');
    writeFileSync(idx, encodeIdx([n, 28, 28], digitBytes(n)));
    const args = (out: string) => ['score', DIGITS, '--input', idx, '--out', out, '--batch-size', '4', '--device', 'wasm'];
    const whole = await runTamp(args(join(dir, 'whole.ndjson')));
    expect(whole.code, whole.stderr).toBe(0);

    const out = join(dir, 'killed.ndjson');
    const child = spawn(process.execPath, [TAMP_BIN, ...args(out)], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    // Kill it once some rows are recorded (well before the end: each 4-row chunk is fsynced).
    for (let i = 0; i < 3_000; i++) {
      const progress = existsSync(`${out}.progress`) ? (JSON.parse(readFileSync(`${out}.progress`, 'utf8')) as { rows: number }) : { rows: 0 };
      if (progress.rows >= 40) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const killedAt = (JSON.parse(readFileSync(`${out}.progress`, 'utf8')) as { rows: number; done: boolean });
    expect(killedAt.done).toBe(false);
    expect(killedAt.rows).toBeGreaterThanOrEqual(40);

    const resumed = await runTamp([...args(out), '--resume', '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(jsonOf(resumed)).toMatchObject({ resumedAfter: killedAt.rows, rows: n - killedAt.rows });
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(join(dir, 'whole.ndjson'), 'utf8'));
    // Resuming other work is refused.
    const other = await runTamp(['score', DIGITS, '--input', join(dir, 'small-idx3-ubyte'), '--out', out, '--resume']);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/was scoring input/);
  });

  it('streams 100,000 NDJSON rows in order, and a reader that stops reading pauses the input instead of filling memory', async () => {
    await tf.setBackend('cpu');
    const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 10, inputShape: [256], activation: 'softmax', kernelInitializer: 'glorotUniform' })] });
    const modelDir = join(dir, 'wide');
    await saveLayersModel(model, modelDir);
    model.dispose();
    const total = 100_000;
    const child = spawn(process.execPath, [TAMP_BIN, 'score', join(modelDir, 'model.json'), '--input', '-', '--out', '-', '--batch-size', '64', '--device', 'cpu'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    // The reader stops reading at once; the writer sends as fast as the pipe takes it.
    child.stdout.pause();
    let written = 0;
    const line = (i: number) => `${JSON.stringify({ id: i, data: Array.from({ length: 256 }, (_, j) => (i + j) % 10) })}\n`;
    const writer = (async () => {
      while (written < total) {
        if (!child.stdin.write(line(written++))) await new Promise((r) => child.stdin.once('drain', r));
      }
      child.stdin.end();
    })();
    // Wait for the model to load and the pipes to fill, then watch memory while nothing is read.
    for (let i = 0; i < 600 && written < 2_000; i++) await new Promise((r) => setTimeout(r, 50));
    const before = rssKiB(child.pid as number);
    let peak = before;
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 100));
      peak = Math.max(peak, rssKiB(child.pid as number));
    }
    const writtenWhilePaused = written;
    // About 51 MB of input exists; with the reader stopped only pipe buffers and a bounded window may hold any of it.
    expect(writtenWhilePaused).toBeLessThan(20_000);
    expect(peak - before).toBeLessThan(64 * 1024);
    // Now read everything: every row, in input order.
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stdout.resume();
    await writer;
    expect(await exited, stderr).toBe(0);
    const ids = out.trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id);
    expect(ids.length).toBe(total);
    expect(ids.every((id, i) => id === String(i))).toBe(true);
  });
});
