/**
 * Metrics as sums (shared/model/metric-sums.ts): each metric's value from its sums against a
 * float64 reference of Keras's definition, sums that add exactly across any split of the rows,
 * and the config's refusals.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../index.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { AUC_THRESHOLDS, aucThresholds, higherIsBetter, metricKeys, MetricLayout, type RowWeights } from '../shared/model/metric-sums.js';
import { METRICS, type MetricName } from '../shared/model/spec.js';
import { Rng } from '../shared/math/rng.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** The sums of a batch, its outputs as the float32 a model gives. */
function sumsOf(layout: MetricLayout, y: number[], p: number[], units: number, weights: RowWeights = { training: false }): number[] {
  return layout.sums(Float32Array.from(y), Float32Array.from(p), y.length / units, weights);
}

/** The exact ROC AUC (Mann-Whitney): the share of (positive, negative) pairs ranked right, ties half. */
function exactRocAuc(y: number[], p: number[]): number {
  let right = 0;
  let pairs = 0;
  y.forEach((yi, i) => {
    if (yi !== 1) return;
    y.forEach((yj, j) => {
      if (yj !== 0) return;
      pairs++;
      right += p[i]! > p[j]! ? 1 : p[i] === p[j] ? 0.5 : 0;
    });
  });
  return right / pairs;
}

