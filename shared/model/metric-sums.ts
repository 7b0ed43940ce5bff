/**
 * Metrics as sums that add across participants, as Keras's stateful metrics keep them: a
 * per-sample metric is one sum (its value the mean), precision, recall and F1 are confusion
 * counts at the 0.5 threshold, AUC a histogram of the outputs over Keras's 200 fixed thresholds.
 * Every participant returns the sums of its own rows; the coordinator adds them in float64 and
 * turns the totals into values once (MetricLayout.values), so N participants report what one
 * process would.
 *
 * The sums are taken in float64 in plain JavaScript from the labels and the model's float32
 * outputs, after the forward pass (a handful of tensor ops per metric would cost more than the
 * step of a small model on wasm); each definition follows tfjs-layers' / Keras's and is tested
 * against it. Thresholded metrics read every output as one binary decision (Keras's AUC and
 * Precision with `multi_label=False`: a softmax output's units are flattened into one label each).
 *
 * Weighted metrics (Keras's `weighted_metrics`) take each row's weight into every sum: a
 * per-sample metric keeps the sum of weight x value and the sum of the weights (its value their
 * ratio, Keras's weighted Mean), a count metric and AUC's histogram count weights instead of ones.
 */
import { ConfigError } from '../errors.js';
import { MAX_METRIC_SUMS, METRICS, metricName, outputDim, type MetricConfig, type MetricName, type ModelSpec } from './spec.js';

/** The largest float32: no per-sample value computed in float32 exceeds it. */
export const FLT_MAX = 3.4028234663852886e38;

/** Keras's AUC thresholds for num_thresholds n: -1e-7, 1/(n-1), ..., (n-2)/(n-1), 1 + 1e-7. */
export function aucThresholds(n: number): number[] {
  const epsilon = 1e-7;
  const inner = Array.from({ length: n - 2 }, (_, i) => (i + 1) / (n - 1));
  return [0 - epsilon, ...inner, 1 + epsilon];
}
/** Keras's default thresholds (num_thresholds=200). */
export const AUC_THRESHOLDS: readonly number[] = aucThresholds(200);

/** One batch: `rows` rows of `units` labels and outputs, row-major. */
export interface MetricBatch {
  readonly y: ArrayLike<number>;
  readonly p: ArrayLike<number>;
  readonly rows: number;
  readonly units: number;
  /** Each row's weight, for a weighted metric; absent: every row counts once. */
  readonly w?: ArrayLike<number> | undefined;
}

export interface MetricKind {
  /** How many sums it takes. */
  readonly width: number;
  /** Adds the batch's sums into sums[at], ..., sums[at + width - 1]. */
  readonly add: (batch: MetricBatch, sums: number[], at: number) => void;
  /** The metric from the totals over `count` rows. */
  readonly value: (sums: ArrayLike<number>, count: number) => number;
  /** The largest a sum may be for `count` rows of `units` outputs (the smallest is 0). */
  readonly most: (count: number, units: number) => number;
  /** Whether larger is better (early stopping's and ReduceLROnPlateau's mode 'auto'). */
  readonly higherIsBetter: boolean;
  /** Counts outputs above thresholds as decisions against labels of 0 and 1 (needs a classifier's loss). */
  readonly thresholded?: true;
  /** A per-sample metric's value for row r (its sum is over rows). */
  readonly row?: (b: MetricBatch, r: number) => number;
  /** A per-sample metric's value from the sum of its rows' values and their number (or weight). */
  readonly mean?: (sum: number, count: number) => number;
}

const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);

/** A per-sample metric: the sum of its value per row, and the mean as its value. */
function perSample(row: (b: MetricBatch, r: number) => number, most: MetricKind['most'], higherIsBetter: boolean, mean = (s: number, n: number): number => s / n): MetricKind {
  return {
    width: 1,
    add: (b, sums, at) => {
      let s = 0;
      for (let r = 0; r < b.rows; r++) s += row(b, r);
      sums[at]! += s;
    },
    value: (s, n) => mean(s[0]!, n),
    most,
    higherIsBetter,
    row,
    mean,
  };
}

/** The row's weight in a batch (1 where the batch has none). */
const weightOf = (b: MetricBatch, r: number): number => (b.w ? b.w[r]! : 1);

