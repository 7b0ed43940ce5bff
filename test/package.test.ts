/**
 * The npm package as a user gets it: `npm pack`, the tarball installed into an empty folder,
 * `dptrain` imported from a .mjs file (and a short job trained through it on two threads, which
 * loads the thread entry and the wasm backend from the package) and from a type-checked .ts file,
 * the demo on the native backend (and on wasm, saying why, where onnxruntime-node is missing),
 * and both CLIs' --help. Also: every package in the lockfile runs on the oldest Node we promise.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import semver from 'semver';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  scripts: Record<string, string>;
  files: string[];
};

describe('the packed package, installed into an empty folder', () => {
  let app: string;
  let files: string[];
  beforeAll(() => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-pack-'));
    // dist/ is built by `pretest`; --ignore-scripts keeps prepack from rebuilding it under the
    // other test files (that prepack builds is checked below).
    const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' });
    const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
    files = info!.files.map((f) => f.path);
    app = join(dir, 'app');
    execFileSync('mkdir', [app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('npm', ['install', join(dir, info!.filename), '--no-audit', '--no-fund', '--prefer-offline', '--loglevel', 'error'], { cwd: app, encoding: 'utf8', timeout: 300_000 });
  }, 360_000);

  it('ships the built library, both CLIs and the examples, built on prepack', () => {
    expect(pkg.scripts['prepack']).toBe('npm run build');
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/coordinator/cli.js', 'dist/worker/cli.js', 'dist/worker/thread.js', 'dist/worker/thread-entry.cjs', 'bin/dptrain.js', 'bin/coordinator.js', 'bin/worker.js', 'examples/demo.yaml']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('imports from a .mjs file and trains on two threads through it', () => {
    const rows = Array.from({ length: 60 }, (_, i) => ({ a: i % 7, b: (i * 13) % 5, y: i % 7 > 3 ? 'yes' : 'no' }));
    writeFileSync(
      join(app, 'use.mjs'),
      `import { train, ConfigError } from 'dptrain';
const bad = await train({ fit: { epoch: 1 } }).catch((e) => e);
if (!(bad instanceof ConfigError)) throw new Error('no ConfigError: ' + bad);
const { summary } = await train({
  data: { label: { column: 'y', positive: 'yes' } },
  model: { layers: [{ units: 4, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
  compile: { optimizer: 'adam', loss: 'binaryCrossentropy' },
  fit: { epochs: 2, batchSize: 8 },
  cluster: { threads: 2 },
  metrics: { listen: false },
  output: { dir: 'run' },
}, { rows: ${JSON.stringify(rows)}, log: () => {} });
console.log(JSON.stringify({ threads: summary.threads, epochs: summary.epochs, accuracy: summary.test.accuracy }));
`,
    );
    const r = spawnSync(process.execPath, ['use.mjs'], { cwd: app, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { threads: number; epochs: number; accuracy: number };
    expect(result).toMatchObject({ threads: 2, epochs: 2 });
    // the saved model: the package's own exporter ran from the installed files
    expect(existsSync(join(app, 'run', 'model', 'model.json'))).toBe(true);
  }, 120_000);

  it('type-checks a .ts file against its declarations', () => {
    writeFileSync(
      join(app, 'use.ts'),
      `import { train, loadSavedModel, predictCsv, type JobResult, type Summary } from 'dptrain';
export async function run(): Promise<number> {
  const result: JobResult = await train('job.yaml', { overrides: { 'fit.epochs': 3 } });
  const summary: Summary = result.summary;
  const model = await loadSavedModel(result.runDir + '/model');
  const { outputs } = await predictCsv(model, 'rows.csv');
  // @ts-expect-error: epochs is a number
  await train({ data: { path: 'x.csv', label: { column: 'y' } }, model: { layers: [] }, compile: {}, fit: { epochs: 'many' } });
  return summary.test.loss + outputs.length;
}
`,
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: true, types: [] }, files: ['use.ts'] }),
    );
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: app, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 60_000);

  it('runs a TypeScript file that imports it with tsx (the README way)', () => {
    writeFileSync(join(app, 'run.ts'), `import { validateConfig, type JobConfig } from 'dptrain';\nconst c: JobConfig = validateConfig({ data: { path: 'x.csv', label: { column: 'y' } }, model: { layers: [{ units: 1 }] }, compile: { loss: 'meanSquaredError' } }, 'run.ts');\nconsole.log(c.fit.batchSize);\n`);
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'run.ts'], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('32');
  }, 60_000);

  /** `npx dptrain start --demo` in the installed app, 2 epochs, metrics off; its output. */
  const demo = (...args: string[]) =>
    spawnSync('npx', ['--no-install', 'dptrain', 'start', '--demo', '--epochs', '2', '--metrics-listen', 'off', '--overwrite', '--out', join(app, `demo-${args.join('') || 'auto'}`), ...args], {
      cwd: app,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, DPTRAIN_NATIVE_MIN_FLOPS: '' },
    });

  it('runs the demo on the native backend: onnxruntime-node installed from npm with its CPU binaries, nothing downloaded', () => {
    // npm 11 runs no install script that is not allowed; npm 10 users skip onnxruntime-node's CUDA
    // download with ONNXRUNTIME_NODE_INSTALL=skip (README): either way only the tarball's binaries
    expect(existsSync(join(app, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', process.platform, process.arch, 'onnxruntime_binding.node'))).toBe(true);
    expect(existsSync(join(app, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so'))).toBe(false);
    const r = demo();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/on native \(onnxruntime-node \d+\.\d+\.\d+, 1 thread\(s\) a lane; auto: no GPU \(.*\); onnxruntime's CPU kernels\)/);
    expect(r.stdout).toMatch(/^Test: loss: /m);
  }, 180_000);

  it('where onnxruntime-node is broken, --backend native is an E_BACKEND error naming it and the fix; where it is missing, auto says why and trains on wasm', () => {
    const ort = join(app, 'node_modules', 'onnxruntime-node');
    const binding = join(ort, 'bin', 'napi-v6', process.platform, process.arch, 'onnxruntime_binding.node');
    const saved = readFileSync(binding);
    try {
      writeFileSync(binding, 'not a shared object');
      const broken = demo('--backend', 'native');
      expect(broken.status).not.toBe(0);
      expect(broken.stderr).toMatch(/error \[E_BACKEND\]: backend "native" is not available: onnxruntime-node \d+\.\d+\.\d+ did not load on linux\/x64 \(.*\); reinstall it: install it with `ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node`/);
    } finally {
      writeFileSync(binding, saved);
    }
    renameSync(ort, `${ort}.away`);
    try {
      const missing = demo('--backend', 'native');
      expect(missing.status).not.toBe(0);
      expect(missing.stderr).toContain('error [E_BACKEND]: backend "native" is not available: onnxruntime-node is not installed; install it with `ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node`');
      const auto = demo();
      expect(auto.status, auto.stderr).toBe(0);
      expect(auto.stdout + auto.stderr).toContain('native backend unavailable (onnxruntime-node is not installed;');
      expect(auto.stdout).toMatch(/on wasm \(auto: no GPU \(.*; native: onnxruntime-node is not installed\)\)/);
    } finally {
      renameSync(`${ort}.away`, ort);
    }
  }, 240_000);

  it('runs npx dptrain (start, worker) and its aliases npx coordinator and npx worker', () => {
    const npx = (...args: string[]) => spawnSync('npx', ['--no-install', ...args], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    for (const help of [npx('dptrain', '--help'), npx('coordinator', '--help')]) {
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toContain('dptrain start');
      expect(help.stdout).toContain('dptrain worker start --connect URL');
    }
    for (const help of [npx('dptrain', 'worker', '--help'), npx('worker', '--help')]) {
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toContain('start --connect URL');
    }
  }, 120_000);
});

describe('engines', () => {
  it('every package in the lockfile accepts the oldest Node version package.json promises', () => {
    const oldest = semver.minVersion(pkg.engines.node)!.version;
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { engines?: { node?: string } | string[]; optional?: boolean }> };
    const refused = Object.entries(lock.packages)
      .filter(([, p]) => p.engines && !Array.isArray(p.engines) && p.engines.node && !semver.satisfies(oldest, p.engines.node))
      .map(([name, p]) => `${name} wants node ${(p.engines as { node: string }).node}`);
    expect(refused, `package.json promises node ${pkg.engines.node}`).toEqual([]);
  });
});
