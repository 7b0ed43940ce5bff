/**
 * Server-sent events for the live page (GET /events): each client gets the run's snapshot, then
 * every record as it happens. At most `maxClients` streams are open (others get 503); a client
 * that does not read, whose unsent bytes pass `maxBufferedBytes`, is dropped, so a stuck browser
 * cannot grow the coordinator's memory. A comment line every `heartbeatMs` keeps proxies from
 * closing an idle stream and finds dead sockets.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FeedRecord, SnapshotRecord } from './records.js';

/** Where the records come from: the running job's feed, or a run directory's events.jsonl. */
export interface LiveSource {
  snapshot(): SnapshotRecord;
  /** Calls `listener` with every record from now on (a snapshot record: start over); returns the unsubscribe. */
  subscribe(listener: (record: FeedRecord | SnapshotRecord) => void): () => void;
}

export interface StreamLimits {
  readonly maxClients: number;
  readonly maxBufferedBytes: number;
  readonly heartbeatMs: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { maxClients: 16, maxBufferedBytes: 8 * 1024 * 1024, heartbeatMs: 15_000 };

const frame = (record: FeedRecord | SnapshotRecord): string => `data: ${JSON.stringify(record)}\n\n`;

export class EventStreams {
  private readonly clients = new Set<ServerResponse>();
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly source: LiveSource,
    private readonly limits: StreamLimits = DEFAULT_STREAM_LIMITS,
  ) {
    this.unsubscribe = source.subscribe((record) => {
      if (this.clients.size > 0) this.broadcast(frame(record));
    });
    this.heartbeat = setInterval(() => this.broadcast(': keep-alive\n\n'), limits.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Open streams. */
  get size(): number {
    return this.clients.size;
  }

  open(req: IncomingMessage, res: ServerResponse): void {
    if (this.closed || this.clients.size >= this.limits.maxClients) {
      const why = this.closed ? 'the run page is shutting down' : `too many open live pages (${this.limits.maxClients}); close one and reload`;
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10' }).end(`${why}\n`);
      return;
    }
    // connection: close, so that a stream's end also ends its connection (an idle kept-alive
    // one would hold the server's close() until its keep-alive timeout)
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', connection: 'close' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    // records are small and should arrive at once, not wait for Nagle's algorithm
    res.socket?.setNoDelay(true);
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    // a write racing the client's disconnect fails here, not as an uncaught error
    res.on('error', () => this.clients.delete(res));
    this.send(res, `retry: 3000\n\n${frame(this.source.snapshot())}`);
  }

  private broadcast(chunk: string): void {
    for (const res of this.clients) this.send(res, chunk);
  }

  private send(res: ServerResponse, chunk: string): void {
    res.write(chunk);
    // writableLength counts what the response and its socket hold unsent
    if (res.writableLength > this.limits.maxBufferedBytes) {
      this.clients.delete(res);
      res.destroy();
    }
  }

  /** Ends every stream and refuses new ones. */
  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.unsubscribe();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}
