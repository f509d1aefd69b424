/**
 * tamp serve under the cluster roles' security settings: HTTPS with mutual
 * TLS and a bearer token on the REST side (health probes open, everything
 * else refused without the token or a client certificate), the same on gRPC,
 * and plaintext beyond loopback refused unless --insecure. Certificates are
 * made at test time.
 */
import { request } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterError } from '@tamp/core';
import { type ClusterCertFiles, writeClusterCerts } from '@tamp/rpc/certs';
import { type RunningServer, startServe } from '@tamp/serve';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from './helpers/tamp.js';

const DIGITS = join(REPO, 'demos/digits/public/models/compressed.tamp');

function call(port: number, path: string, options: { certs: ClusterCertFiles; clientCert: boolean; token?: string; body?: string }): Promise<{ status: number; body: string }> {
  const role = options.certs.roles.worker as { cert: string; key: string };
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.body !== undefined ? 'POST' : 'GET',
        ca: readFileSync(options.certs.ca),
        ...(options.clientCert ? { cert: readFileSync(role.cert), key: readFileSync(role.key) } : {}),
        headers: options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {},
        servername: 'localhost',
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('tamp serve: TLS, mutual TLS and tokens', () => {
  let dir: string;
  let certs: ClusterCertFiles;
  let server: RunningServer;
  let token: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tamp-serve-tls-'));
    certs = await writeClusterCerts(join(dir, 'certs'));
    token = readFileSync(certs.token, 'utf8').trim();
    server = await startServe({
      models: new Map([['digits', DIGITS]]),
      httpPort: 0,
      device: 'wasm',
      security: { kind: 'tls', certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.ca, mutual: true, tokenFile: certs.token },
    });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers probes without a token, refuses the rest without the token, and serves with it', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: new Array<number>(784).fill(0.5) }] });
    expect((await call(server.httpPort, '/v2/health/ready', { certs, clientCert: true })).status).toBe(200);
    const none = await call(server.httpPort, '/v2/models/digits/infer', { certs, clientCert: true, body });
    expect(none.status).toBe(401);
    expect(none.body).toMatch(/no bearer token/);
    expect((await call(server.httpPort, '/v2/models/digits/infer', { certs, clientCert: true, token: 'not-the-token', body })).status).toBe(401);
    const ok = await call(server.httpPort, '/v2/models/digits/infer', { certs, clientCert: true, token, body });
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.body) as { outputs: Array<{ shape: number[] }> }).outputs[0]?.shape).toEqual([1, 10]);
    // Mutual TLS: without a client certificate the handshake itself fails; nothing is served.
    await expect(call(server.httpPort, '/v2/health/ready', { certs, clientCert: false })).rejects.toThrow();
  });

  it('refuses plaintext beyond loopback unless told --insecure', async () => {
    const refused = await startServe({ models: new Map([['digits', DIGITS]]), host: '0.0.0.0', httpPort: 0, device: 'wasm' }).then(
      (s) => s.close().then(() => undefined),
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ClusterError);
    expect((refused as ClusterError).code).toBe('SECURITY_CONFIG');
    expect((refused as ClusterError).message).toMatch(/--insecure/);
    const warnings: string[] = [];
    const allowed = await startServe({ models: new Map([['digits', DIGITS]]), host: '0.0.0.0', httpPort: 0, device: 'wasm', security: { kind: 'insecure', allowRemote: true }, log: (m) => warnings.push(m) });
    await allowed.close();
    expect(warnings.join('\n')).toMatch(/without TLS/);
  });
});
