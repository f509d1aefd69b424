/**
 * A real parameter server for tests over gRPC (not a test file: typechecked,
 * never collected, left out of the compiled package): one server at a time,
 * clients that carry the job's credentials as the chief or as a worker's
 * slot token, all closed after each test.
 */
import { afterEach } from 'vitest';
import { CHIEF_SECRET_KEY, WORKER_TOKEN_KEY, newSecret, slotToken } from '@tamp/rpc';
import { ShardClient } from './client.js';
import { type RunningParameterServer, startParameterServer } from './server.js';

export interface RealServer {
  /** Start parameter server 0 of the job; its address. */
  start(): Promise<string>;
  /** A client of `address` as the chief ('chief') or as a worker ('worker-<i>'). */
  client(address: string, as: string): ShardClient;
  /** Stop the server and close every client now (afterEach does it too). */
  stop(): Promise<void>;
}

export function realServer(jobId: string): RealServer {
  const secret = newSecret();
  let ps: RunningParameterServer | undefined;
  const clients: ShardClient[] = [];
  const stop = async () => {
    for (const c of clients.splice(0)) c.close();
    await ps?.close();
    ps = undefined;
  };
  afterEach(stop);
  return {
    async start() {
      ps = await startParameterServer({ jobId, index: 0, chiefSecret: secret });
      return `127.0.0.1:${ps.port}`;
    },
    client(address, as) {
      const metadata = as === 'chief' ? { [CHIEF_SECRET_KEY]: secret } : { [WORKER_TOKEN_KEY]: slotToken(secret, as, 1) };
      const c = new ShardClient(address, jobId, { rpc: { metadata } });
      clients.push(c);
      return c;
    },
    stop,
  };
}
