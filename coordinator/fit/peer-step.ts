/**
 * One step reduced among peers (cluster.reduction: peers): the coordinator keeps control (the
 * split, deadlines, failures, the optimizer's authoritative state, checkpoints), and the gradients
 * never pass through it. Each part of the batch is one block (in participant order, as in the
 * star). Worker nodes are the owner ranks of the parameter shards; they send each block's shard
 * to its owner, owners reduce their shard (block order, float64) and send its mean to every other
 * node and to the coordinator, which takes part as the observer (its own lanes' blocks go to the
 * owners). Every node then holds the whole mean gradient and steps its optimizer on it at once,
 * exactly as the coordinator does (the round message carries the step's learning rate), while
 * the coordinator steps its own; the coordinator's commit then confirms the step, and each node
 * checks its weights against the commit's check value.
 *
 * The coordinator's link carries the reduced gradient in (S) and its own lanes' blocks out (S per
 * local lane), whatever the number of nodes; each node's about 2(n-1)/n x S each way.
 *
 * One recovery policy: a round that fails in any way (a node dropped, a sum that cannot be, a
 * frame refused, a mean that is not finite, no answer within a node's deadline) is not committed,
 * nobody's step counts (the nodes that stepped on a whole mean are sent the weights again), and `run` answers undefined: the trainer runs the same step through the coordinator (step.ts, which recomputes
 * failed parts and finds the culprit of a non-finite gradient or of a silence: in a round a node
 * that waits may be waiting on another, so a deadline there blames nobody), and nodes whose optimizer state
 * is stale get the coordinator's state before their next peer step. The result is the same bits
 * as a run with the same membership history: a block's mean is the same whoever reduces it.
 */
import { performance } from 'node:perf_hooks';
import { virtualBatchSize, type ModelSpec } from '../../shared/model/spec.js';
import { weightLayout } from '../../shared/model/layout.js';
import { statisticRanges, stepWithStatistics, type StatisticRange } from '../../shared/optimize/moving-statistics.js';
import { AllReduceRound, OBSERVER, RoundMemory } from '../../shared/peer/all-reduce-round.js';
import { weightsCheck } from '../../shared/peer/weights-check.js';
import { virtualBatches } from '../../shared/plan/split-plan.js';
import { FramePool, type PooledFrame } from '../../shared/protocol/frame-pool.js';
import { firstNonFinite } from '../../shared/math/finite.js';
import { faultOf, type Participant, type ParticipantGroup } from '../participants/participant.js';
import { RemoteNode, RoundAbandoned } from '../participants/remote-node.js';
import type { ModelWeights, OptimizerSlot } from './state.js';
import { splitBatch, sumsFault, type StepSums } from './step.js';
import { metricLayoutOf, totalSums } from '../../shared/model/metric-sums.js';
import { alwaysPeers, type ReductionPolicy } from './reduction-policy.js';

interface Sums {
  readonly participant: Participant;
  readonly count: number;
  readonly lossSum: number;
  readonly metricSums: readonly number[];
  readonly seconds: number;
  readonly computeMs: number;
  readonly numTensors: number;
}

export class PeerStep {
  private epoch = -1;
  private ranks: readonly string[] = [];
  private readonly statistics: StatisticRange[];
  private readonly virtualBatchSize: number | undefined;
  private readonly frames = new FramePool();
  private readonly memory: RoundMemory;
  private state: { version: number; frame: PooledFrame } | undefined;
  /** Steps taken among peers. */
  steps = 0;
  /** Seconds the last `run` waited for worker nodes before it answered undefined (0 when it reduced the step). */
  waitedBeforeStar = 0;
  /** Why the last step was not reduced among peers (logged when it changes). */
  private lastReason = '';
  /** Rounds failed one after the other, and the step of the last (for the policy's back-off). */
  private failuresInARow = 0;
  private lastFailure = -1;

  constructor(
    private readonly spec: ModelSpec,
    private readonly group: ParticipantGroup,
    private readonly weights: ModelWeights,
    private readonly optimizer: OptimizerSlot,
    private readonly log: (line: string) => void = () => undefined,
    /** The job's own connections use TLS (cluster.tls): only nodes whose peer endpoints do (wss://) reduce among peers. */
    private readonly tls = false,
    /** Whether a step that can run among peers does (cluster.reduction). */
    private readonly policy: ReductionPolicy = alwaysPeers,
  ) {
    this.statistics = statisticRanges(spec, weightLayout(spec));
    this.virtualBatchSize = virtualBatchSize(spec);
    this.memory = new RoundMemory(weights.values.length);
  }

