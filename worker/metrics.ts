/**
 * A worker node's own Prometheus metrics: what it computed, how long it took, what it moved,
 * whether it is connected and how often it reconnected. Served by `worker start` on
 * --metrics-listen (see shared/metrics-server.ts).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { STEP_BUCKETS, defaultProcessMetrics } from '../shared/metrics-server.js';

/** Every metric a worker exports: name -> [type, labels]. */
export const WORKER_METRIC_CATALOG: Readonly<Record<string, readonly [string, readonly string[]]>> = {
  dptrain_worker_samples_total: ['counter', []],
  dptrain_worker_steps_total: ['counter', []],
  dptrain_worker_compute_duration_seconds: ['histogram', []],
  dptrain_worker_sent_bytes_total: ['counter', []],
  dptrain_worker_received_bytes_total: ['counter', []],
  dptrain_worker_connected: ['gauge', []],
  dptrain_worker_reconnects_total: ['counter', []],
  dptrain_worker_backend_info: ['gauge', ['backend']],
  dptrain_worker_peer_bytes_total: ['counter', ['direction']],
};

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly samples = new Counter({ name: 'dptrain_worker_samples_total', help: 'Samples this node computed gradients for', registers: [this.registry] });
  private readonly steps = new Counter({ name: 'dptrain_worker_steps_total', help: 'Steps this node took part in', registers: [this.registry] });
  private readonly compute = new Histogram({ name: 'dptrain_worker_compute_duration_seconds', help: 'Time to compute one step\'s gradient on this node', buckets: STEP_BUCKETS, registers: [this.registry] });
  private readonly sent = new Counter({ name: 'dptrain_worker_sent_bytes_total', help: 'Bytes sent to the coordinator', registers: [this.registry] });
  private readonly received = new Counter({ name: 'dptrain_worker_received_bytes_total', help: 'Bytes received from the coordinator', registers: [this.registry] });
  private readonly connectedGauge = new Gauge({ name: 'dptrain_worker_connected', help: '1 while connected to a coordinator', registers: [this.registry] });
  private readonly reconnects = new Counter({ name: 'dptrain_worker_reconnects_total', help: 'Connections lost and retried', registers: [this.registry] });
  private readonly backendInfo = new Gauge({ name: 'dptrain_worker_backend_info', help: 'TensorFlow.js backend of this node (value 1)', labelNames: ['backend'], registers: [this.registry] });
  /** The peer endpoint's byte counts, read when scraped (cluster.reduction: peers). */
  private peerSource: (() => { readonly sent: number; readonly received: number }) | undefined;
  private readonly peerCounted = { sent: 0, received: 0 };
  private readonly peerBytesCounter = new Counter({
    name: 'dptrain_worker_peer_bytes_total',
    help: 'Bytes this node sent to and received from other nodes (blocks and reduced shards, cluster.reduction: peers)',
    labelNames: ['direction'],
    registers: [this.registry],
    collect: () => {
      const now = this.peerSource?.();
      if (!now) return;
      for (const direction of ['sent', 'received'] as const) {
        const delta = now[direction] - this.peerCounted[direction];
        if (delta > 0) this.peerBytesCounter.inc({ direction }, delta);
        this.peerCounted[direction] = now[direction];
      }
    },
  });

  constructor(backend: string) {
    defaultProcessMetrics(this.registry);
    this.backendInfo.set({ backend }, 1);
    this.connectedGauge.set(0);
  }

  step(samples: number, seconds: number): void {
    this.samples.inc(samples);
    this.steps.inc();
    this.compute.observe(seconds);
  }

  bytes(direction: 'sent' | 'received', n: number): void {
    (direction === 'sent' ? this.sent : this.received).inc(n);
  }

  connected(on: boolean): void {
    this.connectedGauge.set(on ? 1 : 0);
  }

  reconnected(): void {
    this.reconnects.inc();
  }

  /** Counts the peer endpoint's bytes from `source` (its running totals) at each scrape. */
  peerBytes(source: () => { readonly sent: number; readonly received: number }): void {
    this.peerSource = source;
    for (const direction of ['sent', 'received'] as const) this.peerBytesCounter.inc({ direction }, 0);
  }
}
