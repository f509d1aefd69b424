/**
 * Job checkpoints: `<out>/checkpoints/step-<k>/` holds one file per shard
 * (written by the shard, atomically, with a CRC-32) and manifest.json,
 * written by the chief last, once every shard's part is on disk. At the
 * barrier the shards only copy their state (copyCheckpoint); the files are
 * written while training goes on and the manifest follows (commitCheckpoint). A folder
 * without a manifest, or whose parts are missing, short or damaged, is not a
 * checkpoint: resuming skips it with a warning and takes the one before.
 */
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ClusterError, ModelError, type OptimizerSettings, type WireTensor, crc32, errorMessage } from '@tamp/core';
import { atomicWriteFile } from '@tamp/core/node';
import { OPTIMIZER_STATE_TENSOR, type ParameterClient, type VariableSpec, checkpointFolderName, readShardCheckpoint } from '@tamp/parameter-server';
import type { TrainingSettings } from './job-config.js';
import type { ClusterEpochRecord } from './report.js';
import type { BatchProgress } from './batch-claims.js';

export const MANIFEST_FORMAT = 1;
/** Checkpoints kept on disk; older ones are deleted after a new one is complete. */
export const CHECKPOINTS_KEPT = 3;

export interface CheckpointManifest {
  readonly format: number;
  readonly jobId: string;
  /** Steps every worker had taken (the step each resumes at). */
  readonly step: number;
  /** Version of each shard when saved. */
  readonly versions: readonly string[];
  readonly time: string;
  readonly training: TrainingSettings;
  readonly numWorkers: number;
  /** The job's checkpoint cadence, which a resumed job keeps unless told otherwise. */
  readonly checkpointEvery: number;
  readonly variables: readonly VariableSpec[];
  readonly parts: ReadonlyArray<{ shard: number; file: string; bytes: number; crc32: number }>;
  /** Evaluation records of the epochs completed so far (the chief's report continues them). */
  readonly history: readonly ClusterEpochRecord[];
  /** Samples trained on so far, by all workers. */
  readonly samples: number;
  /** async/ssp: the batches done (batch-claims.ts), which a resume continues from; absent in sync (batches by step) and in older checkpoints. */
  readonly batches?: BatchProgress;
}

export function checkpointsRoot(out: string): string {
  // Absolute: the parameter servers are told this folder at Assign and refuse a relative one.
  return resolve(out, 'checkpoints');
}

export function checkpointDir(out: string, step: number): string {
  return join(checkpointsRoot(out), checkpointFolderName(step));
}

/** A checkpoint whose shards copied their state: what commitCheckpoint needs to finish it. */
export interface CopiedCheckpoint {
  readonly dir: string;
  readonly step: number;
  readonly versions: readonly string[];
  readonly manifest: Omit<CheckpointManifest, 'format' | 'step' | 'versions' | 'time' | 'parts'>;
}

/**
 * The barrier's part of a checkpoint: every shard copies its state in memory
 * (SaveShard in the background) and answers; their files are written while
 * training goes on. Training may resume once this returns.
 */
export async function copyCheckpoint(
  params: ParameterClient,
  out: string,
  base: Omit<CheckpointManifest, 'format' | 'step' | 'versions' | 'time' | 'parts'>,
  step: number,
  /** async/ssp after a restore of one shard: its version counts from the checkpoint's, the others' did not go back (shard-recovery.ts). */
  options: { versionsMayDiffer?: boolean } = {},
): Promise<CopiedCheckpoint> {
  const dir = checkpointDir(out, step);
  // The shards write under the root the chief fixed at Assign (checkpointsRoot(out)): the request names only the step.
  const copied = await Promise.all(params.shards.map((s) => s.saveShard(basename(dir), BigInt(step), true)));
  const versions = copied.map((p) => p.version.toString());
  if (options.versionsMayDiffer !== true && new Set(versions).size !== 1) {
    throw new ClusterError('JOB_FAILED', `checkpoint ${step}: shards saved different versions (${versions.join(', ')}); training did not pause`);
  }
  return { dir, step, versions, manifest: base };
}

/**
 * Wait until every shard's file of a copied checkpoint is durably written,
 * then write the manifest (the commit point): a shard that crashed before its
 * write finished fails this, and no manifest names its missing file.
 */
export async function commitCheckpoint(params: ParameterClient, copied: CopiedCheckpoint): Promise<string> {
  const written = await Promise.all(params.shards.map((s) => s.checkpointWriteWait(basename(copied.dir), BigInt(copied.step))));
  const manifest: CheckpointManifest = {
    format: MANIFEST_FORMAT,
    ...copied.manifest,
    step: copied.step,
    versions: copied.versions,
    time: new Date().toISOString(),
    parts: written.map((p, shard) => ({ shard, file: basename(p.file), bytes: p.bytes, crc32: p.crc32 })),
  };
  const file = join(copied.dir, 'manifest.json');
  atomicWriteFile(file, `${JSON.stringify(manifest, null, 2)}\n`);
  return file;
}

/** A whole checkpoint at once: copy, then commit (what a caller that does not overlap the writes with training uses). */
export async function saveCheckpoint(
  params: ParameterClient,
  out: string,
  base: Omit<CheckpointManifest, 'format' | 'step' | 'versions' | 'time' | 'parts'>,
  step: number,
  options: { versionsMayDiffer?: boolean } = {},
): Promise<string> {
  return commitCheckpoint(params, await copyCheckpoint(params, out, base, step, options));
}

/**
 * Delete all but the newest `keep` complete checkpoints, and folders without
 * a manifest (saves that never finished). Called after a save completed, so
 * no save is under way.
 */
