/**
 * Whether WebGPU runs here, asked of a fresh process (`worker backends --backend webgpu`), so a
 * test process never loads Dawn where it cannot start. With DPTRAIN_REQUIRE_WEBGPU=1 (CI, which
 * installs Mesa's software Vulkan driver) a missing adapter fails the test file instead of
 * skipping it.
 */
import { spawnSync } from 'node:child_process';
import { WORKER_BIN } from './cluster-helpers.js';

export async function webgpuAvailable(): Promise<{ ok: true; adapter: string } | { ok: false; why: string }> {
  const r = spawnSync(process.execPath, [WORKER_BIN, 'backends', '--backend', 'webgpu'], { encoding: 'utf8', timeout: 60_000 });
  const adapter = /adapter: (.*)\)$/m.exec(r.stdout)?.[1];
  if (r.status === 0 && adapter) return { ok: true, adapter };
  const why = `no WebGPU adapter here: ${(r.stderr.match(/error \[\w+\]: (.*)/)?.[1] ?? r.stderr.trim()).slice(0, 300)}`;
  if (process.env['DPTRAIN_REQUIRE_WEBGPU'] === '1') throw new Error(`DPTRAIN_REQUIRE_WEBGPU=1 but ${why}`);
  console.warn(`skipping the WebGPU tests: ${why}`);
  return { ok: false, why };
}
