import { describe, expect, it } from 'vitest';
import { FramePool } from '../shared/protocol/frame-pool.js';
import { decodeMessage } from '../shared/protocol/codec.js';
import { type Message } from '../shared/protocol/schemas.js';

const weights = (version: number, n = 1000): Message => ({ type: 'weights', version, weights: new Float32Array(n).fill(version) });

describe('FramePool', () => {
  it('reuses memory once the encoder released a frame and every send of it was written', () => {
    const pool = new FramePool(2);
    const first = pool.encode(weights(1));
    const written = [first.retain(), first.retain()];
    first.release();
    // still being written: the next frame gets other memory
    const second = pool.encode(weights(2));
    expect(second.bytes.buffer).not.toBe(first.bytes.buffer);
    second.release();
    written[0]!();
    written[0]!(); // a callback called twice counts once
    const third = pool.encode(weights(3));
    expect(third.bytes.buffer).toBe(second.bytes.buffer);
    third.release();
    written[1]!();
    const fourth = pool.encode(weights(4));
    expect(fourth.bytes.buffer).toBe(first.bytes.buffer);
    expect((decodeMessage(new Uint8Array(fourth.bytes)) as Extract<Message, { type: 'weights' }>).weights[0]).toBe(4);
    expect(pool.usage).toEqual({ slots: 2, held: 1 });
  });

  it('never overwrites a frame in use: beyond its slots it allocates', () => {
    const pool = new FramePool(2);
    const frames = [1, 2, 3, 4].map((v) => pool.encode(weights(v)));
    frames.forEach((f, i) => expect((decodeMessage(new Uint8Array(f.bytes)) as Extract<Message, { type: 'weights' }>).weights[0]).toBe(i + 1));
    expect(new Set(frames.map((f) => f.bytes.buffer)).size).toBe(4);
    expect(pool.usage).toEqual({ slots: 2, held: 2 });
  });

  it('grows a slot for a larger frame and leaves small messages to plain encoding', () => {
    const pool = new FramePool(1);
    const small = pool.encode(weights(1, 10));
    small.release();
    const large = pool.encode(weights(2, 100_000));
    expect(large.bytes.byteLength).toBeGreaterThan(400_000);
    expect((decodeMessage(new Uint8Array(large.bytes)) as Extract<Message, { type: 'weights' }>).weights.length).toBe(100_000);
    large.release();
    const heartbeat = pool.encode({ type: 'heartbeat', sentAt: 1 });
    heartbeat.release();
    heartbeat.retain()();
    expect(pool.usage).toEqual({ slots: 1, held: 0 });
  });
});
