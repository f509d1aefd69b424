/**
 * ssp (stale synchronous parallel): pushes are applied at once, as in async,
 * but a worker about to compute step s may pull only while s is at most
 * `staleness` steps ahead of the slowest live worker's next step; its pull
 * waits until the slowest worker pushes or leaves the membership.
 */
import { AsyncPolicy } from './async.js';
import type { PolicyHost } from './policy.js';
import type { PushMeta } from '../validation.js';

export class SspPolicy extends AsyncPolicy {
  override readonly gatesPulls: boolean = true;
  /** Per worker: the next step it will push. */
  private readonly nextStep: Map<string, bigint>;

  constructor(host: PolicyHost) {
    super(host);
    const start = host.config.workerStep ?? 0n;
    this.nextStep = new Map(host.config.workerIds.map((id) => [id, start]));
  }

  protected override beforeApply(meta: PushMeta): void {
    this.replicated(meta.workerId, meta.step);
  }

  /** A push the primary took, on its backup: the worker's progress, so a promoted backup gates pulls as the primary did. */
  override replicated(workerId: string, step: bigint): void {
    const next = this.nextStep.get(workerId) ?? 0n;
    if (step + 1n > next) this.nextStep.set(workerId, step + 1n);
  }

  /** The slowest live worker's next step, other than `workerId` (undefined: no other live worker). */
  private slowest(workerId: string): bigint | undefined {
    let min: bigint | undefined;
    for (const id of this.host.live()) {
      if (id === workerId) continue;
      const s = this.nextStep.get(id) ?? 0n;
      if (min === undefined || s < min) min = s;
    }
    return min;
  }

  override async beforePull(workerId: string, step: bigint, signal?: AbortSignal): Promise<void> {
    const staleness = BigInt(this.host.config.staleness);
    const allowed = () => {
      const min = this.slowest(workerId);
      return min === undefined || step - min <= staleness;
    };
    if (!allowed()) {
      this.host.counters.pullWaited();
      await this.host.waitUntil(allowed, signal, () => `pull: gave up waiting for the slowest worker (step ${step}, staleness ${staleness})`);
    }
    const min = this.slowest(workerId);
    if (min !== undefined) this.host.counters.lead(step - min);
  }
}
