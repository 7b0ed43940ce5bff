/**
 * A flow-level discrete-event simulation of a cluster: hosts behind links of one rate each way
 * (a non-blocking switch between them, as the net bed's bridge is), and a graph of tasks, each
 * a computation on a host (a duration) or a transfer between two hosts (bytes), starting when
 * the tasks it depends on have finished. Transfers share links max-min fairly (progressive
 * filling: the most constrained link's flows get its fair share, then the next), and each
 * arrives one link latency after its last byte leaves. Pure: no clock, no I/O.
 */

export type Task =
  | { readonly kind: 'compute'; readonly host: number; readonly ms: number; readonly deps: readonly number[] }
  | { readonly kind: 'flow'; readonly src: number; readonly dst: number; readonly bytes: number; readonly deps: readonly number[] };

export interface Network {
  readonly hosts: number;
  /** Each link's rate each way, bytes per millisecond. */
  readonly bytesPerMs: number;
  /** Milliseconds from a transfer's last byte leaving to its arrival. */
  readonly latencyMs: number;
}

/** Each task's finishing time (ms), in task order. Tasks may only depend on earlier tasks. */
export function simulate(tasks: readonly Task[], net: Network): Float64Array {
  const n = tasks.length;
  const finish = new Float64Array(n).fill(Number.NaN);
  const waiting = new Int32Array(n);
  const dependents: number[][] = Array.from({ length: n }, () => []);
  tasks.forEach((t, i) => {
    for (const d of t.deps) {
      if (!(d >= 0 && d < i)) throw new RangeError(`task ${i} depends on ${d}: tasks may only depend on earlier ones`);
      dependents[d]!.push(i);
    }
    waiting[i] = t.deps.length;
    if (t.kind === 'flow' && (t.src < 0 || t.src >= net.hosts || t.dst < 0 || t.dst >= net.hosts)) throw new RangeError(`task ${i}: no host ${t.src} or ${t.dst}`);
  });
  /** Timed completions (computations, arrivals), as [time, task]; a binary heap on time. */
  const timed: [number, number][] = [];
  const push = (time: number, task: number): void => {
    timed.push([time, task]);
    let k = timed.length - 1;
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (timed[p]![0] <= timed[k]![0]) break;
      [timed[p], timed[k]] = [timed[k]!, timed[p]!];
      k = p;
    }
  };
  const pop = (): [number, number] => {
    const top = timed[0]!;
    const last = timed.pop()!;
    if (timed.length > 0) {
      timed[0] = last;
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        const r = l + 1;
        let m = k;
        if (l < timed.length && timed[l]![0] < timed[m]![0]) m = l;
        if (r < timed.length && timed[r]![0] < timed[m]![0]) m = r;
        if (m === k) break;
        [timed[m], timed[k]] = [timed[k]!, timed[m]!];
        k = m;
      }
    }
    return top;
  };
  /** Transfers moving bytes: task, bytes left, current rate. */
  let active: { task: number; left: number; rate: number }[] = [];
  let now = 0;
  let done = 0;

  const start = (i: number): void => {
    const t = tasks[i]!;
    if (t.kind === 'compute') push(now + t.ms, i);
    else if (t.src === t.dst) push(now, i);
    else if (t.bytes <= 0) push(now + net.latencyMs, i);
    else active.push({ task: i, left: t.bytes, rate: 0 });
  };
  const complete = (i: number): void => {
    finish[i] = now;
    done++;
    for (const d of dependents[i]!) {
      waiting[d] = waiting[d]! - 1;
      if (waiting[d] === 0) start(d);
    }
  };
  const allocate = (): void => {
    // progressive filling over the uplinks (0..hosts-1) and downlinks (hosts..2 hosts-1)
    const links = 2 * net.hosts;
    const capacity = new Float64Array(links).fill(net.bytesPerMs);
    const count = new Int32Array(links);
    const of = (f: { task: number }): [number, number] => {
      const t = tasks[f.task] as Extract<Task, { kind: 'flow' }>;
      return [t.src, net.hosts + t.dst];
    };
    for (const f of active) for (const l of of(f)) count[l]!++;
    let open = active.slice();
    const bottleneck = new Uint8Array(links);
    while (open.length > 0) {
      let share = Infinity;
      for (let l = 0; l < links; l++) if (count[l]! > 0) share = Math.min(share, capacity[l]! / count[l]!);
      // every link at the smallest share is a bottleneck this round (one round where loads are even)
      for (let l = 0; l < links; l++) bottleneck[l] = count[l]! > 0 && capacity[l]! / count[l]! <= share * (1 + 1e-12) ? 1 : 0;
      const next: typeof open = [];
      for (const f of open) {
        const ls = of(f);
        if (bottleneck[ls[0]] || bottleneck[ls[1]]) {
          f.rate = share;
          for (const l of ls) {
            capacity[l]! -= share;
            count[l]!--;
          }
        } else next.push(f);
      }
      open = next;
    }
  };

  tasks.forEach((t, i) => {
    if (t.deps.length === 0) start(i);
  });
  while (done < n) {
    allocate();
    let next = timed.length > 0 ? timed[0]![0] : Infinity;
    for (const f of active) next = Math.min(next, now + f.left / f.rate);
    if (next === Infinity) throw new Error('flow simulation: tasks wait on each other');
    const dt = next - now;
    now = next;
    const still: typeof active = [];
    for (const f of active) {
      f.left -= f.rate * dt;
      // within a byte of the end: the last byte has left, it arrives one latency later
      if (f.left <= 1e-6 * (tasks[f.task] as Extract<Task, { kind: 'flow' }>).bytes + 1e-9) push(now + net.latencyMs, f.task);
      else still.push(f);
    }
    active = still;
    while (timed.length > 0 && timed[0]![0] <= now + 1e-12) complete(pop()[1]);
  }
  return finish;
}
