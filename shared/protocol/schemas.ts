/**
 * The messages between the coordinator and remote worker nodes as they travel: one zod schema
 * per message type (typed arrays as bytes), and the in-memory types the codec turns them into.
 * Protocol versions and the conversation: shared/protocol/PROTOCOL.md.
 */
import { z } from 'zod';
import { OptimizerObject } from '../config/schema.js';
import { GRADIENT_DTYPES } from '../math/float16.js';
import { ACTIVATIONS, LOSSES, METRICS, PADDINGS } from '../model/spec.js';
import { FILL_MODES, FLIP_MODES } from '../model/augment.js';

/** The version this code speaks; a hello of any other is refused (PROTOCOL.md lists them). */
export const PROTOCOL_VERSION = 13;

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const count = z.int().nonnegative();
const bytes = z.instanceof(Uint8Array);
/** Filler before the typed arrays so that the last one starts 8-byte aligned in the frame (see encodeMessage). */
const pad = z.string().max(7).optional();

/** The model spec as it travels in a job message (checked before the worker builds anything). */
const size = z.int().positive().max(1 << 20);
const sizePair = z.tuple([size, size]);
/** A file's name in a node's data folder: no path. */
const fileName = z.string().min(1).max(255).refine((n) => !/[/\\]/.test(n) && n !== '.' && n !== '..', 'a file name, not a path');
const LayerSpecSchema = z.union([
  z.strictObject({ type: z.literal('dense').optional(), units: size, activation: z.enum(ACTIVATIONS), useBias: z.boolean(), alpha: z.number().nonnegative().optional() }),
  z.strictObject({
    type: z.literal('conv2d'),
    filters: size,
    kernelSize: sizePair,
    strides: sizePair,
    padding: z.enum(PADDINGS),
    activation: z.enum(ACTIVATIONS),
    useBias: z.boolean(),
    alpha: z.number().nonnegative().optional(),
  }),
  z.strictObject({ type: z.enum(['maxPooling2d', 'averagePooling2d']), poolSize: sizePair, strides: sizePair, padding: z.enum(PADDINGS) }),
  z.strictObject({ type: z.literal('flatten') }),
  z.strictObject({ type: z.literal('reshape'), targetShape: z.array(size).min(1).max(8) }),
  z.strictObject({ type: z.literal('embedding'), inputDim: size, outputDim: size }),
  z.strictObject({ type: z.literal('globalAveragePooling2d') }),
  z.strictObject({ type: z.literal('activation'), activation: z.enum(ACTIVATIONS), alpha: z.number().nonnegative().optional() }),
  z.strictObject({ type: z.literal('dropout'), rate: z.number().min(0).lt(1), seed: z.int() }),
  z.strictObject({ type: z.literal('batchNormalization'), momentum: z.number().min(0).lt(1), epsilon: z.number().positive(), virtualBatchSize: size }),
]);

const range = z.tuple([finite, finite]);
const fillMode = { fillMode: z.enum(FILL_MODES), fillValue: finite, seed: z.int() };
const AugmentSchema = z.strictObject({
  shape: z.tuple([size, size, size]),
  layers: z
    .array(
      z.discriminatedUnion('type', [
        z.strictObject({ type: z.literal('randomFlip'), mode: z.enum(FLIP_MODES), seed: z.int() }),
        z.strictObject({ type: z.literal('randomTranslation'), height: range, width: range, ...fillMode }),
        z.strictObject({ type: z.literal('randomRotation'), factor: range, ...fillMode }),
        z.strictObject({ type: z.literal('randomZoom'), height: range, width: range.optional(), ...fillMode }),
        z.strictObject({ type: z.literal('randomContrast'), factor: range, valueRange: range, seed: z.int() }),
      ]),
    )
    .min(1)
    .max(32),
});

/** A metric by name or with its arguments (the worker checks how many sums they take before building). */
const MetricSchema = z.union([
  z.enum(METRICS),
  z.strictObject({ name: z.enum(METRICS), k: z.int().positive().max(1_000_000).optional(), numThresholds: z.int().min(3).max(1000).optional(), threshold: z.number().min(0).max(1).optional() }),
]);

