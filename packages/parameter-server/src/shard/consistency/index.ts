/** The consistency policies by mode: a shard looks its mode up here. */
import type { ConsistencyMode } from '@tamp/core/base';
import { AsyncPolicy } from './async.js';
import type { ConsistencyPolicy, PolicyHost } from './policy.js';
import { SspPolicy } from './ssp.js';
import { SyncPolicy } from './sync.js';

export type { ConsistencyPolicy, PolicyHost, PushOutcome } from './policy.js';
export { AsyncPolicy } from './async.js';
export { SspPolicy } from './ssp.js';
export { SyncPolicy, weightedSum } from './sync.js';

export const POLICIES: { readonly [M in ConsistencyMode]: (host: PolicyHost) => ConsistencyPolicy } = Object.freeze({
  async: (host) => new AsyncPolicy(host),
  ssp: (host) => new SspPolicy(host),
  sync: (host) => new SyncPolicy(host),
});
