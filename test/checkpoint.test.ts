/**
 * Checkpoint files: exact round trip, corruption detected by the checksum (and the previous
 * checkpoint used, with a warning), keeping the newest K, atomic writes leaving no temp files.
 * Past the checksum, a header the writer was given a bad state for (or that was edited and
 * resealed) is refused naming the field, and a checkpoint that does not fit the run (10 of the
 * model's weights, a batch past the epoch) is skipped by the loader and refused by --resume.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { checkCheckpointFits, decodeCheckpoint, encodeCheckpoint, loadLatestCheckpoint, writeCheckpoint, type ResumeTarget, type TrainingState } from '../coordinator/checkpoint.js';
import { runJob } from '../coordinator/job.js';
import { loadConfig } from '../shared/config/load.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
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

  it('a write leaves the event loop free (heartbeats go on): a callback queued before it runs before it ends', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-ckpt-')), 'checkpoints');
    const n = 4 << 20;
    const base = state(30);
    const big: TrainingState = { ...base, weights: new Float32Array(n).fill(0.5), optimizer: { ...base.optimizer, slots: { m: new Float32Array(n), v: new Float32Array(n) } }, earlyStopping: { wait: 0, best: 1, bestEpoch: 0, stoppedEpoch: -1 } };
    const order: string[] = [];
    setImmediate(() => order.push('event loop'));
    await writeCheckpoint(dir, big, 2).then(() => order.push('written'));
    expect(order).toEqual(['event loop', 'written']);
    expect(loadLatestCheckpoint(dir, () => {}).state.weights.length).toBe(4 << 20);
  });

  it('keeps the newest K, writes atomically, and loads the newest that verifies (warning about skipped ones)', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-ckpt-')), 'checkpoints');
    for (const step of [5, 10, 15, 20]) await writeCheckpoint(dir, state(step), 3);
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

/** What the encoded header holds (as the file format writes it). */
interface RawHeader {
  state: Record<string, unknown>;
  arrays: { name: string; length: number }[];
}

/** `bytes` with its header edited and the checksum made to match again (a deliberate forgery, not corruption). */
function reseal(bytes: Buffer, edit: (header: RawHeader) => void): Buffer {
  const length = bytes.readUInt32LE(8);
  const header = JSON.parse(bytes.subarray(12, 12 + length).toString('utf8')) as RawHeader;
  edit(header);
  const data = bytes.subarray(Math.ceil((12 + length) / 4) * 4, bytes.length - 32);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const start = Math.ceil((12 + json.length) / 4) * 4;
  const out = Buffer.alloc(start + data.length + 32);
  bytes.copy(out, 0, 0, 8);
  out.writeUInt32LE(json.length, 8);
  json.copy(out, 12);
  data.copy(out, start);
  createHash('sha256').update(out.subarray(0, start + data.length)).digest().copy(out, start + data.length);
  return out;
}

/** The error decoding `bytes` throws (the test fails if it throws none). */
function decodeError(bytes: Buffer): CheckpointError {
  try {
    decodeCheckpoint(bytes, 'f.ckpt');
  } catch (err) {
    expect(err).toBeInstanceOf(CheckpointError);
    return err as CheckpointError;
  }
  throw new Error('the checkpoint was accepted');
}

/** A state at epoch 2 (two epochs in its history), batch 5, step 25: what a run of 10 batches an epoch writes. */
function fitting(): TrainingState {
  const s = state(25);
  return { ...s, history: [s.history[0]!, { ...s.history[0]!, epoch: 2 }] };
}

const TARGET: ResumeTarget = { parameters: 37, optimizer: 'adam', metrics: 1, batches: 10, epochs: 5 };

/** `s` without one of its fields, as a forged header would lack it. */
function without(s: TrainingState, key: keyof TrainingState): TrainingState {
  const copy: Record<string, unknown> = { ...s };
  delete copy[key];
  return copy as unknown as TrainingState;
}

/** `s` with every array (weights, optimizer slots, best weights) `n` long. */
function withLength(s: TrainingState, n: number): TrainingState {
  const cut = (a: Float32Array): Float32Array => a.slice(0, n);
  const slots = Object.fromEntries(Object.entries(s.optimizer.slots).map(([name, slot]) => [name, cut(slot)]));
  const best = s.earlyStopping?.bestWeights;
  return { ...s, weights: cut(s.weights), optimizer: { ...s.optimizer, slots }, ...(s.earlyStopping ? { earlyStopping: { ...s.earlyStopping, ...(best ? { bestWeights: cut(best) } : {}) } } : {}) };
}

