/** Keras-like console output for a run. */
import type { EpochLog } from './trainer.js';

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
