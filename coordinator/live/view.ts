/**
 * `dptrain view RUN_DIR`: the live page for a run from its files, a finished run or one running
 * elsewhere (events.jsonl is followed as it grows: the page updates as the run's own page
 * would). A run made before the page existed has no events.jsonl: its history.json epochs are
 * shown.
 */
import { existsSync, readFileSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { UsageError } from '../../shared/errors.js';
import type { LiveSource } from './event-stream.js';
import { liveRoutes, serveLive, type LiveServer } from './live-server.js';
import type { EpochRecord, FeedRecord, SnapshotRecord } from './records.js';
import { RunState, parseRecord } from './run-state.js';
import { EVENTS_FILE } from './run-feed.js';

export interface ViewOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 9464 (0: any free port). */
  readonly port?: number;
  /** How often events.jsonl is checked for new lines, ms (default 1000). */
  readonly pollMs?: number;
}

export interface RunView {
  /** The page's address. */
  readonly url: string;
  close(): Promise<void>;
}

const CHUNK = 1 << 20;

/** events.jsonl as a LiveSource: read from where it was left, new lines applied and pushed. */
class FileSource implements LiveSource {
  private state = new RunState();
  private readonly listeners = new Set<(record: FeedRecord | SnapshotRecord) => void>();
  private offset = 0;
  private decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(private readonly file: string) {}

  snapshot(): SnapshotRecord {
    return this.state.snapshot();
  }

  subscribe(listener: (record: FeedRecord | SnapshotRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private push(record: FeedRecord | SnapshotRecord): void {
    for (const listener of this.listeners) listener(record);
  }

  /** Polls every `ms` until the returned function is called; a failed read (file gone for a moment) is tried again. */
  follow(ms: number): () => void {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const next = (): void => {
      timer = setTimeout(() => {
        const again = (): void => {
          if (!stopped) next();
        };
        this.poll().then(again, again);
      }, ms);
      timer.unref();
    };
    next();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  /** Reads what was appended since the last call; a file that shrank (replaced) is read again from the start. */
  async poll(): Promise<void> {
    const { size } = await stat(this.file);
    if (size < this.offset) {
      this.state = new RunState();
      this.offset = 0;
      this.decoder = new StringDecoder('utf8');
      this.partial = '';
      await this.poll();
      this.push(this.state.snapshot());
      return;
    }
    if (size === this.offset) return;
    const handle = await open(this.file, 'r');
    try {
      const buffer = Buffer.alloc(CHUNK);
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, CHUNK, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        const lines = (this.partial + this.decoder.write(buffer.subarray(0, bytesRead))).split('\n');
        // the last piece has no newline yet: a line still being written
        this.partial = lines.pop()!;
        for (const line of lines) {
          const record = parseRecord(line);
          if (!record) continue;
          this.state.apply(record);
          this.push(record);
        }
      }
    } finally {
      await handle.close();
    }
  }
}

/** A run without events.jsonl: its history.json as epoch records. */
function historySource(dir: string): LiveSource {
  const history = JSON.parse(readFileSync(join(dir, 'history.json'), 'utf8')) as Record<string, (number | null)[]>;
  const state = new RunState();
  const epochs = history['epoch'] ?? [];
  epochs.forEach((epoch, i) => {
    const values: Record<string, number | null> = {};
    for (const [key, series] of Object.entries(history)) if (!['epoch', 'seconds', 'samples_per_second'].includes(key)) values[key] = series[i] ?? null;
    const record: EpochRecord = { type: 'epoch', time: 0, epoch: epoch ?? i + 1, values, seconds: history['seconds']?.[i] ?? 0, samplesPerSecond: history['samples_per_second']?.[i] ?? 0 };
    state.apply(record);
  });
  state.apply({ type: 'event', time: Date.now(), kind: 'end', step: 0, text: `${basename(dir)} has no events.jsonl (made before the live page): epochs from history.json only` });
  return { snapshot: () => state.snapshot(), subscribe: () => () => undefined };
}

/** Serves the page for the run in `runDir` until `close()`. */
export async function viewRun(runDir: string, options: ViewOptions = {}): Promise<RunView> {
  const dir = resolve(runDir);
  const file = join(dir, EVENTS_FILE);
  let events: FileSource | undefined;
  let source: LiveSource;
  if (existsSync(file)) {
    source = events = new FileSource(file);
    await events.poll();
  } else if (existsSync(join(dir, 'history.json'))) {
    source = historySource(dir);
  } else {
    throw new UsageError(`${dir} has no ${EVENTS_FILE} or history.json: give a run directory (dptrain start --out DIR, default runs/<time>)`);
  }
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 9464;
  const routes = liveRoutes(source, { host });
  let server: LiveServer;
  try {
    server = await serveLive(routes, host, port);
  } catch (err) {
    routes.close();
    throw new UsageError(`cannot listen on ${host}:${port} (${(err as Error).message}); give another address with --listen HOST:PORT (port 0: any free port)`);
  }
  const stop = events?.follow(options.pollMs ?? 1000);
  return {
    url: server.url,
    close: async () => {
      stop?.();
      await server.close();
    },
  };
}
