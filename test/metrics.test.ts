/**
 * Metric names and labels stay within the documented set: what the registries export is what
 * the catalogs say, and the metrics table of docs/metrics.md lists exactly those, with type and labels.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { METRIC_CATALOG, TrainingMetrics } from '../coordinator/metrics.js';
import { WORKER_METRIC_CATALOG, WorkerMetrics } from '../worker/metrics.js';
import { ROOT } from './helpers.js';

type Catalog = Readonly<Record<string, readonly [string, readonly string[]]>>;

async function exported(registry: TrainingMetrics['registry']): Promise<Catalog> {
  const out: Record<string, [string, string[]]> = {};
  for (const m of await registry.getMetricsAsJSON()) {
    if (!m.name.startsWith('dptrain_')) continue;
    const labels = new Set<string>();
    for (const v of m.values as { labels: Record<string, unknown> }[]) for (const l of Object.keys(v.labels)) if (l !== 'le') labels.add(l);
    out[m.name] = [String(m.type), [...labels].sort()];
  }
  return out;
}

const sorted = (c: Catalog) => Object.fromEntries(Object.entries(c).map(([k, [t, l]]) => [k, [t, [...l].sort()]]));

describe('metric catalog', () => {
  it('the coordinator exports exactly the catalogued metrics, with their labels', async () => {
    const m = new TrainingMetrics();
    m.samples('thread-0', 'thread', 32);
    m.step({ compute: 0.01, reduce: 0.001, apply: 0.001, broadcast: 0.0001 });
    m.epochEnd({ loss: 0.5, accuracy: 0.8, val_loss: 0.6, val_accuracy: 0.7 }, 1000);
    m.backend('thread', 'wasm');
    expect(m.samplesTotal).toBe(32);
    expect(await exported(m.registry)).toEqual(sorted(METRIC_CATALOG));
    // every name follows the conventions: one prefix, counters end in _total, base units
    for (const [name, [type]] of Object.entries(METRIC_CATALOG)) {
      expect(name).toMatch(/^dptrain_[a-z_]+$/);
      expect(name.endsWith('_total')).toBe(type === 'counter');
      expect(name).not.toMatch(/_(ms|milliseconds|kb|mb)(_|$)/);
    }
  });

  it('dptrain_accuracy takes binaryAccuracy or categoricalAccuracy where the job compiled those', async () => {
    const m = new TrainingMetrics();
    m.epochEnd({ loss: 0.5, binaryAccuracy: 0.8, val_loss: 0.6, val_binaryAccuracy: 0.7 }, 1000);
    m.test({ loss: 0.4, categoricalAccuracy: 0.9 });
    const text = await m.registry.metrics();
    expect(text).toContain('dptrain_accuracy{split="train"} 0.8');
    expect(text).toContain('dptrain_accuracy{split="val"} 0.7');
    expect(text).toContain('dptrain_accuracy{split="test"} 0.9');
  });

  it('a worker exports exactly its catalogued metrics', async () => {
    const m = new WorkerMetrics('wasm');
    m.step(16, 0.004);
    const peer = { sent: 0, received: 0 };
    m.peerBytes(() => peer);
    expect(await exported(m.registry)).toEqual(sorted(WORKER_METRIC_CATALOG));
  });

  it("a worker's peer byte counters follow its peer endpoint's totals at each scrape", async () => {
    const m = new WorkerMetrics('wasm');
    const peer = { sent: 1000, received: 250 };
    m.peerBytes(() => peer);
    expect(await m.registry.metrics()).toContain('dptrain_worker_peer_bytes_total{direction="sent"} 1000');
    peer.sent = 1600;
    peer.received = 900;
    const text = await m.registry.metrics();
    expect(text).toContain('dptrain_worker_peer_bytes_total{direction="sent"} 1600');
    expect(text).toContain('dptrain_worker_peer_bytes_total{direction="received"} 900');
  });

  it('the docs/metrics.md table lists every metric with its type and labels, and nothing else', () => {
    const page = readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');
    const rows = [...page.matchAll(/^\| `(dptrain_[a-z_]+)` \| (\w+) \|\s*([a-z_, ]*?)\s*\|/gm)].map((r) => [
      r[1]!,
      [r[2]!, r[3]!.split(',').map((l) => l.trim()).filter(Boolean).sort()],
    ]);
    expect(Object.fromEntries(rows)).toEqual({ ...sorted(METRIC_CATALOG), ...sorted(WORKER_METRIC_CATALOG) });
  });
});
