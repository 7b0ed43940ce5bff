/**
 * The coordinator's Prometheus metrics (prom-client), one registry per run. Every name starts
 * with `dptrain_`, uses base units (seconds, bytes) and `_total` for counters; labels stay low
 * in cardinality (participant ids, kinds, phases, reasons). Throughput is
 * `rate(dptrain_samples_total[1m])`; the console's samples/s is computed from the same counter
 * (`samplesTotal`), so the two agree. The table of metrics in docs/metrics.md is checked against
 * METRIC_CATALOG by a test.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { STEP_BUCKETS, defaultProcessMetrics } from '../shared/metrics-server.js';
import { FAILURE_REASONS, type ParticipantKind } from './participants/participant.js';

/**
 * Why a connection is refused before it joins (labels of dptrain_rejected_connections_total).
 * busy: over a cap on connections; evicted: its slot went to a peer from an address holding fewer
 * (see shared/admission.ts); http: a plain HTTP request on the node port; metrics_*: the same on
 * the metrics port.
 */
export const REJECT_REASONS = ['auth', 'version', 'malformed', 'oversize', 'timeout', 'unexpected', 'busy', 'evicted', 'http', 'metrics_busy', 'metrics_evicted', 'metrics_timeout'] as const;

export const PHASES = ['compute', 'reduce', 'apply', 'broadcast'] as const;
export type Phase = (typeof PHASES)[number];


/** The accuracy among a split's values, whichever accuracy metric the job compiled. */
function accuracyOf(values: Readonly<Record<string, number>>, prefix: string): number | undefined {
  for (const name of ['accuracy', 'binaryAccuracy', 'categoricalAccuracy']) {
    const v = values[`${prefix}${name}`];
    if (v !== undefined) return v;
  }
  return undefined;
}

/** Every metric the coordinator exports: name -> [type, labels]. */
export const METRIC_CATALOG: Readonly<Record<string, readonly [string, readonly string[]]>> = {
  dptrain_samples_total: ['counter', ['participant', 'kind']],
  dptrain_steps_total: ['counter', []],
  dptrain_epoch: ['gauge', []],
  dptrain_step_phase_duration_seconds: ['histogram', ['phase']],
  dptrain_sent_bytes_total: ['counter', ['kind']],
  dptrain_received_bytes_total: ['counter', ['kind']],
  dptrain_participants: ['gauge', ['kind']],
  dptrain_participant_failures_total: ['counter', ['reason']],
  dptrain_rejected_connections_total: ['counter', ['reason']],
  dptrain_loss: ['gauge', ['split']],
  dptrain_accuracy: ['gauge', ['split']],
  dptrain_metric: ['gauge', ['metric', 'split']],
  dptrain_samples_per_second: ['gauge', []],
  dptrain_backend_info: ['gauge', ['kind', 'backend']],
};

export class TrainingMetrics {
  readonly registry = new Registry();
  private total = 0;
  private readonly samplesCounter = new Counter({ name: 'dptrain_samples_total', help: 'Training samples whose gradient was used, by participant', labelNames: ['participant', 'kind'], registers: [this.registry] });
  private readonly steps = new Counter({ name: 'dptrain_steps_total', help: 'Optimizer steps applied', registers: [this.registry] });
  private readonly epochGauge = new Gauge({ name: 'dptrain_epoch', help: 'Current epoch (1-based)', registers: [this.registry] });
  private readonly phaseSeconds = new Histogram({
    name: 'dptrain_step_phase_duration_seconds',
    help: 'Time per step in each phase: compute (slowest participant, incl. transfer and recomputation), reduce, apply (optimizer), broadcast',
    labelNames: ['phase'],
    buckets: STEP_BUCKETS,
    registers: [this.registry],
  });
  /** The byte counters' totals, for summary.json. */
  readonly traffic: Record<ParticipantKind, { sent: number; received: number }> = { thread: { sent: 0, received: 0 }, node: { sent: 0, received: 0 } };
  private readonly sent = new Counter({ name: 'dptrain_sent_bytes_total', help: 'Bytes sent to participants (weights, steps, shards)', labelNames: ['kind'], registers: [this.registry] });
  private readonly received = new Counter({ name: 'dptrain_received_bytes_total', help: 'Bytes received from participants (gradients, evaluations)', labelNames: ['kind'], registers: [this.registry] });
  private readonly participantsGauge = new Gauge({ name: 'dptrain_participants', help: 'Participants taking part, by kind', labelNames: ['kind'], registers: [this.registry] });
  private readonly failuresCounter = new Counter({ name: 'dptrain_participant_failures_total', help: 'Parts of steps that failed and were recomputed, by reason', labelNames: ['reason'], registers: [this.registry] });
  private readonly rejectedCounter = new Counter({ name: 'dptrain_rejected_connections_total', help: 'Connections refused before joining, by reason', labelNames: ['reason'], registers: [this.registry] });
  private readonly lossGauge = new Gauge({ name: 'dptrain_loss', help: 'Loss of the last epoch (split: train, val) or of the test evaluation', labelNames: ['split'], registers: [this.registry] });
  private readonly accuracyGauge = new Gauge({ name: 'dptrain_accuracy', help: 'Accuracy of the last epoch (split: train, val) or of the test evaluation', labelNames: ['split'], registers: [this.registry] });
  private readonly metricGauge = new Gauge({ name: 'dptrain_metric', help: 'Each compiled metric (metric: auc, precision, ...) of the last epoch (split: train, val) or of the test evaluation', labelNames: ['metric', 'split'], registers: [this.registry] });
  private readonly throughput = new Gauge({ name: 'dptrain_samples_per_second', help: 'Samples per second over the last epoch (for consoles; use rate(dptrain_samples_total[1m]) in queries)', registers: [this.registry] });
  private readonly backendInfo = new Gauge({ name: 'dptrain_backend_info', help: 'TensorFlow.js backend in use, by participant kind (value 1)', labelNames: ['kind', 'backend'], registers: [this.registry] });

