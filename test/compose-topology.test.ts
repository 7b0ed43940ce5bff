/**
 * The docker-compose topology without Docker: the commands the compose services run (read from
 * docker-compose.yml itself, so the test follows the file), as processes on 127.0.0.1: the
 * coordinator, two CPU workers (`--profile cpu --scale worker-cpu=2`) and Prometheus with the
 * shipped config rewritten to loopback. What compose provides (mounts, the secret, service
 * names, published ports) is mapped to a temp folder and free ports; the test fails if the
 * compose file grows a container path or host name it does not know how to map. The job is
 * deploy/job.yaml with two epochs and minWorkers 2, on data the project generates.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { Proc, readSummary, TOKEN } from './cluster-helpers.js';
import { ROOT } from './helpers.js';
import { freePort, get, HAVE_PROMETHEUS, PROMETHEUS_REQUIRED, query, startPrometheus, until } from './prometheus-helpers.js';

interface Service {
  command: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
}
const compose = parseYaml(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** Replaces each container path / address by its local stand-in; fails on any left over. */
function localize(args: string[], map: [string, string][]): string[] {
  const out = args.map((a) => map.reduce((s, [from, to]) => s.replaceAll(from, to), a));
  const leftover = out.filter((a) => /0\.0\.0\.0|\/\/(coordinator|worker|prometheus)[:/]|=\/(job|data|runs|run)\b|127\.0\.0\.1:94\d\d\b/.test(a));
  if (leftover.length > 0) throw new Error(`the compose file has arguments this test cannot map to the local machine: ${leftover.join(' ')}`);
  return out;
}

function run(name: string, args: string[]): Proc {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = new Proc(name, child);
  cleanups.push(() => proc.kill());
  return proc;
}

