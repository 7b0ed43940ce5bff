/**
 * Checkpoints: the whole training state at a step boundary (weights, optimizer slots, where in
 * which epoch, the shuffle generator, early stopping, history so far), so a run can continue
 * exactly where it stopped. One file per checkpoint, `checkpoints/step-<N>.ckpt`:
 *
 *   "DPTCKPT1" | u32 header length | header JSON | pad to 4 | float32 arrays | sha256 of all before
 *
 * Written atomically and verified (storage.ts: every byte checked, fsync, read back, rename, fsync
 * of the folder); the last `keep` are kept.
 * Loading takes the newest whose checksum holds and warns about any it had to skip.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../shared/errors.js';
import type { OptimizerState } from './optimize/optimizers.js';
import type { EarlyStoppingState } from './callbacks/early-stopping.js';
import { fsOps, makeFolder, writeFileAtomic } from './storage.js';
import type { EpochLog, PhaseTimes } from './fit/logs.js';

export const CHECKPOINT_DIR = 'checkpoints';
const MAGIC = Buffer.from('DPTCKPT1', 'ascii');
const HASH_BYTES = 32;

/** Everything `Trainer.fit` needs to continue a run. */
export interface TrainingState {
  /** 0-based epoch in progress (or the next to start when `batch` is 0). */
  readonly epoch: number;
  /** Batches of `epoch` already applied. */
  readonly batch: number;
  /** Optimizer steps applied in all. */
  readonly step: number;
  /** Samples of the completed epochs. */
  readonly samples: number;
  readonly trainSeconds: number;
  readonly phases: PhaseTimes;
  readonly history: readonly EpochLog[];
  /** Sums of the epoch in progress (its first `batch` batches). */
  readonly epochProgress: { readonly lossSum: number; readonly metricSums: readonly number[]; readonly seconds: number };
  /** Shuffle generator position at the start of `epoch`, before its order was drawn. */
  readonly shuffle: number;
  /** Training is over (all epochs, or early stopping). */
  readonly finished: boolean;
  readonly stoppedEarly: boolean;
  readonly earlyStopping?: EarlyStoppingState | undefined;
  readonly optimizer: OptimizerState;
  readonly weights: Float32Array;
  /** Hash of the training data, model and training settings the state belongs to. */
  readonly fingerprint: string;
}

interface Header {
  readonly state: Omit<TrainingState, 'weights' | 'optimizer' | 'earlyStopping'> & {
    readonly optimizer: Omit<OptimizerState, 'slots'>;
    readonly earlyStopping?: Omit<EarlyStoppingState, 'bestWeights'>;
  };
  /** Names and lengths of the float32 arrays after the header, in order. */
  readonly arrays: { readonly name: string; readonly length: number }[];
}

/** The checkpoint file's bytes. */
export function encodeCheckpoint(state: TrainingState): Buffer {
  const arrays: [string, Float32Array][] = [['weights', state.weights]];
  for (const [name, slot] of Object.entries(state.optimizer.slots)) arrays.push([`optimizer.${name}`, slot]);
  if (state.earlyStopping?.bestWeights) arrays.push(['earlyStopping.bestWeights', state.earlyStopping.bestWeights]);
  const { optimizer, earlyStopping, ...withWeights } = state;
  const rest: Record<string, unknown> = { ...withWeights };
  delete rest['weights'];
  const optimizerScalars: Record<string, unknown> = { ...optimizer };
  delete optimizerScalars['slots'];
  const header: Header = {
    state: {
      ...(rest as unknown as Omit<TrainingState, 'weights' | 'optimizer' | 'earlyStopping'>),
      optimizer: optimizerScalars as unknown as Omit<OptimizerState, 'slots'>,
      ...(earlyStopping ? { earlyStopping: { wait: earlyStopping.wait, best: earlyStopping.best, bestEpoch: earlyStopping.bestEpoch, stoppedEpoch: earlyStopping.stoppedEpoch } } : {}),
    },
    arrays: arrays.map(([name, a]) => ({ name, length: a.length })),
  };
  const json = Buffer.from(JSON.stringify(header, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)), 'utf8');
  const headerEnd = MAGIC.length + 4 + json.length;
  const dataStart = Math.ceil(headerEnd / 4) * 4;
  const dataBytes = arrays.reduce((a, [, arr]) => a + arr.byteLength, 0);
  const out = Buffer.alloc(dataStart + dataBytes + HASH_BYTES);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(json.length, MAGIC.length);
  json.copy(out, MAGIC.length + 4);
  let at = dataStart;
  for (const [, arr] of arrays) {
    Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength).copy(out, at);
    at += arr.byteLength;
  }
  createHash('sha256').update(out.subarray(0, at)).digest().copy(out, at);
  return out;
}

