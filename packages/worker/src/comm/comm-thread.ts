/**
 * A worker's communication thread. WASM compute blocks the training
 * thread's event loop for a whole step; pulls, pushes and heartbeats run
 * here, on their own event loop, so they overlap with compute.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TampError, errorMessage, formatWireCodec } from '@tamp/core';
import { rpcMetrics } from '@tamp/rpc';
import { ParameterClient } from '@tamp/parameter-server';
import { WORKER_KEY_KEY, WORKER_TOKEN_KEY } from '@tamp/rpc';
import { CoordinatorClient, type Progress } from '../coordinator-client.js';
import { type CommInit, type FromComm, type NamedArray, type ToComm, transferList } from './messages.js';

const port = parentPort;
// Only CommChannel starts this module, always in a worker thread (bootstrap.mjs).
if (port === null) throw new Error('comm-thread must run in a worker thread');
const init = workerData as CommInit;
const rpc = { security: init.security, metadata: { [WORKER_TOKEN_KEY]: init.workerToken } };
const params = new ParameterClient(init.psAddresses, init.placement, init.jobId, { rpc, ...(init.wire !== undefined ? { wire: init.wire } : {}) });
const chiefRpc = { ...rpc, metadata: { ...rpc.metadata, ...(init.workerKey !== undefined ? { [WORKER_KEY_KEY]: init.workerKey } : {}) } };
const chief = new CoordinatorClient(init.chiefAddress, init.jobId, Math.max(5_000, init.heartbeatIntervalMs * 3), chiefRpc);

function send(message: FromComm, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

function fail(id: number, error: unknown): void {
  send({ id, type: 'error', error: { code: error instanceof TampError ? error.code : 'INTERNAL', message: errorMessage(error) } });
}

let progress: Progress = { localStep: 0n, epoch: 0, loss: 0, samples: 0n, seconds: 0 };
let lastAnswer = Date.now();
/** When the first heartbeat after lastAnswer went unanswered (the chief is silent: crashed, or restarting). */
let unansweredSince: number | undefined;
let stopped = false;
let beating = false;
let ready = false;
let wireChoice: string | undefined;
let placementGeneration = 0n;

/** --wire auto: once the first pull has measured the link, and again if the first push takes top-k, tell the training thread and the chief. */
function reportWireChoice(): void {
  const c = params.wireChoice;
  if (c === undefined) return;
  const text = `push ${formatWireCodec(c.push)}, pull ${formatWireCodec(c.pull)}: ${c.reason}`;
  if (text === wireChoice) return;
  wireChoice = text;
  send({ type: 'wire', choice: wireChoice });
  beat();
}

function beat(): void {
  if (beating || stopped) return;
  beating = true;
  // After a silence, tell whoever answers now (a restarted chief: chief-rejoin.ts) how long it lasted.
  const now = Date.now();
  const silence = unansweredSince !== undefined ? { chiefNoticedSeconds: (unansweredSince - lastAnswer) / 1000, chiefSilentSeconds: (now - lastAnswer) / 1000 } : {};
  chief
    .heartbeat(init.workerId, { ...progress, ...(wireChoice !== undefined ? { wireChoice } : {}), ...(init.backend !== undefined ? { backend: init.backend } : {}), ...silence })
    .then((r) => {
      lastAnswer = Date.now();
      unansweredSince = undefined;
      if (!ready) {
        ready = true;
        send({ type: 'ready' });
      }
      // --ps-replicas 1: a failover moved a shard (its backup was promoted); pulls and pushes, retries included, go there now.
      if (r.replicaPlacementGeneration > placementGeneration) {
        placementGeneration = r.replicaPlacementGeneration;
        r.replicaShardAddresses.forEach((address, i) => params.retarget(i, address));
      }
      if (r.stop && !stopped) {
        stopped = true;
        send({ type: 'stop', reason: 'the chief ended the job', peerLost: false });
      }
    })
    .catch((error: unknown) => {
      unansweredSince ??= now;
      if (!stopped && Date.now() - lastAnswer > init.chiefLostAfterMs) {
        stopped = true;
        send({
          type: 'stop',
          reason: `the chief at ${init.chiefAddress} has not answered for ${Math.round((Date.now() - lastAnswer) / 1000)} s, past the peer timeout of ${Math.round(init.chiefLostAfterMs / 1000)} s (${errorMessage(error)})`,
          peerLost: true,
        });
      }
    })
    .finally(() => {
      beating = false;
    });
}
// One at once (the worker may still be loading its data), then on the interval.
beat();
const heartbeat = setInterval(beat, init.heartbeatIntervalMs);

/** A broken or refused Presence call is opened again after this pause (a restarted chief takes it on its address). */
const PRESENCE_RETRY_MS = 500;
let closing = false;
let cancelPresence: (() => void) | undefined;
/** Keep a Presence call open on the chief for as long as this worker runs: if this process dies, its connection closes and the chief knows. */
function holdPresence(): void {
  if (closing) return;
  cancelPresence = chief.presence(init.workerId, () => {
    cancelPresence = undefined;
    if (!closing) setTimeout(holdPresence, PRESENCE_RETRY_MS).unref();
  });
}
holdPresence();

port.on('message', (msg: ToComm) => {
  switch (msg.type) {
    case 'progress':
      progress = msg.progress;
      return;
    case 'pull':
      // A failure in handing the result over (postMessage) fails this request, not the thread.
      params
        .pullAll(init.workerId, msg.options)
        .then(({ values, versions }) => {
          reportWireChoice();
          const list: NamedArray[] = [...values].map(([name, data]) => ({ name, data }));
          send({ id: msg.id, type: 'pulled', versions, values: list }, transferList(list));
        })
        .catch((error: unknown) => fail(msg.id, error));
      return;
    case 'push': {
      const grads = new Map(msg.grads.map((g) => [g.name, g.data]));
      params
        .pushAll(
          { workerId: init.workerId, step: msg.step, batchSize: msg.batchSize, basedOnVersions: msg.basedOnVersions, ...(msg.timeoutMs !== undefined ? { timeoutMs: msg.timeoutMs } : {}), ...(msg.restoreGeneration !== undefined ? { restoreGeneration: msg.restoreGeneration } : {}) },
          grads,
        )
        .then((responses) => {
          reportWireChoice();
          send({
            id: msg.id,
            type: 'pushed',
            versions: responses.map((r) => r.version),
            duplicate: responses.some((r) => r.duplicate),
            dropped: responses.some((r) => r.dropped),
          });
        })
        .catch((error: unknown) => fail(msg.id, error));
      return;
    }
    case 'metrics':
      void rpcMetrics.snapshot().then((metrics) => send({ id: msg.id, type: 'metrics', metrics }));
      return;
    case 'close':
      closing = true;
      cancelPresence?.();
      clearInterval(heartbeat);
      params.close();
      chief.close();
      void rpcMetrics.snapshot().then((metrics) => send({ id: msg.id, type: 'closed', metrics }));
      return;
  }
});
