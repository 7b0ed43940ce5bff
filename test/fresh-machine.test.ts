/**
 * The README's test command on a user's machine, which has no ../shared beside the checkout: the
 * test files that read the real Telco file must skip cleanly (not fail while being collected),
 * and in CI (DPTRAIN_REQUIRE_TELCO=1) the same absence must fail. Likewise the WebGPU tests on a
 * machine without a Vulkan driver: they skip saying what to install, and fail in CI
 * (DPTRAIN_REQUIRE_WEBGPU=1).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const TELCO_FILES = ['test/data.test.ts', 'test/e2e.test.ts', 'test/saved-model.test.ts'];

/** vitest on `args` in a child, without the CI flag `required` (unless `env` sets it), with `env` on top. */
function vitest(args: string[], required: string, env: Record<string, string>): { status: number | null; out: string } {
  const rest = { ...process.env };
  delete rest[required];
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...rest, ...env }, timeout: 120_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

const withoutTelco = (env: Record<string, string>) => vitest([...TELCO_FILES, '-t', 'Telco'], 'DPTRAIN_REQUIRE_TELCO', { DPTRAIN_TELCO_CSV: '/nonexistent/telco-customer-churn.csv', ...env });

describe('without the Telco file', () => {
  it('its tests skip and the run passes', () => {
    const r = withoutTelco({});
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/skipped/);
    expect(r.out).not.toMatch(/failed/i);
  }, 120_000);

  it('with DPTRAIN_REQUIRE_TELCO=1 (CI) the run fails, naming the file', () => {
    const r = withoutTelco({ DPTRAIN_REQUIRE_TELCO: '1' });
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('DPTRAIN_REQUIRE_TELCO=1 but /nonexistent/telco-customer-churn.csv is missing');
  }, 120_000);
});

/** The WebGPU test file on a machine without a Vulkan driver (the loader finds no ICD). */
const withoutVulkan = (env: Record<string, string>) =>
  vitest(['test/webgpu.test.ts'], 'DPTRAIN_REQUIRE_WEBGPU', { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json', ...env });

describe('without a Vulkan driver', () => {
  it('the WebGPU tests skip, saying what to install, and the run passes', () => {
    const r = withoutVulkan({});
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/skipped/);
    expect(r.out).toMatch(/skipping the WebGPU tests: no WebGPU adapter here: WebGPU found no adapter on this machine\. WebGPU on Linux runs on Vulkan/);
  }, 120_000);

  it('with DPTRAIN_REQUIRE_WEBGPU=1 (CI) the run fails', () => {
    const r = withoutVulkan({ DPTRAIN_REQUIRE_WEBGPU: '1' });
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('DPTRAIN_REQUIRE_WEBGPU=1 but no WebGPU adapter here');
  }, 120_000);
});