export const ModelSpecSchema = z.strictObject({
  inputDim: z.int().positive(),
  inputShape: z.array(size).min(1).max(8).optional(),
  layers: z.array(LayerSpecSchema).max(1000),
  /** A tfjs-layers model of the user's (its getConfig()); built by tfjs-layers on the worker. */
  keras: z
    .strictObject({
      className: z.enum(['Sequential', 'Model']),
      config: z.record(z.string(), z.unknown()),
      inputShape: z.array(size).min(1).max(8),
      weights: z.array(z.strictObject({ name: z.string().max(1000), shape: z.array(size).max(8) })).max(100_000),
      outputs: size,
      seed: z.int().optional(),
    })
    .optional(),
  loss: z.enum(LOSSES),
  lossOptions: z.strictObject({ fromLogits: z.boolean().optional(), labelSmoothing: z.number().min(0).max(1).optional(), delta: z.number().positive().optional() }).optional(),
  metrics: z.array(MetricSchema).max(64),
  weightedMetrics: z.array(MetricSchema).max(64).optional(),
  microBatchSize: z.int().positive().optional(),
  classWeights: z.array(z.number().nonnegative()).min(2).max(1_000_000).optional(),
  augment: AugmentSchema.optional(),
}).refine((spec) => spec.layers.length > 0 || spec.keras !== undefined, { message: 'a model spec has layers or a tfjs-layers model', path: ['layers'] });

/**
 * Message shapes as they travel (typed arrays as bytes). The conversation:
 *   worker -> hello (version, token)        coordinator -> welcome (worker id) or error + close
 *   coordinator -> job (model, data shape, timings), shard chunks (rows held from now on)
 *   coordinator -> weights (when changed), step (rows held + rows inline)
 *   worker -> gradient_part ... (the gradient's end, as the backward pass finishes it), gradient
 *   coordinator -> evaluate (rows inline)   worker -> evaluation
 *   both -> heartbeat (liveness), error, bye
 * With cluster.reduction peers, instead of weights and gradients:
 *   coordinator -> state (weights and optimizer state, when the node's differ), peers (an epoch's
 *   owner ranks), round + step; nodes -> block / reduced among themselves (peer connections open
 *   with peer_hello), coordinator <-> block / reduced; node -> round_sums; coordinator -> commit
 */
