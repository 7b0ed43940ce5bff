/**
 * The live run page. Its server: the page's files, GET/HEAD only, 404 elsewhere, 403 to a
 * stranger's domain name when bound to loopback, the event
 * stream's snapshot and records, its client cap and the dropping of a client that stops
 * reading; `dptrain view` following a growing events.jsonl; the feed's records; bounded state.
 *
 * Then in a real browser (headless Chromium through playwright-core): a small job trains in
 * this process while the page is open; the page must load during the run, show each epoch
 * within 2 s of its end with history.json's numbers, list the threads, and `dptrain view` must
 * serve the same numbers from the finished run's files. That part skips where Chromium is
 * absent, unless DPTRAIN_REQUIRE_CHROMIUM=1 (CI). DPTRAIN_SCREENSHOT=FILE also saves a
 * screenshot of the page mid-run (docs/images/live-page.png is made by
 * scripts/live-page-screenshot.mjs, from a real CNN run with two worker nodes).
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Callback } from '../coordinator/callbacks/callback.js';
import type { LiveSource } from '../coordinator/live/event-stream.js';
import { liveRoutes, serveLive } from '../coordinator/live/live-server.js';
import type { EpochRecord, FeedRecord, SnapshotRecord } from '../coordinator/live/records.js';
import { EVENTS_FILE, RunFeed } from '../coordinator/live/run-feed.js';
import { MAX_STEP_POINTS, RunState } from '../coordinator/live/run-state.js';
import { viewRun } from '../coordinator/live/view.js';
import { ParticipantFault, type ParticipantStats } from '../coordinator/participants/participant.js';
import { train } from '../index.js';
import { serveMetrics } from '../shared/metrics-server.js';

const CHROMIUM = process.env['DPTRAIN_CHROMIUM'] ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM && process.env['DPTRAIN_REQUIRE_CHROMIUM'] === '1') {
  throw new Error(`DPTRAIN_REQUIRE_CHROMIUM=1 but ${CHROMIUM} is missing: the live page test would be skipped (apt-get install chromium, or set DPTRAIN_CHROMIUM)`);
}
const SCREENSHOT = process.env['DPTRAIN_SCREENSHOT'];

/** 500 rows of a separable-ish binary problem: 320 train (20 batches of 16), 80 validation, 100 test. */
const rows = Array.from({ length: 500 }, (_, i) => {
  const a = ((i * 37) % 101) / 10;
  const b = ((i * 59) % 89) / 10;
  const c = ((i * 17) % 7) - 3;
  return { a, b, c, y: a + 0.5 * b - c + ((i * 13) % 5) - 2 > 7 ? 'yes' : 'no' };
});

/** Each batch sleeps this long (the event loop is free between steps): an epoch lasts over 2 s. */
const BATCH_MS = 110;