describe("a checkpoint's contents, past its checksum", () => {
  it('the header is checked as strictly as a config: range, type, unknown and missing fields, the optimizer\'s arrays', () => {
    const good = state(17);
    const cases: [TrainingState, RegExp][] = [
      [{ ...good, epoch: -3 }, /^f\.ckpt: state\.epoch: .*>=0/],
      [{ ...good, batch: 1.5 }, /^f\.ckpt: state\.batch: .*int/],
      [{ ...good, shuffle: 2 ** 32 }, /^f\.ckpt: state\.shuffle: /],
      [{ ...good, extra: 1 } as TrainingState, /^f\.ckpt: unknown key "state\.extra"/],
      [without(good, 'history'), /^f\.ckpt: state\.history: .*expected array, received undefined/],
      [{ ...good, finished: 'yes' } as unknown as TrainingState, /^f\.ckpt: state\.finished: .*expected boolean/],
      [{ ...good, optimizer: { ...good.optimizer, name: 'adamm' } } as unknown as TrainingState, /^f\.ckpt: state\.optimizer\.name: /],
      [{ ...good, optimizer: { ...good.optimizer, slots: { m: good.optimizer.slots['m']! } } }, /^f\.ckpt: arrays: no "optimizer\.v" \(a adam checkpoint holds weights, optimizer\.m, optimizer\.v\)/],
      [{ ...good, optimizer: { ...good.optimizer, slots: { ...good.optimizer.slots, momentum: good.weights } } }, /^f\.ckpt: arrays: "optimizer\.momentum" is not one of the arrays of a adam checkpoint/],
      [{ ...good, optimizer: { ...good.optimizer, slots: { m: good.optimizer.slots['m']!.slice(0, 10), v: good.optimizer.slots['v']! } } }, /^f\.ckpt: arrays: optimizer\.m has 10 values, weights has 37/],
      [{ ...good, optimizer: { ...good.optimizer, scalars: {} } }, /^f\.ckpt: state\.optimizer\.scalars: adam keeps accBeta1, accBeta2, the header has none/],
    ];
    for (const [bad, message] of cases) {
      const err = decodeError(encodeCheckpoint(bad));
      expect(err.code).toBe('E_CHECKPOINT');
      expect(err.message).toMatch(message);
    }
    // array lengths the file cannot hold are refused before anything is allocated
    const huge = reseal(encodeCheckpoint(good), (h) => h.arrays.forEach((a) => (a.length = 1e12)));
    expect(decodeError(huge).message).toMatch(/^f\.ckpt: arrays: the header lists 16000000000000 bytes of arrays, the file holds 592 /);
    const renamed = reseal(encodeCheckpoint(good), (h) => (h.arrays[0]!.name = 'weights2'));
    expect(decodeError(renamed).message).toMatch(/^f\.ckpt: arrays: "weights2" is not one of the arrays/);
    // an untouched one still decodes (reseal itself changes nothing)
    expect(decodeCheckpoint(reseal(encodeCheckpoint(good), () => undefined), 'f.ckpt')).toEqual(good);
  });

  it('one that does not fit the run is refused naming the field: 37 of 7169 weights, a batch or epoch out of range, steps that do not add up', () => {
    expect(() => checkCheckpointFits(fitting(), TARGET, 'f.ckpt')).not.toThrow();
    // a snapshot at an epoch's last batch, before its end, is one too
    expect(() => checkCheckpointFits({ ...fitting(), batch: 10, step: 30 }, TARGET, 'f.ckpt')).not.toThrow();
    const cases: [TrainingState, ResumeTarget, RegExp][] = [
      [fitting(), { ...TARGET, parameters: 7169 }, /^f\.ckpt: weights has 37 values, the model has 7169 parameters; it cannot be resumed by this run/],
      [{ ...fitting(), batch: 11, step: 31 }, TARGET, /^f\.ckpt: state\.batch 11 is not a batch of epoch 3/],
      [{ ...fitting(), batch: 1e9 }, TARGET, /^f\.ckpt: state\.batch 1000000000 is not a batch of epoch 3 \(an epoch has 10, the run 5 epochs\)/],
      [{ ...fitting(), epoch: 9 }, TARGET, /^f\.ckpt: state\.epoch 9 is past the run's 5 epochs \(fit\.epochs\)/],
      [{ ...fitting(), epoch: 5, batch: 3 }, TARGET, /^f\.ckpt: state\.batch 3 is not a batch of epoch 6/],
      [{ ...fitting(), step: 1e9 }, TARGET, /^f\.ckpt: state\.step 1000000000 is not epoch 2 x 10 batches \+ batch 5 = 25/],
      [{ ...fitting(), history: [] }, TARGET, /^f\.ckpt: state\.history has 0 epoch\(s\), state\.epoch says 2 are done/],
      [{ ...fitting(), epochProgress: { lossSum: 1, metricSums: [], seconds: 0 } }, TARGET, /^f\.ckpt: state\.epochProgress\.metricSums has 0 values, the model's metrics take 1/],
      [fitting(), { ...TARGET, optimizer: 'sgd' }, /^f\.ckpt: state\.optimizer\.name is adam, the run's compile\.optimizer is sgd/],
    ];
    for (const [s, target, message] of cases) {
      let err: unknown;
      try {
        checkCheckpointFits(s, target, 'f.ckpt');
      } catch (e) {
        err = e;
      }
      expect(err, String(message)).toBeInstanceOf(CheckpointError);
      expect((err as CheckpointError).message).toMatch(message);
    }
  });

  it('the loader skips an invalid one with a warning naming the field, as it skips a checksum mismatch', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-ckpt-')), 'checkpoints');
    await writeCheckpoint(dir, fitting(), 5);
    // the writer's read-back refuses such states, so they are written as they would be forged
    writeFileSync(join(dir, 'step-00000030.ckpt'), encodeCheckpoint(without({ ...fitting(), step: 30 }, 'history')));
    writeFileSync(join(dir, 'step-00000027.ckpt'), encodeCheckpoint(withLength({ ...fitting(), batch: 7, step: 27 }, 10)));
    const warnings: string[] = [];
    const loaded = loadLatestCheckpoint(dir, (w) => warnings.push(w), TARGET);
    expect(loaded.file).toMatch(/step-00000025\.ckpt$/);
    expect(loaded.state).toEqual(fitting());
    expect(warnings).toEqual([
      expect.stringMatching(/^warning: skipping checkpoint .*step-00000030\.ckpt: .*state\.history: .*; trying the previous one$/),
      expect.stringMatching(/^warning: skipping checkpoint .*step-00000027\.ckpt: .*weights has 10 values, the model has 37 parameters.*; trying the previous one$/),
    ]);
    // without a run to fit, only the header is checked: the 10-weight one is the newest usable
    expect(loadLatestCheckpoint(dir, () => undefined).file).toMatch(/step-00000027\.ckpt$/);
  });

  it('--resume refuses a checkpoint holding 10 of the model\'s weights or missing a field (E_CHECKPOINT), and falls back to a good one', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-resume-'));
    writeFileSync(join(dir, 'data.csv'), telcoDemoCsv(300, 3));
    const configFile = join(dir, 'job.yaml');
    writeFileSync(
      configFile,
      stringify({
        seed: 3,
        data: { path: join(dir, 'data.csv'), drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' } },
        model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
        compile: { loss: 'binaryCrossentropy', optimizer: 'adam' },
        fit: { epochs: 2, batchSize: 64 },
        cluster: { threads: 1, backend: 'wasm' },
        metrics: { listen: false },
        output: { dir: join(dir, 'run') },
      }),
    );
    const config = loadConfig(configFile);
    const first = await runJob(config, { handleSignals: false, log: () => undefined });
    const real = first.summary.checkpoint.last!;
    const state = decodeCheckpoint(readFileSync(real), real);
    const checkpoints = join(dir, 'run', 'checkpoints');
    for (const name of readdirSync(checkpoints)) if (join(checkpoints, name) !== real) rmSync(join(checkpoints, name));
    const forged = join(checkpoints, `step-${String(state.step + 1).padStart(8, '0')}.ckpt`);
    const resume = async (): Promise<{ error: unknown; lines: string[] }> => {
      const lines: string[] = [];
      try {
        await runJob(config, { resume: true, handleSignals: false, log: (l) => lines.push(l) });
        return { error: undefined, lines };
      } catch (error) {
        return { error, lines };
      }
    };

    // with only forged checkpoints, nothing is usable: E_CHECKPOINT naming the file and the field
    rmSync(real);
    writeFileSync(forged, encodeCheckpoint(withLength(state, 10)));
    const short = await resume();
    expect(short.error).toBeInstanceOf(CheckpointError);
    expect((short.error as CheckpointError).code).toBe('E_CHECKPOINT');
    expect((short.error as Error).message).toMatch(/none of the 1 checkpoints is usable \(the newest: .*step-\d+\.ckpt: weights has 10 values, the model has \d+ parameters/);
    writeFileSync(forged, encodeCheckpoint(without(state, 'history')));
    const missing = await resume();
    expect((missing.error as CheckpointError).code).toBe('E_CHECKPOINT');
    expect((missing.error as Error).message).toMatch(/state\.history: /);

    // next to the real one, the forged newer one is skipped with a warning and the real one resumed
    writeFileSync(real, encodeCheckpoint(state));
    writeFileSync(forged, encodeCheckpoint(withLength(state, 10)));
    const fallback = await resume();
    expect(fallback.error).toBeUndefined();
    expect(fallback.lines).toContainEqual(expect.stringMatching(/^warning: skipping checkpoint .*step-\d+\.ckpt: .*weights has 10 values/));
    expect(fallback.lines).toContainEqual(expect.stringMatching(/^resuming from .*\.ckpt \(training had finished/));
  });
});
