/**
 * A parameter server's training metrics (prom-client, in @tamp/rpc's
 * process registry, so `--metrics-port` serves them beside the RPC
 * metrics), labelled by shard index only:
 * - per call, from an interceptor (`observeCalls`) and the service
 *   definition's serializers, so the handlers in server.ts carry no metrics
 *   code: pushes and pulls by outcome, their bytes as serialized on the wire,
 *   durations, the wait after a push's last message (sync: the step's
 *   barrier), the staleness of applied gradients, checkpoint writes;
 * - read at scrape time from the shard's own counters (collect callbacks):
 *   version, applied steps, live workers, variable bytes, ssp gate waits.
 * ARCHITECTURE.md (@tamp/parameter-server) lists the names.
 */
import { type CallObserver, type ServiceBinding, observeCalls, rpcMetrics } from '@tamp/rpc';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Shard } from './shard.js';

const registers = [rpcMetrics.registry];
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const UPDATES = [0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128];
const SERVICE = '/tamp.v1.ParameterServer/';

type ServiceDefinition = ServiceBinding['definition'];

/** The latest shard started per index in this process (a server restarted in a test replaces its predecessor). */
const shards = new Map<number, Shard>();

/** A counter whose value is read from the shards at scrape time. */
function shardCounter(name: string, help: string, read: (s: Shard) => bigint): Counter<'shard'> {
  return new Counter({
    name,
    help,
    labelNames: ['shard'],
    registers,
    collect() {
      this.reset();
      for (const [i, s] of shards) this.inc({ shard: String(i) }, Number(read(s)));
    },
  });
}

function shardGauge(name: string, help: string, read: (s: Shard) => number | bigint): Gauge<'shard'> {
  return new Gauge({
    name,
    help,
    labelNames: ['shard'],
    registers,
    collect() {
      this.reset();
      for (const [i, s] of shards) this.set({ shard: String(i) }, Number(read(s)));
    },
  });
}

/** Registered on the first shard, so processes that only import this package (a worker's client) show none. */
function createMetrics() {
  return {
    pushes: new Counter({
      name: 'tamp_ps_pushes_total',
      help: 'Pushes a parameter server answered, by shard and outcome: applied (taken into an update), duplicate (a retry of one taken), dropped (sync: too late for its step), refused',
      labelNames: ['shard', 'outcome'],
      registers,
    }),
    pushBytes: new Counter({ name: 'tamp_ps_push_bytes_total', help: 'Bytes of push messages received (serialized, as on the wire), by shard', labelNames: ['shard'], registers }),
    pushSeconds: new Histogram({
      name: 'tamp_ps_push_duration_seconds',
      help: "A push from its start to its answer (receiving the gradients, validating, applying; sync: the step's barrier), by shard",
      labelNames: ['shard'],
      buckets: SECONDS,
      registers,
    }),
    pushWait: new Histogram({
      name: 'tamp_ps_push_wait_seconds',
      help: "A push from its last message to its answer: validation and apply, and in sync mode the wait at the step's barrier for the other workers' gradients, by shard",
      labelNames: ['shard'],
      buckets: SECONDS,
      registers,
    }),
    staleness: new Histogram({
      name: 'tamp_ps_gradient_staleness',
      help: 'Updates the shard applied between the version a gradient was computed on and the gradient itself (async, ssp; always 0 in sync), by shard',
      labelNames: ['shard'],
      buckets: UPDATES,
      registers,
    }),
    pulls: new Counter({ name: 'tamp_ps_pulls_total', help: 'Pulls a parameter server answered, by shard and outcome (served, refused)', labelNames: ['shard', 'outcome'], registers }),
    pullBytes: new Counter({ name: 'tamp_ps_pull_bytes_total', help: 'Bytes of pull messages sent (serialized, as on the wire), by shard', labelNames: ['shard'], registers }),
    pullSeconds: new Histogram({
      name: 'tamp_ps_pull_duration_seconds',
      help: 'A pull from its start to its end, waits included (sync: for the version; ssp: at the staleness gate), by shard',
      labelNames: ['shard'],
      buckets: SECONDS,
      registers,
    }),
    checkpointSeconds: new Histogram({
      name: 'tamp_ps_checkpoint_duration_seconds',
      help: "Writing the shard's checkpoint file (SaveShard; the workers wait at the chief's barrier meanwhile), by shard",
      labelNames: ['shard'],
      buckets: SECONDS,
      registers,
    }),
    version: shardGauge('tamp_ps_version', "The shard's version (updates applied since the job began, a resumed job's included)", (s) => s.version),
    applied: shardCounter('tamp_ps_applied_steps_total', 'Optimizer steps this server applied to the shard (sync: one per step of all workers)', (s) => s.counters.applied),
    refusedByShard: shardCounter('tamp_ps_refused_pushes_total', "Pushes the shard refused (invalid, unknown worker, sync: ahead of the step); reasons in tamp_rpc_server_refused_total", (s) => s.counters.refused),
    nonFinite: shardCounter(
      'tamp_ps_non_finite_updates_total',
      'Updates refused because they would make a variable or optimizer slot NaN or Infinity (async/ssp: the push; sync: the step is skipped), by shard',
      (s) => s.counters.nonFinite,
    ),
    sspWaits: shardCounter('tamp_ps_ssp_pull_waits_total', 'ssp: pulls held at the staleness gate for the slowest worker', (s) => s.counters.pullsWaited),
    maxLead: shardGauge('tamp_ps_ssp_max_lead_steps', 'ssp: the largest lead over the slowest live worker a pull was answered at', (s) => s.counters.maxLead),
    live: shardGauge('tamp_ps_live_workers', 'Workers the shard counts as training (the chief\'s membership)', (s) => s.liveWorkers.length),
    bytes: shardGauge('tamp_ps_variable_bytes', "Bytes of the shard's variables (0 until the chief's Assign)", (s) => s.bytes),
    assigned: shardGauge('tamp_ps_assigned', '1 once the chief has assigned the shard, else 0', (s) => (s.initialized ? 1 : 0)),
  };
}