/** Blocks the thread for `ms` without spinning (Atomics.wait is allowed on Node's main thread). */
const sleep = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Waits until the page holds an element `selector` matches (the page's CSP forbids evaluating strings). */
const until = (page: Page, selector: string, timeout: number): Promise<void> => page.locator(selector).first().waitFor({ state: 'attached', timeout });

interface ShownEpoch {
  epoch: number;
  values: Record<string, number | null>;
  shownAt: number;
}

const shownEpochs = (page: Page): Promise<ShownEpoch[]> =>
  page.$$eval('#epochs tbody tr', (trs) => trs.map((tr) => ({ epoch: Number(tr.dataset['epoch']), values: JSON.parse(tr.dataset['values']!) as Record<string, number | null>, shownAt: Number(tr.dataset['shownAt']) })));

/** history.json's per-epoch values as the page's records hold them. */
function historyEpochs(runDir: string): { epoch: number; values: Record<string, number | null> }[] {
  const history = JSON.parse(readFileSync(join(runDir, 'history.json'), 'utf8')) as Record<string, (number | null)[]>;
  return history['epoch']!.map((epoch, i) => ({
    epoch: epoch!,
    values: Object.fromEntries(Object.entries(history).filter(([k]) => !['epoch', 'seconds', 'samples_per_second'].includes(k)).map(([k, series]) => [k, series[i]!])),
  }));
}

/** A LiveSource the test feeds by hand. */
function handSource(): LiveSource & { push(record: FeedRecord): void } {
  const state = new RunState();
  const listeners = new Set<(record: FeedRecord | SnapshotRecord) => void>();
  return {
    snapshot: () => state.snapshot(),
    subscribe: (listener) => (listeners.add(listener), () => void listeners.delete(listener)),
    push: (record) => {
      state.apply(record);
      for (const listener of listeners) listener(record);
    },
  };
}

const epochRecord = (epoch: number): EpochRecord => ({ type: 'epoch', time: 1_700_000_000_000 + epoch, epoch, values: { loss: 1 / epoch, val_loss: null }, seconds: 1, samplesPerSecond: 100 });

/** The status of a GET whose path goes out as written (fetch would normalise it). */
function rawStatus(url: string, path: string, headers: Record<string, string> = {}): Promise<number | undefined> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: hostname, port, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', reject);
  });
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the run page server', () => {
  it('serves the page and its files (GET and HEAD only), 404 elsewhere, next to /metrics', async () => {
    const source = handSource();
    source.push(epochRecord(1));
    const routes = liveRoutes(source, { host: '127.0.0.1' });
    const registry = new Registry();
    const server = await serveMetrics(registry, '127.0.0.1', 0, () => true, routes);
    const base = server.url.replace(/metrics$/, '');
    try {
      const page = await fetch(base);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
      const html = await page.text();
      for (const file of ['uplot.js', 'uplot.css', 'app.js', 'style.css', 'favicon.svg']) {
        expect(html).toContain(`"${file}"`);
        const r = await fetch(base + file);
        expect(r.status, file).toBe(200);
        expect((await r.arrayBuffer()).byteLength, file).toBeGreaterThan(100);
      }
      expect(html).not.toMatch(/https?:\/\//);
      const head = await fetch(base, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(await head.text()).toBe('');
      expect((await fetch(base, { method: 'POST', body: 'x' })).status).toBe(405);
      expect((await fetch(base, { method: 'DELETE' })).status).toBe(405);
      for (const path of ['nope', '..%2f..%2fpackage.json', 'events/x', 'app.js.map', 'index.html%00']) expect((await fetch(base + path)).status, path).toBe(404);
      for (const path of ['/../../package.json', '/page/index.html', 'http://elsewhere/', '*']) expect(await rawStatus(server.url, path), path).toBe(404);
      // listening on loopback, the page answers to localhost and IP addresses, not to a stranger's domain (DNS rebinding)
      for (const host of ['evil.example', 'evil.example:9464', 'localhost.evil.example']) expect(await rawStatus(server.url, '/events', { host }), host).toBe(403);
      for (const host of ['localhost:9464', '127.0.0.1', '[::1]:80']) expect(await rawStatus(server.url, '/run.json', { host }), host).toBe(200);
      expect(await rawStatus(server.url, '/metrics', { host: 'evil.example' })).toBe(200);
      expect((await fetch(`${base}metrics`)).status).toBe(200);
      const state = (await (await fetch(`${base}run.json`)).json()) as SnapshotRecord;
      expect(state.epochs).toEqual([epochRecord(1)]);
    } finally {
      await server.close();
    }
  });

  it('streams a snapshot then each record; refuses streams past the cap; drops a client that stops reading', async () => {
    const source = handSource();
    source.push(epochRecord(1));
    const routes = liveRoutes(source, { limits: { maxClients: 2, maxBufferedBytes: 64 * 1024, heartbeatMs: 60_000 } });
    const server = await serveLive(routes, '127.0.0.1', 0);
    const url = `${server.url}events`;
    try {
      const first = await fetch(url);
      expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const reader = first.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      await eventually(async () => (text += decoder.decode((await reader.read()).value)).includes('"type":"snapshot"'), 'the snapshot');
      source.push(epochRecord(2));
      await eventually(async () => (text += decoder.decode((await reader.read()).value)).includes('"epoch":2'), 'the epoch record');
      const second = await fetch(url);
      expect(second.status).toBe(200);
      const third = await fetch(url);
      expect(third.status).toBe(503);
      expect(await third.text()).toMatch(/too many open live pages/);
      await reader.cancel();
      await second.body!.cancel();
      await eventually(() => routes.streams === 0, 'the streams to close');

      // a client that sends its request and never reads
      const stuck = connect(Number(new URL(server.url).port), '127.0.0.1');
      stuck.on('error', () => undefined);
      stuck.pause();
      stuck.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
      await eventually(() => routes.streams === 1, 'the stuck stream to open');
      const text16k = 'x'.repeat(16 * 1024);
      for (let i = 0; i < 4000 && routes.streams > 0; i++) {
        source.push({ type: 'event', time: Date.now(), kind: 'failure', step: i, text: text16k });
        await new Promise((r) => setImmediate(r));
      }
      expect(routes.streams).toBe(0);
      stuck.destroy();
    } finally {
      await server.close();
    }
  });

  it('dptrain view follows a growing events.jsonl (torn and foreign lines skipped) and says what is missing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-view-'));
    const file = join(dir, EVENTS_FILE);
    writeFileSync(file, `${JSON.stringify(epochRecord(1))}\nnot json\n{"type":"future","x":1}\n`);
    const view = await viewRun(dir, { port: 0, pollMs: 50 });
    const epochs = async (): Promise<number[]> => ((await (await fetch(`${view.url}run.json`)).json()) as SnapshotRecord).epochs.map((e) => e.epoch);
    try {
      expect(await epochs()).toEqual([1]);
      const line = JSON.stringify(epochRecord(2));
      appendFileSync(file, line.slice(0, 20));
      await new Promise((r) => setTimeout(r, 200));
      expect(await epochs()).toEqual([1]);
      appendFileSync(file, `${line.slice(20)}\n`);
      await eventually(async () => (await epochs()).length === 2, 'epoch 2');
      // a resumed run redoing epoch 2 replaces it
      appendFileSync(file, `${JSON.stringify({ ...epochRecord(2), time: 5 })}\n`);
      await eventually(async () => ((await (await fetch(`${view.url}run.json`)).json()) as SnapshotRecord).epochs[1]?.time === 5, 'the redone epoch');
      expect(await epochs()).toEqual([1, 2]);
    } finally {
      await view.close();
    }
    await expect(viewRun(join(dir, 'nothing-here'), { port: 0 })).rejects.toThrow(/has no events\.jsonl or history\.json/);
  });

  it('the feed: step summaries from running means, participants (a node joining, straggling, leaving), checkpoints', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'dptrain-feed-')), EVENTS_FILE);
    const feed = RunFeed.open({
      file,
      log: () => undefined,
      run: { name: 'r', model: '3-1', parameters: 4, epochs: 1, batchSize: 16, trainRows: 40, valRows: 0, testRows: 0, features: 3, metrics: ['accuracy'], startStep: 0 },
    });
    const stat = (id: string, kind: 'thread' | 'node', name: string, backend: string): ParticipantStats => ({ id, kind, name, backend, samples: 0, steps: 0, failures: 0, firstStep: -1, lastStep: -1 });
    const stats = new Map([['thread-0', stat('thread-0', 'thread', 'thread-0', 'wasm')]]);
    const checkpoints: { last: string | undefined; lastFailed: undefined } = { last: undefined, lastFailed: undefined };
    feed.attach({ stats, local: { backendDetail: undefined } }, checkpoints);
    stats.set('node-1', stat('node-1', 'node', 'gpu-box', 'webgpu'));
    feed.joined({ id: 'node-1', name: 'gpu-box', backend: 'webgpu', adapter: 'NVIDIA H100', devices: 2, address: '10.0.0.5:51234' });
    const phases = { compute: 0.004, reduce: 0.001, apply: 0.001, broadcast: 0 };
    feed.onEpochBegin(0);
    // batch losses 1, 2 and 4 over 16, 16 and 8 rows, as the loop's running means
    feed.part('thread-0', 1, 4, 0.01);
    feed.part('node-1', 1, 12, 0.01);
    feed.onBatchEnd({ batch: 1, batches: 3, step: 1, logs: { loss: 1, accuracy: 0.5 }, phases });
    sleep(550);
    feed.onBatchEnd({ batch: 2, batches: 3, step: 2, logs: { loss: 1.5, accuracy: 0.75 }, phases });
    checkpoints.last = '/somewhere/checkpoints/step-00000003.ckpt';
    feed.onBatchEnd({ batch: 3, batches: 3, step: 3, logs: { loss: 2, accuracy: 0.8 }, phases });
    stats.get('node-1')!.failures = 1;
    feed.failed('node-1', 3, new ParticipantFault('node-1', 'straggler', 'is a straggler (gpu-box): 3 steps in a row'), 'it is dropped');
    stats.get('node-1')!.left = 'straggler: is a straggler';
    feed.left('node-1', 3, 'straggler: is a straggler', 0);
    await feed.close();

    const records = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FeedRecord);
    const steps = records.filter((r) => r.type === 'step');
    expect(steps.map((s) => ({ step: s.step, steps: s.steps, loss: s.loss, accuracy: s.metrics['accuracy'] }))).toEqual([
      { step: 2, steps: 2, loss: 1.5, accuracy: 0.75 },
      { step: 3, steps: 1, loss: 4, accuracy: expect.closeTo(1, 12) },
    ]);
    expect(steps[0]!.phases).toEqual(phases);
    const events = records.filter((r) => r.type === 'event');
    expect(events.map((e) => e.kind)).toEqual(['start', 'joined', 'checkpoint', 'straggler', 'left']);
    expect(events[1]!.text).toBe('node-1 (gpu-box) joined from 10.0.0.5:51234: webgpu, NVIDIA H100, 2 devices');
    expect(events[2]!.text).toBe('checkpoint step-00000003.ckpt written');
    const rows = records.filter((r) => r.type === 'participants');
    const afterJoin = rows[1]!.rows;
    expect(afterJoin.map((r) => [r.id, r.state])).toEqual([
      ['thread-0', 'waiting'],
      ['node-1', 'waiting'],
    ]);
    const last = rows[rows.length - 1]!.rows;
    expect(last[0]).toMatchObject({ id: 'thread-0', state: 'computing', share: 0.25, samplesPerSecond: 400 });
    expect(last[1]).toMatchObject({ id: 'node-1', kind: 'node', name: 'gpu-box', adapter: 'NVIDIA H100', devices: 2, address: '10.0.0.5:51234', state: 'left', share: null, failures: 1, left: 'straggler: is a straggler' });
  });

  it('keeps step summaries bounded: neighbours merge, weighted by their steps', () => {
    const state = new RunState();
    const phases = { compute: 0.01, reduce: 0.001, apply: 0.001, broadcast: 0.001 };
    for (let step = 1; step <= 10 * MAX_STEP_POINTS; step++) {
      state.apply({ type: 'step', time: step, epoch: 1, batch: step, batches: 1e9, step, steps: 1, loss: step % 2 ? 1 : 3, metrics: {}, samplesPerSecond: 100, phases });
    }
    const { steps } = state.snapshot();
    expect(steps.length).toBeLessThanOrEqual(MAX_STEP_POINTS);
    expect(steps.reduce((n, s) => n + s.steps, 0)).toBe(10 * MAX_STEP_POINTS);
    expect(steps.every((s, i) => i === 0 || s.step > steps[i - 1]!.step)).toBe(true);
    expect(steps[0]!.loss).toBeCloseTo(2, 12);
  });
});