const fraction: MetricKind['most'] = (n) => n;
const anyNonNegative: MetricKind['most'] = (n) => n * FLT_MAX;
const decisions: MetricKind['most'] = (n, units) => n * units;

/** The first index of the largest value in row r (tf.argMax's choice among ties). */
function argMax(v: ArrayLike<number>, r: number, units: number): number {
  let best = 0;
  for (let k = 1; k < units; k++) if (v[r * units + k]! > v[r * units + best]!) best = k;
  return best;
}

/** tfjs-layers' binaryAccuracy: the share of a row's outputs whose (output > threshold) equals its label (the threshold as float32, as Keras casts it to the outputs' type). */
const binaryAccuracy = (threshold: number) => {
  const t = Math.fround(threshold);
  return ({ y, p, units }: MetricBatch, r: number): number => {
    let right = 0;
    for (let k = r * units; k < (r + 1) * units; k++) right += y[k] === (p[k]! > t ? 1 : 0) ? 1 : 0;
    return right / units;
  };
};
/** tfjs-layers' categoricalAccuracy: whether the row's largest output is its label's. */
const categoricalAccuracy = ({ y, p, units }: MetricBatch, r: number): number => (argMax(y, r, units) === argMax(p, r, units) ? 1 : 0);
/** Keras's top_k_categorical_accuracy: the label's output among the k largest, ties in (tf.math.in_top_k). */
const inTop =
  (top: number) =>
  ({ y, p, units }: MetricBatch, r: number): number => {
    const truth = p[r * units + argMax(y, r, units)]!;
    let above = 0;
    for (let k = r * units; k < (r + 1) * units; k++) if (p[k]! > truth) above++;
    return above < top ? 1 : 0;
  };
/** The mean over a row's outputs of f(label - output). */
const rowMean =
  (f: (d: number) => number) =>
  ({ y, p, units }: MetricBatch, r: number): number => {
    let s = 0;
    for (let k = r * units; k < (r + 1) * units; k++) s += f(y[k]! - p[k]!);
    return s / units;
  };
const squaredError = rowMean((d) => d * d);
const absoluteError = rowMean(Math.abs);

/** A count metric at `threshold` (as float32): sums [true positives, predicted positives, actual positives] over every output. */
function counted(value: (tp: number, predicted: number, actual: number) => number, threshold: number): MetricKind {
  const t = Math.fround(threshold);
  return {
    width: 3,
    add: (b, sums, at) => {
      const { y, p, rows, units } = b;
      let tp = 0;
      let predicted = 0;
      let actual = 0;
      for (let r = 0; r < rows; r++) {
        const w = weightOf(b, r);
        for (let k = r * units; k < (r + 1) * units; k++) {
          const above = p[k]! > t ? w : 0;
          tp += above * y[k]!;
          predicted += above;
          actual += w * y[k]!;
        }
      }
      sums[at]! += tp;
      sums[at + 1]! += predicted;
      sums[at + 2]! += actual;
    },
    value: (s) => value(s[0]!, s[1]!, s[2]!),
    most: decisions,
    higherIsBetter: true,
    thresholded: true,
  };
}

/** How many of the (float32, ascending) thresholds an output is above: its bin in the AUC histogram. */
function binOf(output: number, thresholds: Float32Array): number {
  let lo = 0;
  let hi = thresholds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (output > thresholds[mid]!) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Sums for AUC over `thresholds` (float32): the outputs' histogram, labels first (bin b: outputs
 * above exactly b thresholds), then all outputs. An output above threshold i is in a bin past i,
 * so Keras's true and predicted positives at each threshold are sums over the bins.
 */
function addHistogram(thresholds: Float32Array): MetricKind['add'] {
  const bins = thresholds.length + 1;
  return (b, sums, at) => {
    const { y, p, rows, units } = b;
    for (let r = 0; r < rows; r++) {
      const w = weightOf(b, r);
      for (let k = r * units; k < (r + 1) * units; k++) {
        const bin = binOf(p[k]!, thresholds);
        sums[at + bin]! += w * y[k]!;
        sums[at + bins + bin]! += w;
      }
    }
  };
}

