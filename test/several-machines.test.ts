/**
 * The README's several-machines recipe, run as written on one machine (its addresses are
 * 127.0.0.1): its shell block, line by line, from the clone. One worker is killed with SIGKILL
 * after the first epoch; the run must go on without waiting for another and finish with exit 0.
 * Only HOME and TMPDIR point into a temp folder, so the token it writes is the test's own.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Proc, readSummary } from './cluster-helpers.js';
import { ROOT } from './helpers.js';

/** The bash block after `<!-- recipe: several-machines -->` in README.md, as command lines. */
function recipe(readme = readFileSync(join(ROOT, 'README.md'), 'utf8')): string[] {
  const block = /<!-- recipe: several-machines -->\s*```(?:bash|sh)\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README.md has no block marked <!-- recipe: several-machines -->');
  return block[1]!
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** Each command runs in a process group of its own: `npx` starts node as a child, and a kill must reach both. */
const procs: Proc[] = [];
const killGroup = (p: Proc): void => {
  try {
    process.kill(-p.child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
};
afterEach(() => {
  for (const p of procs.splice(0)) killGroup(p);
});

describe('the several-machines recipe', { timeout: 300_000 }, () => {
  it('runs as written; a worker killed mid-run is survived without a stall', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dptrain-recipe-'));
    const env = { ...process.env, HOME: home, TMPDIR: home };
    const lines = recipe();
    const coordinatorLine = lines.find((l) => /dptrain start\b/.test(l));
    const workerLines = lines.filter((l) => /dptrain worker start\b/.test(l));
    expect(coordinatorLine, lines.join('\n')).toBeDefined();
    expect(workerLines.length, lines.join('\n')).toBeGreaterThanOrEqual(2);
    expect(coordinatorLine).toMatch(/--start-workers 2\b/);
    expect(coordinatorLine).toMatch(/--min-workers 1\b/);

    let coordinator: Proc | undefined;
    const workers: Proc[] = [];
    for (const line of lines) {
      const command = line.replace(/&$/, '').trim();
      if (line === coordinatorLine || workerLines.includes(line)) {
        const p = new Proc(line === coordinatorLine ? 'coordinator' : `worker ${workers.length + 1}`, spawn('bash', ['-c', `exec ${command}`], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
        procs.push(p);
        if (line === coordinatorLine) {
          coordinator = p;
          await p.waitFor(/listening for worker nodes on/, 120_000);
        } else workers.push(p);
      } else {
        const r = spawnSync('bash', ['-c', command], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
        expect(r.status, `${command}\n${r.stderr}`).toBe(0);
      }
    }
    await coordinator!.waitFor(/^Epoch 1\//m, 180_000);
    const killedAt = performance.now();
    killGroup(workers[0]!);
    expect(await coordinator!.exited, coordinator!.output).toBe(0);
    // the coordinator saw the worker go, and did not wait for a replacement
    expect(coordinator!.output).toMatch(/left at step \d+: .*; 1 node\(s\) remain/);
    expect(coordinator!.output).not.toMatch(/waiting for worker nodes: 1 of 2/);
    expect((performance.now() - killedAt) / 1000).toBeLessThan(120);
    expect(await workers[1]!.exited, workers[1]!.output).toBe(0);
    const runDir = /^Run files: (.*)$/m.exec(coordinator!.output)![1]!;
    const summary = readSummary(runDir);
    expect(summary.interrupted).toBe(false);
    expect(summary.participants.filter((p) => p.kind === 'node').length).toBeGreaterThanOrEqual(2);
    if (runDir.startsWith(join(ROOT, 'runs'))) rmSync(runDir, { recursive: true, force: true });
  });
});
