/**
 * A node's side of cluster.reduction: peers. The node holds the weights and the optimizer's state
 * as the coordinator does (from a `state` message), computes its block of each step, takes part
 * in the step's all-reduce round (shared/peer/all-reduce-round.ts) over its peer connections,
 * steps the optimizer itself on the round's mean gradient as soon as it is whole, in the
 * coordinator's order of operations (clip, rate, rule; batch norm's statistics kept out), and on
 * the coordinator's `commit` checks its weights against the coordinator's check value.
 *
 * Frames may arrive before the round they belong to (a faster peer already got its step): they
 * wait, bounded, until the round starts; frames of rounds already past are dropped unread.
 */
import { ProtocolError, WorkerError } from '../shared/errors.js';
import { weightLayout } from '../shared/model/layout.js';
import { clipGradient, type VariableRange } from '../shared/optimize/clip.js';
import { statisticRanges, stepWithStatistics, type StatisticRange } from '../shared/optimize/moving-statistics.js';
import { createOptimizer, stateLayout, type Optimizer, type OptimizerConfig, type OptimizerState } from '../shared/optimize/optimizers.js';
import { AllReduceRound, OBSERVER, RoundMemory, type RoundPlan } from '../shared/peer/all-reduce-round.js';
import { weightsCheck } from '../shared/peer/weights-check.js';
import type { BlockMessage, CommitMessage, JobMessage, Message, PeersMessage, ReducedMessage, RoundMessage, StateMessage } from '../shared/protocol/schemas.js';
import type { PeerAddress, PeerFrame } from './peer-mesh.js';

/** Frames held for rounds not started yet, at most (their values: at most EARLY_VALUES x the model's size). */
const EARLY_FRAMES = 4096;
const EARLY_VALUES = 4;

export interface ReplicaLinks {
  /** To a peer's endpoint. */
  toPeer(to: PeerAddress, message: Message): void;
  /** Runs `send` once the frames sent so far to peers `to` have left (written to their sockets). */
  whenSent(to: readonly PeerAddress[], send: () => void): void;
  /** To the coordinator. */
  toCoordinator(message: Message): void;
}

interface Epoch {
  readonly epoch: number;
  readonly rank: number;
  readonly ranks: readonly PeerAddress[];
}

/** The sums of this node's block, sent once the round is complete. */
export interface BlockSums {
  readonly count: number;
  readonly lossSum: number;
  readonly metricSums: number[];
  readonly computeMs: number;
}

export class PeerReplica {
  readonly parameters: number;
  /** The weights of `version` (valid while `version` >= 0). */
  readonly weights: Float32Array;
  version = -1;
  private optimizer: Optimizer | undefined;
  private readonly config: OptimizerConfig;
  private readonly variables: VariableRange[];
  private readonly statistics: StatisticRange[];
  private epoch: Epoch | undefined;
  private round: AllReduceRound | undefined;
  private block = -1;
  /** The round's step message has not come yet (a step of the same number after it is one the coordinator reduces itself). */
  private armed = false;
  /** The step whose round's mean this node has stepped on, until its commit. */
  private stepped = -1;
  /** The learning rate the round under way applies. */
  private learningRate = 0;
  private early: { from: string | typeof OBSERVER; frame: PeerFrame }[] = [];
  private readonly memory: RoundMemory;
  private earlyValues = 0;
  /** The round in which a frame of a round already past (a straggler's, a lost node's) was last logged. */
  private lateLogged: RoundPlan | undefined;

  constructor(
    job: JobMessage,
    private readonly links: ReplicaLinks,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    if (!job.optimizer) throw new ProtocolError('a job reduced among peers names no optimizer', 'malformed');
    this.config = job.optimizer;
    this.parameters = job.parameters;
    this.weights = new Float32Array(job.parameters);
    const layout = weightLayout(job.spec);
    this.variables = layout.entries.filter((e) => e.trainable);
    this.statistics = statisticRanges(job.spec, layout);
    this.memory = new RoundMemory(job.parameters);
  }

