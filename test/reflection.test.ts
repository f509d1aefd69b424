/**
 * gRPC server reflection on Tamp's servers (configured once in @tamp/rpc's
 * startServer): a reflection client, built from grpc.reflection.v1's own
 * .proto as grpcurl would use it, lists each server's services and fetches
 * the descriptors of Tamp's.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type ClientDuplexStream, type GrpcObject, type ServiceClientConstructor, credentials, loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { startParameterServer } from '@tamp/parameter-server';
import { startCoordinator } from '@tamp/worker';
import { describe, expect, it } from 'vitest';

const reflectionProto = join(dirname(createRequire(import.meta.url).resolve('@grpc/reflection')), '../proto/grpc/reflection/v1/reflection.proto');
const pkg = loadPackageDefinition(loadSync(reflectionProto, { keepCase: true }));
const ServerReflection = (((pkg.grpc as GrpcObject).reflection as GrpcObject).v1 as GrpcObject).ServerReflection as ServiceClientConstructor;

interface ReflectionResponse {
  list_services_response?: { service: Array<{ name: string }> };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

/** Ask one question on the reflection stream, as grpcurl does. */
function ask(port: number, request: Record<string, string>): Promise<ReflectionResponse> {
  const client = new ServerReflection(`127.0.0.1:${port}`, credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const stream = (client as unknown as { ServerReflectionInfo(): ClientDuplexStream<unknown, ReflectionResponse> }).ServerReflectionInfo();
    stream.on('data', (r: ReflectionResponse) => {
      resolve(r);
      stream.end();
      client.close();
    });
    stream.on('error', reject);
    stream.write(request);
  });
}

describe('gRPC server reflection', () => {
  it('lists the services of a parameter server and of the chief, and describes them', async () => {
    const ps = await startParameterServer({ jobId: 'reflect', index: 0 });
    const chief = await startCoordinator({ jobId: 'reflect', numWorkers: 1, epochs: 1, jobConfigJson: '{}', psAddresses: [`127.0.0.1:${ps.port}`], heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1_000 });
    try {
      const names = async (port: number) => ((await ask(port, { list_services: '*' })).list_services_response?.service ?? []).map((s) => s.name).sort();
      expect(await names(ps.port)).toEqual(['grpc.health.v1.Health', 'tamp.v1.ParameterServer']);
      expect(await names(chief.port)).toEqual(['grpc.health.v1.Health', 'tamp.v1.Coordinator']);
      for (const [port, symbol, file] of [
        [ps.port, 'tamp.v1.ParameterServer', 'tamp/v1/parameter_server.proto'],
        [chief.port, 'tamp.v1.Coordinator', 'tamp/v1/coordinator.proto'],
      ] as const) {
        const described = await ask(port, { file_containing_symbol: symbol });
        const files = described.file_descriptor_response?.file_descriptor_proto ?? [];
        expect(files.some((f) => f.includes(file)), symbol).toBe(true);
      }
      const unknown = await ask(ps.port, { file_containing_symbol: 'tamp.v1.Nothing' });
      expect(unknown.error_response?.error_code).toBe(5); // NOT_FOUND
    } finally {
      await chief.close();
      await ps.close();
    }
  });
});
