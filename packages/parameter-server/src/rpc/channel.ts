/**
 * gRPC channel and server settings, and credentials, in one place (TLS and
 * tokens will be added here).
 */
import { ChannelCredentials, type ChannelOptions, Server, ServerCredentials } from '@grpc/grpc-js';
import { ClusterError } from '@tamp/core';

/** Chunks are at most 1 MiB; leave room for headers and metadata. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

export const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 20_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
  // HTTP/2 starts each stream with a 64 KiB window; a megabyte of parameters
  // would wait for 16 window updates. Open it wide from the start.
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
};

export function clientCredentials(): ChannelCredentials {
  return ChannelCredentials.createInsecure();
}

function serverCredentials(): ServerCredentials {
  return ServerCredentials.createInsecure();
}

/** Receive window the servers advertise: pushes of a megabyte arrive without waiting for window updates. */
export const SERVER_WINDOW_BYTES = 16 * 1024 * 1024;
/** Largest HTTP/2 frame the servers accept (the default, 16 KiB, splits a megabyte into 64 frames). */
export const MAX_FRAME_BYTES = 1024 * 1024;

export function createServer(): Server {
  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.keepalive_time_ms': 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_concurrent_streams': 1_000,
  });
  // grpc-js has no option for the server's HTTP/2 window; it passes these
  // settings to http2.createServer (the field exists since grpc-js 1.10). If a
  // later grpc-js drops it, the servers keep the 64 KiB default: slower, not wrong.
  const settings = (server as unknown as { commonServerOptions?: { settings?: Record<string, number> } }).commonServerOptions?.settings;
  if (settings !== undefined) {
    settings.initialWindowSize = SERVER_WINDOW_BYTES;
    settings.maxFrameSize = MAX_FRAME_BYTES;
  }
  return server;
}

/**
 * Open each accepted connection's receive window wide (the stream windows
 * are set through the settings above; the connection's own window needs
 * setLocalWindowSize). Reaches into grpc-js's http2 servers: if a later
 * grpc-js hides them, connections keep the 64 KiB default (slower, not wrong).
 */
function widenConnectionWindows(server: Server): void {
  const servers = (server as unknown as { http2Servers?: Map<{ on(event: 'session', fn: (s: { setLocalWindowSize?(n: number): void }) => void): void }, unknown> }).http2Servers;
  for (const h2 of servers?.keys() ?? []) {
    h2.on('session', (session) => {
      try {
        session.setLocalWindowSize?.(SERVER_WINDOW_BYTES);
      } catch {
        // Older Node: keep the default window.
      }
    });
  }
}

/** Bind a server (port 0: any free port) and resolve to the port bound. */
export function bindServer(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`, serverCredentials(), (error, bound) => {
      if (error !== null) reject(new ClusterError('CLUSTER_CONFIG', `cannot listen on ${host}:${port}: ${error.message}`, { cause: error }));
      else {
        widenConnectionWindows(server);
        resolve(bound);
      }
    });
  });
}

/** Shut a server down, cancelling calls still running after `graceMs`. */
export function shutdownServer(server: Server, graceMs = 1_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
