// The HEALTHCHECK of the tamp/ps image (parameter servers and the chief): a
// gRPC health Check (grpc.health.v1.Health) against the role's plaintext
// health-only port, TAMP_HEALTH_PORT (the role opens it from the same
// variable, `--health-port`), at TAMP_HEALTH_HOST (default 127.0.0.1), for
// the service TAMP_HEALTH_SERVICE (default "": the server as a whole).
// Healthy (exit 0) only when the answer is SERVING.
//
// Hand-written over node:http2 rather than through @grpc/grpc-js: this file
// runs on its own every few seconds, outside the packages' module
// resolution, and a unary gRPC call is one HTTP/2 POST of a length-prefixed
// protobuf message (HealthCheckRequest { string service = 1; }) answered by
// HealthCheckResponse { ServingStatus status = 1; } (SERVING = 1).
import { Buffer } from 'node:buffer';
import { connect } from 'node:http2';
import { clearTimeout, setTimeout } from 'node:timers';

const host = process.env.TAMP_HEALTH_HOST || '127.0.0.1';
const raw = process.env.TAMP_HEALTH_PORT || '';
const service = process.env.TAMP_HEALTH_SERVICE || '';
const port = Number(raw);
if (raw === '' || !Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`healthcheck: TAMP_HEALTH_PORT must be the role's --health-port, got "${raw}"`);
  process.exit(1);
}
const STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function fail(message) {
  console.error(`healthcheck: ${host}:${port}${service === '' ? '' : ` (${service})`}: ${message}`);
  process.exit(1);
}

const name = Buffer.from(service, 'utf8');
if (name.length > 127) fail('TAMP_HEALTH_SERVICE is longer than 127 bytes');
// Field 1, wire type 2 (length-delimited); a one-byte length is enough for a service name.
const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, name.length]), name]);
const frame = Buffer.alloc(5 + message.length);
frame.writeUInt32BE(message.length, 1); // byte 0: not compressed
message.copy(frame, 5);

const timer = setTimeout(() => fail('no answer within 2 s'), 2000);
const session = connect(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
session.on('error', (e) => fail(e.message));
const req = session.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' });
const chunks = [];
let grpcStatus;
let grpcMessage = '';
req.on('trailers', (t) => {
  grpcStatus = t['grpc-status'];
  grpcMessage = t['grpc-message'] ?? '';
});
req.on('response', (h) => {
  if (h['grpc-status'] !== undefined) {
    grpcStatus = h['grpc-status'];
    grpcMessage = h['grpc-message'] ?? '';
  }
});
req.on('data', (d) => chunks.push(d));
req.on('error', (e) => fail(e.message));
req.on('end', () => {
  clearTimeout(timer);
  session.close();
  if (grpcStatus !== undefined && grpcStatus !== '0') fail(`gRPC status ${grpcStatus} ${decodeURIComponent(grpcMessage)}`);
  const body = Buffer.concat(chunks);
  // One length-prefixed message: a 5-byte header, then field 1 (varint) or nothing (status 0, UNKNOWN).
  const payload = body.subarray(5, 5 + (body.length >= 5 ? body.readUInt32BE(1) : 0));
  const status = payload.length >= 2 && payload[0] === 0x08 ? payload[1] : 0;
  if (status !== 1) fail(`health is ${STATUS[status] ?? status}`);
  process.exit(0);
});
req.end(frame);
