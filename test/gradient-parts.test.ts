/**
 * A gradient in parts: GradientSender (worker/) sends a step's gradient end first as the backward
 * pass finishes it, in parts of at least `bucketBytes`, and the rest with the sums;
 * GradientAssembler (coordinator/participants/) puts it back together and refuses parts that do
 * not fit. Through the codec, what the coordinator assembles is the gradient the node computed.
 */
import { describe, expect, it } from 'vitest';
import { GradientAssembler } from '../coordinator/participants/gradient-assembler.js';
import { ProtocolError } from '../shared/errors.js';
import { decodeMessage, encodeMessage } from '../shared/protocol/codec.js';
import { expectGradient } from '../shared/protocol/context-checks.js';
import type { GradientMessage, GradientPartMessage } from '../shared/protocol/schemas.js';
import { GradientSender } from '../worker/gradient-sender.js';

type Sent = GradientMessage | GradientPartMessage;

/** A sender whose messages are recorded as they would arrive (encoded and decoded, copied out of the reused memory). */
function recordingSender(): { sender: GradientSender; sent: Sent[] } {
  const sent: Sent[] = [];
  return { sent, sender: new GradientSender((m) => sent.push(decodeMessage(encodeMessage(m)) as Sent)) };
}

const sums = { count: 4, lossSum: 2, metricSums: [1], computeMs: 3 };

describe('GradientSender', () => {
  it('sends the finished end once it holds bucketBytes, skips smaller ends, and the rest with the sums', () => {
    const { sender, sent } = recordingSender();
    const send = sender.begin(7, 10, 'float32', 12); // 3 float32 values per part at least
    send.gradient.set(Float32Array.from({ length: 10 }, (_, i) => i + 0.5));
    send.onReady!(7); // [7, 10): 3 values
    send.onReady!(6); // [6, 7): 1 value, too small
    send.onReady!(2); // [2, 7): 5 values
    send.onReady!(0); // the gradient message brings the rest
    send.finish(sums);
    expect(sent.map((m) => (m.type === 'gradient_part' ? [m.type, m.offset, Array.from(m.values)] : [m.type, m.parts, Array.from(m.gradient)]))).toEqual([
      ['gradient_part', 7, [7.5, 8.5, 9.5]],
      ['gradient_part', 2, [2.5, 3.5, 4.5, 5.5, 6.5]],
      ['gradient', 2, [0.5, 1.5]],
    ]);
    expect(sent.at(-1)).toMatchObject({ step: 7, count: 4, lossSum: 2, metricSums: [1], computeMs: 3, dtype: 'float32' });
  });

  it('bucketBytes 0: no parts, the whole gradient in one message; float16 parts count 2 bytes a value', () => {
    const whole = recordingSender();
    const send = whole.sender.begin(1, 5, 'float32', 0);
    expect(send.onReady).toBeUndefined();
    send.gradient.fill(1);
    send.finish(sums);
    expect(whole.sent).toHaveLength(1);
    expect(whole.sent[0]).toMatchObject({ type: 'gradient', parts: 0 });
    expect((whole.sent[0] as GradientMessage).gradient).toHaveLength(5);

    const half = recordingSender();
    const send16 = half.sender.begin(1, 10, 'float16', 12); // 6 float16 values per part at least
    send16.onReady!(5); // 5 values: too small
    send16.onReady!(4); // 6 values
    send16.finish(sums);
    expect(half.sent.map((m) => m.type)).toEqual(['gradient_part', 'gradient']);
    expect((half.sent[0] as GradientPartMessage).offset).toBe(4);
  });

  it('reuses the gradient memory from step to step', () => {
    const { sender } = recordingSender();
    expect(sender.begin(1, 8, 'float32', 0).gradient).toBe(sender.begin(2, 8, 'float32', 0).gradient);
  });
});

describe('GradientAssembler', () => {
  it("what the sender sends, through the codec, assembles to the node's gradient", () => {
    const { sender, sent } = recordingSender();
    const original = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const send = sender.begin(3, 1000, 'float32', 400);
    send.gradient.set(original);
    for (let start = 900; start >= 0; start -= 100) send.onReady!(start);
    send.finish(sums);
    expect(sent.length).toBeGreaterThan(2);

    const assembler = new GradientAssembler(1000);
    const assembly = assembler.begin(3);
    for (const m of sent.slice(0, -1)) assembler.add(m as GradientPartMessage);
    const last = expectGradient(sent.at(-1)!, 3, 1000, 1, assembly);
    expect(Array.from(assembly.complete(last.gradient))).toEqual(Array.from(original));
  });

  it('reuses its memory across steps, but not for a second answer in the same step', () => {
    const assembler = new GradientAssembler(4);
    const part = (step: number, v: number): GradientPartMessage => ({ type: 'gradient_part', step, offset: 2, dtype: 'float32', values: Float32Array.of(v, v) });
    const first = assembler.begin(1);
    assembler.add(part(1, 1));
    const a = first.complete(Float32Array.of(1, 1));
    const again = assembler.begin(1);
    assembler.add(part(1, 2));
    const b = again.complete(Float32Array.of(2, 2));
    expect(Array.from(a)).toEqual([1, 1, 1, 1]); // not overwritten by the second answer
    expect(Array.from(b)).toEqual([2, 2, 2, 2]);
    const next = assembler.begin(2);
    assembler.add(part(2, 3));
    expect(next.complete(Float32Array.of(3, 3))).toBe(a);
  });

  it('refuses a part of another step, a part that does not end where the received ones start, and a part before any request', () => {
    const fault = (f: () => void): string => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(ProtocolError);
        return `${(err as ProtocolError).fault}: ${(err as Error).message}`;
      }
      return 'accepted';
    };
    const part = (step: number, offset: number, n: number): GradientPartMessage => ({ type: 'gradient_part', step, offset, dtype: 'float32', values: new Float32Array(n) });
    expect(fault(() => new GradientAssembler(10).add(part(1, 8, 2)))).toMatch(/^unexpected: sent a gradient part for step 1, which was not asked for/);
    const assembler = new GradientAssembler(10);
    assembler.begin(5);
    expect(fault(() => assembler.add(part(4, 8, 2)))).toMatch(/^unexpected: .*step 4/);
    expect(fault(() => assembler.add(part(5, 7, 2)))).toMatch(/^shape: gradient part 7..9 does not end where the next values start \(10\)/);
    expect(fault(() => assembler.add(part(5, 8, 2)))).toBe('accepted');
    expect(fault(() => assembler.add(part(5, 8, 2)))).toMatch(/^shape: gradient part 8..10 does not end where the next values start \(8\)/);
  });
});
