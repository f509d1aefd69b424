/** A client of the standard health service (grpc.health.v1.Health) that every Tamp server carries. */
import { type Client, type ClientReadableStream, Metadata, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { type ServingStatus, service as healthService } from 'grpc-health-check';
import { type RpcClientOptions, clientConstructor, createClient } from './channel.js';

interface HealthResponse {
  status: ServingStatus | 'SERVICE_UNKNOWN';
}
interface GrpcHealthClient extends Client {
  check(request: { service: string }, metadata: Metadata, options: { deadline: number }, callback: (e: ServiceError | null, r: HealthResponse) => void): void;
  watch(request: { service: string }): ClientReadableStream<HealthResponse>;
}

/** A client of any server's health service (probes, tests, tools). */
export class HealthClient {
  private readonly client: GrpcHealthClient;

  constructor(address: string, options: RpcClientOptions = {}) {
    const Ctor = clientConstructor<GrpcHealthClient>(healthService as unknown as ServiceDefinition, 'grpc.health.v1.Health');
    this.client = createClient(Ctor, address, options);
  }

  /** The service's status now ("" for the whole server). */
  check(service = '', timeoutMs = 5_000): Promise<HealthResponse['status']> {
    return new Promise((resolve, reject) => {
      this.client.check({ service }, new Metadata(), { deadline: Date.now() + timeoutMs }, (e, r) => (e !== null ? reject(e) : resolve(r.status)));
    });
  }

  /** Each status the service reports, the current one first, until the returned function is called. */
  watch(service: string, onStatus: (status: HealthResponse['status']) => void): () => void {
    const call = this.client.watch({ service });
    call.on('data', (r: HealthResponse) => onStatus(r.status));
    call.on('error', () => {
      // Cancelled by the caller, or the server went away: the watch is over either way.
    });
    return () => call.cancel();
  }

  close(): void {
    this.client.close();
  }
}