  /** The coordinator's weights and optimizer state of a version. */
  state(message: StateMessage): void {
    const { optimizer, slots, values, version } = message;
    const expected = stateLayout(this.config);
    if (optimizer.name !== this.config.name) throw new ProtocolError(`state of optimizer ${optimizer.name}, the job's is ${this.config.name}`, 'shape');
    if (slots.join() !== expected.slots.join()) throw new ProtocolError(`state slots ${slots.join()}, ${optimizer.name} has ${expected.slots.join()}`, 'shape');
    if (Object.keys(optimizer.scalars).sort().join() !== [...expected.scalars].sort().join()) throw new ProtocolError(`state scalars ${Object.keys(optimizer.scalars).join()}, ${optimizer.name} has ${expected.scalars.join()}`, 'shape');
    const n = this.parameters;
    if (values.length !== n * (1 + slots.length)) throw new ProtocolError(`state has ${values.length} values, the weights and ${slots.length} slot(s) of ${n} parameters are ${n * (1 + slots.length)}`, 'shape');
    this.weights.set(values.subarray(0, n));
    const from: OptimizerState = {
      name: this.config.name,
      iterations: optimizer.iterations,
      slots: Object.fromEntries(slots.map((name, i) => [name, values.slice((i + 1) * n, (i + 2) * n)])),
      scalars: optimizer.scalars,
      ...(optimizer.learningRate !== undefined ? { learningRate: optimizer.learningRate } : {}),
    };
    this.optimizer = createOptimizer(this.config, n, from);
    this.version = version;
    this.stepped = -1;
  }

  /** Weights the coordinator sent outright (a step it reduced itself): the optimizer state is stale until the next `state`. */
  invalidate(): void {
    this.optimizer = undefined;
    this.version = -1;
    this.stepped = -1;
  }

  peers(message: PeersMessage): void {
    if (message.rank >= message.ranks.length) throw new ProtocolError(`peers: rank ${message.rank} of ${message.ranks.length}`, 'shape');
    this.epoch = { epoch: message.epoch, rank: message.rank, ranks: message.ranks };
  }

  /** The next step is reduced among peers: its round starts now, so blocks can fold in while this node computes. */
  startRound(message: RoundMessage): void {
    const epoch = this.epoch;
    if (!epoch || epoch.epoch !== message.epoch) throw new ProtocolError(`round of epoch ${message.epoch} before its peers message`, 'unexpected');
    if (message.senders[message.block] !== epoch.rank) throw new ProtocolError(`round: block ${message.block} is not this node's (rank ${epoch.rank})`, 'shape');
    const { ranks, rank } = epoch;
    this.round = new AllReduceRound(
      { epoch: message.epoch, step: message.step, parameters: this.parameters, ranks: ranks.length, blockSenders: message.senders },
      rank,
      {
        block: (to, frame) => this.links.toPeer(ranks[to]!, { type: 'block', ...frame }),
        // this node's shard of the mean goes once its block's frames are out: the others still
        // wait for those, and would share this node's uplink with the mean otherwise
        reduced: (frame) =>
          this.links.whenSent(ranks.filter((_, r) => r !== rank), () => {
            ranks.forEach((peer, r) => {
              if (r !== rank) this.links.toPeer(peer, { type: 'reduced', ...frame });
            });
            this.links.toCoordinator({ type: 'reduced', ...frame });
          }),
      },
      (r) => (r === OBSERVER ? 'the coordinator' : (ranks[r]?.id ?? `rank ${r}`)),
      this.memory,
    );
    this.block = message.block;
    this.learningRate = message.learningRate;
    this.armed = true;
    this.stepped = -1;
    const waiting = this.early;
    this.early = [];
    this.earlyValues = 0;
    for (const { from, frame } of waiting) {
      try {
        this.receive(from, frame);
      } catch {
        // a held frame that breaks the new round's plan is dropped here; if the round needed it, it
        // fails and the step goes through the coordinator
      }
    }
  }

  /** Whether step `step` is reduced among peers (its round was started). */
  reduces(step: number): boolean {
    return this.armed && this.round?.plan.step === step;
  }

  /** Values [ready, parameters) of this node's block of `step` (over `count` rows) are final: the shards in them go to their owners now. */
  partReady(step: number, count: number, gradient: Float32Array, ready: number): void {
    const round = this.round;
    if (!this.armed || round?.plan.step !== step || this.optimizer === undefined || this.version < 0) return;
    round.contributeReady(this.block, count, gradient, ready);
  }

