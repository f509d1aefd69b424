/**
 * gRPC servers and channels: options, credentials, window sizes and
 * interceptors, all from one configuration object per side. Transport
 * security is a tagged union (`security.kind`) so TLS, mutual TLS and tokens
 * slot in beside `insecure` without changing any caller.
 */
import {
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ClientOptions,
  type Interceptor,
  Server,
  type ServerInterceptor,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  makeGenericClientConstructor,
} from '@grpc/grpc-js';
import { ClusterError } from '@tamp/core/base';
import { ServerHealth, serviceNameOf } from './health.js';
import { rpcMetrics } from './metrics.js';
import { guardDeserializers } from './malformed.js';
import { reflectionService } from './reflection.js';
import { metadataInterceptor } from './role-auth.js';
import { INSECURE, type RpcSecurity, certificatesLoaded, checkListen, clientCredentials, serverCredentials, tokenInterceptor } from './security.js';

/** Chunks are at most 1 MiB; leave room for headers and metadata. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

/** Settings every server takes. */
export interface RpcServerOptions {
  /** Default: plaintext. */
  readonly security?: RpcSecurity;
  /** Run around every call, first to last (grpc-js server interceptors). */
  readonly interceptors?: readonly ServerInterceptor[];
  /** Largest message sent or received (default MAX_MESSAGE_BYTES). */
  readonly maxMessageBytes?: number;
  /** Where warnings go (a plaintext listener beyond loopback under --insecure). Default: stderr. */
  readonly warn?: (message: string) => void;
  /** Called when a call is refused before any handler (no or a wrong token), with the method's path. */
  readonly onRefused?: (method: string) => void;
  /**
   * Also serve the health service, and nothing else, in plaintext on this
   * port of the same host (startServer only; 0: any free port). For probes
   * that cannot speak TLS or carry a token: Kubernetes' native `grpc:`
   * probes and the images' HEALTHCHECK. It answers only SERVING/NOT_SERVING
   * per service name, so it is allowed beyond loopback without --insecure.
   */
  readonly healthPort?: number;
}

/** Settings every client channel takes. */
export interface RpcClientOptions {
  /** Default: plaintext. */
  readonly security?: RpcSecurity;
  /** Run around every call, first to last (grpc-js client interceptors). */
  readonly interceptors?: readonly Interceptor[];
  /** Largest message sent or received (default MAX_MESSAGE_BYTES). */
  readonly maxMessageBytes?: number;
  /** Extra grpc-js channel options, over the defaults of CHANNEL_OPTIONS. */
  readonly channelOptions?: ChannelOptions;
  /** Metadata sent with every call (a role's secret or slot token: role-auth.ts). */
  readonly metadata?: Readonly<Record<string, string>>;
}

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

/** The options a generated (or fast-codec) client constructor takes as its third argument. */
export function clientOptions(options: RpcClientOptions = {}): ClientOptions {
  const max = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  return {
    ...CHANNEL_OPTIONS,
    'grpc.max_receive_message_length': max,
    'grpc.max_send_message_length': max,
    ...options.channelOptions,
    // Metrics first: it sees every call, whatever the others do.
    interceptors: [
      rpcMetrics.clientInterceptor(),
      ...(options.metadata !== undefined ? [metadataInterceptor(options.metadata)] : []),
      ...(options.interceptors ?? []),
    ],
  };
}

/** A client class for a service: generated code's `XxxClient`, or one made by clientConstructor. */
export type ClientConstructor<C> = new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>) => C;

/** Connect a client of one service to `address` (host:port) with these settings. */
export function createClient<C>(Ctor: ClientConstructor<C>, address: string, options: RpcClientOptions = {}): C {
  return new Ctor(address, clientCredentials(options.security), clientOptions(options));
}

/**
 * A client class for a service definition that is not generated code's own
 * (e.g. one with faster serializers). Typed as `C`, the generated client's
 * interface, which the definition must match.
 */
export function clientConstructor<C extends Client>(definition: ServiceDefinition, serviceName: string): ClientConstructor<C> {
  return makeGenericClientConstructor(definition, serviceName) as unknown as ClientConstructor<C>;
}

/** Receive window the servers advertise: pushes of a megabyte arrive without waiting for window updates. */
export const SERVER_WINDOW_BYTES = 16 * 1024 * 1024;
/** Largest HTTP/2 frame the servers accept (the default, 16 KiB, splits a megabyte into 64 frames). */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** Servers remember their options for bindServer (credentials are chosen at bind time in grpc-js). */
const serverSecurity = new WeakMap<Server, { security: RpcSecurity; warn: (message: string) => void }>();