/** Confusion counts at each of `n` thresholds from the histogram. */
function countsAt(sums: ArrayLike<number>, n: number): { tp: number[]; fp: number[]; positives: number; negatives: number } {
  const bins = n + 1;
  const tp = new Array<number>(n);
  const fp = new Array<number>(n);
  let positives = 0;
  let outputs = 0;
  for (let b = bins - 1; b >= 0; b--) {
    positives += sums[b]!;
    outputs += sums[bins + b]!;
    if (b > 0) {
      tp[b - 1] = positives;
      fp[b - 1] = outputs - positives;
    }
  }
  return { tp, fp, positives, negatives: outputs - positives };
}

/** ROC AUC from the histogram of `n` thresholds, by Keras's trapezoids (summation_method 'interpolation'). */
function rocAuc(sums: ArrayLike<number>, n: number): number {
  const { tp, fp, positives, negatives } = countsAt(sums, n);
  let auc = 0;
  for (let i = 0; i + 1 < tp.length; i++) {
    const width = ratio(fp[i]!, negatives) - ratio(fp[i + 1]!, negatives);
    auc += (width * (ratio(tp[i]!, positives) + ratio(tp[i + 1]!, positives))) / 2;
  }
  return auc;
}

/** PR AUC from the histogram, by Keras's interpolation of precision between thresholds (Davis & Goadrich 2006). */
function prAuc(sums: ArrayLike<number>, n: number): number {
  const { tp, fp, positives } = countsAt(sums, n);
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

function auc(value: (sums: ArrayLike<number>, n: number) => number, n: number): MetricKind {
  return { width: 2 * (n + 1), add: addHistogram(Float32Array.from(aucThresholds(n))), value: (sums) => value(sums, n), most: decisions, higherIsBetter: true, thresholded: true };
}

/** Keras's defaults of the metrics' arguments. */
const METRIC_DEFAULTS = { k: 5, numThresholds: 200, threshold: 0.5 } as const;

/** Which arguments each metric takes (the others are refused in the config). */
export const METRIC_ARGUMENTS: Readonly<Record<MetricName, readonly (keyof typeof METRIC_DEFAULTS)[]>> = {
  accuracy: ['threshold'],
  binaryAccuracy: ['threshold'],
  categoricalAccuracy: [],
  topKCategoricalAccuracy: ['k'],
  meanSquaredError: [],
  rootMeanSquaredError: [],
  meanAbsoluteError: [],
  precision: ['threshold'],
  recall: ['threshold'],
  f1Score: ['threshold'],
  auc: ['numThresholds'],
  prAuc: ['numThresholds'],
};

/** The metric's sums and value for its arguments (Keras's defaults where absent). */
function makeKind(metric: MetricConfig): MetricKind {
  const { k, numThresholds, threshold } = { ...METRIC_DEFAULTS, ...(typeof metric === 'string' ? {} : metric) };
  switch (metricName(metric)) {
    case 'accuracy': {
      const binary = binaryAccuracy(threshold);
      return perSample((b, r) => (b.units === 1 ? binary(b, r) : categoricalAccuracy(b, r)), fraction, true);
    }
    case 'binaryAccuracy':
      return perSample(binaryAccuracy(threshold), fraction, true);
    case 'categoricalAccuracy':
      return perSample(categoricalAccuracy, fraction, true);
    case 'topKCategoricalAccuracy':
      return perSample(inTop(k), fraction, true);
    case 'meanSquaredError':
      return perSample(squaredError, anyNonNegative, false);
    case 'rootMeanSquaredError':
      return perSample(squaredError, anyNonNegative, false, (s, n) => Math.sqrt(s / n));
    case 'meanAbsoluteError':
      return perSample(absoluteError, anyNonNegative, false);
    case 'precision':
      return counted((tp, predicted) => ratio(tp, predicted), threshold);
    case 'recall':
      return counted((tp, _predicted, actual) => ratio(tp, actual), threshold);
    case 'f1Score':
      return counted((tp, predicted, actual) => ratio(2 * tp, predicted + actual), threshold);
    case 'auc':
      return auc(rocAuc, numThresholds);
    case 'prAuc':
      return auc(prAuc, numThresholds);
  }
}

/** Each metric with Keras's default arguments. */
export const METRIC_KINDS = Object.fromEntries(METRICS.map((name) => [name, makeKind(name)])) as Readonly<Record<MetricName, MetricKind>>;

/** Any finite sum of non-negative weights times values: what a weighted sum may be. */
const weightedMost: MetricKind['most'] = (n, units) => n * units * FLT_MAX;

/**
 * The weighted form of a metric (Keras's `weighted_metrics`): a per-sample metric sums weight x
 * value and the weights, its value their ratio (0 where the weights sum to 0, Keras's
 * divide_no_nan); a count metric and AUC count each row's weight.
 */
function weightedKind(kind: MetricKind): MetricKind {
  const { row, mean } = kind;
  if (!row || !mean) return { ...kind, most: weightedMost };
  return {
    width: 2,
    add: (b, sums, at) => {
      let s = 0;
      let total = 0;
      for (let r = 0; r < b.rows; r++) {
        const w = weightOf(b, r);
        s += w * row(b, r);
        total += w;
      }
      sums[at]! += s;
      sums[at + 1]! += total;
    },
    value: (s) => (s[1] === 0 ? 0 : mean(s[0]!, s[1]!)),
    most: weightedMost,
    higherIsBetter: kind.higherIsBetter,
  };
}

/** A metric's kind, plain or weighted, for its arguments. */
function kindOf(metric: MetricConfig, weighted: boolean): MetricKind {
  const kind = typeof metric === 'string' ? METRIC_KINDS[metric] : makeKind(metric);
  return weighted ? weightedKind(kind) : kind;
}

/** Where a batch's rows' weights come from: their sample weights, and whether they are training rows (class weights apply). */
export interface RowWeights {
  readonly sample?: ArrayLike<number> | undefined;
  readonly training: boolean;
}

/** How many sums a model's metrics take, plain and weighted: what travels with every gradient. */
export function metricSumsWidth(metrics: readonly MetricConfig[], weightedMetrics: readonly MetricConfig[] = []): number {
  return metrics.reduce((a, m) => a + kindOf(m, false).width, 0) + weightedMetrics.reduce((a, m) => a + kindOf(m, true).width, 0);
}

/** A metric as a layout holds it: the name it is reported under, how it sums, whether weighted. */
interface LayoutEntry {
  readonly key: string;
  readonly kind: MetricKind;
  readonly weighted: boolean;
  /** Offset of its first sum. */
  readonly offset: number;
}

/**
 * The names metrics are reported under (history, summary, Prometheus): each metric's name, then
 * each weighted metric's, `weighted_<name>` where the plain one is also there (Keras 3's rule).
 */
export function metricKeys(metrics: readonly MetricConfig[], weightedMetrics: readonly MetricConfig[] = []): string[] {
  const plain = metrics.map(metricName);
  return [...plain, ...weightedMetrics.map(metricName).map((name) => (plain.includes(name) ? `weighted_${name}` : name))];
}

/**
 * Where each of a model's metrics keeps its sums in the flat array that travels with every
 * gradient and evaluation, and how the totals become values.
 */
export class MetricLayout {
  private readonly entries: LayoutEntry[] = [];
  /** How many sums in all. */
  readonly width: number;
  /** The names the values are reported under, in order. */
  readonly keys: readonly string[];

  constructor(
    names: readonly MetricConfig[],
    private readonly units: number,
    /** Where the outputs are logits (a loss with fromLogits): the activation that makes them probabilities for the metrics. */
    private readonly outputActivation?: 'sigmoid' | 'softmax',
    /** Metrics weighted by each row's weight (Keras's weighted_metrics). */
    private readonly weightedNames: readonly MetricConfig[] = [],
    /** Each class's weight, by class index (training rows' weights include it, as Keras's class_weight). */
    private readonly classWeights?: readonly number[],
  ) {
    this.keys = metricKeys(names, weightedNames);
    const all = [...names.map((metric) => ({ metric, weighted: false })), ...weightedNames.map((metric) => ({ metric, weighted: true }))];
    let at = 0;
    all.forEach(({ metric, weighted }, i) => {
      const kind = kindOf(metric, weighted);
      this.entries.push({ key: this.keys[i]!, kind, weighted, offset: at });
      at += kind.width;
    });
    if (at > MAX_METRIC_SUMS) throw new ConfigError(`compile.metrics${weightedNames.length > 0 ? ' and compile.weightedMetrics' : ''}: ${this.keys.join(', ')} take ${at} sums, at most ${MAX_METRIC_SUMS} may travel`);
    this.width = at;
  }

  /**
   * The sums of `rows` rows: labels `y` and the model's outputs `p`, row-major. Weighted metrics
   * weigh each row by its sample weight (1 where absent) times, in training, its class's weight.
   */
  sums(y: ArrayLike<number>, p: ArrayLike<number>, rows: number, weights: RowWeights): number[] {
    const sums = new Array<number>(this.width).fill(0);
    const batch: MetricBatch = { y, p: this.outputActivation ? probabilities(p, rows, this.units, this.outputActivation) : p, rows, units: this.units };
    const weighted = this.weightedNames.length > 0 ? { ...batch, w: this.rowWeights(y, rows, weights) } : batch;
    for (const e of this.entries) e.kind.add(e.weighted ? weighted : batch, sums, e.offset);
    return sums;
  }

  /** Each row's weight: its sample weight times, in training, its class's weight (float64). */
  private rowWeights(y: ArrayLike<number>, rows: number, weights: RowWeights): Float64Array {
    const w = weights.sample ? Float64Array.from({ length: rows }, (_, r) => weights.sample![r]!) : new Float64Array(rows).fill(1);
    const classes = weights.training ? this.classWeights : undefined;
    if (!classes) return w;
    for (let r = 0; r < rows; r++) {
      if (this.units === 1) {
        w[r]! *= classes[0]! + y[r]! * (classes[1]! - classes[0]!);
        continue;
      }
      let c = 0;
      for (let k = 0; k < this.units; k++) c += y[r * this.units + k]! * classes[k]!;
      w[r]! *= c;
    }
    return w;
  }

  /** Each metric's value from the totals over `count` rows, by its reported name. */
  values(sums: ArrayLike<number>, count: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.entries) out[e.key] = e.kind.value(sliceOf(sums, e.offset, e.kind.width), count);
    return out;
  }

  /** The metric a sum belongs to, and the most it may be for `count` rows. */
  bound(index: number, count: number): { readonly name: string; readonly most: number } {
    let k = this.entries.length - 1;
    while (k > 0 && this.entries[k]!.offset > index) k--;
    const e = this.entries[k]!;
    return { name: e.key, most: e.kind.most(count, this.units) };
  }
}

