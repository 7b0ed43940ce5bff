/**
 * The pieces of training state, each saving and restoring itself (as Horovod's elastic `State`
 * handlers do): the weights (with the version the participants know them by), the optimizer, the
 * shuffle generator and the history. EarlyStopping (callbacks/early-stopping.ts) is one too. A
 * checkpoint (checkpoint.ts's TrainingState) is made of what these save plus the loop's position.
 */
import { createOptimizer, type Optimizer, type OptimizerConfig, type OptimizerState } from '../../shared/optimize/optimizers.js';
import { clipGradient, type VariableRange } from '../../shared/optimize/clip.js';
import { ConfigError } from '../../shared/errors.js';
import { scheduledRate } from '../optimize/schedules.js';
import type { LearningRateSchedule } from '../../shared/config/optimizer-config.js';
import type { Rng } from '../../shared/math/rng.js';
import type { ParticipantGroup } from '../participants/participant.js';

/** A piece of training state: `save` snapshots it (a copy), `restore` puts a snapshot back. */
export interface Stateful<S> {
  save(): S;
  restore(state: S): void;
}

/** The flat weights, published to every participant under a new version whenever they change. */
export class ModelWeights implements Stateful<Float32Array> {
  /** Version the participants know the current weights by (one per publish). */
  private current = 0;

  constructor(
    readonly values: Float32Array,
    private readonly group: Pick<ParticipantGroup, 'publish'>,
  ) {
    group.publish(values, this.current);
  }

  get version(): number {
    return this.current;
  }

  /** Tells the participants the weights changed (after an optimizer step or a restore). */
  publish(): void {
    this.current++;
    this.group.publish(this.values, this.current);
  }

  save(): Float32Array {
    return this.values.slice();
  }

  restore(weights: Float32Array): void {
    this.values.set(weights);
    this.publish();
  }
}

/** The optimizer and its slots (Adam's moments, iterations); restoring continues it exactly. */
export class OptimizerSlot implements Stateful<OptimizerState> {
  private optimizer: Optimizer;
  private setRate: number | undefined;

  constructor(
    private readonly config: OptimizerConfig,
    private readonly size: number,
    /** The trainable variables' ranges, for the config's gradient clipping (none: the whole array is one). */
    private readonly variables: readonly VariableRange[] = [{ offset: 0, size }],
    /** The learning rate's schedule from config.learningRate, by iteration. */
    private readonly schedule?: LearningRateSchedule,
    /** The linear scaling rule's factor by iteration (1 without it). */
    private readonly scale: (iteration: number) => number = () => 1,
  ) {
    this.optimizer = createOptimizer(config, size);
  }

  /** One optimizer step on `weights` along `gradient` (clipped first where the config says, in place). */
  apply(weights: Float32Array, gradient: Float32Array): void {
    clipGradient(gradient, this.variables, this.config);
    this.optimizer.learningRate = this.learningRate;
    this.optimizer.apply(weights, gradient);
  }

  /** The rate the next step takes: one a callback set, else the schedule's at the current iteration. */
  get learningRate(): number {
    const i = this.optimizer.iterations;
    return this.setRate ?? scheduledRate(this.config.learningRate, this.schedule, i) * this.scale(i);
  }

  /** A callback's rate (ReduceLROnPlateau), kept from the next step on and in checkpoints. */
  setLearningRate(rate: number): void {
    if (this.schedule) throw new ConfigError(`the learning rate follows compile.learningRateSchedule (${this.schedule.name}); a callback cannot set it`);
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`a learning rate must be a positive number, got ${rate}`);
    this.setRate = rate;
  }

  save(): OptimizerState {
    return { ...this.optimizer.state(), ...(this.setRate !== undefined ? { learningRate: this.setRate } : {}) };
  }

  restore(state: OptimizerState): void {
    this.optimizer = createOptimizer(this.config, this.size, state);
    this.setRate = state.learningRate;
  }
}

/** The shuffle generator: its position is its whole state. */
export class ShuffleStream implements Stateful<number> {
  constructor(readonly rng: Rng) {}

  save(): number {
    return this.rng.position;
  }

  restore(position: number): void {
    this.rng.restore(position);
  }
}

/** The logs of the epochs so far. */
export class History<T> implements Stateful<readonly T[]> {
  readonly epochs: T[] = [];

  push(log: T): void {
    this.epochs.push(log);
  }

  save(): readonly T[] {
    return [...this.epochs];
  }

  restore(logs: readonly T[]): void {
    this.epochs.splice(0, this.epochs.length, ...logs);
  }
}