export const wire = {
  hello: z.strictObject({
    type: z.literal('hello'),
    version: z.int(),
    token: z.string().max(4096),
    name: z.string().max(200),
    backend: z.string().max(50),
    /** The WebGPU adapter (vendor, architecture, device), or why auto chose the backend. */
    adapter: z.string().max(400).optional(),
    /** Compute processes on the node (worker start --devices); one when absent. */
    devices: z.int().min(1).max(64).optional(),
    /** The port of the node's peer endpoint (cluster.reduction: peers), and the host to reach it at if not the one it connected from. */
    peerPort: z.int().min(1).max(65535).optional(),
    peerHost: z.string().min(1).max(253).optional(),
    /** The peer endpoint serves wss:// (worker start --peer-cert). */
    peerTls: z.literal(true).optional(),
    /** The node's peer key (hex): the coordinator makes from it the proofs other nodes show this one (shared/peer/peer-proof.ts). */
    peerKey: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    /** The node reads a job's data file itself, from its own folder (worker start --data-dir). */
    readsData: z.literal(true).optional(),
  }),
  welcome: z.strictObject({ type: z.literal('welcome'), version: z.int(), workerId: z.string() }),
  job: z.strictObject({
    type: z.literal('job'),
    jobId: z.string(),
    spec: ModelSpecSchema,
    parameters: z.int().positive(),
    features: z.int().positive(),
    outputs: z.int().positive(),
    trainRows: count,
    heartbeatMs: z.int().positive(),
    heartbeatTimeoutMs: z.int().positive(),
    /** How the worker sends gradients. */
    gradientDtype: z.enum(GRADIENT_DTYPES),
    /** Send a gradient's finished end once it holds this many bytes (0: whole gradients only). */
    bucketBytes: count,
    /** > 0: rows travel as uint8 `pixels` (x empty), features = pixel x pixelScale in float32; 0: as float32 x. */
    pixelScale: z.number().nonnegative(),
    /** coordinator (or absent): gradients to the coordinator, weights back; peers: nodes all-reduce among themselves and step the optimizer themselves. */
    reduction: z.enum(['coordinator', 'peers']).optional(),
    /** The optimizer every node steps with (reduction peers). */
    optimizer: OptimizerObject.optional(),
    /**
     * To a node that reads data itself (hello.readsData), where the features are on disk: the
     * .npy file's name in the node's data folder and what it must hold, its shards then bringing
     * file rows (shard.fileRows); or the tar shards' names and sizes and the images' shape, its
     * shards then bringing each row's shard, offset and size (shard.members). Not features.
     */
    dataFile: z
      .discriminatedUnion('kind', [
        z.strictObject({
          kind: z.literal('npy'),
          dtype: z.enum(['f4', 'f8', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'b1']),
          scale: finite,
          /** The files in order (rows are numbered across them): name, where the values start, size, rows. */
          parts: z.array(z.strictObject({ name: fileName, dataOffset: count, bytes: count, rows: count })).min(1).max(1_000_000),
        }),
        z.strictObject({
          kind: z.literal('tar'),
          names: z.array(fileName).min(1).max(1_000_000),
          fileBytes: z.array(count).max(1_000_000),
          shape: z.tuple([size, size, z.int().min(1).max(4)]),
          resize: z.boolean(),
          scale: finite,
        }),
        z.strictObject({
          kind: z.literal('csv'),
          /** The files in order, each with its size and, where its columns are in another order, its column of each header column. */
          files: z.array(z.strictObject({ name: fileName, bytes: count, columns: z.array(z.int().min(-1).max(65535)).max(65536).optional() })).min(1).max(100_000),
          header: z.array(z.string().max(1024)).min(1).max(65536),
          /** The fitted encoding of a row's features (preprocessing.json's columns). */
          columns: z
            .array(z.discriminatedUnion('kind', [z.strictObject({ name: z.string().max(1024), kind: z.literal('numeric') }), z.strictObject({ name: z.string().max(1024), kind: z.literal('onehot'), categories: z.array(z.string().max(4096)).max(65536) })]))
            .min(1)
            .max(65536),
          /** data.standardize's statistics, one mean and std a feature. */
          standardize: z.strictObject({ mean: z.array(finite).max(1 << 20), std: z.array(finite).max(1 << 20) }).optional(),
        }),
      ])
      .optional(),
  }),
  shard: z.strictObject({
    type: z.literal('shard'),
    firstRow: count,
    rows: count,
    chunk: count,
    chunks: z.int().positive(),
    pad,
    pixels: bytes,
    /** The rows' rows in the job's .npy file, which the node reads itself (job.dataFile; x and pixels empty), or absent. */
    fileRows: bytes.optional(),
    /** The rows' images in the job's tar shards, or their records in its CSV files, three numbers a row: file, byte offset, size (job.dataFile; x and pixels empty), or absent. */
    members: bytes.optional(),
    /** The rows' sample weights (data.sampleWeight), or absent. */
    w: bytes.optional(),
    y: bytes,
    x: bytes,
  }),
  weights: z.strictObject({ type: z.literal('weights'), version: count, pad, weights: bytes }),
  /**
   * rows: held rows; inline: the rows of x/y; groups: the virtual batch of each (held, then
   * inline), or empty; next: held rows the node will likely compute at the next step, for a node
   * that reads the data itself to read them ahead (absent: no guess).
   */
  step: z.strictObject({ type: z.literal('step'), step: count, version: count, pad, groups: bytes, inline: bytes, rows: bytes, next: bytes.optional(), pixels: bytes, w: bytes.optional(), y: bytes, x: bytes }),
  /** Values offset.. of a step's flat gradient, sent before the step's `gradient` message. */
  gradient_part: z.strictObject({
    type: z.literal('gradient_part'),
    step: count,
    offset: count,
    dtype: z.enum(GRADIENT_DTYPES),
    scaleExp: z.int().min(-300).max(300),
    pad,
    values: bytes,
  }),
  gradient: z.strictObject({
    type: z.literal('gradient'),
    step: count,
    count: z.int().positive(),
    lossSum: finite,
    metricSums: z.array(finite),
    computeMs: finite,
    dtype: z.enum(GRADIENT_DTYPES),
    /** float16: the values were multiplied by 2^scaleExp before rounding (0 for float32). */
    scaleExp: z.int().min(-300).max(300),
    /** gradient_part messages sent for this step before this one; `gradient` holds the values before theirs. */
    parts: count,
    pad,
    gradient: bytes,
  }),
  /** `w`: each row's weight in the loss (data.sampleWeight), or absent. */
  evaluate: z.strictObject({ type: z.literal('evaluate'), id: count, version: count, pad, pixels: bytes, w: bytes.optional(), y: bytes, x: bytes }),
  evaluation: z.strictObject({ type: z.literal('evaluation'), id: count, count: z.int().positive(), lossSum: finite, metricSums: z.array(finite) }),
  heartbeat: z.strictObject({ type: z.literal('heartbeat'), sentAt: finite }),
  // The peer reduction (cluster.reduction: peers; shared/peer/, PROTOCOL.md):
  /** Coordinator -> node: the owner ranks of a membership epoch, in shard order, and which one the node is. */
  peers: z.strictObject({
    type: z.literal('peers'),
    epoch: count,
    rank: count,
    /** Each rank's id and endpoint, and the proof this node shows it in its peer_hello. */
    ranks: z.array(z.strictObject({ id: z.string().max(64), url: z.string().max(300), proof: z.string().max(128) })).min(1).max(4096),
  }),
  /** Coordinator -> node, before a step's `step`: the step is reduced among peers; who sends each block (-1: the coordinator); the rate the step applies. */
  round: z.strictObject({ type: z.literal('round'), epoch: count, step: count, block: count, senders: z.array(z.int().min(-1).max(4095)).min(1).max(65536), learningRate: finite }),
  /** Coordinator -> node: weights and optimizer state of a version, for a node that steps the optimizer itself. */
  state: z.strictObject({
    type: z.literal('state'),
    version: count,
    optimizer: z.strictObject({ name: z.string().max(32), iterations: count, scalars: z.record(z.string().max(32), finite), learningRate: finite.optional() }),
    /** `values` holds the weights, then these slots in this order, each one value per parameter. */
    slots: z.array(z.string().max(32)).max(8),
    pad,
    values: bytes,
  }),
  /** Node -> node (the first frame on a peer connection). */
  peer_hello: z.strictObject({ type: z.literal('peer_hello'), version: z.int(), token: z.string().max(4096), jobId: z.string().max(200), from: z.string().max(64), proof: z.string().max(128) }),
  /** A block's values over one shard, to the shard's owner (node -> node, coordinator -> node). */
  block: z.strictObject({ type: z.literal('block'), epoch: count, step: count, block: count, count: z.int().positive(), shard: count, pad, values: bytes }),
  /** A shard of the step's mean gradient, from its owner to every other rank and the coordinator. */
  reduced: z.strictObject({ type: z.literal('reduced'), epoch: count, step: count, shard: count, pad, values: bytes }),
  /** Node -> coordinator: its block's sums, once it holds the whole mean gradient. */
  round_sums: z.strictObject({ type: z.literal('round_sums'), step: count, count: z.int().positive(), lossSum: finite, metricSums: z.array(finite), computeMs: finite }),
  /** Coordinator -> node: the step is taken; step the optimizer with this rate; the weights' check value after it. */
  commit: z.strictObject({ type: z.literal('commit'), step: count, version: count, learningRate: finite, check: z.int().nonnegative() }),
  error: z.strictObject({ type: z.literal('error'), code: z.string(), message: z.string() }),
  bye: z.strictObject({ type: z.literal('bye'), reason: z.string() }),
} as const;

