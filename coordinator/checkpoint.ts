/**
 * Checkpoints: the whole training state at a step boundary (weights, optimizer slots, where in
 * which epoch, the shuffle generator, early stopping, history so far), so a run can continue
 * exactly where it stopped. One file per checkpoint, `checkpoints/step-<N>.ckpt`:
 *
 *   "DPTCKPT1" | u32 header length | header JSON | pad to 4 | float32 arrays | sha256 of all before
 *
 * Written atomically and verified (storage.ts: every byte checked, fsync, read back, rename, fsync
 * of the folder); the last `keep` are kept.
 * A checksum only shows the file is what was written, so the header is also checked as strictly
 * as a config (known fields only, integers in range, the arrays an optimizer needs and nothing
 * else, all of one length), and `checkCheckpointFits` checks it against the run it would resume
 * (the model's parameters, the epoch's batches). Loading takes the newest checkpoint that passes
 * all of that and warns about any it had to skip.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { formatIssue } from '../shared/config/load.js';
import { CheckpointError } from '../shared/errors.js';
import { OPTIMIZER_STATE, type OptimizerName, type OptimizerState } from '../shared/optimize/optimizers.js';
import type { ModelCheckpointState } from './callbacks/model-checkpoint.js';
import type { ReduceLrOnPlateauState } from './callbacks/reduce-lr-on-plateau.js';
import type { EarlyStoppingState } from './callbacks/early-stopping.js';
import { fsOps, makeFolder, writeFileAtomicAsync } from './storage.js';
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
  readonly reduceLrOnPlateau?: ReduceLrOnPlateauState | undefined;
  readonly modelCheckpoint?: ModelCheckpointState | undefined;
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

/** Any number, NaN and the infinities included (losses, EarlyStopping's `best` before an epoch). */
const anyNumber = z.custom<number>((v) => typeof v === 'number', { message: 'expected a number' });
const count = z.int().min(0);
const OPTIMIZER_NAMES = Object.keys(OPTIMIZER_STATE) as [OptimizerName, ...OptimizerName[]];

/** What a header may hold: exactly what encodeCheckpoint writes of a TrainingState. */
const HeaderSchema = z.strictObject({
  state: z.strictObject({
    epoch: count,
    batch: count,
    step: count,
    samples: count,
    trainSeconds: z.number(),
    phases: z.strictObject({ compute: z.number(), reduce: z.number(), apply: z.number(), broadcast: z.number() }),
    history: z.array(z.strictObject({ epoch: z.int().min(1), steps: count, seconds: z.number(), samples: count, samplesPerSecond: anyNumber, values: z.record(z.string(), anyNumber) })),
    epochProgress: z.strictObject({ lossSum: anyNumber, metricSums: z.array(anyNumber), seconds: z.number() }),
    shuffle: z.int().min(0).max(0xffffffff),
    finished: z.boolean(),
    stoppedEarly: z.boolean(),
    earlyStopping: z.strictObject({ wait: count, best: anyNumber, bestEpoch: z.int().min(-1), stoppedEpoch: z.int().min(-1) }).optional(),
    optimizer: z.strictObject({ name: z.enum(OPTIMIZER_NAMES), iterations: count, scalars: z.record(z.string(), z.number()), learningRate: z.number().positive().optional() }),
    reduceLrOnPlateau: z.strictObject({ wait: count, cooldown: count, best: anyNumber }).optional(),
    modelCheckpoint: z.strictObject({ best: anyNumber, savedEpoch: count }).optional(),
    fingerprint: z.string().min(1),
  }),
  arrays: z.array(z.strictObject({ name: z.string(), length: count })),
});

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

/**
 * Parses and verifies a checkpoint; `source` names it in errors. Past the checksum, the header must
 * match HeaderSchema and its arrays must be the weights, exactly the slots its optimizer keeps and
 * (with EarlyStopping's state) the best weights, all of one length, filling the file: anything
 * else is a CheckpointError naming the field, raised before any array is allocated.
 */
