/**
 * Worker nodes from the command line, with real processes: what a user sees when the backend,
 * token, certificate or coordinator is wrong or goes away, and TLS (wss://) end to end.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TOKEN, WORKER_BIN, coordinatorUrl, jobFolder, readSummary, selfSignedCertificate, spawnNode, startCoordinator, startWorker, trackProcesses } from './cluster-helpers.js';
import { ROOT } from './helpers.js';

const track = trackProcesses();

function worker(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [WORKER_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function hasPackage(name: string): boolean {
  try {
    createRequire(join(ROOT, 'package.json')).resolve(name);
    return true;
  } catch {
    return false;
  }
}

const smallJob = (cluster: Record<string, unknown>) => ({
  seed: 1,
  data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
  model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
  compile: { loss: 'binaryCrossentropy' },
  fit: { epochs: 2, batchSize: 64 },
  cluster: { backend: 'cpu', heartbeatInterval: 0.5, ...cluster },
});

describe('worker start', { timeout: 600_000 }, () => {
  it.skipIf(hasPackage('@tensorflow/tfjs-node-gpu') || hasPackage('@tensorflow/tfjs-node'))(
    '--backend tensorflow without tfjs-node(-gpu) says what to install and exits 1',
    () => {
      const r = worker(['start', '--connect', 'ws://127.0.0.1:9', '--backend', 'tensorflow'], { DPTRAIN_TOKEN: TOKEN });
      expect(r.status).toBe(1);
      expect(r.out).toMatch(/error \[E_BACKEND\]: backend "tensorflow" is not available/);
      expect(r.out).toContain('npm install @tensorflow/tfjs-node-gpu@4.22.0');
      expect(r.out).toContain('CUDA 11.2, cuDNN 8.1');
    },
  );

  it('--backend webgpu without a Vulkan driver says what to install and exits 1', () => {
    const r = worker(['start', '--connect', 'ws://127.0.0.1:9', '--backend', 'webgpu'], { DPTRAIN_TOKEN: TOKEN, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' });
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/error \[E_BACKEND\]: WebGPU found no adapter on this machine/);
    expect(r.out).toContain("install the GPU's Vulkan driver");
    expect(r.out).toContain('NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics');
    expect(r.out).toContain('apt-get install -t bookworm-backports mesa-vulkan-drivers');
  });

  it('--devices: a count or a list of ids, checked', () => {
    expect(worker(['start', '--connect', 'ws://127.0.0.1:9', '--devices', '0'], { DPTRAIN_TOKEN: TOKEN }).out).toContain('--devices must be a count (2) or a list of device ids (0,2), got "0"');
    expect(worker(['start', '--connect', 'ws://127.0.0.1:9', '--devices', '1,1'], { DPTRAIN_TOKEN: TOKEN }).out).toContain('got "1,1"');
    expect(worker(['start', '--connect', 'ws://127.0.0.1:9', '--devices', 'two'], { DPTRAIN_TOKEN: TOKEN }).out).toContain('got "two"');
  });

  it('needs a token from a file or DPTRAIN_TOKEN, and a usable one', () => {
    const env = { DPTRAIN_TOKEN: '' };
    const none = spawnSync(process.execPath, [WORKER_BIN, 'start', '--connect', 'ws://127.0.0.1:9'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'DPTRAIN_TOKEN')),
    });
    expect(none.status).toBe(1);
    expect(none.stderr).toContain('a shared token is required: give --token-file FILE or set DPTRAIN_TOKEN');
    expect(worker(['start', '--connect', 'ws://127.0.0.1:9'], env).out).toContain('$DPTRAIN_TOKEN: the token has 0 characters, at least 16 are required');
    expect(worker(['start', '--connect', 'ws://127.0.0.1:9', '--token-file', '/nonexistent/secret']).out).toContain('token file /nonexistent/secret: no such file');
    expect(worker(['start', '--connect', 'http://x', '--token-file', '/x']).out).toContain('--connect must be a ws:// or wss:// URL, got "http://x"');
    expect(worker(['start', '--connect', 'ws://127.0.0.1:9', '--metrics-linger', 'soon'], { DPTRAIN_TOKEN: TOKEN }).out).toContain(
      '--metrics-linger must be a non-negative number of seconds, got "soon"',
    );
  });

  it('a wrong token is final: the worker exits 1 with the reason and does not retry', async () => {
    const job = jobFolder(300, smallJob({ threads: 1, minWorkers: 0 }));
    writeFileSync(join(job.dir, 'wrong'), 'not-the-right-token-at-all');
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out, '--min-workers', '1']));
    const url = await coordinatorUrl(coordinator);
    const w = track(startWorker('intruder', url, join(job.dir, 'wrong')));
    expect(await w.exited).toBe(1);
    expect(w.output).toMatch(/refused this worker: bad token/);
    expect(w.output).not.toMatch(/retry/);
    await coordinator.waitFor(/rejected peer 127\.0\.0\.1:\d+: bad token/);
  });

  it('retries with backoff when the coordinator goes away, then gives up with a clear message', async () => {
    const job = jobFolder(300, { ...smallJob({ threads: 0, minWorkers: 1 }), fit: { epochs: 500, batchSize: 64 } });
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
    const url = await coordinatorUrl(coordinator);
    const w = track(startWorker('orphan', url, job.tokenFile, ['--retries', '2']));
    await coordinator.waitFor(/^Epoch 1\//);
    coordinator.kill('SIGKILL');
    expect(await w.exited).toBe(1);
    expect(w.output).toMatch(/connection to .* lost .*; retry 1\/2 in \d/);
    expect(w.output).toMatch(/retry 2\/2/);
    expect(w.output).toMatch(/error \[E_WORKER\]: gave up on the coordinator at ws:\/\/127\.0\.0\.1:\d+ after 3 failed attempt\(s\)/);
  });
});

describe('coordinator with worker nodes', { timeout: 600_000 }, () => {
  it('waits for minWorkers and gives up after waitTimeout with a clear message', async () => {
    const job = jobFolder(300, smallJob({ threads: 0, minWorkers: 2, waitTimeout: 1 }));
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]));
    expect(await coordinator.exited).toBe(1);
    expect(coordinator.output).toContain('waiting for worker nodes: 0 of 2 connected (timeout 1 s)');
    expect(coordinator.output).toMatch(/error \[E_CLUSTER\]: waited 1 s for worker nodes: 0 of 2 connected/);
  });

  it('refuses to listen without a token', () => {
    const job = jobFolder(300, smallJob({ threads: 0 }));
    const r = spawnNode('c', join(ROOT, 'bin/coordinator.js'), ['start', '--config', job.configFile, '--listen', '127.0.0.1:0'], { DPTRAIN_TOKEN: '' });
    return r.exited.then((code) => {
      expect(code).toBe(1);
      expect(r.output).toContain('$DPTRAIN_TOKEN: the token has 0 characters');
    });
  });

  it('serves wss:// with a certificate: a worker trusting it trains, one that does not is refused', async () => {
    const job = jobFolder(300, smallJob({ threads: 0, minWorkers: 1 }));
    const { cert, key } = selfSignedCertificate(job.dir);
    const coordinator = track(startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out, '--tls-cert', cert, '--tls-key', key]));
    const url = await coordinatorUrl(coordinator);
    expect(url).toMatch(/^wss:\/\//);
    const untrusting = track(startWorker('untrusting', url, job.tokenFile, ['--retries', '0']));
    expect(await untrusting.exited).toBe(1);
    expect(untrusting.output).toMatch(/cannot connect to the coordinator .*self[- ]signed certificate/);
    const trusting = track(startWorker('trusting', url, job.tokenFile, ['--ca', cert]));
    expect(await coordinator.exited, coordinator.output).toBe(0);
    expect(await trusting.exited, trusting.output).toBe(0);
    const summary = readSummary(job.out);
    expect(summary.participants.find((p) => p.name === 'trusting')!.samples).toBe(summary.samples);
  });
});