describe('metric values', () => {
  const y = [1, 0, 1, 1, 0, 0, 1, 0, 0, 0];
  const p = [0.9, 0.8, 0.7, 0.4, 0.45, 0.2, 0.55, 0.05, 0.6, 0.3];

  it('precision, recall and F1 count outputs above 0.5 (Keras)', () => {
    const layout = new MetricLayout(['precision', 'recall', 'f1Score'], 1);
    const v = layout.values(sumsOf(layout, y, p, 1), y.length);
    // above 0.5: 0.9 (1), 0.8 (0), 0.7 (1), 0.55 (1), 0.6 (0): tp 3, fp 2; positives 4
    expect(v['precision']).toBe(3 / 5);
    expect(v['recall']).toBe(3 / 4);
    expect(v['f1Score']).toBeCloseTo((2 * 3) / (5 + 4), 15);
  });

  it('ROC AUC equals the exact AUC when no two outputs share a threshold bin', () => {
    const layout = new MetricLayout(['auc'], 1);
    const v = layout.values(sumsOf(layout, y, p, 1), y.length);
    expect(v['auc']).toBeCloseTo(exactRocAuc(y, p), 12);
    expect(exactRocAuc(y, p)).toBeCloseTo(18 / 24, 12);
  });

  it('AUCs of a perfect ranking, a constant output and an all-wrong ranking', () => {
    const layout = new MetricLayout(['auc', 'prAuc'], 1);
    const perfect = layout.values(sumsOf(layout, [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1), 4);
    expect(perfect['auc']).toBeCloseTo(1, 12);
    expect(perfect['prAuc']).toBeCloseTo(1, 12);
    const constant = layout.values(sumsOf(layout, [0, 1, 0, 0], [0.5, 0.5, 0.5, 0.5], 1), 4);
    expect(constant['auc']).toBeCloseTo(0.5, 12);
    // one threshold step from (recall 1, precision 1/4) to (0, -): the interpolated area is 1/4
    expect(constant['prAuc']).toBeCloseTo(0.25, 12);
    const wrong = layout.values(sumsOf(layout, [1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 1), 4);
    expect(wrong['auc']).toBeCloseTo(0, 12);
  });

  it('PR AUC follows Keras interpolation between thresholds (float64 reference of its formula)', () => {
    const rng = new Rng(7);
    const n = 500;
    const ys: number[] = Array.from({ length: n }, () => (rng.next() < 0.3 ? 1 : 0));
    const ps = ys.map((v) => Math.min(1, Math.max(0, 0.35 * v + 0.65 * rng.next())));
    const layout = new MetricLayout(['prAuc'], 1);
    const got = layout.values(sumsOf(layout, ys, ps, 1), n)['prAuc']!;
    // Keras: tp, fp at each threshold from the outputs directly, then interpolate_pr_auc
    const tp = AUC_THRESHOLDS.map((t) => ys.reduce((a, v, i) => a + (v === 1 && Math.fround(ps[i]!) > Math.fround(t) ? 1 : 0), 0));
    const fp = AUC_THRESHOLDS.map((t) => ys.reduce((a, v, i) => a + (v === 0 && Math.fround(ps[i]!) > Math.fround(t) ? 1 : 0), 0));
    const positives = ys.reduce((a, v) => a + v, 0);
    let want = 0;
    for (let i = 0; i + 1 < tp.length; i++) {
      const dtp = tp[i]! - tp[i + 1]!;
      const p0 = tp[i]! + fp[i]!;
      const p1 = tp[i + 1]! + fp[i + 1]!;
      const slope = p0 - p1 > 0 ? dtp / (p0 - p1) : 0;
      const intercept = tp[i + 1]! - slope * p1;
      const ratio = p0 > 0 && p1 > 0 ? p0 / p1 : 1;
      want += (slope * (dtp + intercept * Math.log(ratio))) / positives;
    }
    expect(got).toBeCloseTo(want, 12);
    expect(got).toBeGreaterThan(0.3);
  });

  it('top-5 categorical accuracy: the true class among the five highest outputs, ties in', () => {
    const layout = new MetricLayout(['topKCategoricalAccuracy'], 7);
    const row = (hot: number): number[] => Array.from({ length: 7 }, (_, k) => (k === hot ? 1 : 0));
    const p = [
      [0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05], // class 6 is last
      [0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05], // class 4 ties the fifth: in
      [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.94],
    ];
    const v = layout.values(sumsOf(layout, [...row(6), ...row(4), ...row(6)], p.flat(), 7), 3);
    expect(v['topKCategoricalAccuracy']).toBeCloseTo(2 / 3, 12);
  });

  it("arguments as Keras's: top-k's k, AUC's numThresholds, the threshold of binary accuracy, precision, recall and F1", () => {
    const row = (hot: number): number[] => Array.from({ length: 7 }, (_, k) => (k === hot ? 1 : 0));
    const p7 = [0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05];
    const top3 = new MetricLayout([{ name: 'topKCategoricalAccuracy', k: 3 }], 7);
    // class 2 is third (in), class 4 ties the fourth (out), class 1 second (in)
    expect(top3.values(sumsOf(top3, [...row(2), ...row(4), ...row(1)], [...p7, ...p7, ...p7], 7), 3)['topKCategoricalAccuracy']).toBeCloseTo(2 / 3, 12);
    const low = new MetricLayout([{ name: 'precision', threshold: 0.3 }, { name: 'recall', threshold: 0.3 }, { name: 'f1Score', threshold: 0.3 }, { name: 'binaryAccuracy', threshold: 0.3 }], 1);
    const v = low.values(sumsOf(low, y, p, 1), y.length);
    // above 0.3 (0.3 itself is not, in float32 as in Keras): 0.9 (1), 0.8 (0), 0.7 (1), 0.4 (1), 0.45 (0), 0.55 (1), 0.6 (0): tp 4, fp 3; positives 4; right 4 + 3 negatives below
    expect(v['precision']).toBe(4 / 7);
    expect(v['recall']).toBe(1);
    expect(v['f1Score']).toBeCloseTo(8 / 11, 15);
    expect(v['binaryAccuracy']).toBeCloseTo(7 / 10, 15);
  });

  it('ROC AUC over numThresholds 50: Keras\'s trapezoids over its thresholds (float64 reference)', () => {
    const rng = new Rng(17);
    const n = 400;
    const ys: number[] = Array.from({ length: n }, () => (rng.next() < 0.35 ? 1 : 0));
    const ps = ys.map((v) => Math.min(1, Math.max(0, 0.3 * v + 0.7 * rng.next())));
    const layout = new MetricLayout([{ name: 'auc', numThresholds: 50 }], 1);
    expect(layout.width).toBe(2 * 51);
    const got = layout.values(sumsOf(layout, ys, ps, 1), n)['auc']!;
    const thresholds = aucThresholds(50);
    const at = (t: number, label: number): number => ys.reduce((a, v, i) => a + (v === label && Math.fround(ps[i]!) > Math.fround(t) ? 1 : 0), 0);
    const tpr = thresholds.map((t) => at(t, 1) / ys.filter((v) => v === 1).length);
    const fpr = thresholds.map((t) => at(t, 0) / ys.filter((v) => v === 0).length);
    let want = 0;
    for (let i = 0; i + 1 < thresholds.length; i++) want += ((fpr[i]! - fpr[i + 1]!) * (tpr[i]! + tpr[i + 1]!)) / 2;
    expect(got).toBeCloseTo(want, 12);
    // coarser thresholds than the default's: another value on the same outputs
    const fine = new MetricLayout(['auc'], 1);
    expect(fine.values(sumsOf(fine, ys, ps, 1), n)['auc']).not.toBe(got);
  });

  it('RMSE is the root of the mean squared error over every output', () => {
    const layout = new MetricLayout(['meanSquaredError', 'rootMeanSquaredError'], 2);
    const yt = [1, 2, 3, 4];
    const yp = [1.5, 2, 2, 4.5];
    const v = layout.values(sumsOf(layout, yt, yp, 2), 2);
    const mse = (0.25 + 0 + 1 + 0.25) / 4;
    expect(v['meanSquaredError']).toBeCloseTo(mse, 6);
    expect(v['rootMeanSquaredError']).toBeCloseTo(Math.sqrt(mse), 6);
  });

  it("per-sample metrics are tfjs-layers' own, summed over the rows", () => {
    const rng = new Rng(5);
    for (const units of [1, 4]) {
      const rows = 50;
      const y = Array.from({ length: rows * units }, () => (units === 1 ? (rng.next() < 0.4 ? 1 : 0) : 0));
      if (units > 1) for (let r = 0; r < rows; r++) y[r * units + Math.floor(rng.next() * units)] = 1;
      const p = Array.from({ length: rows * units }, () => rng.next());
      const names = ['accuracy', 'binaryAccuracy', 'categoricalAccuracy', 'meanSquaredError', 'meanAbsoluteError'] as const;
      const layout = new MetricLayout(names, units);
      const got = sumsOf(layout, y, p, units);
      const want = tf.tidy(() => {
        const t = tf.tensor2d(y, [rows, units]);
        const q = tf.tensor2d(p, [rows, units]);
        const fns = [units === 1 ? tfl.metrics.binaryAccuracy : tfl.metrics.categoricalAccuracy, tfl.metrics.binaryAccuracy, tfl.metrics.categoricalAccuracy, tfl.metrics.meanSquaredError, tfl.metrics.meanAbsoluteError];
        return fns.map((fn) => tf.sum(fn(t, q)).dataSync()[0]!);
      });
      names.forEach((name, k) => expect(got[k], `${name}, ${units} unit(s)`).toBeCloseTo(want[k]!, 4));
    }
  });

  it("mode 'auto' reads larger as better for accuracies, precision, recall, F1 and the AUCs", () => {
    const higher: MetricName[] = ['accuracy', 'binaryAccuracy', 'categoricalAccuracy', 'topKCategoricalAccuracy', 'precision', 'recall', 'f1Score', 'auc', 'prAuc'];
    for (const name of METRICS) {
      expect(higherIsBetter(name), name).toBe(higher.includes(name));
      expect(higherIsBetter(`val_${name}`), name).toBe(higher.includes(name));
      expect(higherIsBetter(`val_weighted_${name}`), name).toBe(higher.includes(name));
    }
    expect(higherIsBetter('loss')).toBe(false);
  });
});

describe('sums add across participants', () => {
  it('every metric of any split of the rows equals the whole batch', () => {
    const rng = new Rng(3);
    const n = 60;
    const units = 3;
    const y: number[] = [];
    const p: number[] = [];
    for (let r = 0; r < n; r++) {
      const hot = Math.floor(rng.next() * units);
      const raw = Array.from({ length: units }, () => rng.next() + 0.01);
      const total = raw.reduce((a, v) => a + v, 0);
      for (let k = 0; k < units; k++) {
        y.push(k === hot ? 1 : 0);
        p.push(raw[k]! / total);
      }
    }
    const names = METRICS.filter((m) => m !== 'binaryAccuracy');
    const layout = new MetricLayout(names, units);
    const whole = sumsOf(layout, y, p, units);
    for (const cut of [1, 17, 30, 59]) {
      const a = sumsOf(layout, y.slice(0, cut * units), p.slice(0, cut * units), units);
      const b = sumsOf(layout, y.slice(cut * units), p.slice(cut * units), units);
      const added = a.map((v, i) => v + b[i]!);
      const wv = layout.values(whole, n);
      const av = layout.values(added, n);
      for (const name of names) expect(av[name], `${name} at cut ${cut}`).toBeCloseTo(wv[name]!, 5);
      // the thresholded metrics' sums are counts: exact
      for (const name of ['precision', 'recall', 'f1Score', 'auc', 'prAuc'] as const) expect(av[name]).toBe(wv[name]);
    }
  });

  it('the layout refuses more sums than a frame carries', () => {
    expect(() => new MetricLayout(Array.from({ length: 6 }, () => 'auc' as const), 1)).toThrow(ConfigError);
    expect(new MetricLayout(['auc', 'accuracy'], 1).width).toBe(2 * AUC_THRESHOLDS.length + 3);
  });
});

/** Rows of a 3-class softmax classifier: one-hot labels and outputs that sum to 1. */
function classifierRows(rng: Rng, n: number, units: number): { y: number[]; p: number[] } {
  const y: number[] = [];
  const p: number[] = [];
  for (let r = 0; r < n; r++) {
    const hot = Math.floor(rng.next() * units);
    const raw = Array.from({ length: units }, (_, k) => rng.next() + (k === hot ? 0.4 : 0.01));
    const total = raw.reduce((a, v) => a + v, 0);
    for (let k = 0; k < units; k++) {
      y.push(k === hot ? 1 : 0);
      p.push(raw[k]! / total);
    }
  }
  return { y, p };
}

describe('weighted metrics (Keras weighted_metrics)', () => {
  const names = METRICS.filter((m) => m !== 'binaryAccuracy');

  it('a row of integer weight w counts as w copies of it: every metric equals the unweighted one on the copies', () => {
    const rng = new Rng(11);
    const units = 3;
    const n = 80;
    const { y, p } = classifierRows(rng, n, units);
    const w = Array.from({ length: n }, () => Math.floor(rng.next() * 4)); // 0 to 3; a 0 drops the row
    const copies = { y: [] as number[], p: [] as number[] };
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < w[r]!; c++) {
        copies.y.push(...y.slice(r * units, (r + 1) * units));
        copies.p.push(...p.slice(r * units, (r + 1) * units));
      }
    }
    const weighted = new MetricLayout([], units, undefined, names);
    const plain = new MetricLayout(names, units);
    const got = weighted.values(sumsOf(weighted, y, p, units, { sample: Float32Array.from(w), training: false }), n);
    const want = plain.values(sumsOf(plain, copies.y, copies.p, units), copies.y.length / units);
    for (const name of names) expect(got[name], name).toBeCloseTo(want[name]!, 12);
    // the counts and AUC histograms are sums of small integers: exact
    for (const name of ['precision', 'recall', 'f1Score', 'auc', 'prAuc'] as const) expect(got[name], name).toBe(want[name]);
  });

  it('a weighted mean is sum(w x value) / sum(w), in float64 (Keras Mean with sample_weight)', () => {
    const layout = new MetricLayout(['accuracy', 'meanSquaredError'], 1, undefined, ['accuracy', 'rootMeanSquaredError']);
    expect(layout.keys).toEqual(['accuracy', 'meanSquaredError', 'weighted_accuracy', 'rootMeanSquaredError']);
    const y = [1, 0, 1, 0];
    const p = [0.9, 0.6, 0.3, 0.2]; // right, wrong, wrong, right
    const w = Float32Array.from([0.5, 2, 0.25, 1.5]);
    const v = layout.values(sumsOf(layout, y, p, 1, { sample: w, training: false }), 4);
    expect(v['accuracy']).toBe(0.5);
    expect(v['weighted_accuracy']).toBeCloseTo((0.5 + 1.5) / (0.5 + 2 + 0.25 + 1.5), 15);
    const se = [0.01, 0.36, 0.49, 0.04];
    expect(v['rootMeanSquaredError']).toBeCloseTo(Math.sqrt(se.reduce((a, e, i) => a + w[i]! * e, 0) / 4.25), 7);
    // weights that sum to 0: 0, as Keras's divide_no_nan
    expect(layout.values(sumsOf(layout, y, p, 1, { sample: new Float32Array(4), training: false }), 4)['weighted_accuracy']).toBe(0);
  });

  it('class weights join the sample weights on training rows only (Keras applies class_weight to fit\'s data)', () => {
    const y = [1, 0, 1, 0];
    const p = [0.9, 0.6, 0.3, 0.2]; // right, wrong, wrong, right
    const binary = new MetricLayout([], 1, undefined, ['accuracy'], [1, 3]);
    const sample = Float32Array.from([1, 1, 2, 1]);
    // training: weights 3, 1, 6, 1 (class 1 counts 3x); right rows 0 and 3
    expect(binary.values(sumsOf(binary, y, p, 1, { sample, training: true }), 4)['accuracy']).toBeCloseTo(4 / 11, 15);
    // evaluation: the sample weights alone
    expect(binary.values(sumsOf(binary, y, p, 1, { sample, training: false }), 4)['accuracy']).toBeCloseTo(2 / 5, 15);
    // one-hot labels: the weight of the row's class
    const categorical = new MetricLayout([], 2, undefined, ['accuracy'], [1, 3]);
    const hot = [0, 1, 1, 0, 0, 1, 1, 0];
    const out = [0.1, 0.9, 0.4, 0.6, 0.7, 0.3, 0.8, 0.2];
    expect(categorical.values(sumsOf(categorical, hot, out, 2, { training: true }), 4)['accuracy']).toBeCloseTo(4 / 8, 15);
  });

  it('weighted sums add across any split of the rows', () => {
    const rng = new Rng(13);
    const units = 3;
    const n = 60;
    const { y, p } = classifierRows(rng, n, units);
    const w = Float32Array.from({ length: n }, () => rng.next() * 3);
    const layout = new MetricLayout(['accuracy'], units, undefined, names, [0.5, 1, 2]);
    const whole = layout.values(sumsOf(layout, y, p, units, { sample: w, training: true }), n);
    const cut = 23;
    const a = sumsOf(layout, y.slice(0, cut * units), p.slice(0, cut * units), units, { sample: w.subarray(0, cut), training: true });
    const b = sumsOf(layout, y.slice(cut * units), p.slice(cut * units), units, { sample: w.subarray(cut), training: true });
    const parts = layout.values(a.map((v, i) => v + b[i]!), n);
    for (const key of layout.keys) expect(parts[key], key).toBeCloseTo(whole[key]!, 12);
  });

  it('names: weighted_<name> only where the plain metric is also listed', () => {
    expect(metricKeys(['accuracy', 'auc'], ['auc', 'precision'])).toEqual(['accuracy', 'auc', 'weighted_auc', 'precision']);
    expect(metricKeys([], ['auc'])).toEqual(['auc']);
  });
});