export function decodeCheckpoint(bytes: Buffer, source: string): TrainingState {
  if (bytes.length < MAGIC.length + 4 + HASH_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) throw new CheckpointError(`${source}: not a dptrain checkpoint`);
  const body = bytes.subarray(0, bytes.length - HASH_BYTES);
  if (!createHash('sha256').update(body).digest().equals(bytes.subarray(bytes.length - HASH_BYTES))) {
    throw new CheckpointError(`${source}: checksum mismatch (the file is corrupt or was cut short)`);
  }
  const bad = (what: string): CheckpointError => new CheckpointError(`${source}: ${what} (not a checkpoint dptrain writes; resume from an earlier one)`);
  const jsonLength = bytes.readUInt32LE(MAGIC.length);
  const headerEnd = MAGIC.length + 4 + jsonLength;
  if (headerEnd > body.length) throw bad(`the header claims ${jsonLength} bytes, the file has ${body.length - MAGIC.length - 4}`);
  let json: unknown;
  try {
    json = JSON.parse(body.subarray(MAGIC.length + 4, headerEnd).toString('utf8'), (_k, v: unknown) => (v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v === 'NaN' ? NaN : v));
  } catch {
    throw bad('the header is not JSON');
  }
  const parsed = HeaderSchema.safeParse(json);
  if (!parsed.success) throw bad(formatIssue(parsed.error.issues[0]!));
  const header: Header = parsed.data;
  checkArrays(header, body.length - Math.ceil(headerEnd / 4) * 4, bad);

  let at = Math.ceil(headerEnd / 4) * 4;
  const arrays = new Map<string, Float32Array>();
  for (const { name, length } of header.arrays) {
    const copy = new Float32Array(length);
    Buffer.from(copy.buffer).set(body.subarray(at, at + length * 4));
    arrays.set(name, copy);
    at += length * 4;
  }
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

/**
 * The header's arrays and optimizer scalars are the ones its optimizer keeps, of one length, filling
 * `dataBytes`. The slot of an option (amsgrad's vHat, centered's mg) may be there or not: the header
 * does not say whether the option was on; the fingerprint (which covers compile.optimizer) and the
 * optimizer's restore (which wants exactly its config's slots) hold the run to it.
 */
function checkArrays(header: Header, dataBytes: number, bad: (what: string) => CheckpointError): void {
  const { optimizer, earlyStopping } = header.state;
  const expected = OPTIMIZER_STATE[optimizer.name];
  const slots = expected.slots.map((name) => `optimizer.${name}`);
  const optionSlots = (expected.optionSlots ?? []).map((name) => `optimizer.${name}`);
  const allowed = ['weights', ...slots, ...optionSlots, ...(earlyStopping ? ['earlyStopping.bestWeights'] : [])];
  const seen = new Set<string>();
  for (const { name } of header.arrays) {
    if (!allowed.includes(name)) throw bad(`arrays: "${name}" is not one of the arrays of a ${optimizer.name} checkpoint${earlyStopping ? '' : ' without state.earlyStopping'} (${allowed.join(', ')})`);
    if (seen.has(name)) throw bad(`arrays: "${name}" appears twice`);
    seen.add(name);
  }
  const missing = ['weights', ...slots].find((name) => !seen.has(name));
  if (missing !== undefined) throw bad(`arrays: no "${missing}" (a ${optimizer.name} checkpoint holds ${['weights', ...slots].join(', ')})`);
  const scalars = Object.keys(optimizer.scalars).sort();
  if (scalars.join() !== [...expected.scalars].sort().join()) {
    throw bad(`state.optimizer.scalars: ${optimizer.name} keeps ${expected.scalars.join(', ') || 'none'}, the header has ${scalars.join(', ') || 'none'}`);
  }
  const weights = header.arrays.find((a) => a.name === 'weights')!.length;
  const other = header.arrays.find((a) => a.length !== weights);
  if (other) throw bad(`arrays: ${other.name} has ${other.length} values, weights has ${weights}`);
  const bytes = header.arrays.reduce((n, a) => n + a.length * 4, 0);
  if (bytes !== dataBytes) throw bad(`arrays: the header lists ${bytes} bytes of arrays, the file holds ${dataBytes}`);
}

/** What a checkpoint must agree with to be resumed by a run (from its model and config). */
export interface ResumeTarget {
  /** The model's parameters: the length of the weights and of every optimizer slot. */
  readonly parameters: number;
  /** compile.optimizer's name. */
  readonly optimizer: OptimizerName;
  /** How many metric sums the model's metrics take (epochProgress.metricSums has that many). */
  readonly metrics: number;
  /** Batches (steps) in an epoch: the training rows over fit.batchSize. */
  readonly batches: number;
  /** fit.epochs. */
  readonly epochs: number;
}

/**
 * Refuses (CheckpointError naming `source` and the field) a checkpoint that does not fit the run
 * that would resume it: arrays of another length than the model's parameters (restoring them
 * would leave most weights as initialised), another optimizer, a position outside the run
 * (epoch past fit.epochs, a batch past the epoch's last) or not of this run's counting (a step
 * other than epoch x batches + batch, a history of another length than the epochs done).
 */
export function checkCheckpointFits(state: TrainingState, run: ResumeTarget, source: string): void {
  const bad = (what: string): CheckpointError => new CheckpointError(`${source}: ${what}; it cannot be resumed by this run (resume from an earlier checkpoint, or start the run again)`);
  const { parameters } = run;
  const arrays: [string, Float32Array | undefined][] = [
    ['weights', state.weights],
    ...Object.entries(state.optimizer.slots).map(([name, slot]): [string, Float32Array] => [`optimizer.${name}`, slot]),
    ['earlyStopping.bestWeights', state.earlyStopping?.bestWeights],
  ];
  for (const [name, values] of arrays) {
    if (values && values.length !== parameters) throw bad(`${name} has ${values.length} values, the model has ${parameters} parameters`);
  }
  if (state.optimizer.name !== run.optimizer) throw bad(`state.optimizer.name is ${state.optimizer.name}, the run's compile.optimizer is ${run.optimizer}`);
  const { epoch, batch, step, history, epochProgress, earlyStopping } = state;
  if (epochProgress.metricSums.length !== run.metrics) throw bad(`state.epochProgress.metricSums has ${epochProgress.metricSums.length} values, the model's metrics take ${run.metrics}`);
  if (epoch > run.epochs) throw bad(`state.epoch ${epoch} is past the run's ${run.epochs} epochs (fit.epochs)`);
  // batch === batches: a snapshot at the epoch's last batch, before its end (validation, history)
  if (batch > run.batches || (epoch === run.epochs && batch > 0)) throw bad(`state.batch ${batch} is not a batch of epoch ${epoch + 1} (an epoch has ${run.batches}, the run ${run.epochs} epochs)`);
  if (step !== epoch * run.batches + batch) throw bad(`state.step ${step} is not epoch ${epoch} x ${run.batches} batches + batch ${batch} = ${epoch * run.batches + batch}`);
  if (history.length !== epoch) throw bad(`state.history has ${history.length} epoch(s), state.epoch says ${epoch} are done`);
  if (earlyStopping && (earlyStopping.bestEpoch >= epoch || earlyStopping.stoppedEpoch >= epoch)) {
    throw bad(`state.earlyStopping names epoch ${Math.max(earlyStopping.bestEpoch, earlyStopping.stoppedEpoch) + 1}, ${epoch} are done`);
  }
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
export async function writeCheckpoint(dir: string, state: TrainingState, keep: number): Promise<string> {
  makeFolder(dir);
  const target = join(dir, `step-${String(state.step).padStart(8, '0')}.ckpt`);
  await writeFileAtomicAsync(target, encodeCheckpoint(state), (readBack) => {
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

/**
 * The newest checkpoint in `dir` that verifies and, given `run`, fits it (checkCheckpointFits);
 * each one skipped is reported through `warn`.
 */
export function loadLatestCheckpoint(dir: string, warn: (line: string) => void, run?: ResumeTarget): { state: TrainingState; file: string } {
  const files = checkpointFiles(dir);
  if (files.length === 0) throw new CheckpointError(`${dir}: no checkpoints to resume from`);
  let newest = '';
  for (const { file } of files) {
    try {
      const state = decodeCheckpoint(readFileSync(file), file);
      if (run) checkCheckpointFits(state, run, file);
      return { state, file };
    } catch (err) {
      newest ||= (err as Error).message;
      warn(`warning: skipping checkpoint ${file}: ${(err as Error).message}; trying the previous one`);
    }
  }
  throw new CheckpointError(`${dir}: none of the ${files.length} checkpoints is usable (the newest: ${newest})`);
}
