/**
 * Metrics as sums that add across participants, as Keras's stateful metrics keep them: a
 * per-sample metric is one sum (its value the mean), precision, recall and F1 are confusion
 * counts at the 0.5 threshold, AUC the counts at Keras's 200 fixed thresholds. Every participant
 * returns the sums of its own rows; the coordinator adds them in float64 and turns the totals into
 * values once (MetricLayout.values), so N participants report what one process would.
 *
 * Thresholded metrics read every output as one binary decision (Keras's AUC and Precision with
 * `multi_label=False`: a softmax output's units are flattened into one label each); their sums are
 * integers, exact in float32 up to 2^24 per participant and call.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ConfigError } from '../errors.js';
import { MAX_METRIC_SUMS, outputDim, type MetricName, type ModelSpec } from './spec.js';

const FLT_MAX = 3.4028234663852886e38;

/** Keras's AUC thresholds (num_thresholds=200): -1e-7, 1/199, ..., 198/199, 1 + 1e-7. */
export const AUC_THRESHOLDS: readonly number[] = (() => {
  const n = 200;
  const epsilon = 1e-7;
  const inner = Array.from({ length: n - 2 }, (_, i) => (i + 1) / (n - 1));
  return [0 - epsilon, ...inner, 1 + epsilon];
})();


type SumsFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

export interface MetricKind {
  /** How many sums it takes. */
  readonly width: number;
  /** The batch's sums, `width` values (a tensor of any shape, read flat); `units`: the model's outputs. */
  readonly sums: (units: number) => SumsFn;
  /** The metric from the totals over `count` rows. */
  readonly value: (sums: ArrayLike<number>, count: number) => number;
  /** The largest a sum may be for `count` rows of `units` outputs (the smallest is 0 unless `signed`). */
  readonly most: (count: number, units: number) => number;
  /** Whether larger is better (early stopping's and ReduceLROnPlateau's mode 'auto'). */
  readonly higherIsBetter: boolean;
}

const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);

/** A per-sample metric: its sum, and the mean as its value. */
function perSample(fn: (units: number) => SumsFn, most: MetricKind['most'], higherIsBetter: boolean, value = (s: number, n: number): number => s / n): MetricKind {
  return { width: 1, sums: (units) => (t, p) => tf.sum(fn(units)(t, p)), value: (s, n) => value(s[0]!, n), most, higherIsBetter };
}

const fraction: MetricKind['most'] = (n) => n;
const anyNonNegative: MetricKind['most'] = (n) => n * FLT_MAX;
const decisions: MetricKind['most'] = (n, units) => n * units;

/** [true positives, predicted positives, actual positives] at `threshold`, over every output. */
function confusion(t: tf.Tensor, p: tf.Tensor, threshold: number): tf.Tensor {
  const y = tf.reshape(t, [-1]);
  const above = tf.cast(tf.greater(tf.reshape(p, [-1]), threshold), 'float32');
  return tf.stack([tf.sum(tf.mul(y, above)), tf.sum(above), tf.sum(y)]);
}

/** A count metric at 0.5: sums [tp, predicted positives, actual positives]. */
function counted(value: (tp: number, predicted: number, actual: number) => number): MetricKind {
  return {
    width: 3,
    sums: () => (t, p) => confusion(t, p, 0.5),
    value: (s) => value(s[0]!, s[1]!, s[2]!),
    most: decisions,
    higherIsBetter: true,
  };
}

/**
 * Sums for AUC: true positives at each threshold, predicted positives at each, then the positives
 * and the outputs in all (an output below the first threshold, possible without a sigmoid, is
 * still counted).
 */
function thresholdCounts(t: tf.Tensor, p: tf.Tensor): tf.Tensor {
  const y = tf.reshape(t, [1, -1]);
  const above = tf.cast(tf.greater(tf.reshape(p, [-1, 1]), tf.tensor2d(AUC_THRESHOLDS as number[], [1, AUC_THRESHOLDS.length])), 'float32');
  return tf.concat([tf.reshape(tf.matMul(y, above), [-1]), tf.sum(above, 0), tf.reshape(tf.sum(y), [1]), tf.tensor1d([y.size])]);
}

/** Confusion counts at each AUC threshold from thresholdCounts's sums. */
function countsAt(sums: ArrayLike<number>): { tp: number[]; fp: number[]; positives: number; negatives: number } {
  const n = AUC_THRESHOLDS.length;
  const tp = Array.from({ length: n }, (_, i) => sums[i]!);
  const fp = Array.from({ length: n }, (_, i) => sums[n + i]! - sums[i]!);
  const positives = sums[2 * n]!;
  return { tp, fp, positives, negatives: sums[2 * n + 1]! - positives };
}

/** ROC AUC from the counts, by Keras's trapezoids (summation_method 'interpolation'). */
export function rocAuc(sums: ArrayLike<number>): number {
  const { tp, fp, positives, negatives } = countsAt(sums);
  let auc = 0;
  for (let i = 0; i + 1 < tp.length; i++) {
    const width = ratio(fp[i]!, negatives) - ratio(fp[i + 1]!, negatives);
    auc += (width * (ratio(tp[i]!, positives) + ratio(tp[i + 1]!, positives))) / 2;
  }
  return auc;
}

/** PR AUC from the counts, by Keras's interpolation of precision between thresholds (Davis & Goadrich 2006). */
export function prAuc(sums: ArrayLike<number>): number {
  const { tp, fp, positives } = countsAt(sums);
  let auc = 0;
  for (let i = 0; i + 1 < tp.length; i++) {
    const dtp = tp[i]! - tp[i + 1]!;
    const p0 = tp[i]! + fp[i]!;
    const p1 = tp[i + 1]! + fp[i + 1]!;
    const slope = ratio(dtp, Math.max(p0 - p1, 0));
    const intercept = tp[i + 1]! - slope * p1;
    const pRatio = p0 > 0 && p1 > 0 ? ratio(p0, Math.max(p1, 0)) : 1;
    auc += ratio(slope * (dtp + intercept * Math.log(pRatio)), Math.max(positives, 0));
  }
  return auc;
}

