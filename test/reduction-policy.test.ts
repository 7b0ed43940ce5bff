/**
 * cluster.reduction as a policy: `peers` asks for a round every step; `auto` asks where the star
 * would carry at least AUTO_PEERS_BYTES a step on the coordinator's link (nodes x S), and after
 * failed rounds waits 8, 16, 32, ... steps (at most 1024) before the next; robust aggregation and
 * `coordinator` never reduce among peers.
 */
import { describe, expect, it } from 'vitest';
import { AUTO_PEERS_BYTES, autoBackoff, autoReduction, reductionPolicy, alwaysPeers } from '../coordinator/fit/reduction-policy.js';

const view = { step: 100, nodes: 4, gradientBytes: AUTO_PEERS_BYTES / 4, failuresInARow: 0, lastFailure: -1 };

describe('reduction policy', () => {
  it('auto reduces among peers from nodes x S = 16 MiB on, and names the numbers below it', () => {
    expect(autoReduction(view)).toEqual({ peers: true });
    const below = autoReduction({ ...view, gradientBytes: AUTO_PEERS_BYTES / 4 - 4 });
    expect(below.peers).toBe(false);
    expect(!below.peers && below.reason).toBe("reduction auto: 4 nodes x 4.0 MiB of gradient = 16.0 MiB a step on the coordinator's link, under the 16.0 MiB from which nodes reduce among themselves");
    expect(autoReduction({ ...view, nodes: 2, gradientBytes: 40_000 })).toMatchObject({ peers: false, reason: expect.stringContaining('2 nodes x 0.038 MiB of gradient = 0.076 MiB') });
  });

  it('auto backs off after failed rounds: 8, 16, 32 steps ... at most 1024', () => {
    expect([0, 1, 2, 3, 8, 20].map(autoBackoff)).toEqual([0, 8, 16, 32, 1024, 1024]);
    const failed = { ...view, failuresInARow: 2, lastFailure: 90 };
    expect(autoReduction({ ...failed, step: 106 })).toEqual({ peers: false, reason: 'reduction auto: 2 round(s) among peers failed in a row; the next is tried at step 107' });
    expect(autoReduction({ ...failed, step: 107 })).toEqual({ peers: true });
  });

  it('the job settings pick the policy', () => {
    expect(reductionPolicy({ reduction: 'peers', aggregation: 'mean' })).toBe(alwaysPeers);
    expect(reductionPolicy({ reduction: 'auto', aggregation: 'mean' })).toBe(autoReduction);
    expect(reductionPolicy({ reduction: 'auto', aggregation: 'median' })).toBeUndefined();
    expect(reductionPolicy({ reduction: 'coordinator', aggregation: 'mean' })).toBeUndefined();
    expect(alwaysPeers({ ...view, nodes: 2, gradientBytes: 4 })).toEqual({ peers: true });
  });
});
