import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type GradientPartMessage, type Message } from '../shared/protocol/schemas.js';
import { decodeFrame, decodeMessage, encodeMessage } from '../shared/protocol/codec.js';
import { expectGradient, expectGradientPart, expectHello } from '../shared/protocol/context-checks.js';

const SPEC = { inputDim: 2, layers: [{ units: 1, activation: 'sigmoid' as const, useBias: true }], loss: 'binaryCrossentropy' as const, metrics: ['accuracy' as const] };

const gradient = (values: number[], step = 3): Message => ({
  type: 'gradient',
  step,
  count: 16,
  lossSum: 4.5,
  metricSums: [12],
  computeMs: 1.5,
  dtype: 'float32',
  parts: 0,
  gradient: Float32Array.from(values),
});

describe('wire protocol', () => {
  it('round-trips every message type, typed arrays as raw bytes', () => {
    const messages: Message[] = [
      { type: 'hello', version: PROTOCOL_VERSION, token: 't', name: 'gpu-1', backend: 'wasm' },
      { type: 'welcome', version: PROTOCOL_VERSION, workerId: 'node-1' },
      { type: 'job', jobId: 'j', spec: SPEC, parameters: 3, features: 2, outputs: 1, trainRows: 10, heartbeatMs: 1000, heartbeatTimeoutMs: 5000, gradientDtype: 'float16', bucketBytes: 4096, pixelScale: 0 },
      { type: 'shard', firstRow: 0, rows: 2, chunk: 0, chunks: 1, pixels: new Uint8Array(0), x: Float32Array.from([1, 2, 3, 4]), y: Float32Array.from([0, 1]) },
      { type: 'weights', version: 7, weights: Float32Array.from([0.5, -0.25, 1e-8]) },
      { type: 'step', step: 9, version: 7, groups: Int32Array.from([0, 0, 1, 1]), inline: Int32Array.from([8]), rows: Int32Array.from([4, 1, 3]), pixels: new Uint8Array(0), x: Float32Array.from([5, 6]), y: Float32Array.from([1]) },
      { type: 'gradient_part', step: 3, offset: 3, dtype: 'float32', values: Float32Array.from([0.4, 0.5]) },
      gradient([0.1, -0.2, 0.3]),
      { type: 'evaluate', id: 2, version: 7, pixels: Uint8Array.from([3, 255]), x: Float32Array.from([1, 2]), y: Float32Array.from([0]) },
      { type: 'evaluation', id: 2, count: 1, lossSum: 0.7, metricSums: [1] },
      { type: 'heartbeat', sentAt: 123.5 },
      { type: 'error', code: 'E_X', message: 'why' },
      { type: 'bye', reason: 'done' },
    ];
    for (const m of messages) expect(decodeMessage(encodeMessage(m))).toEqual(m);
    // 1000 floats take 4000 bytes plus the header, not a list of 1000 msgpack numbers (5 bytes each)
    const big = encodeMessage(gradient(Array.from({ length: 1000 }, (_, i) => i / 7)));
    expect(big.byteLength).toBeLessThan(4200);
  });

  it('decodeFrame: a binary frame is a message, a text frame is refused whatever it holds', () => {
    const frame = encodeMessage({ type: 'heartbeat', sentAt: 5 });
    expect(decodeFrame(frame, true)).toEqual({ type: 'heartbeat', sentAt: 5 });
    expect(() => decodeFrame(frame, false)).toThrow(/text frame; the protocol is binary msgpack/);
  });

  it('decodes typed arrays from unaligned frames', () => {
    const frame = encodeMessage({ type: 'weights', version: 1, weights: Float32Array.from([1, 2]) });
    const shifted = new Uint8Array(frame.byteLength + 1);
    shifted.set(frame, 1);
    expect(decodeMessage(shifted.subarray(1))).toEqual({ type: 'weights', version: 1, weights: Float32Array.from([1, 2]) });
  });

  it('rejects garbage, truncated frames and unknown types with a reason', () => {
    expect(() => decodeMessage(Uint8Array.from([0xc1, 0xff, 0x00]))).toThrow(/not a msgpack message|unknown message type/);
    const frame = encodeMessage(gradient([1, 2, 3]));
    expect(() => decodeMessage(frame.subarray(0, frame.byteLength - 5))).toThrow(/not a msgpack message/);
    const packr = new Packr({ useRecords: false });
    expect(() => decodeMessage(packr.pack({ type: 'launch' }))).toThrow('unknown message type "launch"');
    expect(() => decodeMessage(packr.pack([1, 2]))).toThrow('unknown message type undefined');
  });

  it('rejects missing fields, wrong types, extra fields, non-finite numbers and ragged bytes', () => {
    const packr = new Packr({ useRecords: false });
    expect(() => decodeMessage(packr.pack({ type: 'heartbeat' }))).toThrow(/bad "heartbeat" message: sentAt/);
    expect(() => decodeMessage(packr.pack({ type: 'bye', reason: 3 }))).toThrow(/bad "bye" message: reason/);
    expect(() => decodeMessage(packr.pack({ type: 'bye', reason: 'x', extra: 1 }))).toThrow(/bad "bye" message/);
    expect(() => decodeMessage(encodeMessage({ ...(gradient([1]) as object), lossSum: Number.NaN } as Message))).toThrow(/lossSum/);
    expect(() => decodeMessage(encodeMessage({ type: 'weights', version: 1, weights: Float32Array.from([1, Number.NaN, 3]) }))).toThrow(
      expect.objectContaining({ fault: 'non_finite', message: 'weights.weights[1] is NaN, not a finite number' }),
    );
    expect(() => decodeMessage(encodeMessage({ type: 'shard', firstRow: 0, rows: 1, chunk: 0, chunks: 1, pixels: new Uint8Array(0), x: Float32Array.from([Number.NEGATIVE_INFINITY]), y: Float32Array.from([1]) }))).toThrow(
      'shard.x[0] is -Infinity, not a finite number',
    );
    expect(() => decodeMessage(packr.pack({ type: 'weights', version: 1, pad: '12345678', weights: new Uint8Array(4) }))).toThrow(/bad "weights" message: pad/);
    expect(() => decodeMessage(packr.pack({ type: 'weights', version: 1, weights: new Uint8Array(6) }))).toThrow('weights.weights: 6 bytes is not a whole number of 4-byte values');
    const job = { type: 'job', jobId: 'j', spec: SPEC, parameters: 3, features: 2, outputs: 1, trainRows: 10, heartbeatMs: 1000, heartbeatTimeoutMs: 5000, gradientDtype: 'float16', bucketBytes: 0, pixelScale: 0 };
    expect(() => decodeMessage(packr.pack({ ...job, bucketBytes: -1 }))).toThrow(/bad "job" message: bucketBytes/);
    expect(() => decodeMessage(packr.pack({ ...job, spec: { ...SPEC, loss: 'hinge' } }))).toThrow(/bad "job" message: spec.loss/);
    expect(() => decodeMessage(packr.pack({ ...job, spec: { ...SPEC, layers: [] } }))).toThrow(/bad "job" message: spec.layers/);
  });

  it('checks hello version and token, and gradients against step and shape', () => {
    const hello: Message = { type: 'hello', version: PROTOCOL_VERSION, token: 'secret', name: 'n', backend: 'wasm' };
    expect(expectHello(hello, (t) => t === 'secret')).toBe(hello);
    expect(() => expectHello({ ...hello, version: 99 } as Message, () => true)).toThrow(`protocol version 99 is not supported (this side speaks ${PROTOCOL_VERSION})`);
    // a hello of another version is reported as such even when its fields differ
    const packr = new Packr({ useRecords: false });
    expect(() => decodeMessage(packr.pack({ type: 'hello', version: 1, auth: { token: 'x' } }))).toThrow(
      expect.objectContaining({ fault: 'version', message: `protocol version 1 is not supported (this side speaks ${PROTOCOL_VERSION})` }),
    );
    expect(() => expectHello(hello, () => false)).toThrow('bad token');
    expect(() => expectHello({ type: 'bye', reason: 'x' }, () => true)).toThrow('expected "hello" first, got "bye"');
    const g = gradient([1, 2, 3]);
    expect(expectGradient(g, 3, 3, 1)).toBe(g);
    expect(() => expectGradient(g, 4, 3, 1)).toThrow('gradient for step 3, expected step 4');
    expect(() => expectGradient(g, 3, 5, 1)).toThrow(expect.objectContaining({ fault: 'shape', message: 'gradient has 3 values, the model has 5 parameters' }));
  });

  it('carries a gradient in parts that tile it from its end down, and checks how they fit', () => {
    for (const dtype of ['float32', 'float16'] as const) {
      const part: Message = { type: 'gradient_part', step: 3, offset: 2, dtype, values: Float32Array.from([0.5, -0.25, 0.125]) };
      const decoded = decodeMessage(encodeMessage(part)) as GradientPartMessage;
      expect(decoded).toEqual(part);
      // the first part ends at the model's size, the next one where the first starts
      expect(() => expectGradientPart(decoded, 5)).not.toThrow();
      expect(() => expectGradientPart(decoded, 6)).toThrow(expect.objectContaining({ fault: 'shape', message: 'gradient part 2..5 does not end where the next values start (6)' }));
      expect(() => expectGradientPart({ ...decoded, offset: 5, values: new Float32Array(0) }, 5)).toThrow(/gradient part 5..5/);
    }
    const rest = { ...(gradient([1, 2]) as object), parts: 1 } as Message;
    expect(expectGradient(rest, 3, 5, 1, { count: 1, end: 2 })).toBe(rest);
    expect(() => expectGradient(rest, 3, 5, 1, { count: 2, end: 2 })).toThrow(expect.objectContaining({ fault: 'shape', message: 'gradient says 1 part(s) came before it, 2 did' }));
    expect(() => expectGradient(rest, 3, 5, 1, { count: 1, end: 3 })).toThrow('gradient has 2 values before its parts, which start at 3');
    expect(() => expectGradient(rest, 3, 5, 1)).toThrow('gradient says 1 part(s) came before it, 0 did');
    const packr = new Packr({ useRecords: false });
    expect(() => decodeMessage(packr.pack({ type: 'gradient_part', step: 1, offset: -1, dtype: 'float32', scaleExp: 0, values: new Uint8Array(4) }))).toThrow(/bad "gradient_part" message: offset/);
    expect(() => decodeMessage(packr.pack({ type: 'gradient_part', step: 1, offset: 0, dtype: 'float32', scaleExp: 0, values: new Uint8Array(6) }))).toThrow('gradient_part.values: 6 bytes is not a whole number of 4-byte values');
  });

  it("leaves a gradient's NaN and infinity to the trainer, which checks every participant's gradient through the mean", () => {
    const decoded = decodeMessage(encodeMessage(gradient([1, Number.NaN, Number.POSITIVE_INFINITY]))) as Extract<Message, { type: 'gradient' }>;
    expect(Array.from(decoded.gradient)).toEqual([1, Number.NaN, Number.POSITIVE_INFINITY]);
  });

  it('puts the last typed array 8-byte aligned at the end of the frame, so the receiver reads it in place', () => {
    const inPlace = (message: Message, field: string, bytes: number): void => {
      const frame = encodeMessage(message);
      expect((frame.byteOffset + frame.byteLength - bytes) % 8).toBe(0);
      const received = new Uint8Array(frame); // a frame in its own memory, as ws delivers a large one
      const decoded = decodeMessage(received) as unknown as Record<string, Float32Array>;
      expect(decoded[field]!.buffer).toBe(received.buffer);
      if (bytes <= 1024) expect(decoded).toEqual(message);
      else expect(Buffer.from(decoded[field]!.buffer, decoded[field]!.byteOffset, bytes).equals(Buffer.from((message as unknown as Record<string, Float32Array>)[field]!.buffer))).toBe(true);
    };
    for (const n of [0, 1, 3, 63, 64, 16384, 70000]) {
      for (const version of n > 64 ? [7, 70000] : [0, 7, 300, 70000, 2 ** 31]) {
        inPlace({ type: 'weights', version, weights: new Float32Array(n).fill(0.5) }, 'weights', 4 * n);
        inPlace({ ...(gradient(Array.from({ length: n }, (_, i) => i)) as object), step: version, lossSum: version / 3 } as Message, 'gradient', 4 * n);
        inPlace({ type: 'step', step: version, version: 1, groups: new Int32Array(0), inline: Int32Array.from({ length: n }, (_, i) => i), rows: Int32Array.from([1, 2]), pixels: new Uint8Array(0), y: new Float32Array(n), x: new Float32Array(3 * n) }, 'x', 12 * n);
      }
    }
    // a frame at an odd address still decodes (a copy)
    const frame = encodeMessage({ type: 'weights', version: 1, weights: Float32Array.from([1, 2]) });
    const shifted = new Uint8Array(frame.byteLength + 1);
    shifted.set(frame, 1);
    expect((decodeMessage(shifted.subarray(1)) as Extract<Message, { type: 'weights' }>).weights.buffer).not.toBe(shifted.buffer);
  });

  it('sends a float16 gradient in half the bytes, scaled so it keeps 11 bits', () => {
    const values = Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e-3 * (1 + (i % 7)));
    const half: Message = { ...(gradient(values) as object), dtype: 'float16' } as Message;
    const frame = encodeMessage(half);
    expect(frame.byteLength).toBeGreaterThan(2000);
    expect(frame.byteLength).toBeLessThan(2200);
    const decoded = decodeMessage(frame) as Extract<Message, { type: 'gradient' }>;
    expect(decoded).toMatchObject({ type: 'gradient', step: 3, count: 16, dtype: 'float16' });
    expect(decoded).not.toHaveProperty('scaleExp');
    const max = Math.max(...values.map(Math.abs));
    values.forEach((v, i) => expect(Math.abs(decoded.gradient[i]! - v)).toBeLessThanOrEqual(Math.max(Math.abs(v), max * 2 ** -14) * 2 ** -11));
    // NaN stays NaN for the trainer's check
    expect(Array.from((decodeMessage(encodeMessage({ ...(half as object), gradient: Float32Array.from([1, 2, Number.NaN]) } as Message)) as typeof decoded).gradient)).toEqual([1, 2, Number.NaN]);
    // a float32 value beyond float16's range is scaled down, not turned into Infinity
    const large = (decodeMessage(encodeMessage({ ...(half as object), gradient: Float32Array.from([1e6, -3]) } as Message)) as typeof decoded).gradient;
    expect(Math.abs(large[0]! - 1e6)).toBeLessThanOrEqual(1e6 * 2 ** -11);
    expect(large[1]).toBe(-3);
    const packr = new Packr({ useRecords: false });
    const raw = { type: 'gradient', step: 3, count: 16, lossSum: 1, metricSums: [1], computeMs: 1, dtype: 'float16', scaleExp: 0, parts: 0 };
    expect(() => decodeMessage(packr.pack({ ...raw, gradient: new Uint8Array(3) }))).toThrow('gradient.gradient: 3 bytes is not a whole number of 2-byte values');
    expect(() => decodeMessage(packr.pack({ ...raw, scaleExp: 1000, gradient: new Uint8Array(2) }))).toThrow(/bad "gradient" message: scaleExp/);
    expect(() => decodeMessage(packr.pack({ ...raw, dtype: 'int8', gradient: new Uint8Array(2) }))).toThrow(/bad "gradient" message: dtype/);
  });
});
