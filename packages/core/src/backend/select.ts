/**
 * Backend selection: a registry of candidates in priority order, one
 * resolver, and errors that say why each candidate was passed over.
 * Used for training backends (tensorflow | webgpu | wasm | cpu) and, by
 * @tamp/webgpu, for inference devices (webgpu | wasm | cpu).
 */
import { BackendUnavailableError, InvalidArgumentError, errorMessage } from '../errors.js';

/** Training backends, fastest first. `tensorflow` is tfjs-node-gpu or tfjs-node. */
export const BACKEND_NAMES = Object.freeze(['tensorflow', 'webgpu', 'wasm', 'cpu'] as const);
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendRequest = BackendName | 'auto';

export interface ProbeResult {
  /** The backend can be brought up. */
  readonly available: boolean;
  /** Why not, or a note on what was found. */
  readonly reason?: string;
  /** Runs on a GPU. */
  readonly gpu: boolean;
  /** A software rasteriser posing as a GPU (SwiftShader, llvmpipe): `auto` skips it. */
  readonly software: boolean;
  /** Adapter or library description, for logs and reports. */
  readonly adapter?: string;
}

export interface BackendCandidate<Name extends string = BackendName> {
  readonly name: Name;
  /**
   * Find out whether the backend can run here, without making it current.
   * `explicit` is true when the user named this backend: it may then take
   * fallbacks that `auto` must not (such as a software WebGPU driver).
   */
  probe(explicit: boolean, log: (message: string) => void): Promise<ProbeResult>;
  /** Make this backend tfjs's current one (or set up the device). */
  activate(log: (message: string) => void): Promise<void>;
}

export interface SelectedBackend<Name extends string = BackendName> {
  readonly name: Name;
  readonly gpu: boolean;
  readonly software: boolean;
  readonly adapter: string | undefined;
  /** Candidates passed over by `auto`, with the reason. */
  readonly skipped: ReadonlyArray<{ name: Name; reason: string }>;
}

export interface SelectOptions<Name extends string = BackendName> {
  readonly requested: Name | 'auto';
  readonly candidates: ReadonlyArray<BackendCandidate<Name>>;
  /** Fail unless the chosen backend runs on a GPU (a real one, not a software driver). */
  readonly requireGpu?: boolean;
  readonly log?: (message: string) => void;
  /** What the choice is for, in messages: "backend" or "device". */
  readonly noun?: string;
}

/** Check a user-supplied name against the valid ones; the error lists them. */
export function resolveName<Name extends string>(value: string, names: readonly Name[], noun = 'backend'): Name | 'auto' {
  if (value === 'auto' || (names as readonly string[]).includes(value)) return value as Name | 'auto';
  throw new InvalidArgumentError(`unknown ${noun} "${value}": choose one of auto, ${names.join(', ')}`);
}

export async function selectBackend<Name extends string>(options: SelectOptions<Name>): Promise<SelectedBackend<Name>> {
  const log = options.log ?? (() => {});
  const noun = options.noun ?? 'backend';
  const names = options.candidates.map((c) => c.name);
  resolveName(options.requested, names, noun);
  const skipped: Array<{ name: Name; reason: string }> = [];

  const tryProbe = async (c: BackendCandidate<Name>, explicit: boolean): Promise<ProbeResult> => {
    try {
      return await c.probe(explicit, log);
    } catch (error) {
      return { available: false, gpu: false, software: false, reason: errorMessage(error) };
    }
  };

  const checkGpu = (c: BackendCandidate<Name>, probe: ProbeResult): void => {
    if (options.requireGpu === true && (!probe.gpu || probe.software)) {
      const why = probe.software ? `a software adapter (${probe.adapter ?? 'unknown'})` : 'not a GPU backend';
      throw new BackendUnavailableError(
        `--require-gpu: no GPU ${noun} came up; ${c.name} is ${why}` +
          (skipped.length > 0 ? `; passed over: ${skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}` : '') +
          '. Run on a machine with a GPU and its drivers (tfjs-node-gpu needs CUDA 11.2 + cuDNN 8.1), or drop --require-gpu.',
        [...skipped, { name: c.name, reason: why }],
      );
    }
  };
  // Any failure to activate (typed or not) passes the candidate over: auto falls back, an explicit name reports it.
  const activate = async (c: BackendCandidate<Name>, probe: ProbeResult): Promise<SelectedBackend<Name>> => {
    await c.activate(log);
    return { name: c.name, gpu: probe.gpu, software: probe.software, adapter: probe.adapter, skipped };
  };

  if (options.requested !== 'auto') {
    const c = options.candidates.find((x) => x.name === options.requested) as BackendCandidate<Name>;
    const probe = await tryProbe(c, true);
    if (probe.available) {
      checkGpu(c, probe);
      try {
        return await activate(c, probe);
      } catch (error) {
        skipped.push({ name: c.name, reason: `failed to start: ${errorMessage(error)}` });
      }
    } else {
      skipped.push({ name: c.name, reason: probe.reason ?? 'unavailable' });
    }
    const available: Name[] = [];
    for (const other of options.candidates) {
      if (other.name !== c.name && (await tryProbe(other, true)).available) available.push(other.name);
    }
    const reason = skipped[skipped.length - 1]?.reason ?? 'unavailable';
    throw new BackendUnavailableError(
      `${noun} "${c.name}" is not available: ${reason}. Available here: ${available.length > 0 ? available.join(', ') : 'none'} (or use auto).`,
      skipped,
    );
  }

  for (const c of options.candidates) {
    const probe = await tryProbe(c, false);
    if (!probe.available) {
      skipped.push({ name: c.name, reason: probe.reason ?? 'unavailable' });
      log(`${noun} ${c.name}: skipped (${probe.reason ?? 'unavailable'})`);
      continue;
    }
    if (probe.software) {
      const reason = `software adapter ${probe.adapter ?? ''}: slower than ${noun}s on the CPU; name it explicitly to use it`.replace('  ', ' ');
      skipped.push({ name: c.name, reason });
      log(`${noun} ${c.name}: skipped (${reason})`);
      continue;
    }
    checkGpu(c, probe);
    try {
      return await activate(c, probe);
    } catch (error) {
      const reason = `failed to start: ${errorMessage(error)}`;
      skipped.push({ name: c.name, reason });
      log(`${noun} ${c.name}: skipped (${reason})`);
    }
  }
  throw new BackendUnavailableError(
    `no ${noun} could be brought up: ${skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}`,
    skipped,
  );
}
