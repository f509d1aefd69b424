/**
 * Transport security over real servers on free ports with certificates made
 * at test time: TLS, mutual TLS, tokens, every refusal with its status and
 * nothing applied, certificate rotation without a restart, and the refusal
 * to listen beyond loopback in plaintext.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { type CallOptions, type Client, type ClientUnaryCall, Metadata, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterError } from '@tamp/core';
import { type ClusterCerts, makeClusterCerts } from './certs.js';
import { type RunningRpcServer, clientConstructor, createClient, startServer } from './channel.js';
import { requestHeader } from './header.js';
import { serviceHandlers } from './handlers.js';
import { type RpcSecurity, type TlsSecurity, securityFromFlags } from './security.js';
import { GrpcStatus } from './status.js';
import { rpcMetrics } from './metrics.js';

const JOB = 'secure-job';
const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString('utf8')) as unknown,
};
const BUMP = {
  bump: { path: '/tamp.test.Counter/Bump', requestStream: false, responseStream: false, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize },
};
interface CounterClient extends Client {
  bump(request: object, metadata: Metadata, options: Partial<CallOptions>, callback: (e: ServiceError | null, r: { n: number }) => void): ClientUnaryCall;
}
const Ctor = clientConstructor<CounterClient>(BUMP, 'tamp.test.Counter');

let dir: string;
let certs: ClusterCerts;
let stranger: ClusterCerts;
let expired: ClusterCerts;
const servers: RunningRpcServer[] = [];

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

/** Files for one role: its certificate (server or a client role), the CA, and the token. */
function files(prefix: string, set: ClusterCerts, role: 'server' | 'chief', token = set.token): { cert: string; key: string; ca: string; token: string } {
  const pem = role === 'server' ? set.server : (set.clients[role] as { cert: string; key: string });
  return { cert: write(`${prefix}-cert.pem`, pem.cert), key: write(`${prefix}-key.pem`, pem.key), ca: write(`${prefix}-ca.pem`, set.ca.cert), token: write(`${prefix}-token`, token) };
}

function tls(f: { cert: string; key: string; ca: string; token: string }, mutual: boolean, withToken: boolean, reloadMs?: number): TlsSecurity {
  return { kind: 'tls', certFile: f.cert, keyFile: f.key, caFile: f.ca, mutual, ...(withToken ? { tokenFile: f.token } : {}), ...(reloadMs !== undefined ? { reloadMs } : {}) };
}

/** A counter server: each accepted call adds one. */
async function counter(security: RpcSecurity, host = '127.0.0.1'): Promise<{ server: RunningRpcServer; count: () => number; refused: string[] }> {
  let n = 0;
  const refused: string[] = [];
  const h = serviceHandlers({ jobId: JOB });
  const server = await startServer([{ definition: BUMP, implementation: { bump: h.unary('bump', () => ({ n: ++n })) } }], { host, port: 0 }, { security, onRefused: (m) => refused.push(m), warn: () => {} });
  servers.push(server);
  return { server, count: () => n, refused };
}

function bump(port: number, security: RpcSecurity): Promise<{ n: number }> {
  const client = createClient(Ctor, `localhost:${port}`, { security });
  return new Promise<{ n: number }>((resolve, reject) => {
    client.bump({ header: requestHeader(JOB) }, new Metadata(), { deadline: Date.now() + 5_000 }, (e, r) => {
      client.close();
      if (e !== null) reject(e);
      else resolve(r);
    });
  });
}

