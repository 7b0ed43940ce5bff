/**
 * The two layers whose training output depends on more than a row's own values, built for
 * gradient engines in place of tfjs-layers' Dropout and BatchNormalization, so that the split of
 * a batch cannot change the model:
 * - SeededDropout: the mask of each row comes from (seed, step, training row), not a stream
 *   (math/dropout-mask.ts).
 * - GhostBatchNormalization: batch statistics over each virtual batch (ghost batch norm), the
 *   rows of one group; the moving statistics are not written here but handed to the engine
 *   (`BatchRows.statistics`), which sends them with the gradient; the step sets them once.
 * Their inference is the stock layers' (identity; the moving statistics), and saved models use
 * the stock layers (build.ts), so `tf.loadLayersModel` reads them.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ModelError } from '../errors.js';
import { dropoutMask } from '../math/dropout-mask.js';

/** Which rows a training call computes: set by the engine before each gradient. */
export interface BatchRows {
  readonly step: number;
  /** Training row of each sample, in the order of the batch's x. */
  readonly rows: Int32Array;
  /** Virtual batch of each sample (any integer; equal for the rows of one group). */
  readonly groups?: Int32Array;
  /** Keras's sample_weight of each sample (data.sampleWeight), in the batch's order; absent: all 1. */
  readonly weights?: Float32Array;
}

/**
 * What the layers of one model share during a training call: the rows, and the moving-statistic
 * targets each batch-norm layer computed (per channel, the count-weighted mean over its virtual
 * batches of their mean and variance), by layer name.
 */
export class RowContext {
  private current: BatchRows | undefined;
  private segments: { ids: tf.Tensor1D; rowsPerGroup: tf.Tensor; groups: number } | undefined;
  readonly statistics = new Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D }>();

  /** Sets the rows of the next training call (and forgets the last call's statistics). */
  begin(rows: BatchRows, count: number): void {
    if (rows.rows.length !== count) throw new ModelError(`the batch has ${count} samples but ${rows.rows.length} row ids`);
    if (rows.groups && rows.groups.length !== count) throw new ModelError(`the batch has ${count} samples but ${rows.groups.length} virtual-batch ids`);
    this.end();
    this.current = rows;
  }

  /** Disposes what the last call left. */
  end(): void {
    for (const { mean, variance } of this.statistics.values()) tf.dispose([mean, variance]);
    this.statistics.clear();
    if (this.segments) tf.dispose([this.segments.ids, this.segments.rowsPerGroup]);
    this.segments = undefined;
    this.current = undefined;
  }

  rows(layer: string): BatchRows {
    if (!this.current) throw new ModelError(`${layer} needs the rows of the batch in training (the engine got none)`);
    return this.current;
  }

  /** The virtual batches as dense segment ids 0..groups-1 and the rows in each (kept across the call). */
  groups(layer: string): { ids: tf.Tensor1D; rowsPerGroup: tf.Tensor; groups: number } {
    if (this.segments) return this.segments;
    const groups = this.rows(layer).groups;
    if (!groups) throw new ModelError(`${layer} needs the virtual batch of each row in training (the engine got none)`);
    const dense = new Map<number, number>();
    const ids = new Int32Array(groups.length);
    const counts: number[] = [];
    groups.forEach((g, i) => {
      let id = dense.get(g);
      if (id === undefined) {
        id = counts.length;
        dense.set(g, id);
        counts.push(0);
      }
      ids[i] = id;
      counts[id]!++;
    });
    this.segments = tf.tidy(() => ({
      ids: tf.keep(tf.tensor1d(ids, 'int32')),
      rowsPerGroup: tf.keep(tf.tensor2d(counts, [counts.length, 1])),
      groups: counts.length,
    }));
    return this.segments;
  }
}

type Kwargs = Record<string, unknown>;

function one(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0]! : inputs;
}

/** The context SeededDropout.fromConfig gives the layers it makes (set while a tfjs-layers model is built from its config). */
let building: RowContext | undefined;

/** Runs `build` with `context` as the row context of the SeededDropout layers deserialised meanwhile. */
export function withRowContext<T>(context: RowContext, build: () => T): T {
  building = context;
  try {
    return build();
  } finally {
    building = undefined;
  }
}

export class SeededDropout extends tfl.layers.Layer {
  static readonly className = 'SeededDropout';