describe.skipIf(!HAVE_CHROMIUM)('the live run page in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, timeout: 60_000 });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('loads during a run, shows each epoch within 2 s with history.json\'s numbers and the threads; dptrain view serves the same', async () => {
    const epochs = SCREENSHOT ? 8 : 4;
    const out = join(mkdtempSync(join(tmpdir(), 'dptrain-live-')), 'run');
    const endedAt = new Map<number, number>();
    const lines: string[] = [];
    let pageUrl: (url: string) => void;
    const urlSeen = new Promise<string>((resolve) => (pageUrl = resolve));
    const slow: Callback = {
      onBatchEnd: () => sleep(BATCH_MS),
      onEpochEnd: (log) => void endedAt.set(log.epoch, Date.now()),
    };
    const job = train(
      {
        data: { label: { column: 'y', positive: 'yes' }, standardize: true },
        model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
        compile: { optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] },
        fit: { epochs, batchSize: 16, validationSplit: 0.2 },
        cluster: { threads: 2, backend: 'cpu' },
        metrics: { listen: '127.0.0.1:0' },
        output: { dir: out },
      },
      {
        rows,
        progress: false,
        callbacks: [slow],
        log: (line) => {
          lines.push(line);
          const m = /^live run page on (http:\/\/\S+)$/.exec(line);
          if (m) pageUrl(m[1]!);
        },
      },
    );
    const failed = job.then(
      () => new Promise<never>(() => undefined),
      (err: unknown) => Promise.reject(err instanceof Error ? err : new Error(String(err))),
    );
    failed.catch(() => undefined);
    const url = await Promise.race([urlSeen, failed]);

    const page = await browser.newPage({ viewport: { width: 1160, height: 900 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (m) => void (m.type() === 'error' && pageErrors.push(m.text())));
    await page.goto(url);
    // the page is up and receiving while the job trains
    await until(page, 'body[data-state="training"]', 60_000);
    const liveFrom = Date.now();
    expect(endedAt.size, 'the run ended before the page loaded').toBeLessThan(epochs - 1);
    await until(page, '#participants tbody tr[data-id="thread-1"]', 30_000);
    const threads = await page.$$eval('#participants tbody tr', (trs) => trs.map((tr) => ({ id: tr.dataset['id'], kind: tr.dataset['kind'] })));
    expect(threads).toEqual([
      { id: 'thread-0', kind: 'thread' },
      { id: 'thread-1', kind: 'thread' },
    ]);
    if (SCREENSHOT) {
      await until(page, '#epochs tbody tr[data-epoch="5"]', 120_000);
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }

    const result = await job;
    await until(page, 'body[data-state="finished"]', 10_000);
    const history = historyEpochs(result.runDir);
    expect(history).toHaveLength(epochs);
    const shown = await shownEpochs(page);
    expect(shown.map(({ epoch, values }) => ({ epoch, values })).sort((a, b) => a.epoch - b.epoch)).toEqual(history);
    expect(Object.keys(history[0]!.values).sort()).toEqual(['accuracy', 'loss', 'val_accuracy', 'val_loss']);

    // every epoch that ended while the page was open appeared within 2 s
    const live = shown.filter((s) => endedAt.get(s.epoch)! > liveFrom);
    expect(live.length, `epochs ended at ${[...endedAt.values()].map((t) => t - liveFrom).join(', ')} ms after the page connected`).toBeGreaterThanOrEqual(2);
    for (const s of live) {
      const lag = s.shownAt - endedAt.get(s.epoch)!;
      expect(lag, `epoch ${s.epoch}`).toBeGreaterThanOrEqual(-50);
      expect(lag, `epoch ${s.epoch}`).toBeLessThan(2000);
    }
    const events = await page.$$eval('#events li', (lis) => lis.map((li) => li.dataset['kind']));
    expect(events).toContain('start');
    expect(events).toContain('checkpoint');
    expect(events[0]).toBe('end');
    expect(pageErrors).toEqual([]);
    await page.close();

    // the finished run from its files
    const view = await viewRun(result.runDir, { port: 0 });
    try {
      const again = await browser.newPage();
      await again.goto(view.url);
      await until(again, 'body[data-state="finished"]', 10_000);
      const viewed = await shownEpochs(again);
      expect(viewed.map(({ epoch, values }) => ({ epoch, values })).sort((a, b) => a.epoch - b.epoch)).toEqual(history);
      expect(await again.$$eval('#participants tbody tr[data-kind="thread"]', (trs) => trs.length)).toBe(2);
      await again.close();
    } finally {
      await view.close();
    }
  }, 180_000);
});
