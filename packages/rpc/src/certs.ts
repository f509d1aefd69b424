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
  /** Client certificates by role name (their subject CN is `tamp-<role>`). */
  readonly clients: Readonly<Record<string, Pem>>;
  readonly token: string;
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
  const leaf = async (cn: string, usage: 'server' | 'client', names: readonly string[]): Promise<Pem> => {
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
        new x509.ExtendedKeyUsageExtension([usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
        ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names.map((h) => (IP.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h })))] : []),
      ],
    });
    return { cert: lines(cert.toString('pem')), key: await keyPem(keys) };
  };
  const roles = options.roles ?? ['chief', 'worker', 'ps'];
  const clients: Record<string, Pem> = {};
  for (const role of roles) clients[role] = await leaf(`tamp-${role}`, 'client', []);
  return {
    ca: { cert: lines(ca.toString('pem')), key: await keyPem(caKeys) },
    server: await leaf('tamp-server', 'server', hosts),
    clients,
    token: randomBytes(32).toString('base64url'),
  };
}
