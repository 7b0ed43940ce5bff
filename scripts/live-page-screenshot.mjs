// Makes docs/images/live-page.png: the MNIST CNN (examples/mnist-cnn.yaml) on one coordinator
// thread and two local worker nodes, the live run page opened in headless Chromium during its
// fourth epoch. Needs a build (npm run build) and Debian's chromium (or DPTRAIN_CHROMIUM=path).
//
//   node scripts/live-page-screenshot.mjs [--out docs/images/live-page.png]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { parse, stringify } from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));
const outFlag = process.argv.indexOf('--out');
const out = outFlag >= 0 ? process.argv[outFlag + 1] : join(root, 'docs', 'images', 'live-page.png');
const dir = mkdtempSync(join(tmpdir(), 'dptrain-screenshot-'));
const data = join(dir, 'mnist.csv');
const token = join(dir, 'token');
writeFileSync(token, 'a-token-for-the-screenshot-run-only\n');
if (spawnSync(process.execPath, [join(root, 'scripts', 'mnist-csv.mjs'), '--out', data], { stdio: 'inherit' }).status !== 0) process.exit(1);
// the example with a validation split, so the page has validation curves to show
const config = join(dir, 'mnist-cnn.yaml');
const job = parse(readFileSync(join(root, 'examples', 'mnist-cnn.yaml'), 'utf8'));
writeFileSync(config, stringify({ ...job, fit: { ...job.fit, validationSplit: 0.1 } }));

const children = [];
/** Starts `dptrain ARGS`; `waitFor(re)` resolves with the first match of `re` in its output so far or later. */
function dptrain(args) {
  const child = spawn(process.execPath, [join(root, 'bin', 'dptrain.js'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let text = '';
  const waiters = [];
  const onData = (chunk) => {
    text += chunk;
    for (const w of waiters) {
      const m = w.re.exec(text);
      if (m) w.resolve(m);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((_, reject) => child.on('exit', (code) => reject(new Error(`dptrain ${args[0]} exited (${code}):\n${text}`))));
  exited.catch(() => {});
  return { waitFor: (re) => Promise.race([new Promise((resolve) => waiters.push({ re, resolve })), exited]) };
}

try {
  const coordinator = dptrain([
    'start', '--config', config, '--data', data, '--epochs', '4', '--threads', '1',
    '--listen', '127.0.0.1:0', '--token-file', token, '--start-workers', '2', '--min-workers', '1',
    '--metrics-listen', '127.0.0.1:0', '--out', join(dir, 'mnist-cnn'),
  ]);
  const [, nodes] = await coordinator.waitFor(/listening for worker nodes on (ws:\/\/\S+)/);
  const [, page] = await coordinator.waitFor(/live run page on (http:\/\/\S+)/);
  for (const name of ['node-a', 'node-b']) dptrain(['worker', 'start', '--connect', nodes, '--token-file', token, '--name', name]);
  const browser = await chromium.launch({ executablePath: process.env['DPTRAIN_CHROMIUM'] ?? '/usr/bin/chromium' });
  const tab = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  await tab.goto(page);
  await coordinator.waitFor(/^Epoch 3\//m);
  await tab.waitForTimeout(4000);
  await tab.screenshot({ path: out, fullPage: true });
  await browser.close();
  console.log(`wrote ${out}`);
} finally {
  for (const child of children) child.kill('SIGKILL');
}