export function createServer(options: RpcServerOptions = {}): Server {
  const max = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  const security = options.security ?? INSECURE;
  // Metrics outermost (it sees every call, refused ones too); then the token
  // check, so a refused call reaches no other interceptor nor any handler.
  const interceptors = [
    rpcMetrics.serverInterceptor(),
    ...(security.kind === 'tls' && security.tokenFile !== undefined ? [tokenInterceptor(security.tokenFile, options.onRefused)] : []),
    ...(options.interceptors ?? []),
  ];
  const server = new Server({
    'grpc.max_receive_message_length': max,
    'grpc.max_send_message_length': max,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.keepalive_time_ms': 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_concurrent_streams': 1_000,
    interceptors,
  });
  serverSecurity.set(server, { security, warn: options.warn ?? ((m) => process.stderr.write(`${m}\n`)) });
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

/**
 * Bind a server made by createServer (port 0: any free port) and resolve to
 * the port bound, with the security it was created with. A plaintext server
 * beyond loopback is refused (SECURITY_CONFIG) unless security allows it.
 */
export function bindServer(server: Server, host: string, port: number): Promise<number> {
  const settings = serverSecurity.get(server) ?? { security: INSECURE, warn: (m: string) => process.stderr.write(`${m}\n`) };
  checkListen(host, settings.security, settings.warn);
  return new Promise((resolve, reject) => {
    const address = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
    server.bindAsync(address, serverCredentials(settings.security), (error, bound) => {
      if (error !== null) reject(new ClusterError('CLUSTER_CONFIG', `cannot listen on ${host}:${port}: ${error.message}`, { cause: error }));
      else {
        widenConnectionWindows(server);
        // Serve once the certificates are read (grpc-js reads them in the background).
        certificatesLoaded(settings.security).then(
          () => resolve(bound),
          (e: Error) => {
            server.forceShutdown();
            reject(e);
          },
        );
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

/** A service and its handlers, as Server.addService takes them. */
export interface ServiceBinding {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
  /** Its health status when the server starts (default: SERVING); setServing changes it. */
  readonly serving?: boolean;
  /** A FileDescriptorSet (base64) describing it, for server reflection (@tamp/proto's FILE_DESCRIPTOR_SET_BASE64). */
  readonly descriptors?: string;
}

export interface RunningRpcServer {
  readonly port: number;
  /** The plaintext health-only port, when RpcServerOptions.healthPort asked for one. */
  readonly healthPort?: number;
  readonly server: Server;
  /** Health: report a service (by full name, e.g. `tamp.v1.ParameterServer`; "" for the whole server) as serving or not. */
  setServing(service: string, serving: boolean): void;
  /** Stop serving (health NOT_SERVING first); calls still running after `graceMs` are cancelled. */
  close(graceMs?: number): Promise<void>;
}

/** createServer, addService for each binding, the health and reflection services, bindServer: a serving server and its port. */
export async function startServer(
  services: readonly ServiceBinding[],
  listen: { readonly host: string; readonly port: number },
  options: RpcServerOptions = {},
): Promise<RunningRpcServer> {
  const server = createServer(options);
  // Garbage that does not decode reaches the handlers as a marker they refuse (INVALID_ARGUMENT), not grpc-js's INTERNAL.
  for (const s of services) server.addService(guardDeserializers(s.definition), s.implementation);
  const health = new ServerHealth(new Map(services.map((s) => [serviceNameOf(s.definition), s.serving ?? true])));
  health.implementation.addToServer(server);
  const described = services.filter((s) => s.descriptors !== undefined);
  reflectionService(
    described.map((s) => serviceNameOf(s.definition)),
    [...new Set(described.map((s) => s.descriptors as string))],
  ).addToServer(server);
  const port = await bindServer(server, listen.host, listen.port);
  let healthServer: Server | undefined;
  let healthPort: number | undefined;
  if (options.healthPort !== undefined) {
    // Health statuses only (no job data, nothing that changes state): plaintext is allowed on any address.
    healthServer = createServer({ security: { kind: 'insecure', allowRemote: true }, warn: () => undefined });
    health.implementation.addToServer(healthServer);
    try {
      healthPort = await bindServer(healthServer, listen.host, options.healthPort);
    } catch (e) {
      server.forceShutdown();
      throw e;
    }
  }
  return {
    port,
    server,
    ...(healthPort !== undefined ? { healthPort } : {}),
    setServing: (service, serving) => health.set(service, serving),
    close: async (graceMs?: number) => {
      health.shutdown();
      await shutdownServer(server, graceMs);
      if (healthServer !== undefined) await shutdownServer(healthServer, 0);
    },
  };
}
