/**
 * The wire protocol between the coordinator and remote worker nodes (issue #3): every message,
 * its encoding (msgpackr) and its validation, in one module both sides import.
 *
 * Typed arrays travel as raw little-endian bytes (msgpack `bin`), never as lists of numbers.
 * Every decoded message is validated (type, fields, finite numbers, byte lengths) before use;
 * anything else is a ProtocolError with a reason, so a bad peer is named and dropped, never
 * trusted. Checks that need context (the expected step, the model's parameter count) are the
 * `expect*` functions below.
 */
import { Packr } from 'msgpackr';
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

export class ProtocolError extends Error {
  readonly code = 'E_PROTOCOL';
}

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const count = z.int().nonnegative();
const bytes = z.instanceof(Uint8Array);

/** Message shapes as they travel (typed arrays as bytes). */
const wire = {
  hello: z.strictObject({ type: z.literal('hello'), version: z.int(), token: z.string(), name: z.string().max(200), backend: z.string().max(50) }),
  welcome: z.strictObject({ type: z.literal('welcome'), version: z.int(), workerId: z.string() }),
  job: z.strictObject({ type: z.literal('job'), jobId: z.string(), spec: z.unknown(), parameters: count }),
  shard: z.strictObject({
    type: z.literal('shard'),
    features: count,
    outputs: count,
    firstRow: count,
    rows: count,
    chunk: count,
    chunks: z.int().positive(),
    x: bytes,
    y: bytes,
  }),
  weights: z.strictObject({ type: z.literal('weights'), version: count, weights: bytes }),
  step: z.strictObject({ type: z.literal('step'), step: count, version: count, rows: bytes }),
  gradient: z.strictObject({
    type: z.literal('gradient'),
    step: count,
    count: z.int().positive(),
    lossSum: finite,
    metricSums: z.array(finite),
    gradient: bytes,
  }),
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
export type StepMessage = Typed<Wire['step'], 'rows', Int32Array>;
export type GradientMessage = Typed<Wire['gradient'], 'gradient', Float32Array>;
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
type TypedKind = { new (n: number): Float32Array | Int32Array; BYTES_PER_ELEMENT: number };

function fromBytes(raw: Uint8Array, Kind: TypedKind, field: string): Float32Array | Int32Array {
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
  step: { rows: Int32Array },
  gradient: { gradient: Float32Array },
};

/** Encodes a message for the wire. */
export function encodeMessage(message: Message): Uint8Array {
  const fields = TYPED_FIELDS[message.type];
  const out: Record<string, unknown> = { ...message };
  if (fields) for (const name of Object.keys(fields)) out[name] = asBytes(out[name] as ArrayBufferView);
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
      if (typed instanceof Float32Array) {
        const bad = typed.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) throw new ProtocolError(`${type}.${name}[${bad}] is ${typed[bad]}, not a finite number`);
      }
      message[name] = typed;
    }
  }
  return message as unknown as Message;
}

/** Checks a hello: protocol version and (constant-time) token. */
export function expectHello(message: Message, checkToken: (token: string) => boolean): HelloMessage {
  if (message.type !== 'hello') throw new ProtocolError(`expected "hello" first, got "${message.type}"`);
  if (message.version !== PROTOCOL_VERSION) {
    throw new ProtocolError(`protocol version ${message.version} is not supported (this side speaks ${PROTOCOL_VERSION})`);
  }
  if (!checkToken(message.token)) throw new ProtocolError('bad token');
  return message;
}

/** Checks a gradient against the step it answers and the model's parameter count. */
export function expectGradient(message: Message, step: number, parameters: number, metrics: number): GradientMessage {
  if (message.type !== 'gradient') throw new ProtocolError(`expected "gradient", got "${message.type}"`);
  if (message.step !== step) throw new ProtocolError(`gradient for step ${message.step}, expected step ${step}`);
  if (message.gradient.length !== parameters) {
    throw new ProtocolError(`gradient has ${message.gradient.length} values, the model has ${parameters} parameters`);
  }
  if (message.metricSums.length !== metrics) throw new ProtocolError(`gradient has ${message.metricSums.length} metric sums, expected ${metrics}`);
  return message;
}
