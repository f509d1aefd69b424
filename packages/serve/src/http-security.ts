/**
 * The REST side of `tamp serve` under the cluster roles' security settings
 * (@tamp/rpc's RpcSecurity): HTTPS with the role's certificate, client
 * certificates demanded under mutual TLS, a bearer token on every request
 * but the health probes, certificates re-read when the files change (as the
 * gRPC side does), and plaintext beyond loopback refused unless --insecure.
 */
import { readFileSync, statSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { bearerTokenCheck, CERT_RELOAD_MS, checkListen, type RpcSecurity } from '@tamp/rpc';

/** Requests that carry no token: probes (Kubernetes, load balancers) cannot send one. */
const OPEN_PATHS = ['/v2/health/live', '/v2/health/ready'];

export interface SecuredHttp {
  readonly server: Server | HttpsServer;
  /** Refuse a request without the token (401 sent); true when it may go on. */
  readonly authorize: (path: string, authorization: string | undefined) => boolean;
  readonly stop: () => void;
}

function tlsFiles(security: Extract<RpcSecurity, { kind: 'tls' }>) {
  return { cert: readFileSync(security.certFile), key: readFileSync(security.keyFile), ca: readFileSync(security.caFile) };
}

export function securedHttpServer(security: RpcSecurity, host: string, listener: RequestListener, warn: (m: string) => void): SecuredHttp {
  checkListen(host, security, warn);
  if (security.kind === 'insecure') return { server: createHttpServer(listener), authorize: () => true, stop: () => {} };
  const server = createHttpsServer({ ...tlsFiles(security), requestCert: security.mutual, rejectUnauthorized: security.mutual }, listener);
  // Rotated certificates (a Kubernetes secret updated in place): new connections get them, open ones keep theirs.
  const stamp = () => [security.certFile, security.keyFile, security.caFile].map((f) => statSync(f, { throwIfNoEntry: false })?.mtimeMs ?? 0).join(':');
  let seen = stamp();
  const timer = setInterval(() => {
    const now = stamp();
    if (now === seen) return;
    try {
      server.setSecureContext(tlsFiles(security));
      seen = now;
    } catch (e) {
      warn(`could not reload the TLS certificates (${e instanceof Error ? e.message : String(e)}); serving with the previous ones`);
    }
  }, security.reloadMs ?? CERT_RELOAD_MS);
  timer.unref();
  const check = security.tokenFile !== undefined ? bearerTokenCheck(security.tokenFile) : undefined;
  return {
    server,
    authorize: (path, authorization) => check === undefined || OPEN_PATHS.includes(path) || check(authorization),
    stop: () => clearInterval(timer),
  };
}
