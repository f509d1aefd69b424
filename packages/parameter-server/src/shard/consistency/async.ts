/** async: every push is applied at once; pulls never wait for other workers. */
import type { ConsistencyPolicy, PolicyHost, PushOutcome } from './policy.js';
import { seenBefore } from './policy.js';
import { type PushMeta, appliedPlain } from '../validation.js';

export class AsyncPolicy implements ConsistencyPolicy {
  readonly gatesPulls: boolean = false;
  protected readonly host: PolicyHost;

  constructor(host: PolicyHost) {
    this.host = host;
  }

  accept(meta: PushMeta, grads: ReadonlyMap<string, Float32Array>): Promise<PushOutcome> {
    try {
      // Before anything changes: a refused push is not even marked seen.
      const what = `push from ${meta.workerId} step ${meta.step}`;
      if (appliedPlain(meta)) this.host.check(undefined, what, grads);
      else this.host.check(grads, what);
    } catch (error) {
      this.host.counters.refused();
      return Promise.reject(error as Error);
    }
    this.host.markSeen(meta.workerId, meta.step);
    this.beforeApply(meta);
    const version = appliedPlain(meta) ? this.host.apply(undefined, grads) : this.host.apply(grads);
    return Promise.resolve({ version, duplicate: false, dropped: false });
  }

  /** Called after a push is taken and before it is applied (ssp records the worker's progress). */
  protected beforeApply(_meta: PushMeta): void {}

  duplicate(): Promise<PushOutcome> {
    return seenBefore(this.host);
  }

  beforePull(_workerId: string, _step: bigint, _signal?: AbortSignal): Promise<void> {
    return Promise.resolve();
  }

  membershipChanged(): void {}

  replicated(_workerId: string, _step: bigint): void {}

  release(): void {}
}
