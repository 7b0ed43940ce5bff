import { describe, expect, it } from 'vitest';
import { GradientPacketBuilder, unpackGradient } from '../shared/protocol/gradient-packet.js';

describe('GradientPacket', () => {
  const result = (gradient: Float32Array) => ({ count: 7, lossSum: 2.5, metricSums: [3, 4], gradient, numTensors: 12, computeMs: 1.25 });

  it('carries a gradient written in place, and the header, through one buffer', () => {
    const packet = new GradientPacketBuilder(5, 2);
    packet.gradient.set([0.5, -1, 2, 1e-8, 3]);
    const buffer = packet.seal(result(packet.gradient));
    expect(buffer).toBe(packet.buffer);
    const back = unpackGradient(buffer, 5);
    expect(back).toEqual({ count: 7, lossSum: 2.5, metricSums: [3, 4], numTensors: 12, computeMs: 1.25, gradient: Float32Array.from([0.5, -1, 2, 1e-8, 3]) });
    expect(back.gradient.buffer).toBe(buffer); // a view, not a copy
  });

  it('copies a gradient computed elsewhere, and refuses a header it was not made for', () => {
    const packet = new GradientPacketBuilder(3, 2);
    expect(unpackGradient(packet.seal(result(Float32Array.from([1, 2, 3]))), 3).gradient).toEqual(Float32Array.from([1, 2, 3]));
    expect(() => new GradientPacketBuilder(3, 1).seal(result(new Float32Array(3)))).toThrow('2 metric sums for a packet made for 1');
    expect(() => unpackGradient(packet.buffer, 4)).toThrow('gradient has 3 values, expected 4');
  });
});
