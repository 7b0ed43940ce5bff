import { describe, expect, it } from 'vitest';
import { MIN_FLOPS_PER_THREAD, chooseThreads, stepFlops, threadsWithoutModel } from '../coordinator/participants/thread-count.js';
import { validateConfig } from '../shared/config/load.js';
import type { ModelSpec } from '../shared/model/spec.js';

const dense = (inputDim: number, units: number[]): ModelSpec => ({
  inputDim,
  layers: units.map((u) => ({ units: u, activation: 'relu', useBias: true })),
  loss: 'binaryCrossentropy',
  metrics: [],
});
const seedModel = dense(45, [64, 64, 1]);
const bigModel = dense(45, [512, 512, 1]);

function config(cluster: Record<string, unknown>, batchSize: number) {
  return validateConfig(
    { data: { path: 'd.csv', label: { column: 'y' } }, model: { layers: [{ units: 1 }] }, compile: { loss: 'binaryCrossentropy' }, fit: { batchSize }, cluster },
    'job.yaml',
  );
}

describe('stepFlops', () => {
  it('counts 6 x batch x kernel weights (forward, input and kernel gradients), biases left out', () => {
    expect(stepFlops(seedModel, 32)).toBe(6 * 32 * (45 * 64 + 64 * 64 + 64 * 1)); // 1,351,680
    expect(stepFlops(bigModel, 1024)).toBe(6 * 1024 * (45 * 512 + 512 * 512 + 512)); // ~1.76e9
  });
});

describe('cluster.threads: auto', () => {
  it("gives the seed's small model one lane (threads would cost more than they save)", () => {
    const choice = chooseThreads(config({}, 32), seedModel, 8);
    expect(choice.threads).toBe(1);
    expect(choice.reason).toBe('threads: auto chose 1 of 8 core(s): a step is ~1.4 MFLOP and a thread pays from ~50 MFLOP');
  });

  it('gives a compute-heavy model one thread per core, and no more threads than the work pays for', () => {
    expect(chooseThreads(config({}, 1024), bigModel, 2).threads).toBe(2);
    expect(chooseThreads(config({}, 1024), bigModel, 64).threads).toBe(35); // 1.755e9 / 50e6
    const justTwo = Math.ceil((2 * MIN_FLOPS_PER_THREAD) / stepFlops(bigModel, 1));
    expect(chooseThreads(config({}, justTwo), bigModel, 16).threads).toBe(2);
    expect(chooseThreads(config({}, justTwo - 1), bigModel, 16).threads).toBe(1);
  });

  it('never gives more threads than rows in a batch', () => {
    expect(chooseThreads(config({}, 3), dense(4096, [4096, 4096, 1]), 16).threads).toBe(3);
  });

  it('gives one lane for the tensorflow backend and for inProcess: true, and keeps a number as given', () => {
    expect(chooseThreads(config({ backend: 'tensorflow' }, 1024), bigModel, 8)).toMatchObject({ threads: 1, reason: expect.stringContaining('backend tensorflow') });
    expect(chooseThreads(config({ inProcess: true }, 1024), bigModel, 8).threads).toBe(1);
    expect(chooseThreads(config({ threads: 3 }, 32), seedModel, 8)).toEqual({ threads: 3 });
    expect(chooseThreads(config({ threads: 0, listen: '127.0.0.1:0' }, 32), seedModel, 8)).toEqual({ threads: 0 });
    expect(threadsWithoutModel(config({ backend: 'tensorflow' }, 32))).toBe(1);
    expect(threadsWithoutModel(config({ threads: 3 }, 32))).toBe(3);
    expect(threadsWithoutModel(config({}, 32))).toBeUndefined(); // auto with wasm: depends on the model
  });
});
