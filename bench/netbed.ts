/**
 * A network of machines on this one: each host a Linux network namespace with one interface
 * (eth0, 10.213.0.H/24), joined through a bridge in a namespace of its own (the switch) by veth
 * pairs, each link shaped both ways with tbf (rate; netem for a delay where the kernel has it). Nothing touches the
 * root namespace's network: traffic stays between the namespaces made here. Needs root, and
 * iproute2's `ip` and `tc`.
 *
 * A process runs on a host with `ip netns exec`; bytes per link come from the interfaces'
 * counters. `NetBed.create` removes a bed left by a killed run first; `destroy` removes
 * everything it made (deleting a namespace deletes its veth ends and their shaping).
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface NetBedOptions {
  /** Hosts to make: host 0 is 10.213.0.1, host h 10.213.0.(h + 1). */
  readonly hosts: number;
  /** Each link's rate each way, as tc writes it ('1gbit', '100mbit'). */
  readonly rate: string;
  /** One-way delay each link adds each way, as tc writes it ('0.2ms'); none by default (it needs netem). */
  readonly delay?: string;
  /** Prefix of the namespaces' names, so that two beds do not meet (default 'dptbed'). */
  readonly prefix?: string;
}

export interface LinkBytes {
  /** Bytes the host sent and received on its link. */
  readonly sent: number;
  readonly received: number;
}

/** Why this machine cannot make a bed, or undefined where it can. */
export function netBedUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces are Linux's; this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'making network namespaces needs root';
  for (const tool of ['ip', 'tc']) {
    const r = spawnSync(tool, ['-V'], { encoding: 'utf8' });
    if (r.error) return `\`${tool}\` is missing (Debian: apt-get install iproute2)`;
  }
  return undefined;
}

/** tc's rate ('1gbit', '100mbit', '500kbit') in bytes per second. */
export function rateBytes(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(k|m|g)?bit$/i.exec(rate);
  if (!m) throw new RangeError(`net bed: a rate as tc writes it (e.g. 1gbit), got ${rate}`);
  const scale = { k: 1e3, m: 1e6, g: 1e9 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  return (Number(m[1]) * scale) / 8;
}

function run(args: readonly string[], tolerate = false): string {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (!tolerate && (r.error || r.status !== 0)) throw new Error(`net bed: \`${args.join(' ')}\` failed: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout;
}

export class NetBed {
  /** Each host's namespace and address. */
  readonly hosts: readonly { readonly namespace: string; readonly address: string }[];
  private readonly switchNs: string;

  private constructor(
    private readonly prefix: string,
    hosts: number,
  ) {
    this.switchNs = `${prefix}-sw`;
    this.hosts = Array.from({ length: hosts }, (_, h) => ({ namespace: `${prefix}-h${h}`, address: `10.213.0.${h + 1}` }));
  }

  static create(options: NetBedOptions): NetBed {
    const why = netBedUnavailable();
    if (why) throw new Error(`net bed: ${why}`);
    if (!(options.hosts >= 1 && options.hosts <= 250)) throw new RangeError(`net bed: 1 to 250 hosts, got ${options.hosts}`);
    const prefix = options.prefix ?? 'dptbed';
    NetBed.removeAll(prefix);
    const bed = new NetBed(prefix, options.hosts);
    try {
      bed.build(options);
    } catch (err) {
      bed.destroy();
      throw err;
    }
    return bed;
  }

  /** Removes every namespace whose name starts with `${prefix}-` (a bed a killed run left). */
  static removeAll(prefix: string): void {
    for (const line of run(['ip', 'netns', 'list'], true).split('\n')) {
      const name = line.split(' ')[0];
      if (name && name.startsWith(`${prefix}-`)) run(['ip', 'netns', 'delete', name], true);
    }
  }

  private build(options: NetBedOptions): void {
    const sw = this.switchNs;
    run(['ip', 'netns', 'add', sw]);
    run(['ip', '-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    run(['ip', '-n', sw, 'link', 'set', 'br0', 'up']);
    this.hosts.forEach((host, h) => {
      const port = `p${h}`;
      run(['ip', 'netns', 'add', host.namespace]);
      run(['ip', '-n', sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.namespace]);
      run(['ip', '-n', sw, 'link', 'set', port, 'master', 'br0', 'up']);
      run(['ip', '-n', host.namespace, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
      run(['ip', '-n', host.namespace, 'link', 'set', 'eth0', 'up']);
      run(['ip', '-n', host.namespace, 'link', 'set', 'lo', 'up']);
      // upload: the host's eth0; download: the switch's port towards it
      shape(host.namespace, 'eth0', options);
      shape(sw, port, options);
    });
  }

  /** Spawns `command` on host `h` (in its namespace). */
  spawn(h: number, command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.host(h).namespace, command, ...args], options);
  }

  /** What host `h` has sent and received on its link so far. */
  bytes(h: number): LinkBytes {
    const out = run(['ip', '-n', this.host(h).namespace, '-s', '-j', 'link', 'show', 'eth0']);
    const [link] = JSON.parse(out) as { stats64: { rx: { bytes: number }; tx: { bytes: number } } }[];
    if (!link) throw new Error(`net bed: no eth0 on ${this.host(h).namespace}`);
    return { sent: link.stats64.tx.bytes, received: link.stats64.rx.bytes };
  }

  private host(h: number): { readonly namespace: string; readonly address: string } {
    const host = this.hosts[h];
    if (!host) throw new RangeError(`net bed: no host ${h} (it has ${this.hosts.length})`);
    return host;
  }

  destroy(): void {
    NetBed.removeAll(this.prefix);
  }
}

/**
 * tbf (rate) on one device's egress, under netem (delay) where a delay is asked for. netem is a
 * kernel module some kernels lack (this workplace's VMs do): then a delay is refused, saying so.
 */
function shape(namespace: string, device: string, options: NetBedOptions): void {
  const tc = ['ip', 'netns', 'exec', namespace, 'tc', 'qdisc', 'add', 'dev', device];
  // the bucket: 2 ms of the rate (smaller ones fell short of 1 Gbit/s here: 64 KB gave ~0.75 of
  // it), at least 32 KB; tbf segments the 64 KB packets veth passes that do not fit
  const burst = Math.max(32_768, Math.round(rateBytes(options.rate) / 500));
  const tbf = ['tbf', 'rate', options.rate, 'burst', String(burst), 'latency', '200ms'];
  if (!options.delay) {
    run([...tc, 'root', 'handle', '1:', ...tbf]);
    return;
  }
  const r = spawnSync(tc[0]!, [...tc.slice(1), 'root', 'handle', '1:', 'netem', 'delay', options.delay, 'limit', '100000'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`net bed: a delay needs tc's netem, which this kernel refused (${r.stderr.trim() || r.error?.message}); leave the delay out`);
  run([...tc, 'parent', '1:', 'handle', '2:', ...tbf]);
}
