/**
 * GradientPacket: a participant's result for one step as one ArrayBuffer, so it can be
 * transferred (threads) or sent as raw bytes (nodes) without copying into lists.
 *
 * Layout: float64 header [count, lossSum, numTensors, metricCount, ...metricSums], then the
 * float32 mean gradient. The header is a multiple of 8 bytes, so both views are aligned.
 */
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

export class PacketError extends Error {
  readonly code = 'E_PACKET';
}

const FIXED = 5;

export function packGradient(result: GradientResult): ArrayBuffer {
  const headerLength = FIXED + result.metricSums.length;
  const buffer = new ArrayBuffer(headerLength * 8 + result.gradient.length * 4);
  const header = new Float64Array(buffer, 0, headerLength);
  header[0] = result.count;
  header[1] = result.lossSum;
  header[2] = result.numTensors;
  header[3] = result.metricSums.length;
  header[4] = result.computeMs ?? -1;
  result.metricSums.forEach((m, i) => (header[FIXED + i] = m));
  new Float32Array(buffer, headerLength * 8).set(result.gradient);
  return buffer;
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
