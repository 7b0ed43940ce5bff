import { describe, expect, it } from 'vitest';
import { faultPointFromEnv } from '../worker/fault-point.js';

describe('fault points (worker/fault-point.ts)', () => {
  it('reads the three forms, and nothing when unset', () => {
    expect(faultPointFromEnv({})).toBeUndefined();
    expect(faultPointFromEnv({ DPTRAIN_FAULT_POINT: '' })).toBeUndefined();
    expect(faultPointFromEnv({ DPTRAIN_FAULT_POINT: 'kill-after-block@5' })).toEqual({ kind: 'kill-after-block', step: 5, ms: 0 });
    expect(faultPointFromEnv({ DPTRAIN_FAULT_POINT: 'kill-mid-gather@12' })).toEqual({ kind: 'kill-mid-gather', step: 12, ms: 0 });
    expect(faultPointFromEnv({ DPTRAIN_FAULT_POINT: 'stall-block@5:3000' })).toEqual({ kind: 'stall-block', step: 5, ms: 3000 });
  });

  it('refuses anything else, naming the variable', () => {
    for (const bad of ['kill', 'kill-after-block@', 'kill-after-block@-1', 'stall-block@5', 'kill-mid-gather@5:10', 'stall-block@5:1e3']) {
      expect(() => faultPointFromEnv({ DPTRAIN_FAULT_POINT: bad }), bad).toThrow(/^DPTRAIN_FAULT_POINT must be kill-after-block@STEP, kill-mid-gather@STEP or stall-block@STEP:MS, got "/);
    }
  });
});
