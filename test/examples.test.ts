/**
 * Every job config in examples/ is one the schema takes (a user copies these first), and the
 * large-batch example is the configuration README's "Large batches" measured.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../shared/config/load.js';

const examples = readdirSync('examples').filter((f) => f.endsWith('.yaml'));

describe('examples/', () => {
  it.each(examples)('%s is a valid job config', (file) => {
    expect(() => loadConfig(`examples/${file}`)).not.toThrow();
  });

  it('the large-batch example is the CNN example at batch 1024, Adam 0.003 scaled from 128 over 16 warmup steps', () => {
    const base = loadConfig('examples/mnist-cnn.yaml');
    const large = loadConfig('examples/mnist-cnn-large-batch.yaml');
    expect(large.model).toEqual(base.model);
    expect(large.data).toEqual(base.data);
    expect(large.fit.batchSize).toBe(1024);
    expect(large.fit.epochs).toBe(base.fit.epochs);
    expect(large.compile.optimizer).toEqual({ ...base.compile.optimizer, learningRate: 0.003 });
    expect(large.compile.learningRateScaling).toEqual({ referenceBatchSize: 128, warmupSteps: 16 });
  });
});