describe('config', () => {
  const base = {
    data: { path: 'x.csv', label: { column: 'y' } },
    model: { layers: [{ units: 1, activation: 'linear' }] },
    compile: { loss: 'meanSquaredError', metrics: ['auc'] },
  };

  it('a thresholded metric on a regression loss is a ConfigError naming compile.metrics', () => {
    expect(() => validateConfig(base, 'job.yaml')).toThrow(/compile\.metrics.*auc.*classifier's loss/s);
    expect(() => validateConfig(base, 'job.yaml')).toThrow(ConfigError);
  });

  it('compile.weightedMetrics is checked as compile.metrics is, and defaults to none', () => {
    expect(() => validateConfig({ ...base, compile: { loss: 'meanSquaredError', weightedMetrics: ['auc'] } }, 'job.yaml')).toThrow(/compile\.weightedMetrics.*auc.*classifier's loss/s);
    expect(() => validateConfig({ ...base, compile: { loss: 'binaryCrossentropy', weightedMetrics: ['auc', 'auc'] } }, 'job.yaml')).toThrow(/weightedMetrics.*auc is listed twice/s);
    expect(() => validateConfig({ ...base, compile: { loss: 'binaryCrossentropy', weightedMetrics: ['kappa'] } }, 'job.yaml')).toThrow(/compile\.weightedMetrics/);
    expect(validateConfig({ ...base, compile: { loss: 'meanSquaredError' } }, 'job.yaml').compile.weightedMetrics).toEqual([]);
  });

  it('metric arguments: each metric takes its own, in range, and is named by them when wrong', () => {
    const compile = (metrics: unknown[]) => ({ ...base, compile: { loss: 'categoricalCrossentropy', metrics } });
    expect(() => validateConfig(compile([{ name: 'auc', k: 3 }]), 'job.yaml')).toThrow(/compile\.metrics\[0\]\.k: auc takes numThresholds, not k/);
    expect(() => validateConfig(compile([{ name: 'categoricalAccuracy', threshold: 0.3 }]), 'job.yaml')).toThrow(/categoricalAccuracy takes no arguments, not threshold/);
    expect(() => validateConfig(compile([{ name: 'auc', numThresholds: 2 }]), 'job.yaml')).toThrow(/compile\.metrics/);
    expect(() => validateConfig(compile([{ name: 'precision', threshold: 1.5 }]), 'job.yaml')).toThrow(/compile\.metrics/);
    expect(() => validateConfig(compile([{ name: 'topKCategoricalAccuracy', k: 0 }]), 'job.yaml')).toThrow(/compile\.metrics/);
    expect(() => validateConfig(compile(['auc', { name: 'auc', numThresholds: 50 }]), 'job.yaml')).toThrow(/auc is listed twice/);
    const ok = validateConfig(compile([{ name: 'topKCategoricalAccuracy', k: 3 }, { name: 'auc', numThresholds: 500 }]), 'job.yaml');
    expect(ok.compile.metrics).toEqual([{ name: 'topKCategoricalAccuracy', k: 3 }, { name: 'auc', numThresholds: 500 }]);
    expect(metricKeys(ok.compile.metrics, [{ name: 'auc', numThresholds: 100 }])).toEqual(['topKCategoricalAccuracy', 'auc', 'weighted_auc']);
  });

  it('a metric listed twice is refused; rootMeanSquaredError on a regression is fine', () => {
    expect(() => validateConfig({ ...base, compile: { loss: 'binaryCrossentropy', metrics: ['auc', 'auc'] } }, 'job.yaml')).toThrow(/auc is listed twice/);
    expect(validateConfig({ ...base, compile: { loss: 'meanSquaredError', metrics: ['rootMeanSquaredError'] } }, 'job.yaml').compile.metrics).toEqual(['rootMeanSquaredError']);
  });

  it('thresholds are Keras\'s 200', () => {
    expect(AUC_THRESHOLDS.length).toBe(200);
    expect(AUC_THRESHOLDS[0]).toBe(-1e-7);
    expect(AUC_THRESHOLDS[199]).toBe(1 + 1e-7);
    expect(AUC_THRESHOLDS[1]).toBe(1 / 199);
  });
});