type Wire = { [K in keyof typeof wire]: z.output<(typeof wire)[K]> };
type Typed<T, Fields extends keyof T, A> = Omit<T, Fields> & { [F in Fields]: A };
/** An optional typed field (absent on the wire, absent in the message). */
type MaybeTyped<T, Fields extends keyof T, A> = Omit<T, Fields> & { [F in Fields]?: A };

export type HelloMessage = Wire['hello'];
export type WelcomeMessage = Wire['welcome'];
export type JobMessage = Wire['job'];
/** `pad` is the wire's business: messages in memory have none. */
type Unpadded<T> = Omit<T, 'pad'>;
/** x or pixels (uint8, when the job's pixelScale > 0) hold the features; the other is empty; both are, where fileRows name them in the job's data file. */
export type ShardMessage = MaybeTyped<MaybeTyped<MaybeTyped<Typed<Typed<Unpadded<Wire['shard']>, 'x' | 'y', Float32Array>, 'pixels', Uint8Array>, 'w', Float32Array>, 'fileRows', Int32Array>, 'members', Float64Array>;
export type WeightsMessage = Typed<Unpadded<Wire['weights']>, 'weights', Float32Array>;
/**
 * rows: training rows the worker holds (global indices); x/y: further rows sent inline, whose
 * indices are `inline`; groups: each row's virtual batch (rows, then inline) for batch norm, or empty.
 */
