/**
 * The plaintext health-only port (`--health-port`, TAMP_HEALTH_PORT) of a
 * role that serves mutual TLS with a token: probes that cannot speak TLS
 * (Kubernetes' native grpc probes, the image's HEALTHCHECK,
 * docker/healthcheck.mjs) read the same statuses as the secured port, and
 * the health port serves nothing else.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { optimizerSettings } from '@tamp/core';
import { PARAMETER_SERVER_SERVICE, ShardClient, startParameterServer } from '@tamp/parameter-server';
import { CHIEF_SECRET_KEY, HealthClient, type TlsSecurity, newSecret } from '@tamp/rpc';
import { type ClusterCertFiles, writeClusterCerts } from '@tamp/rpc/certs';
import { REPO, runTamp } from './helpers/tamp.js';

const JOB = 'health-port';
let dir: string;
let certs: ClusterCertFiles;
let security: TlsSecurity;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tamp-health-port-'));
  certs = await writeClusterCerts(join(dir, 'certs'));
  security = { kind: 'tls', certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.ca, mutual: true, tokenFile: certs.token };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** docker/healthcheck.mjs as the image runs it: its exit code and message. */
function healthcheck(port: number, service: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [join(REPO, 'docker/healthcheck.mjs')], { env: { ...process.env, TAMP_HEALTH_PORT: String(port), TAMP_HEALTH_SERVICE: service } }, (_e, _out, stderr) =>
      resolve({ code: child.exitCode, stderr }),
    );
  });
}

describe('the plaintext health port of a secured role', () => {
  it('answers health in plaintext, follows the secured server, and serves nothing else', async () => {
    const ps = await startParameterServer({ jobId: JOB, index: 0, host: '127.0.0.1', port: 0, rpc: { security, healthPort: 0 } });
    const healthPort = ps.healthPort as number;
    expect(healthPort).toBeGreaterThan(0);
    const health = new HealthClient(`127.0.0.1:${healthPort}`);
    const plainToSecured = new HealthClient(`127.0.0.1:${ps.port}`);
    const onHealthPort = new ShardClient(`127.0.0.1:${healthPort}`, JOB);
    const chief = new ShardClient(`127.0.0.1:${ps.port}`, JOB, { rpc: { security: { ...security, certFile: certs.roles.chief?.cert as string, keyFile: certs.roles.chief?.key as string }, metadata: { [CHIEF_SECRET_KEY]: newSecret() } } });
    try {
      expect(await health.check(PARAMETER_SERVER_SERVICE)).toBe('NOT_SERVING');
      const notServing = await healthcheck(healthPort, PARAMETER_SERVER_SERVICE);
      expect(notServing.code).toBe(1);
      expect(notServing.stderr).toMatch(/health is NOT_SERVING/);
      expect(await healthcheck(healthPort, '')).toMatchObject({ code: 0 });
      const unknown = await healthcheck(healthPort, 'tamp.v1.Nothing');
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/gRPC status 5/);
      // The secured port refuses plaintext, health included.
      await expect(plainToSecured.check('', 2_000)).rejects.toThrow();
      // The health port carries the health service and nothing else: a parameter server call is UNIMPLEMENTED there.
      await expect(onHealthPort.status()).rejects.toThrow(/UNIMPLEMENTED|not implemented|unimplemented/i);

      await chief.assign(
        { shardIndex: 0, optimizer: optimizerSettings('sgd', 1), version: 0n, mode: 'async', syncReplicas: 1, staleness: 0, workerIds: ['worker-0'] },
        [{ name: 'w', shape: [2], dtype: 'float32', data: Float32Array.from([1, 2]), sliceStart: 0 }],
      );
      expect(await health.check(PARAMETER_SERVER_SERVICE)).toBe('SERVING');
      expect(await healthcheck(healthPort, PARAMETER_SERVER_SERVICE)).toMatchObject({ code: 0 });
    } finally {
      for (const c of [health, plainToSecured, onHealthPort, chief]) c.close();
      await ps.close();
    }
    // Closed: the check fails, naming the port.
    const closed = await healthcheck(healthPort, '');
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain(`127.0.0.1:${healthPort}`);
  });

  it('the roles take it from --health-port or TAMP_HEALTH_PORT, and refuse a bad value', async () => {
    const flag = await runTamp(['ps', '--health-port', '8081', '--dry-run', '--json']);
    expect(flag.code, flag.stderr).toBe(0);
    expect(JSON.parse(flag.stdout)).toMatchObject({ healthPort: 8081 });
    const env = await runTamp(['chief', '--ps', '127.0.0.1:2222', '--workers', '1', '--model', 'mlp-tiny', '--dataset', 'mnist', '--out', join(dir, 'run'), '--dry-run', '--json'], { env: { TAMP_HEALTH_PORT: '8082' } });
    expect(env.code, env.stderr).toBe(0);
    expect(JSON.parse(env.stdout)).toMatchObject({ healthPort: 8082 });
    const bad = await runTamp(['ps', '--dry-run'], { env: { TAMP_HEALTH_PORT: 'eighty' } });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/TAMP_HEALTH_PORT=eighty: give a port number/);
  });
});
