/**
 * Sends a step's gradient as the backward pass finishes it, as DDP's buckets do: once
 * `bucketBytes` of its end are ready (the last layers' gradients come first), they go out as a
 * `gradient_part` while the node computes the rest; the final `gradient` message brings the values
 * before the parts, with the loss and metric sums (shared/protocol/PROTOCOL.md). The gradient's
 * memory is reused from step to step (the values are copied into frames as they are sent).
 */
import { performance } from 'node:perf_hooks';
import type { GradientDtype } from '../shared/math/float16.js';
import type { GradientMessage, GradientPartMessage } from '../shared/protocol/schemas.js';

export interface GradientSums {
  readonly count: number;
  readonly lossSum: number;
  readonly metricSums: number[];
  /** The node's time on the step, not counting the sending of parts. */
  readonly computeMs: number;
}

/** One step's sending: fill `gradient` (calling `onReady` as its end is finished), then `finish`. */
export interface GradientSend {
  readonly gradient: Float32Array;
  /** For the engine: values [start, parameters) are final (undefined: no parts, whole gradients only). */
  readonly onReady: ((start: number) => void) | undefined;
  /** Milliseconds spent sending parts so far (not compute time). */
  readonly sendingMs: number;
  /** Sends the `gradient` message with the values before the parts. */
  finish(sums: GradientSums): void;
}

export class GradientSender {
  private memory = new Float32Array(0);

  constructor(private readonly send: (message: GradientPartMessage | GradientMessage) => void) {}

  begin(step: number, parameters: number, dtype: GradientDtype, bucketBytes: number): GradientSend {
    if (this.memory.length !== parameters) this.memory = new Float32Array(parameters);
    const gradient = this.memory;
    const send = this.send;
    const bytesPerValue = dtype === 'float16' ? 2 : 4;
    let sentFrom = parameters;
    let parts = 0;
    let sendingMs = 0;
    const onReady =
      bucketBytes > 0
        ? (start: number): void => {
            if (start === 0 || (sentFrom - start) * bytesPerValue < bucketBytes) return; // the gradient message brings the rest
            const t0 = performance.now();
            send({ type: 'gradient_part', step, offset: start, dtype, values: gradient.subarray(start, sentFrom) });
            sendingMs += performance.now() - t0;
            sentFrom = start;
            parts++;
          }
        : undefined;
    return {
      gradient,
      onReady,
      get sendingMs() {
        return sendingMs;
      },
      finish: ({ count, lossSum, metricSums, computeMs }) => send({ type: 'gradient', step, count, lossSum, metricSums, computeMs, dtype, parts, gradient: gradient.subarray(0, sentFrom) }),
    };
  }
}
