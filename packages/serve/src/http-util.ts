/** Bodies, limits and error replies shared by the REST protocols. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TampError } from '@tamp/core';

export class PayloadTooLargeError extends TampError {
  constructor(message: string) {
    super('REQUEST_TOO_LARGE', message);
  }
}

/** Read a request body up to `limit` bytes; a larger one is refused (413) without reading the rest into memory. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new PayloadTooLargeError(`the request body is ${declared} bytes; this server accepts at most ${limit} (--max-body-bytes)`));
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new PayloadTooLargeError(`the request body passed ${limit} bytes, the most this server accepts (--max-body-bytes)`));
        return;
      }
      parts.push(d);
    });
    req.once('end', () => resolve(Buffer.concat(parts, size)));
    req.once('error', reject);
  });
}

/** HTTP status of an error: the protocol's 400/404/413/503/504, 500 for anything unexpected. */
export function httpStatusOf(e: unknown): number {
  if (!(e instanceof TampError)) return 500;
  switch (e.status) {
    case 'invalid-argument':
      return 400;
    case 'not-found':
      return 404;
    case 'resource-exhausted':
      return 413;
    case 'unavailable':
      return 503;
    case 'deadline-exceeded':
      return 504;
    case 'failed-precondition':
    case 'unimplemented':
      return 400;
    default:
      return 500;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** `{"error": "..."}` as both protocols answer; unexpected errors are logged, not shown. */
export function sendError(res: ServerResponse, e: unknown, log: (m: string) => void): void {
  const status = httpStatusOf(e);
  if (status === 500) log(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  sendJson(res, status, { error: status === 500 ? 'internal error in the server (see its log)' : (e as Error).message });
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'content-length': 0 });
  res.end();
}
