/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, from
 * @grpc/reflection) on every server startServer makes, so grpcurl-style
 * tools can list and describe its services. The services' descriptors come
 * with their bindings (`ServiceBinding.descriptors`: @tamp/proto's
 * generated FileDescriptorSet); the health service's from grpc-health-check.
 * Only the services this server serves are listed. Under a bearer token,
 * reflection needs the token like any method but health.
 */
import { type PackageDefinition, loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProto } from 'grpc-health-check';

const HEALTH_SERVICE = 'grpc.health.v1.Health';

let health: PackageDefinition | undefined;
const loaded = new Map<string, Buffer[]>();

/**
 * The FileDescriptorProtos of a FileDescriptorSet (`repeated FileDescriptorProto file = 1`),
 * each as its bytes, which is what ReflectionService reads. Split here because
 * proto-loader's loadFileDescriptorSetFromBuffer regroups the files' contents
 * (every type lands in one or two files), which reflection then describes wrongly.
 */
export function descriptorFiles(set: Buffer): Buffer[] {
  const files: Buffer[] = [];
  let at = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = set[at++];
      // Generated input (@tamp/proto): a truncated varint means the module is damaged.
      if (b === undefined || shift > 28) throw new Error('descriptor set: truncated varint');
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  };
  while (at < set.length) {
    const tag = varint();
    // Generated input holds field 1 (length-delimited) only; anything else means the module is damaged.
    if (tag !== 0x0a) throw new Error(`descriptor set: unexpected tag ${tag}`);
    const length = varint();
    files.push(set.subarray(at, at + length));
    at += length;
  }
  return files;
}

function fromBase64(descriptors: string): Buffer[] {
  let files = loaded.get(descriptors);
  if (files === undefined) {
    files = descriptorFiles(Buffer.from(descriptors, 'base64'));
    loaded.set(descriptors, files);
  }
  return files;
}

/** The reflection service for these services (full names) and the health service, over their descriptors (base64 FileDescriptorSets). */
export function reflectionService(services: readonly string[], descriptorSets: readonly string[]): ReflectionService {
  health ??= loadSync(healthProto);
  // ReflectionService indexes the fileDescriptorProtos of every entry: one entry holding all the files is enough.
  // (ReflectionService reads nothing else of an entry, so the entry carries nothing else.)
  const files = { fileDescriptorProtos: descriptorSets.flatMap(fromBase64) } as unknown as PackageDefinition[string];
  const pkg: PackageDefinition = { ...health, 'tamp.reflection.files': files };
  return new ReflectionService(pkg, { services: [HEALTH_SERVICE, ...services] });
}
