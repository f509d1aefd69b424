/**
 * Certificates for a cluster, made here: a CA, a server certificate (every
 * role's listener, with the host names and addresses given as subject
 * alternative names) and client certificates per role (the chief's subject
 * is what chief-only methods check), plus a bearer token. ECDSA P-256 through
 * WebCrypto (@peculiar/x509 builds the certificates): fast to make and
 * accepted by grpc-js's OpenSSL. The convenient way for a test or a small
 * team; real deployments bring their own. Imported as `@tamp/rpc/certs`.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the
// Reflect metadata polyfill loaded first. This module is its own entry point
// (`@tamp/rpc/certs`) so roles that only serve never load either.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface Pem {
  readonly cert: string;
  readonly key: string;
}

export interface ClusterCerts {
  readonly ca: Pem;
  readonly server: Pem;
  /** Certificates by role name (subject CN `tamp-<role>`, valid for the same hosts as the server's), for roles that want their own identity. */
  readonly clients: Readonly<Record<string, Pem>>;
  readonly token: string;
  /** The job's chief secret (role-auth.ts): what proves the chief to the parameter servers. */
  readonly chiefSecret: string;
}

export interface CertOptions {
  /** Names and addresses the server certificate is valid for (default: localhost, 127.0.0.1, ::1). */
  readonly hosts?: readonly string[];
  readonly days?: number;
  /** Client roles to make certificates for (default: chief, worker, ps). */
  readonly roles?: readonly string[];
  /** Backdate validity (tests make expired certificates this way). */
  readonly notBefore?: Date;
}

/** PEM text ending in a newline, so files concatenate into valid bundles (old CA + new CA during a rotation). */
function lines(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

async function keyPem(keys: CryptoKeyPair): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as webcrypto.CryptoKey);
  return lines(x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'));
}

function serial(): string {
  // Positive, 16 bytes: the top bit cleared.
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f;
  return b.toString('hex');
}

const IP = /^(\d{1,3}\.){3}\d{1,3}$|:/;

export async function makeClusterCerts(options: CertOptions = {}): Promise<ClusterCerts> {
  const days = options.days ?? 365;
  const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);
  const hosts = options.hosts ?? ['localhost', '127.0.0.1', '::1'];
  const caKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    // A unique name and key identifiers: a trust bundle holding an old and a
    // new CA (during a rotation) must tell them apart.
    name: `CN=Tamp cluster CA ${serial().slice(0, 8)}`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leaf = async (cn: string, names: readonly string[]): Promise<Pem> => {
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${cn}`,
      issuer: ca.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.AuthorityKeyIdentifierExtension.create(ca),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        // Every role both serves and calls (the chief does both), so each certificate is good for both.
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names.map((h) => (IP.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h })))] : []),
      ],
    });
    return { cert: lines(cert.toString('pem')), key: await keyPem(keys) };
  };
  const roles = options.roles ?? ['chief', 'worker', 'ps'];
  const clients: Record<string, Pem> = {};
  for (const role of roles) clients[role] = await leaf(`tamp-${role}`, hosts);
  return {
    ca: { cert: lines(ca.toString('pem')), key: await keyPem(caKeys) },
    server: await leaf('tamp-server', hosts),
    clients,
    token: randomBytes(32).toString('base64url'),
    chiefSecret: randomBytes(32).toString('base64url'),
  };
}

/** The files writeClusterCerts writes, by what they are. */
export interface ClusterCertFiles {
  readonly dir: string;
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** `<role>.pem` and `<role>-key.pem` for each role. */
  readonly roles: Readonly<Record<string, { readonly cert: string; readonly key: string }>>;
  readonly token: string;
  /** `chief-secret`: the job's chief secret, for the parameter servers and the chief only (TAMP_CHIEF_SECRET_FILE). */
  readonly chiefSecret: string;
}

/**
 * Write a cluster's certificates to `dir` (created, mode 0700): ca.pem,
 * server.pem/server-key.pem, <role>.pem/<role>-key.pem, token and
 * chief-secret; keys, the token and the secret mode 0600. The CA's own key is not written: nobody needs it to
 * run the cluster, and a new set is cheap to make.
 */
export async function writeClusterCerts(dir: string, options: CertOptions = {}): Promise<ClusterCertFiles> {
  const certs = await makeClusterCerts(options);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const put = (name: string, text: string, mode: number) => {
    const file = join(dir, name);
    writeFileSync(file, text, { mode });
    chmodSync(file, mode); // an existing file keeps its old mode through writeFileSync
    return file;
  };
  const roles: Record<string, { cert: string; key: string }> = {};
  for (const [role, pem] of Object.entries(certs.clients)) roles[role] = { cert: put(`${role}.pem`, pem.cert, 0o644), key: put(`${role}-key.pem`, pem.key, 0o600) };
  return {
    dir,
    ca: put('ca.pem', certs.ca.cert, 0o644),
    serverCert: put('server.pem', certs.server.cert, 0o644),
    serverKey: put('server-key.pem', certs.server.key, 0o600),
    roles,
    token: put('token', `${certs.token}\n`, 0o600),
    chiefSecret: put('chief-secret', `${certs.chiefSecret}\n`, 0o600),
  };
}
