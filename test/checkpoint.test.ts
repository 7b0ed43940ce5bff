/**
 * Checkpoint files: exact round trip, corruption detected by the checksum (and the previous
 * checkpoint used, with a warning), keeping the newest K, atomic writes leaving no temp files.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeCheckpoint, encodeCheckpoint, loadLatestCheckpoint, writeCheckpoint, type TrainingState } from '../coordinator/checkpoint.js';
import { CheckpointError } from '../shared/errors.js';

function state(step: number): TrainingState {
  const n = 37;
  const f = (k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k + step) / 3);
  return {
    epoch: 2,
    batch: 5,
    step,
    samples: 1234,
    trainSeconds: 3.25,
    phases: { compute: 1.5, reduce: 0.25, apply: 0.125, broadcast: 0.0625 },
    history: [{ epoch: 1, steps: 10, seconds: 1.5, samples: 300, samplesPerSecond: 200, values: { loss: 0.61, accuracy: 0.7, val_loss: 0.65 } }],
    epochProgress: { lossSum: 12.5, metricSums: [101], seconds: 0.75 },
    shuffle: 0xdeadbeef,
    finished: false,
    stoppedEarly: false,
    earlyStopping: { wait: 1, best: 0.65, bestEpoch: 0, stoppedEpoch: -1, bestWeights: f(2) },
    optimizer: { name: 'adam', iterations: step, slots: { m: f(3), v: f(4) }, scalars: { accBeta1: 0.9 ** step, accBeta2: 0.999 ** step } },
    weights: f(1),
    fingerprint: 'abc123',
  };
}

describe('checkpoint files', () => {
  it('round-trips every field exactly, including Infinity (EarlyStopping before its first epoch)', () => {
    const s = { ...state(17), earlyStopping: { wait: 0, best: Infinity, bestEpoch: -1, stoppedEpoch: -1 } };
    const back = decodeCheckpoint(encodeCheckpoint(s), 'mem');
    expect(back).toEqual(s);
    const full = state(18);
    expect(decodeCheckpoint(encodeCheckpoint(full), 'mem')).toEqual(full);
  });

  it('detects a flipped byte anywhere, and a file cut short', () => {
    const bytes = encodeCheckpoint(state(3));
    for (const at of [0, 20, Math.floor(bytes.length / 2), bytes.length - 40, bytes.length - 1]) {
      const bad = Buffer.from(bytes);
      bad[at]! ^= 0x01;
      expect(() => decodeCheckpoint(bad, 'f.ckpt'), `byte ${at}`).toThrow(CheckpointError);
    }
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 100), 'f.ckpt')).toThrow(/checksum mismatch/);
  });

  it('keeps the newest K, writes atomically, and loads the newest that verifies (warning about skipped ones)', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-ckpt-')), 'checkpoints');
    for (const step of [5, 10, 15, 20]) writeCheckpoint(dir, state(step), 3);
    // only the final names: no temp file is left behind
    expect(readdirSync(dir).sort()).toEqual(['step-00000010.ckpt', 'step-00000015.ckpt', 'step-00000020.ckpt']);

    const warnings: string[] = [];
    expect(loadLatestCheckpoint(dir, (w) => warnings.push(w)).state.step).toBe(20);
    expect(warnings).toEqual([]);

    const newest = join(dir, 'step-00000020.ckpt');
    const bytes = readFileSync(newest);
    bytes[bytes.length >> 1]! ^= 0x40;
    writeFileSync(newest, bytes);
    const loaded = loadLatestCheckpoint(dir, (w) => warnings.push(w));
    expect(loaded.state).toEqual(state(15));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/skipping checkpoint .*step-00000020\.ckpt: .*checksum mismatch.*previous one/);
  });

  it('says so when there is nothing usable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-ckpt-'));
    expect(() => loadLatestCheckpoint(dir, () => undefined)).toThrow(/no checkpoints to resume from/);
    writeFileSync(join(dir, 'step-00000001.ckpt'), 'garbage');
    expect(() => loadLatestCheckpoint(dir, () => undefined)).toThrow(/none of the 1 checkpoints is usable/);
  });
});
