// The HEALTHCHECK of the tamp/ps image (parameter servers and the chief):
// healthy while the role's gRPC server accepts TCP connections on
// TAMP_HEALTH_PORT (default 2222) at TAMP_HEALTH_HOST (default 127.0.0.1).
// A TCP connect, not a gRPC call: the standard gRPC health service is not
// built yet (ARCHITECTURE.md, Containers), and every Tamp RPC needs the job id.
import { connect } from 'node:net';

const host = process.env.TAMP_HEALTH_HOST || '127.0.0.1';
const raw = process.env.TAMP_HEALTH_PORT || '2222';
const port = Number(raw);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`healthcheck: TAMP_HEALTH_PORT must be a port number, got "${raw}"`);
  process.exit(1);
}
const socket = connect({ host, port });
socket.setTimeout(2000);
socket.once('connect', () => {
  socket.destroy();
  process.exit(0);
});
socket.once('timeout', () => {
  console.error(`healthcheck: ${host}:${port} did not answer within 2 s`);
  process.exit(1);
});
socket.once('error', (error) => {
  console.error(`healthcheck: ${host}:${port}: ${error.message}`);
  process.exit(1);
});
