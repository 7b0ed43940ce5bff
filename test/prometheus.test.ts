/**
 * Metrics against a real Prometheus (Debian's `prometheus` package, installed by .ci/run): a
 * short training with a thread and a worker process is scraped every second, and through the
 * HTTP API we check the samples counter, rate(), the phase histogram and every PromQL
 * expression of the shipped Grafana dashboard. promtool checks the shipped config and the
 * /metrics bodies. Without Prometheus installed the test is skipped, unless
 * DPTRAIN_REQUIRE_PROMETHEUS=1 (CI) makes that a failure.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { coordinatorUrl, jobFolder, readSummary, startCoordinator, startWorker, type Proc } from './cluster-helpers.js';
import { ROOT } from './helpers.js';

const HAVE_PROMETHEUS = spawnSync('prometheus', ['--version']).status === 0 && spawnSync('promtool', ['--version']).status === 0;
const REQUIRED = process.env['DPTRAIN_REQUIRE_PROMETHEUS'] === '1';
const SHIPPED_CONFIG = join(ROOT, 'deploy/prometheus/prometheus.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/dashboards/dptrain.json');

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Every `expr` in the dashboard's panels. */
function dashboardExpressions(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
}

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

/** GET without connection reuse (a slow test must not race a server closing an idle socket). */
function get(url: string): Promise<Response> {
  return fetch(url, { headers: { connection: 'close' } });
}

async function query(base: string, expr: string): Promise<PromResult[]> {
  const res = await get(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data: { result: PromResult[] } };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
  return body.data.result;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

function promtoolCheckMetrics(body: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!HAVE_PROMETHEUS && !REQUIRED)('metrics against a real Prometheus', { timeout: 900_000 }, () => {
  it('prometheus and promtool are installed (.ci/run installs Debian\'s package)', () => {
    expect(HAVE_PROMETHEUS).toBe(true);
  });

  it('promtool accepts the shipped prometheus.yml', () => {
    const r = spawnSync('promtool', ['check', 'config', SHIPPED_CONFIG], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it('counts every trained sample, has rates and phase histograms, and every dashboard query returns data', async () => {
    const [promPort, coordMetrics, workerMetrics] = [await freePort(), await freePort(), await freePort()];
    const job = jobFolder(900, {
      seed: 3,
      data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true, testSize: 0.2 },
      model: { layers: [{ units: 32, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
      compile: { loss: 'binaryCrossentropy' },
      fit: { epochs: 12, batchSize: 32, validationSplit: 0.1 },
      cluster: { threads: 1, minWorkers: 1, backend: 'wasm', heartbeatInterval: 0.5 },
      metrics: { listen: `127.0.0.1:${coordMetrics}`, linger: 300 },
    });

    // The shipped config, pointed at this machine's processes.
    const shipped = parseYaml(readFileSync(SHIPPED_CONFIG, 'utf8')) as { global: Record<string, unknown>; scrape_configs: Record<string, unknown>[] };
    const config = {
      ...shipped,
      global: { ...shipped.global, scrape_interval: '1s' },
      scrape_configs: shipped.scrape_configs.map((sc) =>
        sc['job_name'] === 'dptrain-coordinator'
          ? { job_name: sc['job_name'], static_configs: [{ targets: [`127.0.0.1:${coordMetrics}`] }] }
          : { job_name: sc['job_name'], static_configs: [{ targets: [`127.0.0.1:${workerMetrics}`] }] },
      ),
    };
    const promDir = mkdtempSync(join(tmpdir(), 'dptrain-prom-'));
    const promConfig = join(promDir, 'prometheus.yml');
    writeFileSync(promConfig, stringify(config));
    expect(spawnSync('promtool', ['check', 'config', promConfig]).status).toBe(0);
    const prometheus = spawn('prometheus', [`--config.file=${promConfig}`, `--storage.tsdb.path=${join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: 'ignore' });
    cleanups.push(() => prometheus.kill('SIGKILL'));
    const base = `http://127.0.0.1:${promPort}`;

    const coordinator: Proc = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    cleanups.push(() => coordinator.kill());
    const url = await coordinatorUrl(coordinator);
    const worker = startWorker('w1', url, job.tokenFile, ['--metrics-listen', `127.0.0.1:${workerMetrics}`]);
    cleanups.push(() => worker.kill());

    // While training: /metrics bodies pass promtool, and every dashboard query has data.
    await coordinator.waitFor(/^Epoch 2\//);
    const coordinatorBody = await (await get(`http://127.0.0.1:${coordMetrics}/metrics`)).text();
    const workerBody = await (await get(`http://127.0.0.1:${workerMetrics}/metrics`)).text();
    expect(coordinatorBody).toMatch(/^dptrain_samples_total\{participant="node-1",kind="node"\} \d+/m);
    expect(workerBody).toMatch(/^dptrain_worker_samples_total \d+/m);
    for (const [who, body] of [['coordinator', coordinatorBody], ['worker', workerBody]] as const) {
      const r = promtoolCheckMetrics(body);
      expect(r.status, `promtool check metrics (${who}): ${r.out}`).toBe(0);
      expect(r.out.trim(), who).toBe('');
    }
    const ready = await get(`http://127.0.0.1:${coordMetrics}/readyz`);
    expect(ready.status).toBe(200);
    const missing = await until('every dashboard expression to return data', async () => {
      const empty: string[] = [];
      for (const expr of dashboardExpressions()) if ((await query(base, expr)).length === 0) empty.push(expr);
      return empty.length === 0 ? empty : undefined;
    });
    expect(missing).toEqual([]);

    // After training (the coordinator lingers): the counter equals what the run trained.
    await coordinator.waitFor(/^Run files: /, 600_000);
    const summary = readSummary(job.out);
    const total = await until('the final samples count to be scraped', async () => {
      const r = await query(base, 'sum(dptrain_samples_total)');
      const v = r[0] ? Number(r[0].value[1]) : NaN;
      if (v !== summary.samples) throw new Error(`Prometheus has ${v}, the run trained ${summary.samples}`);
      return v;
    });
    expect(total).toBe(12 * summary.trainRows);
    const rate = await query(base, 'sum(rate(dptrain_samples_total[2m]))');
    expect(Number(rate[0]!.value[1])).toBeGreaterThan(0);
    const counts = await query(base, 'sum by (phase) (dptrain_step_phase_duration_seconds_count)');
    expect(Object.fromEntries(counts.map((r) => [r.metric['phase'], Number(r.value[1])]))).toEqual({
      compute: summary.steps,
      reduce: summary.steps,
      apply: summary.steps,
      broadcast: summary.steps,
    });
    const steps = await query(base, 'dptrain_steps_total');
    expect(Number(steps[0]!.value[1])).toBe(summary.steps);
    // the console's samples/s per epoch comes from the same counter: samples / train seconds
    const history = JSON.parse(readFileSync(join(job.out, 'history.json'), 'utf8')) as { samples_per_second: number[] };
    expect(history.samples_per_second).toHaveLength(12);
    expect(history.samples_per_second.every((v) => v > 0)).toBe(true);
    const notReady = await get(`http://127.0.0.1:${coordMetrics}/readyz`);
    expect(notReady.status).toBe(503);
  });
});
