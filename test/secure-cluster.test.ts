/**
 * A whole local cluster over mutual TLS and a token made for the run
 * (`tamp train --local --secure`), and the roles' refusal to listen beyond
 * loopback in plaintext unless told --insecure; a metrics scrape during a
 * job; certificates rotated under a running job.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeClusterCerts } from '@tamp/rpc/certs';
import { launchLocalCluster } from '@tamp/worker';
import { connect } from 'node:tls';
import { freePorts } from './helpers/ports.js';
import { TAMP_BIN, jsonOf, runTamp } from './helpers/tamp.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-secure-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TINY = ['--model', 'mlp-tiny', '--dataset', 'mnist', '--epochs', '1', '--epoch-size', '1024', '--lr', '0.003'];

describe('secure cluster (real processes)', () => {
  it('tamp train --local --secure trains to completion over mutual TLS + token; keys and token are 0600', async () => {
    const out = join(dir, 'secure');
    const r = await runTamp(['train', '--local', '--secure', '--ps', '1', '--workers', '2', ...TINY, '--backend', 'wasm', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = jsonOf<{ workers: number; ps: number; steps: number; lostWorkers: number }>(r);
    expect(report).toMatchObject({ workers: 2, ps: 1, steps: 16, lostWorkers: 0 });
    expect(r.stderr).toMatch(/mutual TLS \+ token/);
    for (const f of ['server-key.pem', 'token']) expect(statSync(join(out, 'secrets', f)).mode & 0o777).toBe(0o600);
  });

  it('tamp certs writes a CA, certificates and a token a cluster can use', async () => {
    const out = join(dir, 'certs');
    const r = await runTamp(['certs', '--out', out, '--hosts', 'localhost,127.0.0.1', '--days', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const files = jsonOf<{ ca: string; serverCert: string; serverKey: string; token: string; chiefSecret: string; roles: Record<string, { cert: string; key: string }> }>(r);
    expect(Object.keys(files.roles).sort()).toEqual(['chief', 'ps', 'worker']);
    expect(statSync(files.token).mode & 0o777).toBe(0o600);
    expect(statSync(files.chiefSecret).mode & 0o777).toBe(0o600);
    expect(statSync(files.roles.worker?.key as string).mode & 0o777).toBe(0o600);
    // A parameter server's checks accept them (dry run: every check, nothing started).
    const secure = ['ps', '--dry-run', '--tls-cert', files.serverCert, '--tls-key', files.serverKey, '--tls-ca', files.ca, '--mtls', '--token-file', files.token];
    const ps = await runTamp(secure, { env: { ...process.env, TAMP_CHIEF_SECRET_FILE: files.chiefSecret } });
    expect(ps.code, ps.stderr).toBe(0);
    // A chief secret that cannot be read stops the role before it listens, saying what to mount.
    const missing = await runTamp(secure, { env: { ...process.env, TAMP_CHIEF_SECRET_FILE: join(out, 'no-such-secret') } });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/TAMP_CHIEF_SECRET_FILE=.*no-such-secret: cannot read the file/);
  });

  it('a role refuses to listen beyond loopback in plaintext, and a token without TLS', async () => {
    const open = await runTamp(['ps', '--host', '0.0.0.0', '--port', '0'], { env: { ...process.env, TAMP_INSECURE: '' } });
    expect(open.code).not.toBe(0);
    expect(open.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without TLS.*--insecure/);
    const token = await runTamp(['ps', '--port', '0', '--token-file', join(dir, 'certs', 'token')]);
    expect(token.code).not.toBe(0);
    expect(token.stderr).toMatch(/--token-file needs TLS/);
  });

  it('a chief\'s /metrics, scraped during the job, parses as Prometheus text and counts the workers\' RPCs', async () => {
    const out = join(dir, 'metrics');
    const [metricsPort] = await freePorts(1);
    let scraped: string | undefined;
    let scraping: Promise<void> | undefined;
    const report = await launchLocalCluster({
      tamp: [process.execPath, TAMP_BIN],
      jobId: 'metrics-test',
      ps: 1,
      workers: 2,
      chiefArgs: [...TINY, '--out', out, '--backend', 'wasm', '--metrics-port', String(metricsPort)],
      workerArgs: ['--backend', 'wasm'],
      out,
      onProgress: (p) => {
        if (scraping === undefined && p.globalStep > 0) {
          scraping = fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(async (r) => {
            scraped = await r.text();
          });
        }
      },
    });
    await scraping;
    expect(report.steps).toBe(16);
    expect(scraped, 'no scrape happened during the job').toBeDefined();
    const lines = (scraped as string).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    for (const line of lines) expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (-?[0-9.eE+-]+|[Nn]a[Nn]|\+Inf|-Inf)$/);
    // Workers joined and heartbeat through the coordinator; the chief assigned the shard.
    const joins = lines.find((l) => l.startsWith('tamp_rpc_server_handled_total{method="/tamp.v1.Coordinator/Join",code="OK"}'));
    expect(Number(joins?.split(' ')[1])).toBe(2);
    expect(lines.some((l) => l.startsWith('tamp_rpc_client_handled_total{method="/tamp.v1.ParameterServer/Assign",code="OK"} 1'))).toBe(true);
    expect(lines.some((l) => l.startsWith('process_resident_memory_bytes'))).toBe(true);
  });

  it('certificates rotated under a running job: the job finishes, new connections see the new certificate', async () => {
    const out = join(dir, 'rotate');
    const old = await writeClusterCerts(join(dir, 'rotate-certs'), { roles: [] });
    const next = await writeClusterCerts(join(dir, 'rotate-next'), { roles: [] });
    const serial = (file: string) => new X509Certificate(readFileSync(file)).serialNumber;
    const oldSerial = serial(old.serverCert);
    const newSerial = serial(next.serverCert);
    const ports: number[] = [];
    /** The serial of the certificate the chief presents to a new connection (with the new client identity). */
    const presented = (port: number) =>
      new Promise<string>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port, servername: '127.0.0.1', ca: readFileSync(old.ca), cert: readFileSync(next.serverCert), key: readFileSync(next.serverKey), ALPNProtocols: ['h2'] }, () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        });
        socket.on('error', () => resolve('')); // mid-rotation (cert and key not yet both replaced): try again
      });
    let rotation: Promise<string> | undefined;
    const rotate = async (port: number): Promise<string> => {
      // Trust both CAs first, then swap the identity; each file replaced atomically, as a Kubernetes secret is.
      const put = (file: string, text: string) => {
        writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
        renameSync(`${file}.tmp`, file);
      };
      put(old.ca, `${readFileSync(old.ca, 'utf8')}${readFileSync(next.ca, 'utf8')}`);
      put(old.serverKey, readFileSync(next.serverKey, 'utf8'));
      put(old.serverCert, readFileSync(next.serverCert, 'utf8'));
      let seen = '';
      for (let i = 0; i < 200 && seen !== newSerial; i++) {
        seen = await presented(port);
        if (seen !== newSerial) await new Promise((r) => setTimeout(r, 100));
      }
      return seen;
    };
    const report = await launchLocalCluster({
      tamp: [process.execPath, TAMP_BIN],
      jobId: 'rotate-test',
      ps: 1,
      workers: 2,
      chiefArgs: [...TINY, '--epoch-size', '4096', '--out', out, '--backend', 'wasm'],
      workerArgs: ['--backend', 'wasm'],
      out,
      security: { kind: 'tls', certFile: old.serverCert, keyFile: old.serverKey, caFile: old.ca, mutual: true, tokenFile: old.token },
      // Re-read every 200 ms (default 5 s), so the rotation is seen well before this short job ends.
      env: { TAMP_TLS_RELOAD_MS: '200' },
      onSpawn: (role, child) => {
        if (role === 'chief') child.on('message', (m: { type?: string; port?: number }) => m.type === 'listening' && m.port !== undefined && ports.push(m.port));
      },
      onProgress: (p) => {
        if (rotation === undefined && p.globalStep > 0 && ports[0] !== undefined) rotation = rotate(ports[0]);
      },
    });
    expect(rotation, 'the job ended before it could be rotated under').toBeDefined();
    expect(await rotation).toBe(newSerial);
    expect(newSerial).not.toBe(oldSerial);
    // The job ran to its end through the rotation: every step applied, no worker lost.
    expect(report).toMatchObject({ steps: 64, lostWorkers: 0 });
  });
});