export type StepMessage = MaybeTyped<MaybeTyped<Typed<Typed<Typed<Unpadded<Wire['step']>, 'rows' | 'inline' | 'groups', Int32Array>, 'x' | 'y', Float32Array>, 'pixels', Uint8Array>, 'w', Float32Array>, 'next', Int32Array>;
/** In memory the gradient is always float32; `dtype` says how it travels (scaleExp is the wire's business). */
export type GradientMessage = Typed<Omit<Wire['gradient'], 'scaleExp' | 'pad'>, 'gradient', Float32Array>;
export type GradientPartMessage = Typed<Omit<Wire['gradient_part'], 'scaleExp' | 'pad'>, 'values', Float32Array>;
export type EvaluateMessage = MaybeTyped<Typed<Typed<Unpadded<Wire['evaluate']>, 'x' | 'y', Float32Array>, 'pixels', Uint8Array>, 'w', Float32Array>;
export type EvaluationMessage = Wire['evaluation'];
export type HeartbeatMessage = Wire['heartbeat'];
export type ErrorMessage = Wire['error'];
export type ByeMessage = Wire['bye'];
export type PeersMessage = Wire['peers'];
export type RoundMessage = Wire['round'];
export type StateMessage = Typed<Unpadded<Wire['state']>, 'values', Float32Array>;
export type PeerHelloMessage = Wire['peer_hello'];
export type BlockMessage = Typed<Unpadded<Wire['block']>, 'values', Float32Array>;
export type ReducedMessage = Typed<Unpadded<Wire['reduced']>, 'values', Float32Array>;
export type RoundSumsMessage = Wire['round_sums'];
export type CommitMessage = Wire['commit'];

export type Message =
  | HelloMessage
  | WelcomeMessage
  | JobMessage
  | ShardMessage
  | WeightsMessage
  | StepMessage
  | GradientPartMessage
  | GradientMessage
  | EvaluateMessage
  | EvaluationMessage
  | HeartbeatMessage
  | ErrorMessage
  | ByeMessage
  | PeersMessage
  | RoundMessage
  | StateMessage
  | PeerHelloMessage
  | BlockMessage
  | ReducedMessage
  | RoundSumsMessage
  | CommitMessage;

export type MessageType = Message['type'];
