/**
 * The wire protocol between the coordinator and remote worker nodes (issue #3): every message,
 * its encoding (msgpackr) and its validation, in one module both sides import.
 *
 * Typed arrays travel as raw little-endian bytes (msgpack `bin`), never as lists of numbers.
 * A gradient travels as float32, or as float16 with a power-of-two scale when the job asks for
 * it (`cluster.gradientDtype`); either way the receiver gets a Float32Array. It may travel in
 * parts (`job.bucketBytes`, like DDP's buckets): the backward pass finishes the last layers'
 * gradients first, and a worker sends them as `gradient_part`s while it computes the rest; the
 * parts tile the flat gradient from its end down, and the `gradient` message brings the rest
 * (from index 0) with the loss and metric sums.
 * Every decoded message is validated (type, fields, finite numbers, byte lengths) before use;
 * anything else is a ProtocolError with a reason, so a bad peer is named and dropped, never
 * trusted. The one exception is the values of a gradient: the trainer checks every participant's
 * gradient (threads and nodes alike) for NaN and infinity through the step's weighted mean, in one
 * pass, and names the culprit. Checks that need context (the expected step, the model's parameter
 * count) are the `expect*` functions below.
 *
 * Large arrays are read in place: the last typed field of a frame starts 8-byte aligned (a `pad`
 * string before it), so fromBytes returns a view of the received frame instead of a copy.
 */
import { DptrainError } from '../errors.js';
import { printableValue } from './printable.js';
import { Packr } from 'msgpackr';
import { z } from 'zod';
import { GRADIENT_DTYPES, decodeFloat16, encodeFloat16 } from '../math/float16.js';
import { firstNonFinite } from '../math/reduce.js';
import { ACTIVATIONS, LOSSES, METRICS } from '../model/spec.js';

/**
 * 2: gradients may travel as float16 (job.gradientDtype). 3: typed arrays last and 8-byte aligned
 * (`pad`). 4: gradients may come in parts (job.bucketBytes, gradient_part, gradient.parts).
 */
export const PROTOCOL_VERSION = 4;

/** Why a message was rejected; also the `reason` label of failure counters. */
export type ProtocolFault = 'malformed' | 'version' | 'auth' | 'non_finite' | 'shape' | 'unexpected';

/** A message that breaks the protocol; `fault` is why (the participant failure reason it maps to). */
export class ProtocolError extends DptrainError {
  constructor(
    message: string,
    readonly fault: ProtocolFault = 'malformed',
  ) {
    super('E_PROTOCOL', message);
  }
}

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const count = z.int().nonnegative();
const bytes = z.instanceof(Uint8Array);
/** Filler before the typed arrays so that the last one starts 8-byte aligned in the frame (see encodeMessage). */
const pad = z.string().max(7).optional();

/** The model spec as it travels in a job message (checked before the worker builds anything). */
export const ModelSpecSchema = z.strictObject({
  inputDim: z.int().positive(),
  layers: z
    .array(z.strictObject({ units: z.int().positive(), activation: z.enum(ACTIVATIONS), useBias: z.boolean(), alpha: z.number().nonnegative().optional() }))
    .min(1),
  loss: z.enum(LOSSES),
  metrics: z.array(z.enum(METRICS)),
});

/**
 * Message shapes as they travel (typed arrays as bytes). The conversation:
 *   worker -> hello (version, token)        coordinator -> welcome (worker id) or error + close
 *   coordinator -> job (model, data shape, timings), shard chunks (rows held from now on)
 *   coordinator -> weights (when changed), step (rows held + rows inline)
 *   worker -> gradient_part ... (the gradient's end, as the backward pass finishes it), gradient
 *   coordinator -> evaluate (rows inline)   worker -> evaluation
 *   both -> heartbeat (liveness), error, bye
 */
