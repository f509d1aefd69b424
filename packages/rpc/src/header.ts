/**
 * The header every request carries (proto `RequestHeader`: job id, protocol
 * version), checked before a server looks at anything else. Typed
 * structurally so this package needs no generated code.
 */
import { ClusterError, PROTOCOL_VERSION } from '@tamp/core/base';

export interface RequestHeaderFields {
  readonly jobId: string;
  readonly protocolVersion: number;
}

/** A request that may carry a header (the first message of a client stream does; the rest need not). */
export interface WithHeader {
  readonly header?: RequestHeaderFields | undefined;
}

export function requestHeader(jobId: string): { jobId: string; protocolVersion: number } {
  return { jobId, protocolVersion: PROTOCOL_VERSION };
}

/**
 * Refuse a request of another job or protocol version. The message names the
 * caller's job id, never the server's: a peer that reached the wrong server
 * learns nothing about the job it reached.
 */
export function checkHeader(header: RequestHeaderFields | undefined, jobId: string, service: string): void {
  if (header === undefined) throw new ClusterError('JOB_MISMATCH', `${service}: request carries no header (job id and protocol version)`);
  if (header.protocolVersion !== PROTOCOL_VERSION) {
    throw new ClusterError(
      'PROTOCOL_MISMATCH',
      `${service}: protocol version ${header.protocolVersion} is not this server's ${PROTOCOL_VERSION}; run the same Tamp version in every role`,
    );
  }
  if (header.jobId !== jobId) {
    // Only the caller's own id, cut short and quoted by JSON so it cannot forge log lines.
    const theirs = JSON.stringify(header.jobId.length > 64 ? `${header.jobId.slice(0, 64)}...` : header.jobId);
    throw new ClusterError('JOB_MISMATCH', `${service}: request for job ${theirs} reached a server of another job; check the cluster addresses and --job-id`);
  }
}
