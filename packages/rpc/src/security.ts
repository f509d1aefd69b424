/**
 * Transport security, configured once for every server and channel: TLS
 * (servers present a certificate, clients verify it against a CA), mutual
 * TLS (servers demand a client certificate signed by the CA) and bearer
 * tokens (`authorization: Bearer <token>` on every call, checked before any
 * handler runs). Certificates are read through grpc-js's file watcher, so
 * replacing the files on disk (Kubernetes rotates mounted secrets this way)
 * reaches every new connection without a restart; open connections are left
 * alone, so a running job is not interrupted.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  CallCredentials,
  ChannelCredentials,
  Metadata,
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptor,
  experimental,
  status,
} from '@grpc/grpc-js';
import { ClusterError } from '@tamp/core/base';
import { ERROR_CODE_KEY } from './status.js';

/** How often certificate files are re-read (grpc-js's file watcher polls). */
export const CERT_RELOAD_MS = 5_000;

/** Plaintext. `allowRemote`: listen beyond loopback anyway (the operator's `--insecure`). */
export interface InsecureSecurity {
  readonly kind: 'insecure';
  readonly allowRemote?: boolean;
}

/** TLS with certificates from files, optionally mutual, optionally with a bearer token. */
export interface TlsSecurity {
  readonly kind: 'tls';
  /** This role's certificate (PEM): presented by its servers, and by its clients under mutual TLS. */
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA that signs servers' (and, under mutual TLS, clients') certificates. */
  readonly caFile: string;
  /** Servers demand a client certificate signed by the CA; clients present theirs. */
  readonly mutual: boolean;
  /** A file holding the bearer token every call must carry. */
  readonly tokenFile?: string;
  /** How often the certificate files are re-read (default CERT_RELOAD_MS). */
  readonly reloadMs?: number;
}

/** How a connection is secured: a tagged union, so every caller takes any variant. */
export type RpcSecurity = InsecureSecurity | TlsSecurity;

export const INSECURE: RpcSecurity = { kind: 'insecure' };

/** The security flags every role takes (each also from an environment variable: see securityFromFlags). */
export interface SecurityFlags {
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  readonly tlsCa?: string | undefined;
  readonly mtls?: boolean | undefined;
  readonly tokenFile?: string | undefined;
  readonly insecure?: boolean | undefined;
}

function readable(flag: string, file: string): string {
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
  } catch (error) {
    throw new ClusterError('SECURITY_CONFIG', `${flag} ${file}: cannot read the file (${(error as Error).message}); give the path of a PEM file`, { cause: error });
  }
  return file;
}

/**
 * Security from the flags: refuses combinations that cannot work, with a
 * typed error saying how to fix them (a token without TLS would travel in
 * the clear; half a certificate is a typo).
 */
export function securityFromFlags(flags: SecurityFlags): RpcSecurity {
  const tls = [flags.tlsCert, flags.tlsKey, flags.tlsCa].filter((f) => f !== undefined && f !== '').length;
  if (tls === 0) {
    if (flags.tokenFile !== undefined && flags.tokenFile !== '') {
      throw new ClusterError('SECURITY_CONFIG', '--token-file needs TLS: a bearer token over plaintext can be read by anyone on the network. Give --tls-cert, --tls-key and --tls-ca too (tamp certs --out DIR makes them)');
    }
    if (flags.mtls === true) throw new ClusterError('SECURITY_CONFIG', '--mtls needs --tls-cert, --tls-key and --tls-ca (tamp certs --out DIR makes them)');
    return flags.insecure === true ? { kind: 'insecure', allowRemote: true } : INSECURE;
  }
  if (tls !== 3) throw new ClusterError('SECURITY_CONFIG', 'TLS needs all three of --tls-cert, --tls-key and --tls-ca (tamp certs --out DIR makes them)');
  if (flags.insecure === true) throw new ClusterError('SECURITY_CONFIG', '--insecure contradicts --tls-cert/--tls-key/--tls-ca: give one or the other');
  const token = flags.tokenFile !== undefined && flags.tokenFile !== '' ? readable('--token-file', flags.tokenFile) : undefined;
  if (token !== undefined) readToken(token);
  return {
    kind: 'tls',
    certFile: readable('--tls-cert', flags.tlsCert as string),
    keyFile: readable('--tls-key', flags.tlsKey as string),
    caFile: readable('--tls-ca', flags.tlsCa as string),
    mutual: flags.mtls === true,
    ...(token !== undefined ? { tokenFile: token } : {}),
  };
}

/** The security flags as command-line arguments (for `tamp train --local` to pass on to its children). */
export function securityArgs(security: RpcSecurity): string[] {
  if (security.kind === 'insecure') return security.allowRemote === true ? ['--insecure'] : [];
  return [
    '--tls-cert',
    security.certFile,
    '--tls-key',
    security.keyFile,
    '--tls-ca',
    security.caFile,
    ...(security.mutual ? ['--mtls'] : []),
    ...(security.tokenFile !== undefined ? ['--token-file', security.tokenFile] : []),
  ];
}

function readToken(file: string): string {
  const token = readFileSync(file, 'utf8').trim();
  if (token.length === 0) throw new ClusterError('SECURITY_CONFIG', `--token-file ${file} is empty: write the token in it (tamp certs --out DIR makes one)`);
  return token;
}

