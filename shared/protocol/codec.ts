/**
 * The binary codec of the protocol: messages to msgpack frames and back (msgpackr), with every
 * decoded frame validated against its schema (schemas.ts) before use; anything else is a
 * ProtocolError with a reason, so a bad peer is named and dropped, never trusted.
 *
 * Typed arrays travel as raw little-endian bytes (msgpack `bin`), never as lists of numbers. A
 * gradient travels as float32, or as float16 with a power-of-two scale (`cluster.gradientDtype`);
 * either way the receiver gets a Float32Array. Large arrays are read in place: the last typed
 * field of a frame starts 8-byte aligned (a `pad` string before it), so fromBytes returns a view
 * of the received frame instead of a copy. The values of a gradient are not checked here: the
 * step (coordinator/fit/step.ts) checks every participant's gradient through the step's weighted
 * mean, in one pass, and names the culprit.
 *
 * No frame reaches msgpackr unchecked: scanFrame (frame-limits.ts) first walks its bytes and holds
 * it to its type's limits (bytes, values, nesting), so a peer cannot make a receiver build an
 * object graph larger than its frame may hold.
 */
import { Packr } from 'msgpackr';
import { ProtocolError } from '../errors.js';
import { decodeFloat16, encodeFloat16 } from '../math/float16.js';
import { firstNonFinite } from '../math/finite.js';
import { ANY_FRAME, scanFrame, type FrameLimits } from './frame-limits.js';
import { printableValue } from './printable.js';
import { PROTOCOL_VERSION, wire, type GradientMessage, type GradientPartMessage, type Message, type MessageType } from './schemas.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

function asBytes(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

type TypedArray = Float64Array | Float32Array | Int32Array | Uint16Array | Uint8Array;
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
  shard: { members: Float64Array, fileRows: Int32Array, pixels: Uint8Array, w: Float32Array, y: Float32Array, x: Float32Array },
  weights: { weights: Float32Array },
  step: { groups: Int32Array, inline: Int32Array, rows: Int32Array, next: Int32Array, pixels: Uint8Array, w: Float32Array, y: Float32Array, x: Float32Array },
  evaluate: { pixels: Uint8Array, w: Float32Array, y: Float32Array, x: Float32Array },
  gradient: {},
  gradient_part: {},
  state: { values: Float32Array },
  block: { values: Float32Array },
  reduced: { values: Float32Array },
};

/**
 * Gradient values that are not checked for NaN and infinity when decoded: a diverging step's are
 * not finite, and the coordinator finds that in the step's mean and who caused it (step.ts).
 */
const UNCHECKED: Partial<Record<MessageType, string>> = { block: 'values', reduced: 'values' };

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
  } else {
    for (const name of Object.keys(fields)) {
      if (head[name] !== undefined) typed.push([name, asBytes(head[name] as ArrayBufferView)]);
      // an optional typed field left undefined is not sent (msgpackr would write an extension)
      else delete head[name];
    }
  }
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

/**
 * Decodes and validates one frame held to `limits` (the receiver's: see frame-limits.ts); throws
 * ProtocolError with the reason.
 */
export function decodeMessage(frame: Uint8Array, limits: FrameLimits = ANY_FRAME): Message {
  scanFrame(frame, limits);
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
      // an optional typed field (a shard's or step's sample weights) may be absent
      if (message[name] === undefined) continue;
      const typed = fromBytes(message[name] as Uint8Array, Kind, `${type}.${name}`);
      if (typed instanceof Float32Array && UNCHECKED[type as MessageType] !== name) checkFinite(typed, `${type}.${name}`);
      message[name] = typed;
    }
  }
  const gradientField = GRADIENT_FIELDS[type as MessageType];
  if (gradientField) {
    // Not checked for NaN or infinity here: the trainer checks every participant's gradient, in one
    // pass over their mean (coordinator/fit/step.ts), and names the culprit.
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

export function versionError(version: unknown): ProtocolError {
  return new ProtocolError(`protocol version ${printableValue(version)} is not supported (this side speaks ${PROTOCOL_VERSION})`, 'version');
}

/** One received WebSocket frame as a message: text frames are refused (the protocol is binary msgpack). */
export function decodeFrame(data: Uint8Array, isBinary: boolean, limits: FrameLimits = ANY_FRAME): Message {
  if (!isBinary) throw new ProtocolError('text frame; the protocol is binary msgpack');
  return decodeMessage(data, limits);
}
