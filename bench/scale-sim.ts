/**
 * Both reductions as task graphs for the flow simulation (flow-sim.ts), step after step, and
 * their steady step time:
 * - star (today): the coordinator sends the weights to every node; each node computes its part,
 *   sending each gradient bucket as the backward pass finishes it; the coordinator reduces all
 *   of them and applies the optimizer.
 * - peers (issue's design): each node owns 1/n of the parameters; each bucket is reduce-scattered
 *   round a ring as the backward pass finishes it (n-1 rounds of S/(kn) bytes to the next node),
 *   each owner applies the optimizer to its shard, and the shards are all-gathered round the ring
 *   (n-1 rounds of S/n) before the next step computes.
 * - peers as built (cluster.reduction: peers, coordinator/fit/peer-step.ts): each node sends each
 *   owner its block's shard directly, as soon as the backward pass has finished that shard (the
 *   last layers' first); each owner folds its shard and, once its own block's frames are out,
 *   sends its mean to every other node and to the coordinator; every node steps the whole
 *   optimizer itself (replicated, not 1/n) as soon as its mean is whole, while the coordinator
 *   steps its own and then sends the commit and the next step, which a node computes once both
 *   are done.
 * Host 0 is the coordinator (star, peers as built) or nothing (the ring: the coordinator only
 * sends control frames, left out); compute, reduce and apply times come from measurements
 * (scale-out.ts).
 */
import { simulate, type Network, type Task } from './flow-sim.js';

export interface StepCosts {
  /** A node's computation of its part of the batch, ms. */
  readonly computeMs: number;
  /** The coordinator's reduction and optimizer step over the whole gradient (star), ms. */
  readonly reduceMs: number;
  readonly applyMs: number;
  /** Gradient bytes (S). */
  readonly bytes: number;
  /** Buckets a gradient is sent in, each after its share of the backward pass. */
  readonly buckets: number;
}

/** Star: returns the tasks of `steps` steps and the index of each step's last task. */
export function starSteps(nodes: number, c: StepCosts, steps: number): { tasks: Task[]; ends: number[] } {
  const tasks: Task[] = [];
  const add = (t: Task): number => tasks.push(t) - 1;
  const ends: number[] = [];
  let applied: number[] = [];
  for (let s = 0; s < steps; s++) {
    const grads: number[] = [];
    for (let i = 1; i <= nodes; i++) {
      const weights = add({ kind: 'flow', src: 0, dst: i, bytes: c.bytes, deps: applied });
      let previous = weights;
      for (let k = 0; k < c.buckets; k++) {
        previous = add({ kind: 'compute', host: i, ms: c.computeMs / c.buckets, deps: [previous] });
        grads.push(add({ kind: 'flow', src: i, dst: 0, bytes: c.bytes / c.buckets, deps: [previous] }));
      }
    }
    const reduced = add({ kind: 'compute', host: 0, ms: c.reduceMs, deps: grads });
    const apply = add({ kind: 'compute', host: 0, ms: c.applyMs, deps: [reduced] });
    applied = [apply];
    ends.push(apply);
  }
  return { tasks, ends };
}

/** Each node's computation of its part in `c.buckets` chunks, one after the other, the first after `ready[i]`: the chunks' tasks by node. */
function computeChunks(nodes: number, c: StepCosts, ready: readonly (readonly number[])[], host: (i: number) => number, add: (t: Task) => number): number[][] {
  return Array.from({ length: nodes }, (_, i) => {
    const list: number[] = [];
    let deps = ready[i]!;
    for (let b = 0; b < c.buckets; b++) {
      const t = add({ kind: 'compute', host: host(i), ms: c.computeMs / c.buckets, deps });
      list.push(t);
      deps = [t];
    }
    return list;
  });
}