  /** For a user's tfjs-layers model whose Dropout layers keras-model.ts turned into SeededDropout. */
  static override fromConfig<T extends tf.serialization.Serializable>(_cls: tf.serialization.SerializableConstructor<T>, config: tf.serialization.ConfigDict): T {
    if (!building) throw new ModelError('a SeededDropout layer is built only with the rows of a training call (withRowContext)');
    return new SeededDropout({ name: String(config['name']), rate: Number(config['rate']), seed: Number(config['seed']) }, building) as unknown as T;
  }
  private readonly rate: number;
  private readonly seed: number;

  constructor(args: { name: string; rate: number; seed: number }, private readonly context: RowContext) {
    super({ name: args.name });
    this.rate = args.rate;
    this.seed = args.seed;
  }

  override computeOutputShape(shape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = one(inputs);
    if (kwargs['training'] !== true || this.rate === 0) return tf.clone(x);
    const { step, rows } = this.context.rows(this.name);
    const perRow = x.size / x.shape[0]!;
    const mask = tf.tensor(dropoutMask(this.seed, step, rows, perRow, this.rate), x.shape);
    return tf.mul(x, mask);
  }

  override getClassName(): string {
    return SeededDropout.className;
  }
}

export class GhostBatchNormalization extends tfl.layers.Layer {
  static readonly className = 'GhostBatchNormalization';
  private readonly epsilon: number;
  private gamma!: tfl.LayerVariable;
  private beta!: tfl.LayerVariable;
  private movingMean!: tfl.LayerVariable;
  private movingVariance!: tfl.LayerVariable;

  constructor(args: { name: string; epsilon: number }, private readonly context: RowContext) {
    super({ name: args.name });
    this.epsilon = args.epsilon;
  }

  override build(shape: tfl.Shape | tfl.Shape[]): void {
    const s = (Array.isArray(shape[0]) ? shape[0] : shape) as tfl.Shape;
    const channels = [s[s.length - 1]!];
    this.gamma = this.addWeight('gamma', channels, 'float32', tfl.initializers.ones(), undefined, true);
    this.beta = this.addWeight('beta', channels, 'float32', tfl.initializers.zeros(), undefined, true);
    this.movingMean = this.addWeight('moving_mean', channels, 'float32', tfl.initializers.zeros(), undefined, false);
    this.movingVariance = this.addWeight('moving_variance', channels, 'float32', tfl.initializers.ones(), undefined, false);
    this.built = true;
  }

  override computeOutputShape(shape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = one(inputs);
    const gamma = this.gamma.read();
    const beta = this.beta.read();
    if (kwargs['training'] !== true) return tf.batchNorm(x, this.movingMean.read(), this.movingVariance.read(), beta, gamma, this.epsilon);
    const { ids, rowsPerGroup, groups } = this.context.groups(this.name);
    const n = x.shape[0]!;
    const channels = x.shape[x.rank - 1]!;
    const perRow = x.size / n / channels;
    const x3 = tf.reshape(x, [n, perRow, channels]);
    // mean and variance of each virtual batch over its rows and positions, as tf.moments takes them
    const valuesPerGroup = tf.mul(rowsPerGroup, perRow);
    const mean = tf.div(tf.unsortedSegmentSum(tf.sum(x3, 1), ids, groups), valuesPerGroup);
    const centred = tf.sub(x3, tf.reshape(tf.gather(mean, ids), [n, 1, channels]));
    const variance = tf.div(tf.unsortedSegmentSum(tf.sum(tf.square(centred), 1), ids, groups), valuesPerGroup);
    const scale = tf.mul(tf.rsqrt(tf.add(tf.reshape(tf.gather(variance, ids), [n, 1, channels]), this.epsilon)), gamma);
    const normed = tf.add(tf.mul(centred, scale), beta);
    // the moving statistics' targets: count-weighted means over the virtual batches
    this.context.statistics.set(this.name, {
      mean: tf.keep(tf.div(tf.sum(tf.mul(mean, rowsPerGroup), 0), n)) as tf.Tensor1D,
      variance: tf.keep(tf.div(tf.sum(tf.mul(variance, rowsPerGroup), 0), n)) as tf.Tensor1D,
    });
    return tf.reshape(normed, x.shape);
  }

  override getClassName(): string {
    return GhostBatchNormalization.className;
  }
}

tf.serialization.registerClass(SeededDropout);
