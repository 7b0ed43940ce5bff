/**
 * Helpers for tests that run a real Prometheus (Debian's `prometheus` package, installed by
 * .ci/run): free ports, a Prometheus on loopback with a given config, instant queries, polling.
 * Without Prometheus installed such tests are skipped, unless DPTRAIN_REQUIRE_PROMETHEUS=1 (CI)
 * makes that a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

export const HAVE_PROMETHEUS = spawnSync('prometheus', ['--version']).status === 0 && spawnSync('promtool', ['--version']).status === 0;
export const PROMETHEUS_REQUIRED = process.env['DPTRAIN_REQUIRE_PROMETHEUS'] === '1';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

/** GET without connection reuse (a slow test must not race a server closing an idle socket). */
export function get(url: string): Promise<Response> {
  return fetch(url, { headers: { connection: 'close' } });
}

export async function query(base: string, expr: string): Promise<PromResult[]> {
  const res = await get(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data: { result: PromResult[] } };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
  return body.data.result;
}

/** Polls `probe` every 500 ms until it returns a value (errors count as "not yet"). */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 300_000): Promise<T> {
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

export function promtool(args: string[], input?: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Writes `config` (checked by promtool) to a temp folder and starts Prometheus on 127.0.0.1:port. */
export function startPrometheus(config: object, port: number): { process: ChildProcess; base: string; configFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-prom-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(config));
  const check = promtool(['check', 'config', configFile]);
  if (check.status !== 0) throw new Error(`promtool rejects the rewritten config: ${check.out}`);
  const child = spawn('prometheus', [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
  return { process: child, base: `http://127.0.0.1:${port}`, configFile };
}
