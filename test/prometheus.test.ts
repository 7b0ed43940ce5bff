/**
 * Metrics against a real Prometheus (Debian's `prometheus` package, installed by .ci/run): a
 * short training with a thread and a worker process is scraped every second, and through the
 * HTTP API we check the samples counter, rate(), the phase histogram and every PromQL
 * expression of the shipped Grafana dashboard. promtool checks the shipped config and the
 * /metrics bodies. Without Prometheus installed the test is skipped, unless
 * DPTRAIN_REQUIRE_PROMETHEUS=1 (CI) makes that a failure.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { coordinatorUrl, jobFolder, readSummary, startCoordinator, startWorker, type Proc } from './cluster-helpers.js';
import { ROOT } from './helpers.js';
import { freePort, get, HAVE_PROMETHEUS, PROMETHEUS_REQUIRED, promtool, query, startPrometheus, until } from './prometheus-helpers.js';

const SHIPPED_CONFIG = join(ROOT, 'deploy/prometheus/prometheus.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/dashboards/dptrain.json');

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** Every `expr` in the dashboard's panels. */
function dashboardExpressions(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
}

describe.skipIf(!HAVE_PROMETHEUS && !PROMETHEUS_REQUIRED)('metrics against a real Prometheus', { timeout: 900_000 }, () => {
  it('prometheus and promtool are installed (.ci/run installs Debian\'s package)', () => {
    expect(HAVE_PROMETHEUS).toBe(true);
  });

  it('promtool accepts the shipped prometheus.yml', () => {
    const r = promtool(['check', 'config', SHIPPED_CONFIG]);
    expect(r.status, r.out).toBe(0);
  });

  it('counts every trained sample, has rates and phase histograms, and every dashboard query returns data', async () => {
    const [promPort, coordMetrics, workerMetrics] = [await freePort(), await freePort(), await freePort()];
    const job = jobFolder(1500, {
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
      // Scrapes 4 times a second: on a fast machine the 12 epochs take a second or two, and the rate checks
      // need scrapes taken while it trains.
      global: { ...shipped.global, scrape_interval: '250ms', scrape_timeout: '250ms' },
      scrape_configs: shipped.scrape_configs.map((sc) =>
        sc['job_name'] === 'dptrain-coordinator'
          ? { job_name: sc['job_name'], static_configs: [{ targets: [`127.0.0.1:${coordMetrics}`] }] }
          : { job_name: sc['job_name'], static_configs: [{ targets: [`127.0.0.1:${workerMetrics}`] }] },
      ),
    };
    const prometheus = startPrometheus(config, promPort);
    cleanups.push(() => prometheus.process.kill('SIGKILL'));
    const base = prometheus.base;

    const coordinator: Proc = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    cleanups.push(() => coordinator.kill());
    const url = await coordinatorUrl(coordinator);
    // Training starts when the worker joins: first let Prometheus find the coordinator, so that
    // its scrapes cover the run (a few seconds on a fast machine).
    await until('Prometheus to scrape the coordinator', async () => ((await query(base, 'up{job="dptrain-coordinator"}'))[0]?.value[1] === '1' ? true : undefined));
    // --metrics-linger: on a fast machine the whole job can end between two scrapes of the worker
    const worker = startWorker('w1', url, job.tokenFile, ['--metrics-listen', `127.0.0.1:${workerMetrics}`, '--metrics-linger', '30']);
    cleanups.push(() => worker.kill());

    // While training: /metrics bodies pass promtool, and every dashboard query has data.
    await coordinator.waitFor(/^Epoch 2\//);
    const coordinatorBody = await (await get(`http://127.0.0.1:${coordMetrics}/metrics`)).text();
    const workerBody = await (await get(`http://127.0.0.1:${workerMetrics}/metrics`)).text();
    expect(coordinatorBody).toMatch(/^dptrain_samples_total\{participant="node-1",kind="node"\} \d+/m);
    expect(workerBody).toMatch(/^dptrain_worker_samples_total \d+/m);
    for (const [who, body] of [['coordinator', coordinatorBody], ['worker', workerBody]] as const) {
      const r = promtool(['check', 'metrics'], body);
      expect(r.status, `promtool check metrics (${who}): ${r.out}`).toBe(0);
      expect(r.out.trim(), who).toBe('');
    }
    const ready = await get(`http://127.0.0.1:${coordMetrics}/readyz`);
    expect(ready.status).toBe(200);
    const missing = await until('every dashboard expression to return data', async () => {
      const empty: string[] = [];
      for (const expr of dashboardExpressions()) if ((await query(base, expr)).length === 0) empty.push(expr);
      if (empty.length > 0) throw new Error(`no data yet for ${empty.join(' ; ')}`);
      return empty;
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
    // last_over_time: on a slow machine a scrape can time out (timeout = the 250 ms interval), which
    // marks the series stale for an instant query; the last scraped value is what we check.
    const counts = await query(base, 'sum by (phase) (last_over_time(dptrain_step_phase_duration_seconds_count[5m]))');
    expect(Object.fromEntries(counts.map((r) => [r.metric['phase'], Number(r.value[1])]))).toEqual({
      compute: summary.steps,
      reduce: summary.steps,
      apply: summary.steps,
      broadcast: summary.steps,
    });
    const steps = await query(base, 'last_over_time(dptrain_steps_total[5m])');
    expect(Number(steps[0]!.value[1])).toBe(summary.steps);
    // the console's samples/s per epoch comes from the same counter: samples / train seconds
    const history = JSON.parse(readFileSync(join(job.out, 'history.json'), 'utf8')) as { samples_per_second: number[] };
    expect(history.samples_per_second).toHaveLength(12);
    expect(history.samples_per_second.every((v) => v > 0)).toBe(true);
    const notReady = await get(`http://127.0.0.1:${coordMetrics}/readyz`);
    expect(notReady.status).toBe(503);
  });
});