export function pruneCheckpoints(out: string, keep = CHECKPOINTS_KEPT): void {
  const root = checkpointsRoot(out);
  if (!existsSync(root)) return;
  let complete = 0;
  for (const d of readdirSync(root).filter((x) => x.startsWith('step-')).sort().reverse()) {
    const full = join(root, d);
    const done = existsSync(join(full, 'manifest.json'));
    if (done && complete < keep) complete++;
    else rmSync(full, { recursive: true, force: true });
  }
}

export interface RestoredState {
  readonly manifest: CheckpointManifest;
  readonly dir: string;
  /** Whole variables by name. */
  readonly values: Map<string, Float32Array>;
  /** Whole optimizer slots by "<name>:<slot>". */
  readonly slots: Map<string, Float32Array>;
  readonly optimizerState: Record<string, number>;
  readonly version: bigint;
}

function loadCheckpoint(dir: string): RestoredState {
  const manifestFile = join(dir, 'manifest.json');
  if (!existsSync(manifestFile)) throw new ModelError('MODEL_INVALID', 'no manifest.json (the save did not finish)');
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as CheckpointManifest;
  } catch (error) {
    throw new ModelError('MODEL_INVALID', `manifest.json is not JSON (${errorMessage(error)})`);
  }
  if (manifest.format > MANIFEST_FORMAT) throw new ModelError('VERSION_UNSUPPORTED', `manifest format ${manifest.format} is newer than this Tamp's ${MANIFEST_FORMAT}`);
  if (!Array.isArray(manifest.parts as unknown) || !Array.isArray(manifest.variables as unknown)) throw new ModelError('MODEL_INVALID', 'manifest.json lacks parts or variables');
  const values = new Map<string, Float32Array>(manifest.variables.map((v) => [v.name, new Float32Array(v.shape.reduce((a: number, b: number) => a * b, 1))]));
  const slots = new Map<string, Float32Array>();
  const filled = new Map<string, number>(manifest.variables.map((v) => [v.name, 0]));
  let optimizerState: Record<string, number> = {};
  let version: bigint | undefined;
  for (const part of manifest.parts) {
    const file = join(dir, part.file);
    if (!existsSync(file)) throw new ModelError('MODEL_NOT_FOUND', `${part.file} is missing`);
    const size = statSync(file).size;
    if (size !== part.bytes) throw new ModelError('MODEL_INVALID', `${part.file} holds ${size} bytes, the manifest says ${part.bytes} (truncated?)`);
    const checksum = crc32(readFileSync(file));
    if (checksum !== part.crc32) throw new ModelError('MODEL_INVALID', `${part.file} does not match its checksum in the manifest`);
    const shard = readShardCheckpoint(file);
    optimizerState = shard.header.optimizerState;
    version ??= BigInt(shard.header.version);
    for (const p of shard.header.parts) {
      const target = values.get(p.name);
      if (target === undefined || p.sliceStart + p.sliceLength > target.length) throw new ModelError('MODEL_INVALID', `${part.file} holds "${p.name}", which the manifest does not list`);
      target.set(shard.values.get(`${p.name}@${p.sliceStart}`) as Float32Array, p.sliceStart);
      filled.set(p.name, (filled.get(p.name) ?? 0) + p.sliceLength);
      for (const slot of p.slots) {
        let s = slots.get(`${p.name}:${slot}`);
        if (s === undefined) {
          s = new Float32Array(target.length);
          slots.set(`${p.name}:${slot}`, s);
        }
        s.set(shard.slots.get(`${p.name}:${slot}@${p.sliceStart}`) as Float32Array, p.sliceStart);
      }
    }
  }
  for (const v of manifest.variables) {
    if (filled.get(v.name) !== (values.get(v.name) as Float32Array).length) throw new ModelError('MODEL_INVALID', `the parts do not cover all of "${v.name}"`);
  }
  return { manifest, dir, values, slots, optimizerState, version: version ?? 0n };
}

/** The newest complete, undamaged checkpoint under `out`, or undefined; damaged ones are reported through `warn`. */
export function findLatestCheckpoint(out: string, warn: (message: string) => void): RestoredState | undefined {
  const root = checkpointsRoot(out);
  if (!existsSync(root)) return undefined;
  const dirs = readdirSync(root).filter((d) => d.startsWith('step-')).sort().reverse();
  for (const d of dirs) {
    try {
      return loadCheckpoint(join(root, d));
    } catch (error) {
      warn(`skipping checkpoint ${join(root, d)}: ${errorMessage(error)}`);
    }
  }
  return undefined;
}

/** The tensors shard `index` needs to resume: its parts of the variables, their slots, the optimizer state. */
export function restoreTensors(state: RestoredState, params: ParameterClient, index: number, optimizer: OptimizerSettings): WireTensor[] {
  const tensors: WireTensor[] = [...params.partsFor(index, state.values)];
  const slotNames = [...new Set([...state.slots.keys()].map((k) => k.slice(k.lastIndexOf(':') + 1)))];
  for (const slot of slotNames) {
    const bySlot = new Map([...state.slots].filter(([k]) => k.endsWith(`:${slot}`)).map(([k, v]) => [k.slice(0, k.lastIndexOf(':')), v]));
    for (const t of params.partsFor(index, bySlot)) tensors.push({ ...t, name: `${t.name}:${slot}` });
  }
  if (optimizer.name === 'adam' && state.optimizerState.accBeta1 !== undefined) {
    tensors.push({
      name: OPTIMIZER_STATE_TENSOR,
      shape: [2],
      dtype: 'float32',
      data: Float32Array.from([state.optimizerState.accBeta1, state.optimizerState.accBeta2 ?? 0]),
      sliceStart: 0,
    });
  }
  return tensors;
}