/** One file watcher per set of files: every server and channel of a process shares its reads. */
const providers = new Map<string, experimental.FileWatcherCertificateProvider>();

function provider(security: TlsSecurity): experimental.FileWatcherCertificateProvider {
  const key = JSON.stringify([security.certFile, security.keyFile, security.caFile, security.reloadMs]);
  let p = providers.get(key);
  if (p === undefined) {
    p = new experimental.FileWatcherCertificateProvider({
      certificateFile: security.certFile,
      privateKeyFile: security.keyFile,
      caCertificateFile: security.caFile,
      refreshIntervalMs: security.reloadMs ?? CERT_RELOAD_MS,
    });
    providers.set(key, p);
  }
  return p;
}

/**
 * Resolves once the certificate files have been read (at once for
 * plaintext); rejects with SECURITY_CONFIG when they cannot be.
 */
export function certificatesLoaded(security: RpcSecurity): Promise<void> {
  if (security.kind === 'insecure') return Promise.resolve();
  const p = provider(security);
  return new Promise((resolve, reject) => {
    const listener = (update: experimental.IdentityCertificateUpdate | null) => {
      p.removeIdentityCertificateListener(listener);
      if (update !== null) resolve();
      else reject(new ClusterError('SECURITY_CONFIG', `cannot read the certificate ${security.certFile} or its key ${security.keyFile}: give readable PEM files`));
    };
    p.addIdentityCertificateListener(listener);
  });
}

export function clientCredentials(security: RpcSecurity = INSECURE): ChannelCredentials {
  if (security.kind === 'insecure') return ChannelCredentials.createInsecure();
  const p = provider(security);
  const channel = experimental.createCertificateProviderChannelCredentials(p, security.mutual ? p : null);
  if (security.tokenFile === undefined) return channel;
  const header = `Bearer ${readToken(security.tokenFile)}`;
  return channel.compose(
    CallCredentials.createFromMetadataGenerator((_params, callback) => {
      const metadata = new Metadata();
      metadata.set('authorization', header);
      callback(null, metadata);
    }),
  );
}

export function serverCredentials(security: RpcSecurity = INSECURE): ServerCredentials {
  if (security.kind === 'insecure') return ServerCredentials.createInsecure();
  const p = provider(security);
  // One provider serves both roles (it reads all three files), so the
  // argument order of this grpc-js function cannot matter.
  return experimental.createCertificateProviderServerCredentials(p, p, security.mutual);
}

/** Services any caller may use without a token (orchestrators' probes cannot send one). */
const OPEN_SERVICES = ['/grpc.health.v1.Health/'];

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * The server side of bearer tokens: runs before any handler and refuses a
 * call without the right token with UNAUTHENTICATED; the handler never sees
 * it, so nothing changes. Compared through SHA-256 digests with
 * timingSafeEqual: constant time, whatever the lengths.
 */
export function tokenInterceptor(tokenFile: string, onRefused?: (method: string) => void): ServerInterceptor {
  const expected = digest(`Bearer ${readToken(tokenFile)}`);
  return (descriptor, call) =>
    new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            if (OPEN_SERVICES.some((s) => descriptor.path.startsWith(s))) {
              mdNext(metadata);
              return;
            }
            const given = metadata.get('authorization')[0];
            if (typeof given === 'string' && timingSafeEqual(digest(given), expected)) {
              mdNext(metadata);
              return;
            }
            onRefused?.(descriptor.path);
            const trailer = new Metadata();
            trailer.set(ERROR_CODE_KEY, 'UNAUTHENTICATED');
            call.sendStatus({
              code: status.UNAUTHENTICATED,
              details: given === undefined ? 'no bearer token: give --token-file (the same token as the servers)' : 'wrong bearer token: give --token-file with the token the servers use',
              metadata: trailer,
            });
          },
        });
      },
    });
}

/**
 * The same bearer-token check for another transport (the REST side of
 * `tamp serve`): true when `authorization` is `Bearer <the token>`, compared
 * in constant time as tokenInterceptor does.
 */
export function bearerTokenCheck(tokenFile: string): (authorization: string | undefined) => boolean {
  const expected = digest(`Bearer ${readToken(tokenFile)}`);
  return (given) => typeof given === 'string' && timingSafeEqual(digest(given), expected);
}

/** Whether a listen host only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * Protected by default: a plaintext server beyond loopback is refused
 * unless the operator accepted the risk (`--insecure`), which `warn` reports.
 */
export function checkListen(host: string, security: RpcSecurity, warn: (message: string) => void): void {
  if (security.kind !== 'insecure' || isLoopback(host)) return;
  if (security.allowRemote === true) {
    warn(`WARNING: listening on ${host} without TLS (--insecure): anyone who can reach this port can read and change the job`);
    return;
  }
  throw new ClusterError(
    'SECURITY_CONFIG',
    `refusing to listen on ${host} without TLS: anyone who can reach the port could read and change the job. Give --tls-cert, --tls-key and --tls-ca (tamp certs --out DIR makes them), listen on 127.0.0.1, or pass --insecure to accept the risk`,
  );
}
