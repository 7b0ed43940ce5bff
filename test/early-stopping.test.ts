import { describe, expect, it } from 'vitest';
import { EarlyStopping } from '../coordinator/callbacks/early-stopping.js';

const base = { monitor: 'val_loss', patience: 2, minDelta: 0, mode: 'auto' as const, restoreBestWeights: true, startFromEpoch: 0 };

function run(es: EarlyStopping, values: number[]): number {
  for (let epoch = 0; epoch < values.length; epoch++) {
    if (es.onEpochEnd(epoch, { val_loss: values[epoch]!, val_accuracy: values[epoch]! }, Float32Array.from([epoch]))) return epoch;
  }
  return -1;
}

describe('EarlyStopping (Keras semantics)', () => {
  it('stops after `patience` epochs without improvement and restores the best epoch', () => {
    const es = new EarlyStopping(base, false);
    expect(run(es, [0.9, 0.7, 0.8, 0.75, 0.6])).toBe(3);
    expect(es.bestEpoch).toBe(1);
    expect(Array.from(es.weightsToRestore()!)).toEqual([1]);
  });
  it('counts an improvement only beyond minDelta', () => {
    const es = new EarlyStopping({ ...base, minDelta: 0.05 }, false);
    expect(run(es, [1.0, 0.97, 0.96, 0.5])).toBe(2);
    expect(es.bestEpoch).toBe(0);
  });
  it('maximises accuracy-like metrics in mode auto, and honours mode max/min', () => {
    const es = new EarlyStopping({ ...base, monitor: 'val_accuracy' }, true);
    expect(run(es, [0.5, 0.6, 0.55, 0.58])).toBe(3);
    expect(es.bestEpoch).toBe(1);
    const forcedMin = new EarlyStopping({ ...base, monitor: 'val_accuracy', mode: 'min' }, true);
    expect(run(forcedMin, [0.5, 0.6, 0.7])).toBe(2);
  });
  it('never stops after the first epoch, even with patience 0', () => {
    const es = new EarlyStopping({ ...base, patience: 0 }, false);
    expect(es.onEpochEnd(0, { val_loss: 1 }, new Float32Array(1))).toBe(false);
    expect(es.onEpochEnd(1, { val_loss: 2 }, new Float32Array(1))).toBe(true);
  });
  it("baseline: improving on the best but not on the baseline does not restart the wait (Keras's)", () => {
    // 0.9 and 0.8 beat the best but not the baseline: the wait is 3 at the worse epoch 2
    const values = [0.9, 0.8, 0.85, 0.4];
    const es = new EarlyStopping({ ...base, baseline: 0.5 }, false);
    expect(run(es, values)).toBe(2);
    expect(es.bestEpoch).toBe(1);
    // without the baseline those restart it, and epoch 3 improves in time
    expect(run(new EarlyStopping(base, false), values)).toBe(-1);
    // values beating the baseline restart it as usual
    expect(run(new EarlyStopping({ ...base, baseline: 0.95 }, false), values)).toBe(-1);
  });
  it('startFromEpoch: the first epochs are not watched at all', () => {
    const es = new EarlyStopping({ ...base, patience: 0, startFromEpoch: 2 }, false);
    // epochs 0 and 1 worsen but are not watched; 2 sets the best, 3 worsens: stop
    expect(run(es, [0.5, 0.9, 1.0, 1.1])).toBe(3);
    expect(es.bestEpoch).toBe(2);
  });
  it('does not restore when training ran out of epochs (as Keras)', () => {
    const es = new EarlyStopping(base, false);
    expect(run(es, [0.9, 0.8, 0.85])).toBe(-1);
    expect(es.weightsToRestore()).toBeUndefined();
  });
});
