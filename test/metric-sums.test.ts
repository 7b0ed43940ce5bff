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
import { AUC_THRESHOLDS, higherIsBetter, MetricLayout } from '../shared/model/metric-sums.js';
import { METRICS, type MetricName } from '../shared/model/spec.js';
import { Rng } from '../shared/math/rng.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** The sums of a batch, its outputs as the float32 a model gives. */
function sumsOf(layout: MetricLayout, y: number[], p: number[], units: number): number[] {
  return layout.sums(Float32Array.from(y), Float32Array.from(p), y.length / units);
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
