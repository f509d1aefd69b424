/**
 * The options every cluster role shares (dry run, transport security,
 * metrics, the health port, the job id) and how they are read. No tfjs is
 * loaded from here, so `tamp ps` starts without it (ps.ts).
 */
import { UsageError } from '@tamp/core/base';
import { type MetricsServer, type RpcSecurity, securityFromFlags, serveMetrics } from '@tamp/rpc';
import { logLevelOption } from './role-log.js';

export const jobIdOption = { type: 'string', default: 'tamp', description: 'job id shared by every role of one job' } as const;

/** `--dry-run` on the commands that start processes or jobs: check everything they would check first, then stop. */
export const dryRunOption = { type: 'boolean', description: 'check the arguments (and TF_CONFIG) as the command would, then exit without starting anything' } as const;

/** What a dry run prints: what the command would do. */
export function dryRunResult(command: string, would: Record<string, unknown>): { result: Record<string, unknown>; text: string } {
  const details = Object.entries(would)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(', ');
  return { result: { dryRun: true, command, ...would }, text: `tamp ${command}: arguments check out (dry run, nothing started): ${details}` };
}

/**
 * Transport security flags of every cluster role; each also reads an
 * environment variable (for containers, where secrets arrive as files and
 * settings as variables). A flag wins over its variable.
 */
export const securityOptions = {
  'tls-cert': { type: 'string', value: 'file', description: "this role's certificate (PEM), presented by its servers and, with --mtls, by its clients (env TAMP_TLS_CERT)" },
  'tls-key': { type: 'string', value: 'file', description: 'the private key of --tls-cert (env TAMP_TLS_KEY)' },
  'tls-ca': { type: 'string', value: 'file', description: "the CA that signs the cluster's certificates: clients verify servers with it (env TAMP_TLS_CA)" },
  mtls: { type: 'boolean', description: 'mutual TLS: servers demand a client certificate signed by --tls-ca; clients present --tls-cert (env TAMP_MTLS=1)' },
  'token-file': { type: 'string', value: 'file', description: 'a bearer token every call carries and every server checks; needs TLS (env TAMP_TOKEN_FILE)' },
  insecure: { type: 'boolean', description: 'listen beyond loopback without TLS anyway: anyone who can reach the ports can read and change the job (env TAMP_INSECURE=1)' },
} as const;

export interface SecurityArgs {
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  'tls-ca'?: string | undefined;
  mtls?: boolean | undefined;
  'token-file'?: string | undefined;
  insecure?: boolean | undefined;
}

/** The role's transport security from its flags, then TAMP_* variables. */
export function securityFrom(o: SecurityArgs, env: NodeJS.ProcessEnv = process.env): RpcSecurity {
  const text = (v: string | undefined, name: string) => v ?? (env[name] !== undefined && env[name] !== '' ? env[name] : undefined);
  const yes = (v: boolean | undefined, name: string) => v === true || /^(1|true|yes|on)$/i.test(env[name] ?? '');
  const security = securityFromFlags({
    tlsCert: text(o['tls-cert'], 'TAMP_TLS_CERT'),
    tlsKey: text(o['tls-key'], 'TAMP_TLS_KEY'),
    tlsCa: text(o['tls-ca'], 'TAMP_TLS_CA'),
    mtls: yes(o.mtls, 'TAMP_MTLS'),
    tokenFile: text(o['token-file'], 'TAMP_TOKEN_FILE'),
    insecure: yes(o.insecure, 'TAMP_INSECURE'),
  });
  // How often certificate files are re-read (default 5 s): an environment setting only, for operators who rotate often.
  const reload = env.TAMP_TLS_RELOAD_MS;
  if (security.kind !== 'tls' || reload === undefined || reload === '') return security;
  const reloadMs = Number(reload);
  if (!Number.isInteger(reloadMs) || reloadMs < 100) throw new UsageError(`TAMP_TLS_RELOAD_MS=${reload}: give whole milliseconds, at least 100`);
  return { ...security, reloadMs };
}

