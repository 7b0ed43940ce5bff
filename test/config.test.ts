import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, validateConfig } from '../shared/config/load.js';

const minimal = {
  data: { label: { column: 'Churn', positive: 'Yes' } },
  model: { layers: [{ units: 1, activation: 'sigmoid' }] },
  compile: { loss: 'binaryCrossentropy' },
};

describe('job config', () => {
  it('fills Keras defaults', () => {
    const config = validateConfig(minimal, 'job.yaml');
    expect(config.fit).toMatchObject({ epochs: 1, batchSize: 32, validationSplit: 0, shuffle: true });
    expect(config.compile.optimizer).toEqual({ name: 'adam', learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 });
    expect(config.compile.metrics).toEqual(['accuracy']);
    expect(config.cluster.backend).toBe('auto');
    expect(config.cluster.threads).toBe('auto');
    expect(config.model.layers![0]).toEqual({ type: 'dense', units: 1, activation: 'sigmoid', useBias: true });
  });

  it('reports accuracy for a classifier by default, and nothing but the loss for a regression', () => {
    const withLoss = (loss: string) => validateConfig({ ...minimal, compile: { loss } } as never, 'job.yaml').compile.metrics;
    expect(withLoss('binaryCrossentropy')).toEqual(['accuracy']);
    expect(withLoss('categoricalCrossentropy')).toEqual(['accuracy']);
    expect(withLoss('meanSquaredError')).toEqual([]);
    expect(withLoss('meanAbsoluteError')).toEqual([]);
    // asked for, always
    expect(validateConfig({ ...minimal, compile: { loss: 'meanSquaredError', metrics: ['meanAbsoluteError'] } } as never, 'job.yaml').compile.metrics).toEqual(['meanAbsoluteError']);
  });

  it('accepts an optimizer by name or with hyper-parameters', () => {
    expect(validateConfig({ ...minimal, compile: { ...minimal.compile, optimizer: 'sgd' } }, 'j').compile.optimizer).toEqual({ name: 'sgd', learningRate: 0.01, momentum: 0, nesterov: false });
    expect(validateConfig({ ...minimal, compile: { ...minimal.compile, optimizer: { name: 'rmsprop', learningRate: 0.01 } } }, 'j').compile.optimizer).toMatchObject({ name: 'rmsprop', learningRate: 0.01, rho: 0.9 });
    expect(validateConfig({ ...minimal, compile: { ...minimal.compile, optimizer: 'adamw' } }, 'j').compile.optimizer).toEqual({ name: 'adamw', learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0.004 });
    expect(() => validateConfig({ ...minimal, compile: { ...minimal.compile, optimizer: { name: 'adamw', decay: 0.1 } } } as never, 'j')).toThrow(/decay/);
  });

  it('rejects unknown keys with their path', () => {
    expect(() => validateConfig({ ...minimal, fit: { epoch: 3 } }, 'job.yaml')).toThrow('job.yaml: unknown key "fit.epoch"');
    expect(() => validateConfig({ ...minimal, extra: 1 }, 'job.yaml')).toThrow('job.yaml: unknown key "extra"');
    expect(() => validateConfig({ ...minimal, model: { layers: [{ units: 1, activation: 'sigmoid', kernel: 'x' }] } }, 'job.yaml')).toThrow('unknown key "model.layers[0].kernel"');
  });

  it('rejects wrong types and values with their path', () => {
    expect(() => validateConfig({ ...minimal, fit: { epochs: 'ten' } }, 'job.yaml')).toThrow(/^job\.yaml: fit\.epochs: .*number/);
    expect(() => validateConfig({ ...minimal, fit: { validationSplit: 1.5 } }, 'job.yaml')).toThrow(/fit\.validationSplit/);
    expect(() => validateConfig({ ...minimal, model: { layers: [{ units: 1, activation: 'relux' }] } }, 'job.yaml')).toThrow(/model\.layers\[0\]\.activation: .*"leakyRelu"/);
    expect(() => validateConfig({ ...minimal, compile: { loss: 'hinge' } }, 'job.yaml')).toThrow(/compile\.loss: .*"binaryCrossentropy"/);
    expect(() => validateConfig({ ...minimal, compile: { ...minimal.compile, optimizer: 'adamm' } }, 'job.yaml')).toThrow(/compile\.optimizer/);
    expect(() => validateConfig([], 'job.yaml')).toThrow(/must be a mapping/);
    expect(() => validateConfig({ ...minimal, cluster: { minWorkers: 2, startWorkers: 1 } }, 'job.yaml')).toThrow(
      'job.yaml: cluster.startWorkers: 1 is below cluster.minWorkers (2)',
    );
    expect(validateConfig({ ...minimal, cluster: { minWorkers: 1, startWorkers: 2 } }, 'job.yaml').cluster).toMatchObject({ minWorkers: 1, startWorkers: 2 });
  });

  it('applies command-line overrides before validating them', () => {
    const config = validateConfig(minimal, 'j', { 'fit.epochs': 7, 'cluster.threads': 3, 'fit.batchSize': undefined });
    expect(config.fit.epochs).toBe(7);
    expect(config.cluster.threads).toBe(3);
    expect(validateConfig(minimal, 'j', { 'cluster.threads': 'auto' }).cluster.threads).toBe('auto');
    expect(() => validateConfig(minimal, 'j', { 'cluster.threads': 'many' })).toThrow(/cluster\.threads/);
    expect(() => validateConfig(minimal, 'j', { 'cluster.threads': -1 })).toThrow(/cluster\.threads/);
    expect(config.fit.batchSize).toBe(32);
    expect(() => validateConfig(minimal, 'j', { 'fit.epochs': 0 })).toThrow(/fit\.epochs/);
  });

  it('reads YAML and JSON files and resolves data.path against the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-config-'));
    writeFileSync(join(dir, 'job.yaml'), 'data:\n  path: d.csv\n  label: { column: y, positive: "1" }\nmodel:\n  layers: [{ units: 1 }]\ncompile: { loss: meanSquaredError }\n');
    expect(loadConfig(join(dir, 'job.yaml')).data.path).toBe(join(dir, 'd.csv'));
    writeFileSync(join(dir, 'job.json'), JSON.stringify(minimal));
    expect(loadConfig(join(dir, 'job.json')).compile.loss).toBe('binaryCrossentropy');
    writeFileSync(join(dir, 'bad.yaml'), 'data: [unclosed\n');
    expect(() => loadConfig(join(dir, 'bad.yaml'))).toThrow(/bad\.yaml: not valid YAML/);
    expect(() => loadConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read config file .*missing\.yaml: no such file/);
  });
});