/** Parses and verifies a checkpoint; `source` names it in errors. */
export function decodeCheckpoint(bytes: Buffer, source: string): TrainingState {
  if (bytes.length < MAGIC.length + 4 + HASH_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) throw new CheckpointError(`${source}: not a dptrain checkpoint`);
  const body = bytes.subarray(0, bytes.length - HASH_BYTES);
  if (!createHash('sha256').update(body).digest().equals(bytes.subarray(bytes.length - HASH_BYTES))) {
    throw new CheckpointError(`${source}: checksum mismatch (the file is corrupt or was cut short)`);
  }
  const jsonLength = bytes.readUInt32LE(MAGIC.length);
  const header = JSON.parse(bytes.subarray(MAGIC.length + 4, MAGIC.length + 4 + jsonLength).toString('utf8'), (_k, v: unknown) =>
    v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v === 'NaN' ? NaN : v,
  ) as Header;
  let at = Math.ceil((MAGIC.length + 4 + jsonLength) / 4) * 4;
  const arrays = new Map<string, Float32Array>();
  for (const { name, length } of header.arrays) {
    const copy = new Float32Array(length);
    Buffer.from(copy.buffer).set(body.subarray(at, at + length * 4));
    arrays.set(name, copy);
    at += length * 4;
  }
  if (at !== body.length) throw new CheckpointError(`${source}: the arrays do not fill the file`);
  const slots = Object.fromEntries([...arrays].filter(([n]) => n.startsWith('optimizer.')).map(([n, a]) => [n.slice('optimizer.'.length), a]));
  const { optimizer, earlyStopping, ...rest } = header.state;
  const bestWeights = arrays.get('earlyStopping.bestWeights');
  return {
    ...rest,
    weights: arrays.get('weights')!,
    optimizer: { ...optimizer, slots },
    ...(earlyStopping ? { earlyStopping: { ...earlyStopping, ...(bestWeights ? { bestWeights } : {}) } } : {}),
  };
}

const FILE_RE = /^step-(\d+)\.ckpt$/;

function checkpointFiles(dir: string): { file: string; step: number }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((name) => ({ name, m: FILE_RE.exec(name) }))
    .filter((f): f is { name: string; m: RegExpExecArray } => f.m !== null)
    .map((f) => ({ file: join(dir, f.name), step: Number(f.m[1]) }))
    .sort((a, b) => b.step - a.step);
}

/**
 * Writes the state as `step-<N>.ckpt` in `dir` atomically and verified (the file is read back and
 * its checksum checked before it is renamed into place), then deletes all but the newest `keep`
 * and any temp files an earlier process left. Nothing is deleted unless the new checkpoint is in
 * place, so a failed write (StorageError, naming the file) leaves the last good one.
 */
export function writeCheckpoint(dir: string, state: TrainingState, keep: number): string {
  makeFolder(dir);
  const target = join(dir, `step-${String(state.step).padStart(8, '0')}.ckpt`);
  writeFileAtomic(target, encodeCheckpoint(state), (readBack) => {
    decodeCheckpoint(readBack, `${target} (read back)`);
  });
  for (const old of checkpointFiles(dir).slice(keep)) fsOps.rmSync(old.file, { force: true });
  for (const name of safeList(dir)) if (TEMP_RE.test(name)) fsOps.rmSync(join(dir, name), { force: true });
  return target;
}

const TEMP_RE = /^step-\d+\.ckpt\.tmp-\d+$/;

function safeList(dir: string): string[] {
  try {
    return fsOps.readdirSync(dir);
  } catch {
    return [];
  }
}

/** The newest checkpoint in `dir` that verifies; each one skipped is reported through `warn`. */
export function loadLatestCheckpoint(dir: string, warn: (line: string) => void): { state: TrainingState; file: string } {
  const files = checkpointFiles(dir);
  if (files.length === 0) throw new CheckpointError(`${dir}: no checkpoints to resume from`);
  for (const { file } of files) {
    try {
      return { state: decodeCheckpoint(readFileSync(file), file), file };
    } catch (err) {
      warn(`warning: skipping checkpoint ${file}: ${(err as Error).message}; trying the previous one`);
    }
  }
  throw new CheckpointError(`${dir}: none of the ${files.length} checkpoints is usable`);
}