/** sigmoid of each output, or softmax of each row, in float64. */
function probabilities(p: ArrayLike<number>, rows: number, units: number, activation: 'sigmoid' | 'softmax'): Float64Array {
  const out = new Float64Array(rows * units);
  if (activation === 'sigmoid') {
    for (let k = 0; k < out.length; k++) out[k] = 1 / (1 + Math.exp(-p[k]!));
    return out;
  }
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let k = r * units; k < (r + 1) * units; k++) max = Math.max(max, p[k]!);
    let total = 0;
    for (let k = r * units; k < (r + 1) * units; k++) total += out[k] = Math.exp(p[k]! - max);
    for (let k = r * units; k < (r + 1) * units; k++) out[k]! /= total;
  }
  return out;
}

function sliceOf(sums: ArrayLike<number>, from: number, width: number): number[] {
  return Array.from({ length: width }, (_, i) => sums[from + i]!);
}

/** Adds `b`'s sums into `a`. */
export function addSums(a: number[], b: readonly number[]): void {
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
}

/** Whether larger is better for a monitored quantity ('val_auc', 'weighted_auc', 'loss'), as Keras's mode 'auto' reads it. */
export function higherIsBetter(monitor: string): boolean {
  const name = monitor.replace(/^val_/, '').replace(/^weighted_/, '');
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
  if (!layout) {
    const logits = spec.lossOptions?.fromLogits ? (spec.loss === 'binaryCrossentropy' ? 'sigmoid' : 'softmax') : undefined;
    layouts.set(spec, (layout = new MetricLayout(spec.metrics, outputDim(spec), logits, spec.weightedMetrics, spec.classWeights)));
  }
  return layout;
}