const wire = {
  hello: z.strictObject({ type: z.literal('hello'), version: z.int(), token: z.string().max(4096), name: z.string().max(200), backend: z.string().max(50) }),
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
  }),
  shard: z.strictObject({
    type: z.literal('shard'),
    firstRow: count,
    rows: count,
    chunk: count,
    chunks: z.int().positive(),
    pad,
    y: bytes,
    x: bytes,
  }),
  weights: z.strictObject({ type: z.literal('weights'), version: count, pad, weights: bytes }),
  step: z.strictObject({ type: z.literal('step'), step: count, version: count, pad, rows: bytes, y: bytes, x: bytes }),
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
  evaluate: z.strictObject({ type: z.literal('evaluate'), id: count, version: count, pad, y: bytes, x: bytes }),
  evaluation: z.strictObject({ type: z.literal('evaluation'), id: count, count: z.int().positive(), lossSum: finite, metricSums: z.array(finite) }),
  heartbeat: z.strictObject({ type: z.literal('heartbeat'), sentAt: finite }),
  error: z.strictObject({ type: z.literal('error'), code: z.string(), message: z.string() }),
  bye: z.strictObject({ type: z.literal('bye'), reason: z.string() }),
} as const;

type Wire = { [K in keyof typeof wire]: z.output<(typeof wire)[K]> };
type Typed<T, Fields extends keyof T, A> = Omit<T, Fields> & { [F in Fields]: A };

export type HelloMessage = Wire['hello'];
export type WelcomeMessage = Wire['welcome'];
export type JobMessage = Wire['job'];
/** `pad` is the wire's business: messages in memory have none. */
type Unpadded<T> = Omit<T, 'pad'>;
export type ShardMessage = Typed<Unpadded<Wire['shard']>, 'x' | 'y', Float32Array>;
export type WeightsMessage = Typed<Unpadded<Wire['weights']>, 'weights', Float32Array>;
/** rows: training rows the worker holds (global indices); x/y: further rows sent inline. */
export type StepMessage = Typed<Typed<Unpadded<Wire['step']>, 'rows', Int32Array>, 'x' | 'y', Float32Array>;
/** In memory the gradient is always float32; `dtype` says how it travels (scaleExp is the wire's business). */
export type GradientMessage = Typed<Omit<Wire['gradient'], 'scaleExp' | 'pad'>, 'gradient', Float32Array>;
export type GradientPartMessage = Typed<Omit<Wire['gradient_part'], 'scaleExp' | 'pad'>, 'values', Float32Array>;
export type EvaluateMessage = Typed<Unpadded<Wire['evaluate']>, 'x' | 'y', Float32Array>;
export type EvaluationMessage = Wire['evaluation'];
export type HeartbeatMessage = Wire['heartbeat'];
export type ErrorMessage = Wire['error'];
export type ByeMessage = Wire['bye'];

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
  | ByeMessage;

export type MessageType = Message['type'];

const packr = new Packr({ useRecords: false, moreTypes: false });

