import type { RequestHeader } from '@tamp/proto/tamp/v1/common';
import { ClusterError, PROTOCOL_VERSION } from '@tamp/core';

export function requestHeader(jobId: string): RequestHeader {
  return { jobId, protocolVersion: PROTOCOL_VERSION };
}

/** Refuse a request of another job or protocol version, before looking at anything else. */
export function checkHeader(header: RequestHeader | undefined, jobId: string, service: string): void {
  if (header === undefined) throw new ClusterError('JOB_MISMATCH', `${service}: request carries no header (job id and protocol version)`);
  if (header.protocolVersion !== PROTOCOL_VERSION) {
    throw new ClusterError(
      'PROTOCOL_MISMATCH',
      `${service}: protocol version ${header.protocolVersion} is not this server's ${PROTOCOL_VERSION}; run the same Tamp version in every role`,
    );
  }
  if (header.jobId !== jobId) {
    throw new ClusterError('JOB_MISMATCH', `${service}: request for job "${header.jobId}" reached a server of job "${jobId}"; check the cluster addresses and --job-id`);
  }
}