function auc(value: (sums: ArrayLike<number>) => number): MetricKind {
  return { width: 2 * AUC_THRESHOLDS.length + 2, sums: () => thresholdCounts, value, most: decisions, higherIsBetter: true };
}

/** Whether the true class is among the `k` highest outputs, per sample (Keras's top_k_categorical_accuracy). */
function inTopK(k: number): SumsFn {
  return (t, p) => {
    const units = p.shape[p.shape.length - 1]!;
    if (units <= k) return tf.onesLike(tf.sum(p, -1));
    const kth = tf.slice(tf.topk(p, k).values, [0, k - 1], [-1, 1]);
    const truth = tf.sum(tf.mul(t, p), -1, true);
    return tf.reshape(tf.cast(tf.greaterEqual(truth, kth), 'float32'), [-1]);
  };
}

export const METRIC_KINDS: Readonly<Record<MetricName, MetricKind>> = {
  accuracy: perSample((units) => (units === 1 ? (t, p) => tfl.metrics.binaryAccuracy(t, p) : (t, p) => tfl.metrics.categoricalAccuracy(t, p)), fraction, true),
  binaryAccuracy: perSample(() => (t, p) => tfl.metrics.binaryAccuracy(t, p), fraction, true),
  categoricalAccuracy: perSample(() => (t, p) => tfl.metrics.categoricalAccuracy(t, p), fraction, true),
  topKCategoricalAccuracy: perSample(() => inTopK(5), fraction, true),
  meanSquaredError: perSample(() => (t, p) => tfl.metrics.meanSquaredError(t, p), anyNonNegative, false),
  rootMeanSquaredError: perSample(() => (t, p) => tfl.metrics.meanSquaredError(t, p), anyNonNegative, false, (s, n) => Math.sqrt(s / n)),
  meanAbsoluteError: perSample(() => (t, p) => tfl.metrics.meanAbsoluteError(t, p), anyNonNegative, false),
  precision: counted((tp, predicted) => ratio(tp, predicted)),
  recall: counted((tp, _predicted, actual) => ratio(tp, actual)),
  f1Score: counted((tp, predicted, actual) => ratio(2 * tp, predicted + actual)),
  auc: auc(rocAuc),
  prAuc: auc(prAuc),
};

/**
 * Where each of a model's metrics keeps its sums in the flat array that travels with every
 * gradient and evaluation, and how the totals become values.
 */
export class MetricLayout {
  /** Offset of each metric's first sum. */
  private readonly offsets: number[] = [];
  /** How many sums in all. */
  readonly width: number;

  constructor(
    readonly names: readonly MetricName[],
    private readonly units: number,
  ) {
    let at = 0;
    for (const name of names) {
      this.offsets.push(at);
      at += METRIC_KINDS[name].width;
    }
    if (at > MAX_METRIC_SUMS) throw new ConfigError(`compile.metrics: ${names.join(', ')} take ${at} sums, at most ${MAX_METRIC_SUMS} may travel`);
    this.width = at;
  }

  /** The batch's sums, one flat tensor of `width` values (call inside a tidy). */
  sums(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor1D {
    if (this.width === 0) return tf.zeros([0]);
    return tf.concat(this.names.map((name) => tf.reshape(METRIC_KINDS[name].sums(this.units)(yTrue, yPred), [-1]))) as tf.Tensor1D;
  }

  /** Each metric's value from the totals over `count` rows. */
  values(sums: ArrayLike<number>, count: number): Record<string, number> {
    const out: Record<string, number> = {};
    this.names.forEach((name, k) => {
      const kind = METRIC_KINDS[name];
      out[name] = kind.value(sliceOf(sums, this.offsets[k]!, kind.width), count);
    });
    return out;
  }

  /** The metric a sum belongs to, and the most it may be for `count` rows. */
  bound(index: number, count: number): { readonly name: MetricName; readonly most: number } {
    let k = this.offsets.length - 1;
    while (k > 0 && this.offsets[k]! > index) k--;
    const name = this.names[k]!;
    return { name, most: METRIC_KINDS[name].most(count, this.units) };
  }
}

function sliceOf(sums: ArrayLike<number>, from: number, width: number): number[] {
  return Array.from({ length: width }, (_, i) => sums[from + i]!);
}

/** Adds `b`'s sums into `a`. */
export function addSums(a: number[], b: readonly number[]): void {
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
}

/** Whether larger is better for a monitored quantity ('val_auc', 'loss'), as Keras's mode 'auto' reads it. */
export function higherIsBetter(monitor: string): boolean {
  const name = monitor.replace(/^val_/, '');
  return Object.hasOwn(METRIC_KINDS, name) ? METRIC_KINDS[name as MetricName].higherIsBetter : false;
}

/** The element-wise total of participants' metric sums, `width` of them. */
export function totalSums(width: number, parts: readonly { readonly metricSums: readonly number[] }[]): number[] {
  const total = new Array<number>(width).fill(0);
  for (const p of parts) addSums(total, p.metricSums);
  return total;
}

const layouts = new WeakMap<ModelSpec, MetricLayout>();

/** The spec's metric layout, made once per spec. */
export function metricLayoutOf(spec: ModelSpec): MetricLayout {
  let layout = layouts.get(spec);
  if (!layout) layouts.set(spec, (layout = new MetricLayout(spec.metrics, outputDim(spec))));
  return layout;
}
