/** Messages between a worker's training thread and its communication thread. */
import type { RpcSecurity, ThreadMetrics } from '@tamp/rpc';
import type { Placement } from '@tamp/core';
import type { WireSettings } from '@tamp/parameter-server';
import type { Progress } from '../coordinator-client.js';

/**
 * The buffers to transfer with a message carrying these arrays, each once:
 * large pulled tensors are views of the message that brought them, and one
 * message may bring several (a buffer named twice makes postMessage throw).
 */
export function transferList(arrays: readonly { readonly data: Float32Array }[]): ArrayBuffer[] {
  return [...new Set(arrays.map((a) => a.data.buffer as ArrayBuffer))];
}

export interface CommInit {
  readonly jobId: string;
  readonly workerId: string;
  readonly psAddresses: readonly string[];
  readonly placement: Placement;
  readonly chiefAddress: string;
  readonly heartbeatIntervalMs: number;
  /** Stop (and tell the training thread) after the chief has not answered for this long. */
  readonly chiefLostAfterMs: number;
  /** Plain data, so it crosses into the thread as is: the thread makes its own channels. */
  readonly security: RpcSecurity;
  /** The job's codecs (plain data too); absent: fp32 both ways. */
  readonly wire?: WireSettings;
  /** The slot token the chief gave at Join: sent with every call to the chief and the parameter servers. */
  readonly workerToken: string;
  /** What binds the worker's slot (worker.ts), sent to the chief only: a restarted chief binds the slot to it when the worker resumes there. */
  readonly workerKey?: string;
  /** The training backend's name, in every heartbeat (a restarted chief did not see the Join that said it). */
  readonly backend?: string;
}

export interface PullOptions {
  /** Wait until every shard has at least these versions (sync). */
  readonly minVersions?: readonly bigint[];
  /** The step these parameters are for (ssp). */
  readonly step?: bigint;
  readonly timeoutMs?: number;
  /** The restore generation the worker trains in (ARCHITECTURE.md, "Faults"). */
  readonly restoreGeneration?: bigint;
}

export interface NamedArray {
  readonly name: string;
  readonly data: Float32Array;
}

export type ToComm =
  | { readonly id: number; readonly type: 'pull'; readonly options: PullOptions }
  | {
      readonly id: number;
      readonly type: 'push';
      readonly step: bigint;
      readonly basedOnVersions: readonly bigint[];
      readonly batchSize: number;
      readonly grads: readonly NamedArray[];
      readonly timeoutMs?: number;
      readonly restoreGeneration?: bigint;
    }
  | { readonly type: 'progress'; readonly progress: Progress }
  /** This thread's RPC metrics, for the worker's /metrics (answered with 'metrics'). */
  | { readonly id: number; readonly type: 'metrics' }
  | { readonly id: number; readonly type: 'close' };

export interface SerializedError {
  readonly code: string;
  readonly message: string;
}

export type FromComm =
  | { readonly id: number; readonly type: 'pulled'; readonly versions: readonly bigint[]; readonly values: readonly NamedArray[] }
  | { readonly id: number; readonly type: 'pushed'; readonly versions: readonly bigint[]; readonly duplicate: boolean; readonly dropped: boolean }
  | { readonly id: number; readonly type: 'error'; readonly error: SerializedError }
  | { readonly id: number; readonly type: 'metrics'; readonly metrics: ThreadMetrics }
  /** Answers 'close', with the thread's last metrics. */
  | { readonly id: number; readonly type: 'closed'; readonly metrics: ThreadMetrics }
  /** Stop training: the job ended (peerLost false), or the chief stayed gone past the peer timeout (true). */
  | { readonly type: 'stop'; readonly reason: string; readonly peerLost: boolean }
  /** The thread's first heartbeat was answered: the training thread may stop heartbeating for it. */
  | { readonly type: 'ready' }
  /** --wire auto: the codecs chosen after measuring the link, and why. */
  | { readonly type: 'wire'; readonly choice: string };
