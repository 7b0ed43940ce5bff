/**
 * The wire protocol between the coordinator and remote worker nodes (issue #3): every message,
 * its encoding (msgpackr) and its validation, in one module both sides import.
 *
 * Typed arrays travel as raw little-endian bytes (msgpack `bin`), never as lists of numbers.
 * A gradient travels as float32, or as float16 with a power-of-two scale when the job asks for
 * it (`cluster.gradientDtype`); either way the receiver gets a Float32Array.
 * Every decoded message is validated (type, fields, finite numbers, byte lengths) before use;
 * anything else is a ProtocolError with a reason, so a bad peer is named and dropped, never
 * trusted. Checks that need context (the expected step, the model's parameter count) are the
 * `expect*` functions below.
 */
import { Packr } from 'msgpackr';
import { z } from 'zod';
import { GRADIENT_DTYPES, decodeFloat16, encodeFloat16 } from '../math/float16.js';
import { ACTIVATIONS, LOSSES, METRICS } from '../model/spec.js';

/** 2: gradients may travel as float16 (job.gradientDtype). */
export const PROTOCOL_VERSION = 2;

/** Why a message was rejected; also the `reason` label of failure counters. */
export type ProtocolFault = 'malformed' | 'version' | 'auth' | 'non_finite' | 'shape' | 'unexpected';

export class ProtocolError extends Error {
  readonly code = 'E_PROTOCOL';
  constructor(
    message: string,
    readonly fault: ProtocolFault = 'malformed',
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const count = z.int().nonnegative();
const bytes = z.instanceof(Uint8Array);

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
 *   coordinator -> weights (when changed), step (rows held + rows inline)  worker -> gradient
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
  }),
  shard: z.strictObject({
    type: z.literal('shard'),
    firstRow: count,
    rows: count,
    chunk: count,
    chunks: z.int().positive(),
    x: bytes,
    y: bytes,
  }),
  weights: z.strictObject({ type: z.literal('weights'), version: count, weights: bytes }),
  step: z.strictObject({ type: z.literal('step'), step: count, version: count, rows: bytes, x: bytes, y: bytes }),
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
    gradient: bytes,
  }),
  evaluate: z.strictObject({ type: z.literal('evaluate'), id: count, version: count, x: bytes, y: bytes }),
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
export type ShardMessage = Typed<Wire['shard'], 'x' | 'y', Float32Array>;
export type WeightsMessage = Typed<Wire['weights'], 'weights', Float32Array>;
/** rows: training rows the worker holds (global indices); x/y: further rows sent inline. */
export type StepMessage = Typed<Typed<Wire['step'], 'rows', Int32Array>, 'x' | 'y', Float32Array>;
/** In memory the gradient is always float32; `dtype` says how it travels (scaleExp is the wire's business). */
export type GradientMessage = Typed<Omit<Wire['gradient'], 'scaleExp'>, 'gradient', Float32Array>;
export type EvaluateMessage = Typed<Wire['evaluate'], 'x' | 'y', Float32Array>;
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
  | GradientMessage
  | EvaluateMessage
  | EvaluationMessage
  | HeartbeatMessage
  | ErrorMessage
  | ByeMessage;

export type MessageType = Message['type'];
export const MESSAGE_TYPES = Object.keys(wire) as MessageType[];

const packr = new Packr({ useRecords: false, moreTypes: false });

function asBytes(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Copies bytes into a fresh, aligned typed array (received bytes may sit at any offset). */
type TypedArray = Float32Array | Int32Array | Uint16Array;
type TypedKind = { new (n: number): TypedArray; BYTES_PER_ELEMENT: number };

function fromBytes(raw: Uint8Array, Kind: TypedKind, field: string): TypedArray {
  if (raw.byteLength % Kind.BYTES_PER_ELEMENT !== 0) {
    throw new ProtocolError(`${field}: ${raw.byteLength} bytes is not a whole number of ${Kind.BYTES_PER_ELEMENT}-byte values`);
  }
  const out = new Kind(raw.byteLength / Kind.BYTES_PER_ELEMENT);
  asBytes(out).set(raw);
  return out;
}

const TYPED_FIELDS: Partial<Record<MessageType, Record<string, TypedKind>>> = {
  shard: { x: Float32Array, y: Float32Array },
  weights: { weights: Float32Array },
  step: { rows: Int32Array, x: Float32Array, y: Float32Array },
  evaluate: { x: Float32Array, y: Float32Array },
};

/** Encodes a message for the wire. */
export function encodeMessage(message: Message): Uint8Array {
  const fields = TYPED_FIELDS[message.type];
  const out: Record<string, unknown> = { ...message };
  if (fields) for (const name of Object.keys(fields)) out[name] = asBytes(out[name] as ArrayBufferView);
  if (message.type === 'gradient') {
    if (message.dtype === 'float16') {
      const { halves, scaleExp } = encodeFloat16(message.gradient);
      Object.assign(out, { gradient: asBytes(halves), scaleExp });
    } else Object.assign(out, { gradient: asBytes(message.gradient), scaleExp: 0 });
  }
  return packr.pack(out);
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
    throw new ProtocolError(`unknown message type ${JSON.stringify(type)}`);
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
  const fields = TYPED_FIELDS[type as MessageType];
  if (fields) {
    for (const [name, Kind] of Object.entries(fields)) {
      const typed = fromBytes(message[name] as Uint8Array, Kind, `${type}.${name}`);
      if (typed instanceof Float32Array) checkFinite(typed, `${type}.${name}`);
      message[name] = typed;
    }
  }
  if (type === 'gradient') {
    const { dtype, scaleExp, gradient } = message as Wire['gradient'];
    const field = 'gradient.gradient';
    const values = dtype === 'float16' ? decodeFloat16(fromBytes(gradient, Uint16Array, field) as Uint16Array, scaleExp) : (fromBytes(gradient, Float32Array, field) as Float32Array);
    checkFinite(values, field);
    message['gradient'] = values;
    delete message['scaleExp'];
  }
  return message as unknown as Message;
}

function checkFinite(values: Float32Array, field: string): void {
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new ProtocolError(`${field}[${bad}] is ${values[bad]}, not a finite number`, 'non_finite');
}

function versionError(version: unknown): ProtocolError {
  return new ProtocolError(`protocol version ${JSON.stringify(version)} is not supported (this side speaks ${PROTOCOL_VERSION})`, 'version');
}

/** Checks a hello: protocol version and (constant-time) token. */
export function expectHello(message: Message, checkToken: (token: string) => boolean): HelloMessage {
  if (message.type !== 'hello') throw new ProtocolError(`expected "hello" first, got "${message.type}"`, 'unexpected');
  if (message.version !== PROTOCOL_VERSION) throw versionError(message.version);
  if (!checkToken(message.token)) throw new ProtocolError('bad token', 'auth');
  return message;
}

/** Checks a gradient against the step it answers and the model's parameter count. */
export function expectGradient(message: Message, step: number, parameters: number, metrics: number): GradientMessage {
  if (message.type !== 'gradient') throw new ProtocolError(`expected "gradient", got "${message.type}"`, 'unexpected');
  if (message.step !== step) throw new ProtocolError(`gradient for step ${message.step}, expected step ${step}`, 'unexpected');
  if (message.gradient.length !== parameters) {
    throw new ProtocolError(`gradient has ${message.gradient.length} values, the model has ${parameters} parameters`, 'shape');
  }
  if (message.metricSums.length !== metrics) throw new ProtocolError(`gradient has ${message.metricSums.length} metric sums, expected ${metrics}`, 'shape');
  return message;
}