/** `--metrics-port` of every cluster role: Prometheus metrics and a liveness endpoint over HTTP. */
export const metricsOptions = {
  'metrics-port': { type: 'number', integer: true, min: 0, max: 65535, description: 'serve Prometheus metrics (GET /metrics) and GET /healthz on this port (env TAMP_METRICS_PORT)' },
  'metrics-host': { type: 'string', description: "address the metrics listen on (env TAMP_METRICS_HOST; default: the role's listen address, loopback for a worker without TF_CONFIG)" },
} as const;

/** `--health-port` of the roles that serve gRPC (ps, chief): the health service alone, in plaintext, for probes that cannot speak TLS. */
export const healthOptions = {
  'health-port': {
    type: 'number',
    integer: true,
    min: 0,
    max: 65535,
    description: "also serve the gRPC health service (grpc.health.v1, and nothing else) in plaintext on this port, for Kubernetes' grpc probes and container health checks under TLS (env TAMP_HEALTH_PORT)",
  },
} as const;

/** The health-only port from the flag, then TAMP_HEALTH_PORT; undefined: none. */
export function healthPortFrom(port: number | undefined, env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (port !== undefined) return port;
  const raw = env.TAMP_HEALTH_PORT;
  if (raw === undefined || raw === '') return undefined;
  const p = Number(raw);
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new UsageError(`TAMP_HEALTH_PORT=${raw}: give a port number (0-65535)`);
  return p;
}

/** The metrics flags of a role. */
export interface MetricsArgs {
  'metrics-port'?: number | undefined;
  'metrics-host'?: string | undefined;
}

/**
 * TAMP_TEST_HOLD_METRICS_MS, a test hook: when a role's work is over, its
 * /metrics stays up until one more scrape has been answered, or this many
 * ms have passed, so a test reads every role's final counts (0 or unset: close at once).
 */
export function metricsHoldFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TAMP_TEST_HOLD_METRICS_MS;
  if (raw === undefined || raw === '') return 0;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`TAMP_TEST_HOLD_METRICS_MS must be a number of milliseconds ≥ 0, got "${raw}"; unset it outside tests`);
  return ms;
}

/** Close the role's metrics endpoint, after the test hook's hold (metricsHoldFromEnv). */
export async function stopMetrics(server: MetricsServer | undefined, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (server === undefined) return;
  const hold = metricsHoldFromEnv(env);
  if (hold > 0) await server.nextScrape(hold);
  await server.close();
}

/** Start the role's metrics endpoint when asked (flag, then TAMP_METRICS_PORT), on --metrics-host, TAMP_METRICS_HOST or the role's listen host. */
export async function startMetrics(o: MetricsArgs, listenHost: string, log: (m: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<MetricsServer | undefined> {
  metricsHoldFromEnv(env); // a bad test hook fails before any work
  const port = o['metrics-port'];
  const host = o['metrics-host'] ?? (env.TAMP_METRICS_HOST !== undefined && env.TAMP_METRICS_HOST !== '' ? env.TAMP_METRICS_HOST : listenHost);
  const fromEnv = env.TAMP_METRICS_PORT !== undefined && env.TAMP_METRICS_PORT !== '' ? Number(env.TAMP_METRICS_PORT) : undefined;
  const p = port ?? fromEnv;
  if (p === undefined) return undefined;
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new UsageError(`TAMP_METRICS_PORT=${env.TAMP_METRICS_PORT ?? ''}: give a port number (0-65535)`);
  const server = await serveMetrics(host, p);
  log(`metrics on http://${host.includes(':') ? `[${host}]` : host}:${server.port}/metrics`);
  return server;
}

/** The options of the roles that serve gRPC (ps, chief) beyond their own: the job id, transport security, metrics, the health port, logging and --dry-run. */
export const serverRoleOptions = {
  'job-id': jobIdOption,
  ...securityOptions,
  ...metricsOptions,
  ...healthOptions,
  'log-level': logLevelOption,
  'dry-run': dryRunOption,
} as const;