async function refusedWith(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
  } catch (error) {
    return (error as ServiceError).code;
  }
  throw new Error('the call was accepted');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tamp-sec-'));
  [certs, stranger, expired] = await Promise.all([makeClusterCerts(), makeClusterCerts(), makeClusterCerts({ notBefore: new Date(Date.now() - 10 * 86_400_000), days: 1 })]);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close(0)));
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS, mutual TLS and tokens', () => {
  it('accepts a client that has everything, and refuses each missing piece with its status, applying nothing', async () => {
    const srv = files('srv1', certs, 'server');
    const cli = files('cli1', certs, 'chief');
    const { server, count, refused } = await counter(tls(srv, true, true));
    expect((await bump(server.port, tls(cli, true, true))).n).toBe(1);

    // No token, a wrong token: UNAUTHENTICATED from the check before the handler.
    expect(await refusedWith(bump(server.port, tls(cli, true, false)))).toBe(GrpcStatus.UNAUTHENTICATED);
    const wrong = files('cli1w', certs, 'chief', 'not-the-token');
    expect(await refusedWith(bump(server.port, tls(wrong, true, true)))).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(refused).toEqual(['/tamp.test.Counter/Bump', '/tamp.test.Counter/Bump']);
    // The metrics interceptor (outermost) counted them by reason.
    expect((await rpcMetrics.refused.get()).values.find((v) => v.labels.reason === 'UNAUTHENTICATED')?.value).toBe(2);

    // No client certificate, one from another CA, an expired one: the handshake fails.
    expect(await refusedWith(bump(server.port, tls(cli, false, true)))).toBe(GrpcStatus.UNAVAILABLE);
    const foreign = { ...files('cli1f', stranger, 'chief'), ca: cli.ca, token: cli.token };
    expect(await refusedWith(bump(server.port, tls(foreign, true, true)))).toBe(GrpcStatus.UNAVAILABLE);
    // Plaintext to a TLS server.
    expect(await refusedWith(bump(server.port, { kind: 'insecure' }))).toBe(GrpcStatus.UNAVAILABLE);
    expect(count()).toBe(1);
  });

  it('refuses an expired certificate on either side', async () => {
    const old = files('srv2', expired, 'server');
    const { server, count } = await counter(tls(old, false, false));
    expect(await refusedWith(bump(server.port, tls(files('cli2', expired, 'chief'), false, false)))).toBe(GrpcStatus.UNAVAILABLE);

    const expiredClient = { ...files('cli2e', expired, 'chief'), ca: write('mixed-ca.pem', `${certs.ca.cert}${expired.ca.cert}`) };
    const good = { ...files('srv2g', certs, 'server'), ca: expiredClient.ca };
    const strict = await counter(tls(good, true, false));
    expect(await refusedWith(bump(strict.server.port, tls(expiredClient, true, false)))).toBe(GrpcStatus.UNAVAILABLE);
    expect(count() + strict.count()).toBe(0);
  });

  it('refuses TLS to a plaintext server', async () => {
    const { server, count } = await counter({ kind: 'insecure' });
    expect(await refusedWith(bump(server.port, tls(files('cli3', certs, 'chief'), false, false)))).toBe(GrpcStatus.UNAVAILABLE);
    expect(count()).toBe(0);
  });
});

/** The serial number of the certificate a server presents to a new connection. */
function presentedSerial(port: number, ca: string): Promise<string> {
  const me = certs.clients['chief'] as { cert: string; key: string };
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, cert: me.cert, key: me.key, ALPNProtocols: ['h2'] }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

describe('certificate rotation', () => {
  it('new connections see the new certificate; an open channel keeps working', async () => {
    const srv = files('srv4', certs, 'server');
    const cli = files('cli4', certs, 'chief');
    const { server, count } = await counter(tls(srv, true, true, 100));
    const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
    expect(await presentedSerial(server.port, certs.ca.cert)).toBe(serialOf(certs.server.cert));

    // Same CA, a new server certificate: what a renewal looks like.
    const renewed = await makeClusterCerts();
    const open = createClient(Ctor, `localhost:${server.port}`, { security: tls(cli, true, true) });
    const call = () => new Promise<number>((resolve, reject) => open.bump({ header: requestHeader(JOB) }, new Metadata(), { deadline: Date.now() + 5_000 }, (e, r) => (e !== null ? reject(e) : resolve(r.n))));
    expect(await call()).toBe(1);

    writeFileSync(srv.cert, renewed.server.cert);
    writeFileSync(srv.key, renewed.server.key);
    writeFileSync(srv.ca, `${certs.ca.cert}${renewed.ca.cert}`);
    const deadline = Date.now() + 10_000;
    let seen = '';
    while (Date.now() < deadline) {
      // Between the writes the files may not match yet: that read is refused and the next one fixes it.
      seen = await presentedSerial(server.port, `${certs.ca.cert}${renewed.ca.cert}`).catch(() => '');
      if (seen === serialOf(renewed.server.cert)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toBe(serialOf(renewed.server.cert));
    expect(await call()).toBe(2);
    open.close();
    expect(count()).toBe(2);
  });
});

describe('protected by default', () => {
  it('refuses to listen beyond loopback in plaintext, unless told --insecure (with a warning)', async () => {
    await expect(counter({ kind: 'insecure' }, '0.0.0.0')).rejects.toMatchObject({ code: 'SECURITY_CONFIG', message: expect.stringContaining('--insecure') as unknown });
    const warned: string[] = [];
    const h = serviceHandlers({ jobId: JOB });
    const s = await startServer([{ definition: BUMP, implementation: { bump: h.unary('bump', () => ({ n: 0 })) } }], { host: '0.0.0.0', port: 0 }, { security: { kind: 'insecure', allowRemote: true }, warn: (m) => warned.push(m) });
    servers.push(s);
    expect(warned).toHaveLength(1);
    expect((await counter({ kind: 'insecure' }, '127.0.0.1')).server.port).toBeGreaterThan(0);
  });

  it('refuses a token without TLS and half a certificate, with typed errors', () => {
    const token = write('t', 'abc');
    expect(() => securityFromFlags({ tokenFile: token })).toThrow(ClusterError);
    expect(() => securityFromFlags({ tokenFile: token })).toThrow(/needs TLS/);
    expect(() => securityFromFlags({ tlsCert: token })).toThrow(/all three/);
    expect(securityFromFlags({ insecure: true })).toEqual({ kind: 'insecure', allowRemote: true });
    expect(securityFromFlags({})).toEqual({ kind: 'insecure' });
  });
});
