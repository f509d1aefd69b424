/**
 * Malformed messages. grpc-js answers a request its deserializer throws on
 * with INTERNAL, before any handler runs: a hostile client's garbage would
 * look like a server bug. startServer wraps every service's request
 * deserializers so a message that does not decode becomes a marker, which
 * the handler wrappers (handlers.ts) refuse as INVALID_ARGUMENT.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { InvalidArgumentError, errorMessage } from '@tamp/core/base';

const MALFORMED = Symbol('tamp.malformed');

interface Malformed {
  readonly [MALFORMED]: string;
}

function isMalformed(value: unknown): value is Malformed {
  return typeof value === 'object' && value !== null && MALFORMED in value;
}

/** Throw INVALID_ARGUMENT for a message that did not decode (`what`: the method, for the message). */
export function refuseMalformed(message: unknown, what: string): void {
  if (isMalformed(message)) throw new InvalidArgumentError(`${what}: the message does not decode as its protobuf type (${message[MALFORMED]})`);
}

/** The same service with request deserializers that never throw. */
export function guardDeserializers(definition: ServiceDefinition): ServiceDefinition {
  const guarded: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize as (bytes: Buffer) => unknown;
    guarded[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return decode(bytes);
        } catch (error) {
          const marker: Malformed = { [MALFORMED]: errorMessage(error).slice(0, 200) };
          return marker;
        }
      },
    };
  }
  return guarded as ServiceDefinition;
}