  constructor() {
    defaultProcessMetrics(this.registry);
    // Zero every known label value, so dashboards show 0 rather than "no data".
    for (const phase of PHASES) this.phaseSeconds.zero({ phase });
    for (const reason of FAILURE_REASONS) this.failuresCounter.inc({ reason }, 0);
    for (const reason of REJECT_REASONS) this.rejectedCounter.inc({ reason }, 0);
    for (const kind of ['thread', 'node']) {
      this.participantsGauge.set({ kind }, 0);
      this.sent.inc({ kind }, 0);
      this.received.inc({ kind }, 0);
    }
  }

  /** Samples used so far, summed over participants (the console's samples/s comes from this). */
  get samplesTotal(): number {
    return this.total;
  }

  samples(participant: string, kind: ParticipantKind, n: number): void {
    this.samplesCounter.inc({ participant, kind }, n);
    this.total += n;
  }

  /**
   * Removes a departed participant's samples series, so that nodes coming and going by the
   * thousand do not grow the registry without bound (the cluster folds the oldest departures).
   */
  forgetParticipant(participant: string, kind: ParticipantKind): void {
    this.samplesCounter.remove({ participant, kind });
  }

  step(phases: Readonly<Record<Phase, number>>): void {
    this.steps.inc();
    for (const phase of PHASES) this.phaseSeconds.observe({ phase }, phases[phase]);
  }

  epoch(epoch: number): void {
    this.epochGauge.set(epoch);
  }

  epochEnd(values: Readonly<Record<string, number>>, samplesPerSecond: number): void {
    for (const [split, prefix] of [['train', ''], ['val', 'val_']] as const) {
      const loss = values[`${prefix}loss`];
      const accuracy = accuracyOf(values, prefix);
      if (loss !== undefined) this.lossGauge.set({ split }, loss);
      if (accuracy !== undefined) this.accuracyGauge.set({ split }, accuracy);
    }
    for (const [key, value] of Object.entries(values)) {
      const split = key.startsWith('val_') ? 'val' : 'train';
      const metric = key.replace(/^val_/, '');
      if (metric !== 'loss' && Number.isFinite(value)) this.metricGauge.set({ metric, split }, value);
    }
    this.throughput.set(samplesPerSecond);
  }

  test(values: Readonly<Record<string, number>>): void {
    if (values['loss'] !== undefined && Number.isFinite(values['loss'])) this.lossGauge.set({ split: 'test' }, values['loss']);
    const accuracy = accuracyOf(values, '');
    if (accuracy !== undefined) this.accuracyGauge.set({ split: 'test' }, accuracy);
    for (const [metric, value] of Object.entries(values)) if (metric !== 'loss' && Number.isFinite(value)) this.metricGauge.set({ metric, split: 'test' }, value);
  }

  bytes(kind: ParticipantKind, direction: 'sent' | 'received', n: number): void {
    (direction === 'sent' ? this.sent : this.received).inc({ kind }, n);
    this.traffic[kind][direction] += n;
  }

  participants(kind: ParticipantKind, n: number): void {
    this.participantsGauge.set({ kind }, n);
  }

  failure(reason: string): void {
    this.failuresCounter.inc({ reason });
  }

  rejected(reason: string): void {
    this.rejectedCounter.inc({ reason });
  }

  backend(kind: ParticipantKind, backend: string): void {
    this.backendInfo.set({ kind, backend }, 1);
  }
}