/** Peers over a ring of hosts 1..nodes: the tasks of `steps` steps and each step's last task. */
export function peerSteps(nodes: number, c: StepCosts, steps: number): { tasks: Task[]; ends: number[] } {
  const tasks: Task[] = [];
  const add = (t: Task): number => tasks.push(t) - 1;
  const host = (i: number): number => 1 + (((i % nodes) + nodes) % nodes);
  const ends: number[] = [];
  /** What node i must have before computing: the shards gathered at the previous step. */
  let ready: number[][] = Array.from({ length: nodes }, () => []);
  for (let s = 0; s < steps; s++) {
    // each node's computation in bucket chunks
    const chunks = computeChunks(nodes, c, ready, host, add);
    // reduce-scatter each bucket round the ring: in round r node i sends part (i - r) to i + 1
    const part = c.bytes / c.buckets / nodes;
    const reduced: number[][] = Array.from({ length: nodes }, () => []);
    for (let k = 0; k < c.buckets; k++) {
      let last: number[] = Array.from({ length: nodes }, (_, i) => chunks[i]![k]!);
      for (let r = 0; r < nodes - 1; r++) {
        // node i can send once it has its own bucket and what i - 1 sent it last round
        last = Array.from({ length: nodes }, (_, i) => add({ kind: 'flow', src: host(i), dst: host(i + 1), bytes: part, deps: r === 0 ? [last[i]!] : [last[(i - 1 + nodes) % nodes]!, chunks[i]![k]!] }));
      }
      for (let i = 0; i < nodes; i++) reduced[i]!.push(last[(i - 1 + nodes) % nodes]!, chunks[i]![c.buckets - 1]!);
    }
    // each owner's optimizer step on its shard
    const applied = Array.from({ length: nodes }, (_, i) => add({ kind: 'compute', host: host(i), ms: c.applyMs / nodes, deps: reduced[i]! }));
    // all-gather round the ring: in round r node i passes on the shard it got last round
    const gathered: number[][] = Array.from({ length: nodes }, (_, i) => [applied[i]!]);
    let last = applied;
    for (let r = 0; r < nodes - 1; r++) {
      last = Array.from({ length: nodes }, (_, i) => add({ kind: 'flow', src: host(i), dst: host(i + 1), bytes: c.bytes / nodes, deps: r === 0 ? [last[i]!] : [last[(i - 1 + nodes) % nodes]!] }));
      last.forEach((t, i) => gathered[(i + 1) % nodes]!.push(t));
    }
    ready = gathered;
    ends.push(add({ kind: 'compute', host: 1, ms: 0, deps: gathered.flat() }));
  }
  return { tasks, ends };
}

/** Peers as built, hosts 1..nodes and the coordinator (0): the tasks of `steps` steps and each step's last task. */
export function builtPeerSteps(nodes: number, c: StepCosts, steps: number): { tasks: Task[]; ends: number[] } {
  const tasks: Task[] = [];
  const add = (t: Task): number => tasks.push(t) - 1;
  const host = (i: number): number => 1 + i;
  const k = c.buckets;
  const shard = c.bytes / nodes;
  // the backward pass finishes the parameters from the end: after chunk b, [(k-1-b)/k, 1) of them;
  // shard j ([j/n, (j+1)/n)) can go once that range holds it whole
  const readyAfter = (j: number): number => Math.max(0, Math.ceil(k - 1 - (j * k) / nodes));
  const ends: number[] = [];
  let ready: number[][] = Array.from({ length: nodes }, () => []);
  for (let s = 0; s < steps; s++) {
    const chunks = computeChunks(nodes, c, ready, host, add);
    // reduce-scatter: every block's shard j straight to its owner j
    const blocksIn: number[][] = Array.from({ length: nodes }, () => []);
    const blocksOut: number[][] = Array.from({ length: nodes }, () => []);
    for (let i = 0; i < nodes; i++) {
      for (let j = 0; j < nodes; j++) {
        if (j === i) continue;
        const flow = add({ kind: 'flow', src: host(i), dst: host(j), bytes: shard, deps: [chunks[i]![readyAfter(j)]!] });
        blocksIn[j]!.push(flow);
        blocksOut[i]!.push(flow);
      }
    }
    // an owner's fold is ready when its shard's blocks are in; its mean goes once its own block is out
    const folded = Array.from({ length: nodes }, (_, j) => add({ kind: 'compute', host: host(j), ms: c.reduceMs / nodes, deps: [...blocksIn[j]!, chunks[j]![k - 1]!, ...blocksOut[j]!] }));
    // all-gather: each owner's shard of the mean to every other node and to the coordinator
    const meanIn: number[][] = Array.from({ length: nodes }, (_, i) => [folded[i]!]);
    const toCoordinator: number[] = [];
    for (let j = 0; j < nodes; j++) {
      for (let i = 0; i < nodes; i++) if (i !== j) meanIn[i]!.push(add({ kind: 'flow', src: host(j), dst: host(i), bytes: shard, deps: [folded[j]!] }));
      toCoordinator.push(add({ kind: 'flow', src: host(j), dst: 0, bytes: shard, deps: [folded[j]!] }));
    }
    // each node steps its whole optimizer on the whole mean; the coordinator steps its own, then
    // commits and sends the next step (control frames)
    const applied = Array.from({ length: nodes }, (_, i) => add({ kind: 'compute', host: host(i), ms: c.applyMs, deps: meanIn[i]! }));
    const stepped = add({ kind: 'compute', host: 0, ms: c.applyMs, deps: toCoordinator });
    ready = applied.map((a, i) => [a, add({ kind: 'flow', src: 0, dst: host(i), bytes: 0, deps: [stepped] })]);
    ends.push(add({ kind: 'compute', host: 0, ms: 0, deps: [...applied, stepped] }));
  }
  return { tasks, ends };
}

/** The steady step time: the mean of the steps after the first (which starts from rest). */
export function stepMs(build: { tasks: Task[]; ends: number[] }, net: Network): number {
  const finish = simulate(build.tasks, net);
  const ends = build.ends.map((e) => finish[e]!);
  return (ends.at(-1)! - ends[0]!) / (ends.length - 1);
}
