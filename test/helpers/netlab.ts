/**
 * The network lab: hosts as Linux network namespaces on one machine, joined in
 * a star through a bridge, each host's link rate-limited with `tc ... tbf` in
 * both directions (netem is not available on these machines). Tests and
 * benchmarks start processes inside a host with `lab.spawn(host, ...)`.
 *
 * Every namespace is named `tamplab<pid>-<name>`, so a lab belongs to the
 * process that made it: each new lab first removes the namespaces of labs
 * whose process is gone (a killed run leaves nothing that breaks the next),
 * and a lab removes its own when closed or when its process exits.
 *
 * Addresses are 10.77.0.<i>/24 inside the lab's own namespaces only; nothing in
 * the root namespace routes there, so traffic never leaves the lab. Needs root,
 * `ip` and `tc` (iproute2).
 */
import { type ChildProcess, execFileSync, spawn, type SpawnOptions } from 'node:child_process';

const PREFIX = 'tamplab';
const SUBNET = '10.77.0';

export interface LabHostSpec {
  /** Short name: letters and digits, at most 8 characters. */
  readonly name: string;
  /** Link rate in Mbit/s, both directions; omitted: unlimited (the veth's own speed). */
  readonly mbit?: number;
}

export interface LabHost {
  readonly name: string;
  /** The namespace's name (for `ip netns exec`). */
  readonly netns: string;
  /** The host's address inside the lab. */
  readonly address: string;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function namespaces(): string[] {
  return ip(['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(PREFIX));
}

/** Remove every lab namespace whose owning process is gone (or, with `all`, every lab namespace). */
export function removeStaleLabs(all = false): string[] {
  const removed: string[] = [];
  for (const ns of namespaces()) {
    const pid = Number(/^tamplab(\d+)-/.exec(ns)?.[1]);
    if (all || !Number.isInteger(pid) || (!alive(pid) && pid !== process.pid)) {
      try {
        ip(['netns', 'del', ns]);
        removed.push(ns);
      } catch {
        // Already gone (another run cleaned it at the same moment).
      }
    }
  }
  return removed;
}

/** Why the lab cannot run here, or undefined when it can. */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the network lab needs root (network namespaces); run the tests as root, as CI does';
  for (const tool of ['ip', 'tc']) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch {
      return `the network lab needs \`${tool}\`: apt-get install iproute2`;
    }
  }
  return undefined;
}

/** tbf's bucket: at least 10 ms of traffic and at least one 64 KiB GSO segment, so the veth's large segments pass. */
function tbfArgs(mbit: number): string[] {
  const burstBytes = Math.max(65_536 * 2, Math.ceil((mbit * 1e6) / 8 / 100));
  return ['rate', `${mbit}mbit`, 'burst', String(burstBytes), 'latency', '100ms'];
}

export class NetworkLab {
  readonly hosts: ReadonlyMap<string, LabHost>;
  private readonly switchNs: string;
  private readonly children = new Set<ChildProcess>();
  private closed = false;
  private readonly onExit = () => this.close();

  private constructor(
    private readonly tag: string,
    hosts: Map<string, LabHost>,
  ) {
    this.hosts = hosts;
    this.switchNs = `${tag}-switch`;
    process.once('exit', this.onExit);
  }

  /** Build the lab: a switch namespace with a bridge, and one namespace per host linked to it. */
  static create(specs: readonly LabHostSpec[]): NetworkLab {
    const why = labUnavailable();
    if (why !== undefined) throw new Error(why);
    if (specs.length === 0 || specs.length > 200) throw new Error(`a lab has 1 to 200 hosts, not ${specs.length}`);
    removeStaleLabs();
    const tag = `${PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
    const hosts = new Map<string, LabHost>();
    const lab = new NetworkLab(tag, hosts);
    try {
      ip(['netns', 'add', lab.switchNs]);
      ip(['-n', lab.switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', lab.switchNs, 'link', 'set', 'br0', 'up']);
      specs.forEach((spec, i) => {
        if (!/^[a-z0-9]{1,8}$/i.test(spec.name) || hosts.has(spec.name)) throw new Error(`lab host names are unique, 1-8 letters or digits: "${spec.name}"`);
        const host: LabHost = { name: spec.name, netns: `${tag}-${spec.name}`, address: `${SUBNET}.${i + 1}` };
        ip(['netns', 'add', host.netns]);
        hosts.set(spec.name, host);
        const port = `p${i}`;
        // The pair is made inside the switch namespace, the host's end moved into its own: no names in the root namespace.
        ip(['-n', lab.switchNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.netns]);
        ip(['-n', lab.switchNs, 'link', 'set', port, 'master', 'br0']);
        ip(['-n', lab.switchNs, 'link', 'set', port, 'up']);
        ip(['-n', host.netns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
        ip(['-n', host.netns, 'link', 'set', 'eth0', 'up']);
        ip(['-n', host.netns, 'link', 'set', 'lo', 'up']);
        if (spec.mbit !== undefined) lab.setRate(spec.name, spec.mbit);
      });
    } catch (e) {
      lab.close();
      throw e;
    }
    return lab;
  }

  host(name: string): LabHost {
    const h = this.hosts.get(name);
    if (h === undefined) throw new Error(`no lab host "${name}" (hosts: ${[...this.hosts.keys()].join(', ')})`);
    return h;
  }

  private portOf(name: string): string {
    return `p${[...this.hosts.keys()].indexOf(this.host(name).name)}`;
  }

  /** Limit a host's link to `mbit` in both directions (replacing any earlier limit). */
  setRate(name: string, mbit: number): void {
    if (!(mbit > 0)) throw new Error(`link rate must be positive, got ${mbit}`);
    const host = this.host(name);
    // Host → switch: the host's own egress; switch → host: the switch port's egress.
    run('tc', ['-n', host.netns, 'qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', ...tbfArgs(mbit)]);
    run('tc', ['-n', this.switchNs, 'qdisc', 'replace', 'dev', this.portOf(name), 'root', 'tbf', ...tbfArgs(mbit)]);
  }

  /** Cut a host's link (its switch port goes down) or bring it back. */
  setLink(name: string, up: boolean): void {
    ip(['-n', this.switchNs, 'link', 'set', this.portOf(name), up ? 'up' : 'down']);
  }

  /** Start a process inside a host's namespace; it is killed when the lab closes. */
  spawn(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.host(name).netns, command, ...args], options);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Kill what runs in the lab and remove its namespaces. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    process.off('exit', this.onExit);
    for (const child of this.children) child.kill('SIGKILL');
    for (const ns of [...[...this.hosts.values()].map((h) => h.netns), this.switchNs]) {
      // Anything still running inside (a grandchild) would keep the namespace alive: kill it first.
      try {
        const pids = ip(['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number);
        for (const pid of pids) process.kill(pid, 'SIGKILL');
      } catch {
        // The namespace was never made, or is already gone.
      }
      try {
        ip(['netns', 'del', ns]);
      } catch {
        // Already gone.
      }
    }
  }
}
