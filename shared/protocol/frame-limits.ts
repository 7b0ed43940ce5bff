/**
 * What a frame may hold, checked on its bytes before msgpackr decodes it. msgpackr builds a
 * frame's whole object graph before the schema sees it: an empty map is one byte on the wire and
 * tens of bytes of heap once decoded (a 4 MiB heartbeat of empty maps decodes to ~300 MB, in
 * ~2 s), and a declared array length is allocated up front (36 bytes declaring 30 million
 * elements: 230 MB). So every frame is first walked as msgpack tokens (scanFrame): one pass, linear in its
 * tokens, allocating nothing, binary payloads skipped by their length (a gradient frame is a
 * dozen tokens and one `bin`). The walk finds the message type and holds the frame to that type's
 * limits: bytes, values (every msgpack value, map keys included; a bin or str is one) and nesting
 * depth. Extension types (records, structured-clone references, typed arrays, dates) are refused:
 * the protocol sends none, and msgpackr would decode them whatever the Packr's options.
 */
import { ProtocolError } from '../errors.js';
import { MAX_METRIC_SUMS } from '../model/spec.js';
import type { MessageType } from './schemas.js';

export interface FrameLimit {
  /** Most bytes in the frame. */
  readonly bytes: number;
  /** Most msgpack values in it, the message's own map and its keys included. */
  readonly elements: number;
  /** Deepest nesting of maps and arrays (the message's own map is 1). */
  readonly depth: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
/** Room in a frame for the metric sums and the message's other fields. */
const SUMS_ELEMENTS = MAX_METRIC_SUMS + 64;
const SUMS_BYTES = 9 * MAX_METRIC_SUMS + 4 * KiB;

/**
 * Each message type's limits wherever it comes from. Frames that carry rows, weights or gradients
 * (`bin` fields) have no byte limit here: the socket's maxPayload bounds them, and where the
 * model is known the receiver bounds weights and gradients by its size (modelBytes). Every other
 * type is small; a job is a model spec, whose tfjs-layers config may nest (layers, inbound
 * nodes, initialisers) and run to thousands of values.
 */
export const MESSAGE_LIMITS: Readonly<Record<MessageType, FrameLimit>> = {
  // deeper than this version's hello: a hello of another version is refused by its version
  hello: { bytes: 16 * KiB, elements: 64, depth: 4 },
  welcome: { bytes: 4 * KiB, elements: 16, depth: 1 },
  job: { bytes: 16 * MiB, elements: 1 << 18, depth: 32 },
  shard: { bytes: Infinity, elements: 32, depth: 1 },
  weights: { bytes: Infinity, elements: 16, depth: 1 },
  step: { bytes: Infinity, elements: 32, depth: 1 },
  gradient_part: { bytes: Infinity, elements: 32, depth: 1 },
  // metricSums: a model's metrics take at most MAX_METRIC_SUMS numbers (9 bytes each)
  gradient: { bytes: Infinity, elements: SUMS_ELEMENTS, depth: 2 },
  evaluate: { bytes: Infinity, elements: 32, depth: 1 },
  evaluation: { bytes: SUMS_BYTES, elements: SUMS_ELEMENTS, depth: 2 },
  heartbeat: { bytes: 1 * KiB, elements: 8, depth: 1 },
  error: { bytes: 16 * KiB, elements: 16, depth: 1 },
  bye: { bytes: 4 * KiB, elements: 8, depth: 1 },
  peers: { bytes: 2 * MiB, elements: 5 * 4096 + 16, depth: 3 },
  round: { bytes: 1 * MiB, elements: 65536 + 16, depth: 2 },
  state: { bytes: Infinity, elements: 64, depth: 3 },
  peer_hello: { bytes: 16 * KiB, elements: 32, depth: 1 },
  block: { bytes: Infinity, elements: 32, depth: 1 },
  reduced: { bytes: Infinity, elements: 32, depth: 1 },
  round_sums: { bytes: SUMS_BYTES, elements: SUMS_ELEMENTS, depth: 2 },
  commit: { bytes: 1 * KiB, elements: 32, depth: 1 },
};

/**
 * A frame whose type is unknown, absent, or not one this receiver takes: small enough that
 * msgpackr may decode it, so that the refusal names what it is ("unknown message type",
 * "unexpected \"job\" message") as before.
 */
const OTHER: FrameLimit = { bytes: 16 * KiB, elements: 64, depth: 4 };

/** Bytes of a frame of float32 values (weights, a gradient part, a peer's block) beyond them: its fields. */
const MODEL_FRAME_HEAD = 4 * KiB;

/** The most a frame carrying `parameters` float32 values (weights, a gradient part, a block) may take. */
export function modelBytes(parameters: number): number {
  return 4 * parameters + MODEL_FRAME_HEAD;
}

/** The most a whole gradient of `parameters` values may take: its values, fields and metric sums. */
function gradientBytes(parameters: number): number {
  return modelBytes(parameters) + SUMS_BYTES;
}

/** The optimizer slots a state message may carry besides the weights (Adam with amsgrad: m, v, vHat; RMSprop centered: rms, momentum, mg). */
const MAX_SLOTS = 3;

/** The deepest nesting any limit may allow (the walk's stack is this deep). */
const MAX_DEPTH = 64;
/** Values still to be read in each open container (index 0: the frame's one value). */
const left = new Float64Array(MAX_DEPTH + 1);
/** Whether each open container is a map (its values alternate key, value). */
const isMap = new Uint8Array(MAX_DEPTH + 1);

/** The limits of one receiver: the types it takes, each with its limit; any other type gets OTHER's. */
export class FrameLimits {
  private readonly byType: ReadonlyMap<string, FrameLimit>;
  /** The loosest of them, which holds until a frame's type is found. */
  readonly loosest: FrameLimit;

