/**
 * The standard gRPC health service (`grpc.health.v1.Health`, Check and
 * Watch) on every server, from the grpc-health-check package (the grpc-js
 * project's own implementation of the protocol). Each service a server
 * carries has its status under its full name, and the server as a whole
 * under "": orchestrators (Kubernetes' native `grpc:` probes, grpcurl,
 * grpc_health_probe) ask either.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';

export type { ServingStatus };

/** The full name of the service a definition describes (`tamp.v1.ParameterServer`), from its methods' paths. */
export function serviceNameOf(definition: ServiceDefinition): string {
  for (const method of Object.values(definition)) {
    const m = /^\/([^/]+)\//.exec(method.path);
    if (m !== null) return m[1] as string;
  }
  // Definitions come from generated code or clientConstructor maps, which always name a path.
  throw new Error('a service definition without methods');
}

/** One server's health statuses. */
export class ServerHealth {
  readonly implementation: HealthImplementation;
  private readonly statuses = new Map<string, ServingStatus>();

  constructor(initial: ReadonlyMap<string, boolean>) {
    for (const [name, serving] of initial) this.statuses.set(name, serving ? 'SERVING' : 'NOT_SERVING');
    this.statuses.set('', 'SERVING');
    this.implementation = new HealthImplementation(Object.fromEntries(this.statuses));
  }

  /** Report a service (or the server, with "") as serving or not; Watch callers hear of the change. */
  set(service: string, serving: boolean): void {
    const status: ServingStatus = serving ? 'SERVING' : 'NOT_SERVING';
    this.statuses.set(service, status);
    this.implementation.setStatus(service, status);
  }

  /** Every service NOT_SERVING: the server is going away. */
  shutdown(): void {
    for (const name of this.statuses.keys()) this.set(name, false);
  }
}
