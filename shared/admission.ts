/**
 * Admission of connections from peers that have not proven who they are (the node port before
 * the hello, every connection to the metrics port): a cap in all and per address, shared fairly
 * between addresses, and a rate-limited log of the refusals.
 *
 * Fair share: when every slot is taken, a connection from an address that holds none, or fewer
 * than the heaviest address by at least two, takes the slot of that address's oldest connection,
 * which is cut. So addresses that fill the table cannot keep a newcomer out: an honest peer, whose
 * connection is the newest and needs only a round trip or two, gets a slot at once (eviction takes
 * the oldest first), while an address that already holds its share waits for one of its own to
 * end (no ping-pong between addresses holding the same).
 */

/** Caps on connections not yet accepted. */
export interface AdmissionLimits {
  /** Connections held at once, in all. */
  readonly total: number;
  /** Connections held at once from one address (an IPv6 /64 counts as one address). */
  readonly perAddress: number;
}

interface Slot {
  readonly address: string;
  /** Cuts the connection when its slot goes to another address. */
  readonly evict: () => void;
  held: boolean;
}

export class Admission {
  /** Slots by address; a Set iterates in insertion order, so its first slot is the oldest. */
  private readonly byAddress = new Map<string, Set<Slot>>();
  private held = 0;

  constructor(private readonly limits: AdmissionLimits) {}

  /** Connections held now, in all. */
  get size(): number {
    return this.held;
  }

  /** Connections held now from `address` (as addressKey groups it). */
  heldBy(address: string): number {
    return this.byAddress.get(addressKey(address))?.size ?? 0;
  }

  /**
   * Gives a connection from `address` a slot and returns the function that frees it (idempotent),
   * or returns undefined when the address has its share. `evict` is called, after the slot is
   * freed, if the slot is later given to a connection from a lighter address.
   */
  admit(address: string, evict: () => void): (() => void) | undefined {
    const key = addressKey(address);
    const mine = this.byAddress.get(key)?.size ?? 0;
    if (mine >= this.limits.perAddress) return undefined;
    if (this.held >= this.limits.total) {
      const victim = this.oldestOfHeaviest();
      if (!victim || (mine > 0 && this.byAddress.get(victim.address)!.size < mine + 2)) return undefined;
      this.release(victim);
      victim.evict();
    }
    const slot: Slot = { address: key, evict, held: true };
    let set = this.byAddress.get(key);
    if (!set) this.byAddress.set(key, (set = new Set()));
    set.add(slot);
    this.held++;
    return () => this.release(slot);
  }

  private release(slot: Slot): void {
    if (!slot.held) return;
    slot.held = false;
    const set = this.byAddress.get(slot.address)!;
    set.delete(slot);
    if (set.size === 0) this.byAddress.delete(slot.address);
    this.held--;
  }

  /** The oldest slot of the address holding the most (the table is at most `total` long). */
  private oldestOfHeaviest(): Slot | undefined {
    let heaviest: Set<Slot> | undefined;
    for (const set of this.byAddress.values()) if (!heaviest || set.size > heaviest.size) heaviest = set;
    return heaviest?.values().next().value;
  }
}

/**
 * The address a cap applies to: an IPv4 address as it is (also when IPv4-mapped), an IPv6
 * address as its /64 prefix (one host is usually given a whole /64, so counting single IPv6
 * addresses would give it 2^64 shares).
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const bare = address.split('%')[0]!.toLowerCase();
  const [head = '', tail] = bare.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/**
 * Logs refusals without letting a flood fill the log: up to `burst` lines in full per
 * `windowMs`, then one line at the end of the window that counts the rest by reason.
 */
export class RefusalLog {
  private windowStart = -Infinity;
  private shown = 0;
  private readonly unshown = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: (line: string) => void,
    /** What was refused, for the summary line ("connections to the node port"). */
    private readonly what: string,
    private readonly burst = 20,
    private readonly windowMs = 10_000,
  ) {}

  note(reason: string, line: string): void {
    const now = performance.now();
    if (now - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = now;
      this.shown = 0;
    }
    if (this.shown < this.burst) {
      this.shown++;
      this.log(line);
      return;
    }
    this.unshown.set(reason, (this.unshown.get(reason) ?? 0) + 1);
    this.flushTimer ??= setTimeout(() => this.flush(), Math.max(0, this.windowStart + this.windowMs - now)).unref();
  }

  /** Logs the count of refusals not shown, if any (also called when the server closes). */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.unshown.size === 0) return;
    const total = [...this.unshown.values()].reduce((a, b) => a + b, 0);
    const reasons = [...this.unshown].map(([reason, n]) => `${reason} ${n}`).join(', ');
    this.unshown.clear();
    this.log(`refused ${total} more ${this.what} in ${(this.windowMs / 1000).toFixed(0)} s without logging each (${reasons})`);
  }
}