function asBytes(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

type TypedArray = Float32Array | Int32Array | Uint16Array;
type TypedKind = { new (n: number): TypedArray; new (buffer: ArrayBuffer, offset: number, length: number): TypedArray; BYTES_PER_ELEMENT: number };

/**
 * The values of a typed field: a view of the received bytes where they are aligned for the type
 * (the frame is this message's own memory), otherwise an aligned copy.
 */
function fromBytes(raw: Uint8Array, Kind: TypedKind, field: string): TypedArray {
  const size = Kind.BYTES_PER_ELEMENT;
  if (raw.byteLength % size !== 0) {
    throw new ProtocolError(`${field}: ${raw.byteLength} bytes is not a whole number of ${size}-byte values`);
  }
  if (raw.byteOffset % size === 0) return new Kind(raw.buffer as ArrayBuffer, raw.byteOffset, raw.byteLength / size);
  const out = new Kind(raw.byteLength / size);
  asBytes(out).set(raw);
  return out;
}

/** Typed fields by message type, in wire order: the largest last. */
const TYPED_FIELDS: Partial<Record<MessageType, Record<string, TypedKind>>> = {
  shard: { y: Float32Array, x: Float32Array },
  weights: { weights: Float32Array },
  step: { rows: Int32Array, y: Float32Array, x: Float32Array },
  evaluate: { y: Float32Array, x: Float32Array },
  gradient: {},
  gradient_part: {},
};

/** The float32 field of the messages whose values travel as `dtype` (float32 or scaled float16). */
const GRADIENT_FIELDS: Partial<Record<MessageType, 'gradient' | 'values'>> = { gradient: 'gradient', gradient_part: 'values' };

/** The msgpack header of a `bin` of `length` bytes (bin8, bin16 or bin32). */
function binHeader(length: number): Uint8Array {
  if (length < 0x100) return Uint8Array.of(0xc4, length);
  if (length < 0x10000) return Uint8Array.of(0xc5, length >>> 8, length & 0xff);
  return Uint8Array.of(0xc6, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
}

/** Memory for a frame of `bytes` bytes (at least that long); the frame is written at its start. */
export type FrameMemory = (bytes: number) => Uint8Array;

const newMemory: FrameMemory = (bytes) => new Uint8Array(bytes);

/**
 * Encodes a message for the wire. Typed arrays go last, as msgpack `bin`: msgpack writes a map's
 * entries in order, so the last one's bytes end the frame, and a `pad` string before them puts
 * those bytes 8-byte aligned from the frame's start. The receiver then reads the weights or the
 * gradient in place (fromBytes) instead of copying them. The frame is built as msgpackr's
 * encoding of the message with the last array left empty, then that array's `bin` header and
 * bytes: one copy of the payload, into `memory` (the sender's reusable buffers, see FramePool).
 */
export function encodeMessage(message: Message, memory: FrameMemory = newMemory): Uint8Array {
  const fields = TYPED_FIELDS[message.type];
  if (!fields) return packr.pack(message);
  const head: Record<string, unknown> = { ...message };
  const typed: [string, Uint8Array][] = [];
  const gradientField = GRADIENT_FIELDS[message.type];
  if (gradientField) {
    const values = head[gradientField] as Float32Array;
    if ((message as GradientMessage | GradientPartMessage).dtype === 'float16') {
      const { halves, scaleExp } = encodeFloat16(values);
      head['scaleExp'] = scaleExp;
      typed.push([gradientField, asBytes(halves)]);
    } else {
      head['scaleExp'] = 0;
      typed.push([gradientField, asBytes(values)]);
    }
  } else for (const name of Object.keys(fields)) typed.push([name, asBytes(head[name] as ArrayBufferView)]);
  for (const [name] of typed) delete head[name];
  const [lastName, last] = typed.at(-1)!;
  const lastHeader = binHeader(last.byteLength);
  // msgpackr's encoding ending in an empty bin (2 bytes: c4 00) whose place the payload takes
  const encodeHead = (padding: string): Uint8Array => packr.pack({ ...head, pad: padding, ...Object.fromEntries(typed.slice(0, -1)), [lastName]: new Uint8Array(0) });
  let start = encodeHead('');
  const misaligned = (start.byteLength - 2 + lastHeader.byteLength) % 8;
  // a pad of k characters is k bytes longer (msgpack fixstr)
  if (misaligned !== 0) start = encodeHead(' '.repeat(8 - misaligned));
  const headLength = start.byteLength - 2;
  const bytes = headLength + lastHeader.byteLength + last.byteLength;
  const frame = memory(bytes).subarray(0, bytes);
  frame.set(start.subarray(0, headLength));
  frame.set(lastHeader, headLength);
  frame.set(last, headLength + lastHeader.byteLength);
  return frame;
}

/** Decodes and validates one frame; throws ProtocolError with the reason. */
export function decodeMessage(frame: Uint8Array): Message {
  let raw: unknown;
  try {
    raw = packr.unpack(frame);
  } catch (err) {
    throw new ProtocolError(`not a msgpack message (${frame.byteLength} bytes): ${(err as Error).message}`);
  }
  const type = (raw as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !(type in wire)) {
    throw new ProtocolError(`unknown message type ${printableValue(type)}`);
  }
  // A hello of another version may have other fields: report the version, not the fields.
  const version = (raw as { version?: unknown }).version;
  if (type === 'hello' && version !== PROTOCOL_VERSION) throw versionError(version);
  const parsed = wire[type as MessageType].safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ProtocolError(`bad "${type}" message: ${issue.path.join('.') || '(message)'}: ${issue.message}`);
  }
  const message: Record<string, unknown> = { ...parsed.data };
  delete message['pad'];
  const fields = TYPED_FIELDS[type as MessageType];
  if (fields) {
    for (const [name, Kind] of Object.entries(fields)) {
      const typed = fromBytes(message[name] as Uint8Array, Kind, `${type}.${name}`);
      if (typed instanceof Float32Array) checkFinite(typed, `${type}.${name}`);
      message[name] = typed;
    }
  }
  const gradientField = GRADIENT_FIELDS[type as MessageType];
  if (gradientField) {
    // Not checked for NaN or infinity here: the trainer checks every participant's gradient, in one
    // pass over their mean (coordinator/trainer.ts), and names the culprit.
    const { dtype, scaleExp } = message as { dtype: string; scaleExp: number };
    const raw = message[gradientField] as Uint8Array;
    const field = `${type}.${gradientField}`;
    message[gradientField] = dtype === 'float16' ? decodeFloat16(fromBytes(raw, Uint16Array, field) as Uint16Array, scaleExp) : fromBytes(raw, Float32Array, field);
    delete message['scaleExp'];
  }
  return message as unknown as Message;
}

function checkFinite(values: Float32Array, field: string): void {
  const bad = firstNonFinite(values);
  if (bad >= 0) throw new ProtocolError(`${field}[${bad}] is ${values[bad]}, not a finite number`, 'non_finite');
}

function versionError(version: unknown): ProtocolError {
  return new ProtocolError(`protocol version ${printableValue(version)} is not supported (this side speaks ${PROTOCOL_VERSION})`, 'version');
}

/** Checks a hello: protocol version and (constant-time) token. */
export function expectHello(message: Message, checkToken: (token: string) => boolean): HelloMessage {
  if (message.type !== 'hello') throw new ProtocolError(`expected "hello" first, got "${message.type}"`, 'unexpected');
  if (message.version !== PROTOCOL_VERSION) throw versionError(message.version);
  if (!checkToken(message.token)) throw new ProtocolError('bad token', 'auth');
  return message;
}

/** What a step's gradient_part messages brought so far: they tile [end, parameters). */
export interface ReceivedParts {
  readonly count: number;
  readonly end: number;
}

/**
 * Checks a gradient against the step it answers, the model's parameter count and the parts
 * received before it (whose values start at `parts.end`: the message must bring the rest).
 */
export function expectGradient(message: Message, step: number, parameters: number, metrics: number, parts: ReceivedParts = { count: 0, end: parameters }): GradientMessage {
  if (message.type !== 'gradient') throw new ProtocolError(`expected "gradient", got "${message.type}"`, 'unexpected');
  if (message.step !== step) throw new ProtocolError(`gradient for step ${message.step}, expected step ${step}`, 'unexpected');
  if (message.parts !== parts.count) throw new ProtocolError(`gradient says ${message.parts} part(s) came before it, ${parts.count} did`, 'shape');
  if (message.gradient.length !== parts.end) {
    throw new ProtocolError(
      parts.count === 0
        ? `gradient has ${message.gradient.length} values, the model has ${parameters} parameters`
        : `gradient has ${message.gradient.length} values before its parts, which start at ${parts.end}`,
      'shape',
    );
  }
  if (message.metricSums.length !== metrics) throw new ProtocolError(`gradient has ${message.metricSums.length} metric sums, expected ${metrics}`, 'shape');
  return message;
}

/** Checks a gradient part: it must end where the parts before it start (`end`; the model's size for the first). */
export function expectGradientPart(message: GradientPartMessage, end: number): void {
  const { offset, values } = message;
  if (values.length === 0 || offset + values.length !== end) {
    throw new ProtocolError(`gradient part ${offset}..${offset + values.length} does not end where the next values start (${end})`, 'shape');
  }
}
