/**
 * fit.modelCheckpoint (Keras's ModelCheckpoint): which epochs save and where, its state in the
 * rolling checkpoints, and through train(): the saved best model is the model of its epoch, bit
 * for bit, and loads with tf.loadLayersModel.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelCheckpoint, folderFor } from '../coordinator/callbacks/model-checkpoint.js';
import type { FitLoopView } from '../coordinator/callbacks/callback.js';
import { decodeCheckpoint, encodeCheckpoint, type TrainingState } from '../coordinator/checkpoint.js';
import type { EpochLog } from '../coordinator/fit/logs.js';
import { ConfigError, train } from '../index.js';
import { initBackend } from '../shared/backend.js';
import { validateConfig } from '../shared/config/load.js';
import { loadModel } from '../shared/model/io.js';
import { demoJob } from './helpers.js';

const epoch = (n: number, values: Record<string, number>): EpochLog => ({ epoch: n, steps: 1, seconds: 1, samples: 1, samplesPerSecond: 1, values });

/** A ModelCheckpoint over `values` of its monitor, one per epoch: the folders it saved into. */
async function saves(config: Record<string, unknown>, values: number[]): Promise<{ folders: string[]; lines: string[]; callback: ModelCheckpoint }> {
  const parsed = validateConfig({ data: { path: 'x.csv', label: { column: 'y' } }, model: { layers: [{ units: 1, activation: 'sigmoid' }] }, compile: { loss: 'binaryCrossentropy' }, fit: { modelCheckpoint: config } }, 'job.yaml');
  const folders: string[] = [];
  const lines: string[] = [];
  const callback = new ModelCheckpoint(parsed.fit.modelCheckpoint!, async (_w, folder) => (folders.push(folder), `/run/${folder}`), (l) => lines.push(l));
  callback.setLoop({ weights: new Float32Array(3) } as unknown as FitLoopView);
  for (const [i, v] of values.entries()) await callback.onEpochEnd(epoch(i + 1, { [String(config['monitor'] ?? 'val_loss')]: v }));
  return { folders, lines, callback };
}

describe('ModelCheckpoint', () => {
  it('saves when the monitor improves, in the direction mode auto infers', async () => {
    expect((await saves({ monitor: 'val_auc' }, [0.8, 0.82, 0.81, 0.85, 0.85])).folders).toEqual(['best-model', 'best-model', 'best-model']);
    const loss = await saves({}, [0.5, 0.4, 0.45, 0.39]);
    expect(loss.folders).toHaveLength(3);
    expect(loss.lines[1]).toBe('Epoch 2: val_loss improved from 0.50000 to 0.40000; model saved to /run/best-model');
    expect(loss.callback.epoch).toBe(4);
    expect((await saves({ monitor: 'val_loss', mode: 'max' }, [0.5, 0.4, 0.6])).folders).toHaveLength(2);
  });

  it('needs initialValueThreshold beaten first; a NaN never saves', async () => {
    expect((await saves({ monitor: 'val_auc', initialValueThreshold: 0.83 }, [0.8, 0.82, 0.84])).folders).toHaveLength(1);
    expect((await saves({ monitor: 'val_loss' }, [NaN, 0.5, NaN])).folders).toHaveLength(1);
  });

  it('saveBestOnly false saves every epoch; {epoch:02d} names a folder per epoch', async () => {
    const every = await saves({ saveBestOnly: false, dir: 'models/epoch-{epoch:02d}' }, [0.5, 0.6, 0.7]);
    expect(every.folders).toEqual(['models/epoch-01', 'models/epoch-02', 'models/epoch-03']);
    expect(folderFor('m-{epoch}', 12)).toBe('m-12');
    expect(folderFor('m-{epoch:04d}/x', 7)).toBe('m-0007/x');
  });

  it('its state resumes: a worse value after a restore does not save', async () => {
    const first = await saves({ monitor: 'val_auc' }, [0.8, 0.9]);
    const again = (await saves({ monitor: 'val_auc' }, [])).callback;
    again.restore(first.callback.save());
    expect(again.save()).toEqual({ best: 0.9, savedEpoch: 2 });
    const folders: string[] = [];
    const resumed = new ModelCheckpoint(again.config, async (_w, f) => (folders.push(f), f));
    resumed.restore(first.callback.save());
    resumed.setLoop({ weights: new Float32Array(3) } as unknown as FitLoopView);
    await resumed.onEpochEnd(epoch(3, { val_auc: 0.85 }));
    expect(folders).toEqual([]);
  });

  it('a checkpoint file carries its state', () => {
    const state: TrainingState = {
      epoch: 1, batch: 0, step: 4, samples: 10, trainSeconds: 1, phases: { compute: 0, reduce: 0, apply: 0, broadcast: 0 },
      history: [], epochProgress: { lossSum: 0, metricSums: [], seconds: 0 }, shuffle: 1, finished: false, stoppedEarly: false,
      modelCheckpoint: { best: 0.875, savedEpoch: 1 },
      optimizer: { name: 'sgd', iterations: 4, slots: { momentum: new Float32Array(2) }, scalars: {} }, weights: new Float32Array(2), fingerprint: 'f',
    };
    expect(decodeCheckpoint(encodeCheckpoint(state), 'mem').modelCheckpoint).toEqual({ best: 0.875, savedEpoch: 1 });
  });

  it('a folder outside the run, a run folder of its own or a monitor that is not logged is a ConfigError naming the key', async () => {
    const job = (modelCheckpoint: object) => ({ data: { path: 'x.csv', label: { column: 'y' } }, model: { layers: [{ units: 1, activation: 'sigmoid' }] }, compile: { loss: 'binaryCrossentropy' }, fit: { modelCheckpoint } });
    for (const dir of ['../elsewhere', '/tmp/x', 'a/../../b', 'model', 'checkpoints/best']) {
      expect(() => validateConfig(job({ dir }), 'job.yaml'), dir).toThrow(/fit\.modelCheckpoint\.dir/);
    }
    const out = mkdtempSync(join(tmpdir(), 'dptrain-mc-bad-'));
    await expect(train(demoJob(out, 1, { compile: { loss: 'binaryCrossentropy' }, fit: { epochs: 1, modelCheckpoint: { monitor: 'val_auc' } } }), { demo: true, log: () => {} })).rejects.toThrow(ConfigError);
    await expect(train(demoJob(out, 1, { compile: { loss: 'binaryCrossentropy' }, fit: { epochs: 1, modelCheckpoint: { monitor: 'val_auc' } } }), { demo: true, log: () => {} })).rejects.toThrow(/fit\.modelCheckpoint\.monitor: "val_auc" is not logged; available: loss, accuracy$/);
    // weighted metrics are logged under their names, weighted_<name> beside the plain one
    const weighted = { compile: { loss: 'binaryCrossentropy' as const, metrics: ['auc' as const], weightedMetrics: ['auc' as const, 'recall' as const] }, fit: { epochs: 1, modelCheckpoint: { monitor: 'weighted_precision' } } };
    await expect(train(demoJob(out, 1, weighted), { demo: true, log: () => {} })).rejects.toThrow(/"weighted_precision" is not logged; available: loss, auc, weighted_auc, recall$/);
  });
});

