// @tamp/rpc: the one package that imports @grpc/grpc-js (besides generated
// code). It knows nothing of tensors or training (ARCHITECTURE.md).
export * from './channel.js';
export * from './security.js';
export * from './health.js';
export * from './health-client.js';
export * from './metrics.js';
export * from './status.js';
export * from './header.js';
export * from './retry.js';
export * from './handlers.js';
export * from './role-auth.js';
export * from './calls.js';
export * from './public-handlers.js';
export type { Interceptor as ClientInterceptor, Server, ServerInterceptor } from '@grpc/grpc-js';