describe.skipIf(!HAVE_PROMETHEUS && !PROMETHEUS_REQUIRED)('the compose topology as processes on 127.0.0.1', { timeout: 900_000 }, () => {
  it('coordinator + 2 CPU workers + Prometheus (shipped config) finish a short job, and Prometheus scrapes coordinator and both workers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-compose-'));
    const [wsPort, coordMetrics, w1Metrics, w2Metrics, promPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);

    // What the coordinator's mounts and secret hold: deploy/job.yaml (shortened), the data, the token.
    const coordinator = compose.services['coordinator']!;
    expect(coordinator.volumes).toEqual(expect.arrayContaining(['./deploy/job.yaml:/job/job.yaml:ro', './deploy/data:/data:ro', 'runs:/runs']));
    const job = parseYaml(readFileSync(join(ROOT, 'deploy/job.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
    expect(job['data']!['path']).toBe('/data/data.csv');
    mkdirSync(join(dir, 'job'));
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data/data.csv'), telcoDemoCsv(1500, 11));
    job['data']!['path'] = join(dir, 'data/data.csv');
    job['fit'] = { ...job['fit'], epochs: 2 };
    job['cluster'] = { ...job['cluster'], minWorkers: 2 };
    writeFileSync(join(dir, 'job/job.yaml'), stringify(job));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);

    const common: [string, string][] = [
      ['/run/secrets/dptrain-token', join(dir, 'token')],
      ['ws://coordinator:7070', `ws://127.0.0.1:${wsPort}`],
    ];
    const coordinatorArgs = localize(coordinator.command, [
      ...common,
      ['/job/job.yaml', join(dir, 'job/job.yaml')],
      ['/runs/job', join(dir, 'runs/job')],
      ['0.0.0.0:7070', `127.0.0.1:${wsPort}`],
      ['0.0.0.0:9464', `127.0.0.1:${coordMetrics}`],
    ]);
    const workerArgs = (metricsPort: number): string[] => localize(compose.services['worker-cpu']!.command, [...common, ['0.0.0.0:9465', `127.0.0.1:${metricsPort}`]]);

    // Prometheus: the shipped config, with the compose names (coordinator, the "worker" DNS name
    // that resolves to every replica) replaced by loopback targets, scraping every 500 ms (workers leave right after the job).
    const shipped = parseYaml(readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8')) as { global: object; scrape_configs: Record<string, unknown>[] };
    const [coordinatorJob, workersJob] = shipped.scrape_configs;
    expect(coordinatorJob).toMatchObject({ job_name: 'dptrain-coordinator', static_configs: [{ targets: ['coordinator:9464'] }] });
    expect(workersJob).toMatchObject({ job_name: 'dptrain-workers', dns_sd_configs: [{ names: ['worker'], port: 9465 }] });
    const prometheus = startPrometheus(
      {
        ...shipped,
        global: { ...shipped.global, scrape_interval: '500ms', scrape_timeout: '500ms' },
        scrape_configs: [
          { ...coordinatorJob, static_configs: [{ targets: [`127.0.0.1:${coordMetrics}`] }] },
          { job_name: workersJob!['job_name'], static_configs: [{ targets: [`127.0.0.1:${w1Metrics}`, `127.0.0.1:${w2Metrics}`] }] },
        ],
      },
      promPort,
    );
    cleanups.push(() => prometheus.process.kill('SIGKILL'));

    const coord = run('coordinator', coordinatorArgs);
    await coord.waitFor(/listening for worker nodes on ws:\/\//);

    // The compose healthcheck, run as compose would, passes once the coordinator listens.
    const health = coordinator.healthcheck!.test;
    expect(health.slice(0, 2)).toEqual(['CMD', 'node']);
    const healthArgs = health.slice(2).map((a) => a.replace('127.0.0.1:9464', `127.0.0.1:${coordMetrics}`));
    expect(healthArgs.join(' ')).toContain(`127.0.0.1:${coordMetrics}/healthz`);
    await until('the compose healthcheck to pass', async () => (spawnSync(process.execPath, healthArgs, { timeout: 60_000 }).status === 0 ? true : undefined), 120_000);

    const workers = [run('worker-cpu-1', workerArgs(w1Metrics)), run('worker-cpu-2', workerArgs(w2Metrics))];
    await coord.waitFor(/^Run files: /, 800_000);
    // Workers leave on the coordinator's bye with exit 0, so `restart: on-failure` does not restart them.
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);

    const summary = readSummary(join(dir, 'runs/job'));
    expect(summary.epochs).toBe(2);
    const nodes = summary.participants.filter((p) => p.kind === 'node');
    expect(nodes).toHaveLength(2);
    for (const n of nodes) expect(n.samples).toBeGreaterThan(0);
    expect(summary.test.accuracy).toBeGreaterThan(0.6);

    // Prometheus scraped the coordinator and both workers, and their counters agree with the run.
    const base = prometheus.base;
    // Workers are gone now (their `up` reads 0), so ask whether each was up while it lived.
    const up = await until('Prometheus to have scraped every target', async () => {
      const r = await query(base, 'max_over_time(up[15m])');
      return r.length === 3 && r.every((s) => s.value[1] === '1') ? r : undefined;
    });
    expect(up.map((s) => s.metric['job']).sort()).toEqual(['dptrain-coordinator', 'dptrain-workers', 'dptrain-workers']);
    const coordinatorSamples = await until('the coordinator\'s final count', async () => {
      const v = Number((await query(base, 'sum(last_over_time(dptrain_samples_total{kind="node"}[5m]))'))[0]?.value[1]);
      return v === summary.samples ? v : undefined;
    });
    expect(coordinatorSamples).toBe(2 * summary.trainRows);
    // A worker's own counter: its last scrape came at most one interval before it left.
    const perWorker = await query(base, 'max_over_time(dptrain_worker_samples_total[15m])');
    expect(perWorker).toHaveLength(2);
    expect(perWorker.reduce((s, r) => s + Number(r.value[1]), 0)).toBeLessThanOrEqual(summary.samples);
    // /readyz: not training any more, while the coordinator lingers for the last scrape.
    expect((await get(`http://127.0.0.1:${coordMetrics}/readyz`)).status).toBe(503);
  });
});