  constructor(table: Partial<Readonly<Record<MessageType, FrameLimit>>>) {
    const entries = Object.entries(table) as [MessageType, FrameLimit][];
    for (const [type, limit] of entries) {
      if (!(limit.depth >= 1 && limit.depth <= MAX_DEPTH)) throw new RangeError(`${type}: a depth limit is 1..${MAX_DEPTH}, got ${limit.depth}`);
    }
    this.byType = new Map(entries);
    const all = [OTHER, ...this.byType.values()];
    this.loosest = { bytes: Math.max(...all.map((l) => l.bytes)), elements: Math.max(...all.map((l) => l.elements)), depth: Math.max(...all.map((l) => l.depth)) };
  }

  /** The limit of `type`'s frames, or undefined where this receiver does not take them. */
  of(type: string): FrameLimit | undefined {
    return this.byType.get(type);
  }
}

/** Every message type, each with its own limits (decodeMessage's default). */
export const ANY_FRAME = new FrameLimits(MESSAGE_LIMITS);

/** What the coordinator takes from a peer that has not yet said hello. */
export const HELLO_FRAME = new FrameLimits({ hello: MESSAGE_LIMITS.hello });

/** What the coordinator takes from a worker node of a model of `parameters` parameters. */
export function nodeFrameLimits(parameters: number): FrameLimits {
  const { heartbeat, gradient_part, gradient, evaluation, error, bye, reduced, round_sums } = MESSAGE_LIMITS;
  const bytes = modelBytes(parameters);
  return new FrameLimits({ heartbeat, gradient_part: { ...gradient_part, bytes }, gradient: { ...gradient, bytes: gradientBytes(parameters) }, evaluation, error, bye, reduced: { ...reduced, bytes }, round_sums });
}

/** What a node takes on its peer endpoint: a hello, then shards of a model of `parameters` parameters. */
export function peerFrameLimits(parameters?: number): FrameLimits {
  const { peer_hello, block, reduced, heartbeat } = MESSAGE_LIMITS;
  if (parameters === undefined) return new FrameLimits({ peer_hello });
  const bytes = modelBytes(parameters);
  return new FrameLimits({ block: { ...block, bytes }, reduced: { ...reduced, bytes }, heartbeat });
}

/** What a worker takes from its coordinator; weights bounded by the job's model once it is known. */
export function coordinatorFrameLimits(parameters?: number): FrameLimits {
  const { welcome, job, shard, weights, step, evaluate, heartbeat, error, bye, peers, round, state, block, commit } = MESSAGE_LIMITS;
  const model = (limit: FrameLimit, copies = 1): FrameLimit => (parameters === undefined ? limit : { ...limit, bytes: copies * modelBytes(parameters) });
  // state: the weights and the optimizer's slots
  return new FrameLimits({ welcome, job, shard, weights: model(weights), step, evaluate, heartbeat, error, bye, peers, round, state: model(state, 1 + MAX_SLOTS), block: model(block), commit });
}

/** The big-endian unsigned integer of `size` bytes at `at`. */
function uint(frame: Uint8Array, at: number, size: number): number {
  let n = 0;
  for (let i = 0; i < size; i++) n = n * 256 + frame[at + i]!;
  return n;
}

/** The type name held by a str of `length` bytes at `at`, if it is ASCII and short enough to be one. */
function typeName(frame: Uint8Array, at: number, length: number): string | undefined {
  if (length > 32) return undefined;
  let name = '';
  for (let i = 0; i < length; i++) {
    const c = frame[at + i]!;
    if (c >= 0x80) return undefined;
    name += String.fromCharCode(c);
  }
  return name;
}

/** Whether the str of `length` bytes at `at` is "type". */
function isTypeKey(frame: Uint8Array, at: number, length: number): boolean {
  return length === 4 && frame[at] === 0x74 && frame[at + 1] === 0x79 && frame[at + 2] === 0x70 && frame[at + 3] === 0x65;
}

/** A frame that is not one well-formed msgpack value. */
function malformed(frame: Uint8Array, what: string): ProtocolError {
  return new ProtocolError(`not a msgpack message (${frame.byteLength} bytes): ${what}`);
}

/** Why a frame (`named`: what it is known to be) breaks `limit` so far, if it does. */
function overLimit(frame: Uint8Array, named: string, limit: FrameLimit, elements: number, depth: number): ProtocolError | undefined {
  if (frame.byteLength > limit.bytes) return new ProtocolError(`${named} of ${frame.byteLength} bytes is over its limit of ${limit.bytes}`, 'oversize');
  if (elements > limit.elements) return new ProtocolError(`${named} holds more than its limit of ${limit.elements} msgpack values`, 'oversize');
  if (depth > limit.depth) return new ProtocolError(`${named} nests deeper than its limit of ${limit.depth} levels`);
  return undefined;
}

/**
 * Walks a frame's msgpack tokens and refuses it (ProtocolError: 'oversize' past its type's bytes
 * or values, 'malformed' for anything else) unless it is one well-formed msgpack value within the
 * limits of its type. The type is the str value of the top-level map's "type" key; until it is
 * found the loosest limits hold; a frame of no type this receiver takes is held to OTHER's.
 * Returns the type, or undefined when the frame names none this receiver takes.
 */
export function scanFrame(frame: Uint8Array, limits: FrameLimits): MessageType | undefined {
  const end = frame.byteLength;
  let limit = limits.loosest;
  let type: MessageType | undefined;
  /** What the frame is, for errors: its type once found. */
  let named = 'a frame';
  /** The type key was found (a second one is refused: msgpackr would take the last). */
  let typeSeen = false;
  /** The next value is the top-level "type" key's. */
  let typeNext = false;
  let pos = 0;
  let level = 0;
  /** Values declared so far (each counted when its container's header is read). */
  let elements = 1;
  /** The deepest container opened so far. */
  let deepest = 0;
  left[0] = 1;
  isMap[0] = 0;
  for (;;) {
    while (level > 0 && left[level] === 0) level--;
    if (left[level] === 0) break;
    const remaining = left[level]! - 1;
    left[level] = remaining;
    const isKey = isMap[level] === 1 && (remaining & 1) === 1;
    if (pos >= end) throw malformed(frame, `it ends inside a value (at byte ${pos})`);
    const at = pos;
    const b = frame[pos++]!;
    /** Values inside this one (a map's keys and values), or -1 for a scalar. */
    let children = -1;
    /** Bytes of payload after the header (str, bin, numbers). */
    let payload = 0;
    /** Bytes of a str's or bin's length field. */
    let lengthBytes = 0;
    let isStr = false;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      // fixint, nil, false, true: the byte is the value
    } else if (b <= 0x8f) {
      children = (b & 0x0f) * 2;
      isMap[level + 1] = 1;
    } else if (b <= 0x9f) {
      children = b & 0x0f;
      isMap[level + 1] = 0;
    } else if (b <= 0xbf) {
      payload = b & 0x1f;
      isStr = true;
    } else {
      switch (b) {
        case 0xc4: // bin 8, 16, 32
        case 0xc5:
        case 0xc6:
          lengthBytes = 1 << (b - 0xc4);
          break;
        case 0xca: // float 32, 64
          payload = 4;
          break;
        case 0xcb:
          payload = 8;
          break;
        case 0xcc: // uint, int 8..64
        case 0xd0:
          payload = 1;
          break;
        case 0xcd:
        case 0xd1:
          payload = 2;
          break;
        case 0xce:
        case 0xd2:
          payload = 4;
          break;
        case 0xcf:
        case 0xd3:
          payload = 8;
          break;
        case 0xd9: // str 8, 16, 32
        case 0xda:
        case 0xdb:
          lengthBytes = 1 << (b - 0xd9);
          isStr = true;
          break;
        case 0xdc: // array 16, 32
        case 0xdd:
        case 0xde: // map 16, 32
        case 0xdf: {
          const size = b === 0xdc || b === 0xde ? 2 : 4;
          if (pos + size > end) throw malformed(frame, `it ends inside a value (at byte ${pos})`);
          const n = uint(frame, pos, size);
          pos += size;
          children = b >= 0xde ? 2 * n : n;
          isMap[level + 1] = b >= 0xde ? 1 : 0;
          break;
        }
        case 0xc1:
          throw malformed(frame, `byte 0xc1 (never used in msgpack) at byte ${at}`);
        default:
          // 0xc7-0xc9 ext 8/16/32, 0xd4-0xd8 fixext 1..16
          throw malformed(frame, `a msgpack extension (type byte 0x${b.toString(16)}) at byte ${at}; the protocol has none`);
      }
    }
    if (lengthBytes > 0) {
      if (pos + lengthBytes > end) throw malformed(frame, `it ends inside a value (at byte ${pos})`);
      payload = uint(frame, pos, lengthBytes);
      pos += lengthBytes;
    }
    if (isKey && !isStr) throw malformed(frame, `a map key that is not a string at byte ${at}`);
    if (payload > end - pos) throw malformed(frame, `a value of ${payload} bytes at byte ${at}, with ${end - pos} left`);
    if (level === 1 && isMap[1] === 1) {
      if (isKey && isTypeKey(frame, pos, payload)) {
        if (typeSeen) throw malformed(frame, 'two "type" fields');
        typeSeen = true;
        typeNext = true;
      } else if (typeNext) {
        // from here the type's own limits hold (OTHER's for a type this side does not take)
        typeNext = false;
        const name = isStr ? typeName(frame, pos, payload) : undefined;
        const own = name === undefined ? undefined : limits.of(name);
        type = own ? (name as MessageType) : undefined;
        limit = own ?? OTHER;
        named = own ? `a "${name}" message` : 'a message of a type this side does not take';
        const over = overLimit(frame, named, limit, elements, deepest);
        if (over) throw over;
      }
    }
    pos += payload;
    if (children >= 0) {
      if (level + 1 > deepest) deepest = level + 1;
      elements += children;
      if (elements > limit.elements || deepest > limit.depth) throw overLimit(frame, named, limit, elements, deepest)!;
      // every value takes at least a byte
      if (children > end - pos) throw malformed(frame, `${children} values declared at byte ${at}, with ${end - pos} bytes left`);
      if (children > 0) {
        level++;
        left[level] = children;
      }
    }
  }
  if (pos !== end) throw malformed(frame, `its value ends at byte ${pos}, and ${end - pos} more bytes follow`);
  // no type this side takes: the frame must be small; msgpackr and the schema then say what it is
  if (type === undefined) {
    const over = overLimit(frame, 'a message of no type this side takes', OTHER, elements, deepest);
    if (over) throw over;
  }
  return type;
}
