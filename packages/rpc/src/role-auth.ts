/**
 * Roles inside a job, on top of transport security (ARCHITECTURE.md,
 * "Security"): TLS and the bearer token say a caller belongs to the
 * cluster; these secrets say which role it plays there.
 * - The chief's secret (32 random bytes, one per job) travels as
 *   `tamp-chief-secret` metadata on the chief's calls; parameter servers
 *   refuse the chief-only methods without it.
 * - A worker's slot token, `<generation>.<HMAC-SHA256(chief secret, worker id, generation)>`,
 *   is handed out by the chief at Join and travels as `tamp-worker-token`;
 *   the chief and the parameter servers check it against the worker id a
 *   request names, so a client cannot act as another worker. The generation
 *   (the slot's join count) lets a newer Join supersede an older token.
 * Comparisons run in constant time over SHA-256 digests.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Interceptor, InterceptingCall, type Metadata } from '@grpc/grpc-js';
import { ClusterError } from '@tamp/core/base';

export const CHIEF_SECRET_KEY = 'tamp-chief-secret';
export const WORKER_TOKEN_KEY = 'tamp-worker-token';
/** What a worker presents at Join so that its restarted process may take its live slot back (see Membership.join). */
export const WORKER_KEY_KEY = 'tamp-worker-key';
/** Environment variables a launcher hands its children (never argv: other users can read a command line). */
export const CHIEF_SECRET_ENV = 'TAMP_CHIEF_SECRET';
/** A file holding the chief's secret: how containers give it (Docker/Kubernetes secrets are files; `tamp certs` writes `chief-secret`). */
export const CHIEF_SECRET_FILE_ENV = 'TAMP_CHIEF_SECRET_FILE';
export const WORKER_KEY_ENV = 'TAMP_WORKER_KEY';

/** Longest secret or token read from the wire (longer ones are refused before hashing). */
export const MAX_SECRET_CHARS = 256;

/**
 * The job's chief secret a deployment gives this process: TAMP_CHIEF_SECRET,
 * or the contents of the file TAMP_CHIEF_SECRET_FILE names (trimmed).
 * Undefined when neither is set. Both set, an unreadable or empty file, or a
 * secret too short to guess at or too long for the wire is a SECURITY_CONFIG
 * error: a typo here would otherwise leave a server trusting whoever assigns it first.
 */
export function chiefSecretFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[CHIEF_SECRET_ENV];
  const file = env[CHIEF_SECRET_FILE_ENV];
  const given = value !== undefined && value !== '';
  const fromFile = file !== undefined && file !== '';
  if (given && fromFile) throw new ClusterError('SECURITY_CONFIG', `both ${CHIEF_SECRET_ENV} and ${CHIEF_SECRET_FILE_ENV} are set: give the chief's secret one way`);
  if (!given && !fromFile) return undefined;
  let secret: string;
  if (fromFile) {
    try {
      secret = readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new ClusterError('SECURITY_CONFIG', `${CHIEF_SECRET_FILE_ENV}=${file}: cannot read the file (${(error as Error).message}); mount the chief's secret there (tamp certs --out DIR writes DIR/chief-secret)`, { cause: error });
    }
  } else {
    secret = value as string;
  }
  const source = fromFile ? `${CHIEF_SECRET_FILE_ENV}=${file}` : CHIEF_SECRET_ENV;
  if (secret.length < MIN_SECRET_CHARS || secret.length > MAX_SECRET_CHARS || /\s/.test(secret)) {
    throw new ClusterError('SECURITY_CONFIG', `${source}: the chief's secret must be ${MIN_SECRET_CHARS} to ${MAX_SECRET_CHARS} characters without spaces (got ${secret.length}); make one with tamp certs --out DIR (DIR/chief-secret) or openssl rand -base64 32`);
  }
  return secret;
}

/** Shortest chief secret a deployment may give (16 characters: guessing it must not be the easy way in). */
export const MIN_SECRET_CHARS = 16;

/** A fresh random secret (32 bytes, base64url). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Whether `given` equals `expected`, in constant time whatever the lengths. */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined || given.length === 0 || given.length > MAX_SECRET_CHARS) return false;
  return timingSafeEqual(digest(given), digest(expected));
}

function mac(secret: string, workerId: string, generation: number): string {
  return createHmac('sha256', secret).update(`tamp-slot\n${workerId}\n${generation}`).digest('base64url');
}

/** The token of `workerId`'s slot at `generation` (its join count). */
export function slotToken(secret: string, workerId: string, generation: number): string {
  return `${generation}.${mac(secret, workerId, generation)}`;
}

/** The generation a token was issued for, when it is `workerId`'s; undefined otherwise. */
export function verifySlotToken(secret: string, workerId: string, token: string | undefined): number | undefined {
  if (token === undefined || token.length > MAX_SECRET_CHARS) return undefined;
  const m = /^(\d{1,9})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (m === null) return undefined;
  const generation = Number(m[1]);
  return sameSecret(m[2], mac(secret, workerId, generation)) ? generation : undefined;
}

/** The first string value of a metadata key (binary values and absent keys: undefined). */
export function metadataValue(metadata: Metadata, key: string): string | undefined {
  const v = metadata.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

/** A client interceptor that adds these metadata entries to every call. */
export function metadataInterceptor(values: Readonly<Record<string, string>>): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        for (const [key, value] of Object.entries(values)) metadata.set(key, value);
        next(metadata, listener);
      },
    });
}
