/**
 * GradientPacket: a participant's result for one step as one ArrayBuffer, so it can be
 * transferred (threads) or sent as raw bytes (nodes) without copying into lists.
 *
 * Layout: float64 header [count, lossSum, numTensors, metricCount, ...metricSums], then the
 * float32 mean gradient. The header is a multiple of 8 bytes, so both views are aligned.
 */
import { PacketError } from '../errors.js';

export interface GradientResult {
  readonly count: number;
  readonly lossSum: number;
  readonly metricSums: readonly number[];
  readonly gradient: Float32Array;
  /** tf.memory().numTensors in the participant after the step (leak check). */
  readonly numTensors: number;
  /** Milliseconds the participant spent on the step itself (gathering rows + gradient); -1 unknown. */
  readonly computeMs?: number;
}


const FIXED = 5;

/**
 * A packet made before the gradient is computed, so the engine can write the gradient straight
 * into it (`gradient`), then `seal` writes the header: no copy, no second megabyte per step.
 */
export class GradientPacketBuilder {
  readonly buffer: ArrayBuffer;
  readonly gradient: Float32Array;
  private readonly header: Float64Array;

  constructor(parameters: number, readonly metricCount: number) {
    const headerLength = FIXED + metricCount;
    this.buffer = new ArrayBuffer(headerLength * 8 + parameters * 4);
    this.header = new Float64Array(this.buffer, 0, headerLength);
    this.gradient = new Float32Array(this.buffer, headerLength * 8, parameters);
  }

  /** Fills in the header (and the gradient, if it was computed elsewhere) and returns the buffer. */
  seal(result: GradientResult): ArrayBuffer {
    if (result.metricSums.length !== this.metricCount) throw new PacketError(`${result.metricSums.length} metric sums for a packet made for ${this.metricCount}`);
    if (result.gradient !== this.gradient) this.gradient.set(result.gradient);
    const header = this.header;
    header[0] = result.count;
    header[1] = result.lossSum;
    header[2] = result.numTensors;
    header[3] = this.metricCount;
    header[4] = result.computeMs ?? -1;
    result.metricSums.forEach((m, i) => (header[FIXED + i] = m));
    return this.buffer;
  }
}

/** Reads a packet, checking it is well formed and its gradient has `expectedLength` values. */
export function unpackGradient(buffer: ArrayBuffer, expectedLength: number): GradientResult {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < FIXED * 8) {
    throw new PacketError(`gradient packet too short (${(buffer as ArrayBuffer)?.byteLength ?? 0} bytes)`);
  }
  const fixed = new Float64Array(buffer, 0, FIXED);
  const metricCount = fixed[3]!;
  if (!Number.isInteger(metricCount) || metricCount < 0 || (FIXED + metricCount) * 8 > buffer.byteLength) {
    throw new PacketError(`gradient packet has a bad metric count (${metricCount})`);
  }
  const headerLength = FIXED + metricCount;
  const gradientBytes = buffer.byteLength - headerLength * 8;
  if (gradientBytes !== expectedLength * 4) {
    throw new PacketError(`gradient has ${gradientBytes / 4} values, expected ${expectedLength}`);
  }
  const header = new Float64Array(buffer, 0, headerLength);
  return {
    count: header[0]!,
    lossSum: header[1]!,
    numTensors: header[2]!,
    computeMs: header[4]!,
    metricSums: Array.from(header.subarray(FIXED)),
    gradient: new Float32Array(buffer, headerLength * 8, expectedLength),
  };
}
