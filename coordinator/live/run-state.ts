/**
 * A run's state as the live page needs it, rebuilt by applying records (records.ts) in order,
 * with bounded memory: step summaries are thinned (neighbours merged) past a cap, and only the
 * newest events are kept. A resumed run may redo steps and epochs an earlier process had
 * reported; the redone ones replace those.
 */
import type { EndRecord, EpochRecord, EventRecord, FeedRecord, ParticipantRow, ParticipantsRecord, RunRecord, SnapshotRecord, StepRecord } from './records.js';

/** Step summaries kept; past this, neighbours are merged in pairs (the curve keeps its shape). */
export const MAX_STEP_POINTS = 3000;
/** Events kept (the newest). */
export const MAX_EVENTS = 500;

/** Two neighbouring step summaries as one, weighted by the steps each summarises. */
function merge(a: StepRecord, b: StepRecord): StepRecord {
  const n = a.steps + b.steps;
  const mean = (x: number | null, y: number | null): number | null => (x === null || y === null ? (x ?? y) : (x * a.steps + y * b.steps) / n);
  const metrics: Record<string, number | null> = {};
  for (const key of Object.keys(b.metrics)) metrics[key] = mean(a.metrics[key] ?? null, b.metrics[key] ?? null);
  const phase = (k: keyof StepRecord['phases']): number => (a.phases[k] * a.steps + b.phases[k] * b.steps) / n;
  return {
    ...b,
    steps: n,
    loss: mean(a.loss, b.loss),
    metrics,
    samplesPerSecond: (a.samplesPerSecond * a.steps + b.samplesPerSecond * b.steps) / n,
    phases: { compute: phase('compute'), reduce: phase('reduce'), apply: phase('apply'), broadcast: phase('broadcast') },
  };
}

export class RunState {
  private run: RunRecord | null = null;
  private steps: StepRecord[] = [];
  private epochs: EpochRecord[] = [];
  private participants: readonly ParticipantRow[] = [];
  private departed: ParticipantsRecord['departed'];
  private events: EventRecord[] = [];
  private end: EndRecord | null = null;

  apply(record: FeedRecord): void {
    switch (record.type) {
      case 'run':
        this.run = record;
        this.end = null;
        break;
      case 'step':
        while (this.steps.length > 0 && this.steps[this.steps.length - 1]!.step >= record.step) this.steps.pop();
        this.steps.push(record);
        if (this.steps.length > MAX_STEP_POINTS) this.thin();
        break;
      case 'epoch':
        while (this.epochs.length > 0 && this.epochs[this.epochs.length - 1]!.epoch >= record.epoch) this.epochs.pop();
        this.epochs.push(record);
        break;
      case 'participants':
        this.participants = record.rows;
        this.departed = record.departed;
        break;
      case 'event':
        this.events.push(record);
        if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
        break;
      case 'end':
        this.end = record;
        break;
    }
  }

  /** Halves the step summaries by merging neighbours (amortised O(1) per summary). */
  private thin(): void {
    const out: StepRecord[] = [];
    for (let i = 0; i + 1 < this.steps.length; i += 2) out.push(merge(this.steps[i]!, this.steps[i + 1]!));
    if (this.steps.length % 2) out.push(this.steps[this.steps.length - 1]!);
    this.steps = out;
  }

  snapshot(): SnapshotRecord {
    return { type: 'snapshot', run: this.run, steps: this.steps, epochs: this.epochs, participants: this.participants, ...(this.departed ? { departed: this.departed } : {}), events: this.events, end: this.end };
  }
}

/**
 * One line of events.jsonl as a record, or undefined for a line that is not one (a torn last
 * line, a newer writer's record type): readers skip those rather than fail.
 */
export function parseRecord(line: string): FeedRecord | undefined {
  if (line.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const type = (value as { type?: unknown }).type;
  const numbers = (...keys: string[]): boolean => keys.every((k) => typeof (value as Record<string, unknown>)[k] === 'number');
  switch (type) {
    case 'run':
      return numbers('time', 'epochs') ? (value as RunRecord) : undefined;
    case 'step':
      return numbers('time', 'step', 'steps') && typeof (value as { phases?: unknown }).phases === 'object' ? (value as StepRecord) : undefined;
    case 'epoch':
      return numbers('time', 'epoch') && typeof (value as { values?: unknown }).values === 'object' ? (value as EpochRecord) : undefined;
    case 'participants':
      return Array.isArray((value as { rows?: unknown }).rows) ? (value as FeedRecord) : undefined;
    case 'event':
    case 'end':
      return numbers('time') ? (value as FeedRecord) : undefined;
    default:
      return undefined;
  }
}
