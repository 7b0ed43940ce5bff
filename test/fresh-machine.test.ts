/**
 * The README's test command on a user's machine, which has no ../shared beside the checkout: the
 * test files that read the real Telco file must skip cleanly (not fail while being collected),
 * and in CI (DPTRAIN_REQUIRE_TELCO=1) the same absence must fail.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const TELCO_FILES = ['test/data.test.ts', 'test/e2e.test.ts', 'test/saved-model.test.ts'];

function vitest(env: Record<string, string>): { status: number | null; out: string } {
  const rest = { ...process.env };
  delete rest['DPTRAIN_REQUIRE_TELCO'];
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...TELCO_FILES, '-t', 'Telco'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...rest, DPTRAIN_TELCO_CSV: '/nonexistent/telco-customer-churn.csv', ...env },
    timeout: 120_000,
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('without the Telco file', () => {
  it('its tests skip and the run passes', () => {
    const r = vitest({});
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/skipped/);
    expect(r.out).not.toMatch(/failed/i);
  }, 120_000);

  it('with DPTRAIN_REQUIRE_TELCO=1 (CI) the run fails, naming the file', () => {
    const r = vitest({ DPTRAIN_REQUIRE_TELCO: '1' });
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('DPTRAIN_REQUIRE_TELCO=1 but /nonexistent/telco-customer-churn.csv is missing');
  }, 120_000);
});

/** The WebGPU test files on a machine without a Vulkan driver (the loader finds no ICD). */
function vitestWithoutVulkan(env: Record<string, string>): { status: number | null; out: string } {
  const rest = { ...process.env };
  delete rest['DPTRAIN_REQUIRE_WEBGPU'];
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/webgpu.test.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...rest, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json', ...env },
    timeout: 120_000,
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('without a Vulkan driver', () => {
  it('the WebGPU tests skip, saying what to install, and the run passes', () => {
    const r = vitestWithoutVulkan({});
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/skipped/);
    expect(r.out).toMatch(/skipping the WebGPU tests: no WebGPU adapter here: WebGPU found no adapter on this machine\. WebGPU on Linux runs on Vulkan/);
  }, 120_000);

  it('with DPTRAIN_REQUIRE_WEBGPU=1 (CI) the run fails', () => {
    const r = vitestWithoutVulkan({ DPTRAIN_REQUIRE_WEBGPU: '1' });
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('DPTRAIN_REQUIRE_WEBGPU=1 but no WebGPU adapter here');
  }, 120_000);
});