  /** Runs step `step` among peers; undefined when it cannot (fewer than two nodes with peer endpoints) or the round failed: the caller reduces it through the coordinator. */
  async run(step: number, rows: Int32Array): Promise<StepSums | undefined> {
    const t0 = performance.now();
    const participants = await this.group.ready();
    const waited = performance.now() - t0;
    this.waitedBeforeStar = waited / 1000;
    const nodes = participants.filter((p): p is RemoteNode => p instanceof RemoteNode);
    const without = nodes.filter((n) => n.peerUrl === undefined);
    const plain = this.tls ? nodes.filter((n) => n.peerUrl?.startsWith('ws://')) : [];
    if (nodes.length < 2 || without.length > 0 || plain.length > 0) {
      const have = (list: readonly RemoteNode[]): string => `${list.map((n) => n.id).join(', ')} ha${list.length === 1 ? 's' : 've'}`;
      this.skip(
        step,
        nodes.length < 2
          ? `${nodes.length} worker node(s): a reduction among peers needs two or more`
          : without.length > 0
            ? `${have(without)} no peer endpoint (worker start --peer-listen off?)`
            : `${have(plain)} a peer endpoint without TLS, and this job's connections use it (worker start --peer-cert, --peer-key)`,
      );
      return undefined;
    }
    const choice = this.policy({ step, nodes: nodes.length, gradientBytes: 4 * this.weights.values.length, failuresInARow: this.failuresInARow, lastFailure: this.lastFailure });
    if (!choice.peers) {
      this.skip(step, choice.reason);
      return undefined;
    }
    const started = performance.now();
    const groupOf = this.virtualBatchSize === undefined ? undefined : virtualBatches(rows, this.virtualBatchSize);
    const groupsOf = (partRows: Int32Array): Int32Array | undefined => (groupOf ? partRows.map((r) => groupOf.get(r)!) : undefined);
    const parts = splitBatch(rows, participants, this.group, groupOf && { groupOf, unitRows: this.virtualBatchSize! });
    const blocks = parts.filter((part) => part.rows.length > 0);
    const owners = blocks.map((b) => participants[b.participant]!).filter((p): p is RemoteNode => p instanceof RemoteNode);
    if (owners.length < 2) {
      this.skip(step, `${owners.length} worker node(s) have rows this step`);
      return undefined;
    }
    this.lastReason = '';
    const ids = owners.map((n) => n.id);
    if (ids.join() !== this.ranks.join()) {
      this.epoch++;
      this.ranks = ids;
    }
    const epoch = this.epoch;
    const senders = blocks.map((b) => {
      const p = participants[b.participant]!;
      return p instanceof RemoteNode ? owners.indexOf(p) : OBSERVER;
    });
    const version = this.weights.version;
    const round = new AllReduceRound({ epoch, step, parameters: this.weights.values.length, ranks: owners.length, blockSenders: senders }, OBSERVER, {
      block: (to, frame) => owners[to]!.sendBlock({ type: 'block', ...frame }),
      reduced: () => undefined,
    }, (r) => (r === OBSERVER ? 'the coordinator' : owners[r]!.id), this.memory);
    owners.forEach((node, rank) => {
      if (!node.holdsState(version)) node.sendState(version, this.stateFrame(version));
      node.sendPeers(epoch, () => ({ type: 'peers', epoch, rank, ranks: owners.map((n) => ({ id: n.id, url: n.peerUrl!, proof: n.proofFor(node.id) })) }));
      node.onReduced = (message) => {
        if (message.step < step) return; // a round already past
        try {
          round.receiveReduced(rank, message);
        } catch (err) {
          throw node.drop(faultOf(node.id, err, 'unexpected').reason, (err as Error).message);
        }
      };
    });
    // the first part that fails ends the round: the nodes still at it are not waited for (nor blamed)
    const abandon = (): void => owners.forEach((node) => node.abandonRound(step));
    const settled = await Promise.allSettled(
      blocks.map(async (part, block): Promise<Sums> => {
        try {
          return await this.part(participants[part.participant]!, part.rows, groupsOf(part.rows), block, { step, version, epoch, senders, round });
        } catch (err) {
          abandon();
          throw err;
        }
      }),
    );
    for (const node of owners) node.onReduced = (message) => void (message.step <= step || node.drop('unexpected', `sent the mean of shard ${message.shard} of step ${message.step}, which was not asked for`));
    const sums: Sums[] = [];
    let failure: string | undefined;
    let abandoned: string | undefined;
    settled.forEach((outcome, i) => {
      if (outcome.status === 'rejected' && outcome.reason instanceof RoundAbandoned) {
        abandoned ??= (outcome.reason as RoundAbandoned).message;
        return;
      }
      const participant = participants[blocks[i]!.participant]!;
      const fault = outcome.status === 'rejected' ? faultOf(participant.id, outcome.reason) : undefined;
      if (fault) {
        this.group.failed(participant, step, fault);
        failure ??= fault.message;
      } else if (outcome.status === 'fulfilled') sums.push(outcome.value);
    });
    failure ??= abandoned;
    if (!failure && !round.complete) failure = 'shards of the mean gradient are missing';
    const mean = round.mean;
    if (!failure && firstNonFinite(mean) >= 0) failure = 'the mean gradient is not finite';
    if (failure) {
      this.log(`step ${step}: the round among peers failed (${failure}); this step is reduced through the coordinator`);
      for (const node of owners) node.forgetWeights();
      this.failuresInARow++;
      this.lastFailure = step;
      return undefined;
    }
    this.failuresInARow = 0;
    this.waitedBeforeStar = 0;
    const t1 = performance.now();
    const learningRate = this.optimizer.learningRate;
    stepWithStatistics(this.weights.values, mean, this.statistics, (w, g) => this.optimizer.apply(w, g));
    const check = weightsCheck(this.weights.values);
    const t2 = performance.now();
    this.weights.publish();
    for (const node of owners) node.commit({ type: 'commit', step, version: this.weights.version, learningRate, check });
    const t3 = performance.now();
    // a node's wall time holds the whole round, the same for every node: its compute time is what tells nodes apart
    for (const s of sums) this.group.succeeded(s.participant, step, s.count, s.participant instanceof RemoteNode && s.computeMs > 0 ? s.computeMs / 1000 : s.seconds);
    this.steps++;
    return {
      lossSum: sums.reduce((a, s) => a + s.lossSum, 0),
      metricSums: totalSums(metricLayoutOf(this.spec).width, sums),
      slowestCompute: sums.reduce((a, s) => Math.max(a, s.computeMs / 1000), 0),
      phases: { compute: (t1 - started) / 1000, reduce: 0, apply: (t2 - t1) / 1000, broadcast: (t3 - t2) / 1000 },
      tensorCounts: sums.filter((s) => s.numTensors >= 0).map((s) => s.numTensors),
      waited: waited / 1000,
    };
  }

