/**
 * The run directory: everything a run makes goes here (config, preprocessing, history, model,
 * summary), so scripts can read the outcome from one place.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EpochLog } from './trainer.js';

export function defaultRunDir(now = new Date()): string {
  return join('runs', now.toISOString().replace(/[:.]/g, '-'));
}

export class RunDir {
  readonly path: string;

  constructor(path: string) {
    this.path = resolve(path);
    mkdirSync(this.path, { recursive: true });
  }

  file(name: string): string {
    return join(this.path, name);
  }

  /** Writes atomically: a temp file renamed into place, so readers never see half a file. */
  write(name: string, content: string | Uint8Array): string {
    const target = this.file(name);
    const temp = `${target}.tmp-${process.pid}`;
    writeFileSync(temp, content);
    renameSync(temp, target);
    return target;
  }

  writeJson(name: string, value: unknown): string {
    return this.write(name, `${JSON.stringify(value, null, 2)}\n`);
  }

  /** history.json in Keras' History shape ({ loss: [...], val_loss: [...] }) plus epoch, time and throughput. */
  writeHistory(history: readonly EpochLog[]): void {
    const keys = [...new Set(history.flatMap((h) => Object.keys(h.values)))];
    const json: Record<string, number[]> = {
      epoch: history.map((h) => h.epoch),
      seconds: history.map((h) => h.seconds),
      samples_per_second: history.map((h) => h.samplesPerSecond),
    };
    for (const key of keys) json[key] = history.map((h) => h.values[key] ?? NaN);
    this.writeJson('history.json', json);
    const columns = ['epoch', ...keys, 'seconds', 'samples_per_second'];
    const rows = history.map((h) =>
      [h.epoch, ...keys.map((k) => h.values[k] ?? ''), h.seconds.toFixed(3), h.samplesPerSecond.toFixed(1)].join(','),
    );
    this.write('history.csv', `${[columns.join(','), ...rows].join('\n')}\n`);
  }
}
