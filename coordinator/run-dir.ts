/**
 * The run directory: everything a run makes goes here (config, preprocessing, history, model,
 * summary, the live page's events.jsonl), so scripts can read the outcome from one place.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../shared/errors.js';
import { checkWritable, fsOps, writeFileAtomic } from './storage.js';
import type { EpochLog } from './fit/logs.js';

/** Files only a run writes: a folder holding one of them holds a run. */
const RUN_MARKERS = ['config.json', 'summary.json', 'checkpoints'];

export function defaultRunDir(now = new Date()): string {
  return join('runs', now.toISOString().replace(/[:.]/g, '-'));
}

export class RunDir {
  readonly path: string;

  /**
   * Creates (or opens) the folder and checks that it takes files, so a read-only or missing
   * output folder is found before training starts.
   */
  constructor(path: string) {
    this.path = resolve(path);
    checkWritable(this.path);
  }

  /**
   * Refuses a folder that holds another run (its checkpoints would mix with the new run's):
   * unless `overwrite`, which first removes that run's checkpoints, summary and model.
   */
  static claim(path: string, overwrite: boolean): RunDir {
    const full = resolve(path);
    const marker = RUN_MARKERS.find((m) => existsSync(join(full, m)));
    if (marker && !overwrite) {
      throw new ConfigError(
        `output.dir ${full} holds another run (${marker}); give a new folder with --out, continue that run with --resume ${full}, or replace it with --overwrite (output.overwrite: true)`,
      );
    }
    if (marker) for (const name of ['checkpoints', 'summary.json', 'model', 'best-model', 'history.json', 'history.csv', 'events.jsonl']) fsOps.rmSync(join(full, name), { recursive: true, force: true });
    return new RunDir(full);
  }

  file(name: string): string {
    return join(this.path, name);
  }

  /** Writes atomically: a temp file renamed into place, so readers never see half a file. */
  write(name: string, content: string | Uint8Array): string {
    const target = this.file(name);
    writeFileAtomic(target, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
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