  /** One block: a node computes it into the round; a local lane computes it here and the coordinator sends its shards. */
  private async part(participant: Participant, rows: Int32Array, groups: Int32Array | undefined, block: number, r: { step: number; version: number; epoch: number; senders: number[]; round: AllReduceRound }): Promise<Sums> {
    const { step, version, epoch, senders, round } = r;
    const begun = performance.now();
    if (participant instanceof RemoteNode) {
      const sums = await participant.roundGradient(step, version, rows, groups, { type: 'round', epoch, step, block, senders, learningRate: this.optimizer.learningRate });
      const fault = sumsFault(this.spec, participant, rows.length, sums);
      if (fault) throw participant.drop(fault.reason, fault.message.replace(`${participant.id}: `, ''));
      return { participant, count: sums.count, lossSum: sums.lossSum, metricSums: sums.metricSums, seconds: (performance.now() - begun) / 1000, computeMs: sums.computeMs, numTensors: -1 };
    }
    const result = await participant.gradient(step, version, rows, groups);
    const fault = sumsFault(this.spec, participant, rows.length, result);
    if (fault) throw fault;
    round.contribute(block, result.count, result.gradient);
    return { participant, count: result.count, lossSum: result.lossSum, metricSums: result.metricSums, seconds: (performance.now() - begun) / 1000, computeMs: result.computeMs ?? -1, numTensors: result.numTensors };
  }

  private skip(step: number, reason: string): void {
    if (reason !== this.lastReason) this.log(`step ${step}: reduced through the coordinator: ${reason}`);
    this.lastReason = reason;
  }

  /** The "state" message of `version` (weights, then the optimizer's slots), encoded once for every node that needs it. */
  private stateFrame(version: number): PooledFrame {
    if (this.state?.version !== version) {
      this.state?.frame.release();
      const saved = this.optimizer.save();
      const n = this.weights.values.length;
      const slots = Object.keys(saved.slots);
      const values = new Float32Array(n * (1 + slots.length));
      values.set(this.weights.values);
      slots.forEach((name, i) => values.set(saved.slots[name]!, (i + 1) * n));
      const optimizer = { name: saved.name, iterations: saved.iterations, scalars: { ...saved.scalars }, ...(saved.learningRate !== undefined ? { learningRate: saved.learningRate } : {}) };
      this.state = { version, frame: this.frames.encode({ type: 'state', version, optimizer, slots: [...slots], values }) };
    }
    return this.state.frame;
  }
}