let metrics: ReturnType<typeof createMetrics> | undefined;

interface PushHeader {
  readonly basedOnVersion?: bigint;
}
interface PushAnswer {
  readonly version?: bigint;
  readonly duplicate?: boolean;
  readonly dropped?: boolean;
}

/** Follow one Push: its first message's base version, the answer's outcome. */
function pushObserver(m: ReturnType<typeof createMetrics>, shard: string): CallObserver {
  let basedOn: bigint | undefined;
  let answer: PushAnswer | undefined;
  return {
    received(message) {
      basedOn ??= (message as PushHeader).basedOnVersion;
    },
    sent(message) {
      answer = message as PushAnswer;
    },
    end({ code, seconds, secondsAfterHalfClose }) {
      m.pushSeconds.observe({ shard }, seconds);
      if (secondsAfterHalfClose !== undefined) m.pushWait.observe({ shard }, secondsAfterHalfClose);
      const outcome = code !== 'OK' || answer === undefined ? 'refused' : answer.duplicate === true ? 'duplicate' : answer.dropped === true ? 'dropped' : 'applied';
      m.pushes.inc({ shard, outcome });
      // The answer's version is the one this gradient's update made (sync: its step's); the updates before it since basedOn are its staleness.
      if (outcome === 'applied' && answer?.version !== undefined && basedOn !== undefined) {
        m.staleness.observe({ shard }, Math.max(0, Number(answer.version - 1n - basedOn)));
      }
    },
  };
}

/**
 * What a parameter server adds for its shard's metrics: an interceptor for
 * RpcServerOptions.interceptors and its service definition with counting
 * serializers. Registers the shard for the scrape-time gauges.
 */
export function shardMetrics(shard: Shard, definition: ServiceDefinition): { interceptor: ReturnType<typeof observeCalls>; definition: ServiceDefinition } {
  metrics ??= createMetrics();
  const m = metrics;
  const label = { shard: String(shard.index) };
  shards.set(shard.index, shard);
  const interceptor = observeCalls((method) => {
    if (!method.startsWith(SERVICE)) return undefined;
    switch (method.slice(SERVICE.length)) {
      case 'Push':
        return pushObserver(m, label.shard);
      case 'Pull':
        return {
          end: ({ code, seconds }) => {
            m.pulls.inc({ ...label, outcome: code === 'OK' ? 'served' : 'refused' });
            m.pullSeconds.observe(label, seconds);
          },
        };
      case 'SaveShard':
        return { end: ({ code, seconds }) => code === 'OK' && m.checkpointSeconds.observe(label, seconds) };
      default:
        return undefined;
    }
  });
  const push = definition.push;
  const pull = definition.pull;
  // Internal invariant: called with the ParameterServer service's definition only (server.ts).
  if (push === undefined || pull === undefined) throw new Error('shardMetrics: not the ParameterServer service');
  const counted: ServiceDefinition = {
    ...definition,
    push: {
      ...push,
      requestDeserialize: (bytes: Buffer): unknown => {
        m.pushBytes.inc(label, bytes.length);
        return push.requestDeserialize(bytes) as unknown;
      },
    },
    pull: {
      ...pull,
      responseSerialize: (message: unknown) => {
        const bytes = pull.responseSerialize(message);
        m.pullBytes.inc(label, bytes.length);
        return bytes;
      },
    },
  };
  return { interceptor, definition: counted };
}