  /** This node's block of the round, computed; the sums go to the coordinator once the mean is whole. */
  contribute(step: number, gradient: Float32Array, sums: BlockSums): void {
    const round = this.round;
    if (!round || round.plan.step !== step) throw new WorkerError(`step ${step} has no peer round`);
    if (this.optimizer === undefined || this.version < 0) throw new WorkerError(`step ${step}: this node has no optimizer state from the coordinator`);
    this.armed = false;
    round.contribute(this.block, sums.count, gradient);
    void round.done.then((mean) => {
      // the coordinator may have given the round up and sent other weights meanwhile
      if (this.round !== round || this.optimizer === undefined) return;
      this.step(step, mean);
      this.links.toCoordinator({ type: 'round_sums', step, ...sums });
    });
  }

  /**
   * The round's mean is whole: the optimizer steps on it now, in the coordinator's order of
   * operations, while the coordinator steps its own; the commit confirms it. A round the
   * coordinator does not commit is followed by its weights and state (RemoteNode.forgetWeights).
   */
  private step(step: number, mean: Float32Array): void {
    const optimizer = this.optimizer!;
    stepWithStatistics(this.weights, mean, this.statistics, (w, g) => {
      clipGradient(g, this.variables, this.config);
      optimizer.learningRate = this.learningRate;
      optimizer.apply(w, g);
    });
    this.stepped = step;
  }

  /** A block or reduced shard from a peer (`from`: its node id) or from the coordinator (OBSERVER). Throws on a frame that breaks the round's plan. */
  receive(from: string | typeof OBSERVER, frame: PeerFrame): void {
    const round = this.round;
    const epoch = this.epoch;
    const current = round?.plan;
    const ahead = !current || frame.epoch > current.epoch || (frame.epoch === current.epoch && frame.step > current.step);
    if (ahead) return this.hold(from, frame);
    if (frame.epoch !== current.epoch || frame.step !== current.step) return this.late(from, frame, current);
    const rank = from === OBSERVER ? OBSERVER : epoch!.ranks.findIndex((p) => p.id === from);
    if (from !== OBSERVER && rank < 0) throw new ProtocolError(`${from} is not a peer of epoch ${frame.epoch}`, 'unexpected');
    if (frame.type === 'block') round!.receiveBlock(rank, frame as BlockMessage);
    else round!.receiveReduced(rank, frame as ReducedMessage);
  }

  /** A frame of a round already past: dropped unread, said once a round. */
  private late(from: string | typeof OBSERVER, frame: PeerFrame, current: RoundPlan): void {
    if (this.lateLogged === current) return;
    this.lateLogged = current;
    this.log(`a ${frame.type} frame of epoch ${frame.epoch} step ${frame.step} from ${from === OBSERVER ? 'the coordinator' : from} came after its round: dropped`);
  }

  private hold(from: string | typeof OBSERVER, frame: PeerFrame): void {
    if (this.early.length >= EARLY_FRAMES || this.earlyValues + frame.values.length > EARLY_VALUES * this.parameters) {
      throw new ProtocolError(`more frames ahead of this node's round than it holds (${this.early.length})`, 'oversize');
    }
    this.early.push({ from, frame: { ...frame, values: frame.values.slice() } });
    this.earlyValues += frame.values.length;
  }

  /** The coordinator took the step this node stepped on: its weights are that version, and must match the coordinator's. */
  commit(message: CommitMessage): void {
    if (this.stepped !== message.step || this.optimizer === undefined) throw new WorkerError(`commit of step ${message.step}, but this node holds no complete round of it: it needs the coordinator's state again`);
    if (message.learningRate !== this.learningRate) {
      this.invalidate();
      throw new WorkerError(`commit of step ${message.step} at learning rate ${message.learningRate}, its round said ${this.learningRate}: this node needs the coordinator's state again`);
    }
    // the round stays: frames of it that come late are known as past and dropped
    this.stepped = -1;
    this.version = message.version;
    const check = weightsCheck(this.weights);
    if (check !== message.check) {
      this.invalidate();
      throw new WorkerError(`after step ${message.step} this node's weights differ from the coordinator's (check ${check}, the coordinator's ${message.check}): it needs the coordinator's state again`);
    }
  }
}
