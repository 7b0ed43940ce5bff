/** Keras-like console output for a run. */
import type { EpochLog } from './fit/logs.js';

function fmt(value: number): string {
  return Number.isFinite(value) ? value.toFixed(4) : String(value);
}

export function epochLine(log: EpochLog, epochs: number): string {
  const values = Object.entries(log.values).map(([k, v]) => `${k}: ${fmt(v)}`);
  return [
    `Epoch ${log.epoch}/${epochs}`,
    `${log.steps} steps`,
    `${log.seconds.toFixed(2)}s`,
    ...values,
    `${Math.round(log.samplesPerSecond)} samples/s`,
  ].join(' - ');
}

export function evaluationLine(label: string, result: Readonly<Record<string, number>>): string {
  return `${label}: ${Object.entries(result).map(([k, v]) => `${k}: ${fmt(v)}`).join(' - ')}`;
}

/** Where a progress bar draws: a terminal (process.stdout when it is a TTY). */
export interface ProgressStream {
  write(text: string): unknown;
  readonly columns?: number;
}

/**
 * Keras' progress bar within an epoch, for a terminal: `37/141 [=====>......] - ETA: 2s -
 * loss: 0.4621 - accuracy: 0.7712`, redrawn in place at most every `intervalMs`, and wiped before
 * the epoch's own line is printed. Pipes and files get only the one line per epoch.
 */
export class ProgressBar {
  private epochStart = 0;
  /** Batches of the epoch done before this process took it up (a resume mid-epoch): not in its time. */
  private before: number | undefined;
  private lastDraw = -Infinity;
  private drawn = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly now: () => number = () => performance.now(),
    private readonly intervalMs = 100,
  ) {}

  epochStarted(): void {
    this.epochStart = this.now();
    this.before = undefined;
    this.lastDraw = -Infinity;
  }

  batchEnded(batch: number, batches: number, running: Readonly<Record<string, number>>): void {
    const t = this.now();
    this.before ??= batch - 1;
    if (batch < batches && t - this.lastDraw < this.intervalMs) return;
    this.lastDraw = t;
    const width = 30;
    const done = Math.round((width * batch) / batches);
    const bar = batch >= batches ? '='.repeat(width) : `${'='.repeat(Math.max(0, done - 1))}>${'.'.repeat(width - Math.max(done, 1))}`;
    const perBatch = (t - this.epochStart) / Math.max(1, batch - this.before);
    const eta = Math.max(0, Math.round((perBatch * (batches - batch)) / 1000));
    const digits = String(batches).length;
    const values = Object.entries(running).map(([k, v]) => `${k}: ${fmt(v)}`);
    let line = [`${String(batch).padStart(digits)}/${batches} [${bar}]`, `ETA: ${eta}s`, ...values].join(' - ');
    const columns = this.stream.columns ?? 0;
    if (columns > 0 && line.length >= columns) line = line.slice(0, columns - 1);
    this.stream.write(`\r\x1b[2K${line}`);
    this.drawn = true;
  }

  /** Wipes the bar (before the epoch line or any other output). */
  clear(): void {
    if (!this.drawn) return;
    this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }
}