describe('fit.modelCheckpoint through train()', { timeout: 120_000 }, () => {
  it('best-model holds the model of the best epoch, bit for bit, and tf.loadLayersModel reads it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-mc-'));
    const job = (out: string, epochs: number) =>
      demoJob(out, 9, {
        compile: { optimizer: { name: 'adam', learningRate: 0.05 }, loss: 'binaryCrossentropy', metrics: ['accuracy', 'auc'] },
        fit: { epochs, batchSize: 64, validationSplit: 0.3, modelCheckpoint: { monitor: 'val_auc' } },
        cluster: { threads: 2, backend: 'cpu', balance: 'equal' },
      });
    const lines: string[] = [];
    const run = await train(job(join(dir, 'long'), 6), { demo: true, log: (l) => lines.push(l) });
    const saved = run.summary.modelCheckpoint!;
    const aucs = run.fit.history.map((h) => h.values['val_auc']!);
    const best = aucs.indexOf(Math.max(...aucs)) + 1;
    expect(saved).toEqual({ dir: 'best-model', epoch: best, monitor: 'val_auc', value: aucs[best - 1] });
    expect(lines.filter((l) => / val_auc improved from /.test(l)).length).toBeGreaterThanOrEqual(1);
    // the same run stopped at that epoch ends with the weights best-model holds
    await train(job(join(dir, 'short'), best), { demo: true, log: () => {} });
    const bestBytes = readFileSync(join(dir, 'long', 'best-model', 'weights.bin'));
    expect(Buffer.compare(bestBytes, readFileSync(join(dir, 'short', 'model', 'weights.bin')))).toBe(0);
    expect(existsSync(join(dir, 'long', 'best-model', 'preprocessing.json'))).toBe(true);
    expect(existsSync(join(dir, 'long', 'best-model.partial'))).toBe(false);
    await initBackend('cpu');
    const loaded = await loadModel(join(dir, 'long', 'best-model'));
    const flat = loaded.getWeights().flatMap((w) => Array.from(w.dataSync()));
    expect(flat).toEqual(Array.from(new Float32Array(bestBytes.buffer.slice(bestBytes.byteOffset, bestBytes.byteOffset + bestBytes.byteLength))));
  });
});
