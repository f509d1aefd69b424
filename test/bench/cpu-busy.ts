/**
 * How busy the machine's cores are while a benchmark runs: /proc/stat's
 * counters for all cores, read every half second, so a window of the run
 * (say, while every worker trains: no start-up, no final evaluation) can be
 * scored on its own. The counters are the kernel's, so the time it spends
 * moving packets through the lab's links counts too.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

interface Sample {
  readonly at: number;
  readonly busy: number;
  readonly total: number;
}

function read(): Sample {
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { at: performance.now(), busy: total - idle, total };
}

export class CpuBusy {
  private readonly samples: Sample[] = [read()];
  private readonly timer = setInterval(() => this.samples.push(read()), 500);

  /** Stop sampling (takes one last sample). */
  stop(): void {
    clearInterval(this.timer);
    this.samples.push(read());
  }

  /**
   * Cores busy on average between two moments (performance.now()), from the
   * samples inside them; undefined when fewer than two fall inside.
   */
  coresBetween(from: number, to: number): number | undefined {
    const inside = this.samples.filter((s) => s.at >= from && s.at <= to);
    const first = inside[0];
    const last = inside.at(-1);
    if (first === undefined || last === undefined || last.total <= first.total) return undefined;
    return ((last.busy - first.busy) / (last.total - first.total)) * cpus().length;
  }
}
