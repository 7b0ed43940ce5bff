/**
 * What stood in a newcomer's way in the first hour, one `describe` each: a resume of a run
 * started with a relative --data path, data checks that disagreed, corrupt images in evaluate,
 * the epoch timer, files the README's commands leave in the clone, the Telco examples, plots,
 * and predictions a user cannot join back to their rows.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readModelInputs } from '../coordinator/model-inputs.js';
import { predictCsv, type SavedModel } from '../coordinator/saved-model.js';
import { parseCsv } from '../shared/data/csv.js';
import { readImageFolder } from '../shared/data/images.js';
import { fitPreprocessor, type Preprocessor } from '../shared/data/preprocess.js';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { coordinatorUrl, jobFolder, readSummary, spawnNode, startCoordinator, startWorker, type Proc } from './cluster-helpers.js';
import { ROOT } from './helpers.js';

const DPTRAIN_BIN = join(ROOT, 'bin', 'dptrain.js');

const procs: Proc[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
});

/** `dptrain ARGS` run from `cwd`. */
function dptrain(args: string[], cwd: string): Proc {
  const p = spawnNode('dptrain', DPTRAIN_BIN, args, {}, cwd);
  procs.push(p);
  return p;
}

const churnJob = {
  seed: 5,
  data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
  model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
  compile: { loss: 'binaryCrossentropy', optimizer: 'adam' },
  fit: { epochs: 40, batchSize: 32, validationSplit: 0.1 },
  cluster: { threads: 1, backend: 'wasm' },
  checkpoint: { everySteps: 5 },
  metrics: { listen: false },
};

describe('resume of a run started with a relative --data path', { timeout: 300_000 }, () => {
  it('Ctrl-C, then the printed --resume command works from any directory; moved data is given with --data and checked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-resume-relative-'));
    writeFileSync(join(dir, 'churn.csv'), telcoDemoCsv(600, 3));
    writeFileSync(join(dir, 'other.csv'), telcoDemoCsv(600, 4));
    writeFileSync(join(dir, 'job.yaml'), stringify(churnJob));
    const run = join(dir, 'runs', 'churn');

    const first = dptrain(['start', '--config', 'job.yaml', '--data', 'churn.csv', '--out', 'runs/churn'], dir);
    await first.waitFor(/^Epoch 2\//);
    first.kill('SIGINT');
    expect(await first.exited, first.output).toBe(0);
    const printed = /Continue with: (dptrain start --resume (\S+))/.exec(first.output);
    expect(printed?.[2], first.output).toBe(run);
    const saved = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { data: { path: string }; output: { dir: string } };
    expect(saved.data.path).toBe(join(dir, 'churn.csv'));
    expect(saved.output.dir).toBe(run);

    // the data moved: the resume names the missing file and the flag that fixes it
    renameSync(join(dir, 'churn.csv'), join(dir, 'moved.csv'));
    const missing = dptrain(['start', '--resume', run], ROOT);
    expect(await missing.exited).toBe(1);
    expect(missing.output).toContain(`the run's data.path ${join(dir, 'churn.csv')} is not there any more; if it moved, give its new place: dptrain start --resume ${run} --data NEW_PATH`);
    // other rows under --data are refused by the checkpoint's fingerprint
    const other = dptrain(['start', '--resume', run, '--data', 'other.csv'], dir);
    expect(await other.exited).toBe(1);
    expect(other.output).toMatch(/fingerprint differs/);
    // the moved file, relative to where the command runs
    const resumed = dptrain(['start', '--resume', 'runs/churn', '--data', 'moved.csv'], dir);
    expect(await resumed.exited, resumed.output).toBe(0);
    const summary = readSummary(run);
    expect(summary.interrupted).toBe(false);
    expect(summary.resumedFrom).toMatch(/step-\d+\.ckpt$/);
    expect((JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { data: { path: string } }).data.path).toBe(join(dir, 'moved.csv'));
    expect(existsSync(join(run, 'model', 'model.json'))).toBe(true);
  });
});

/** A saved model whose engine predicts zeros: what predict writes around the outputs. */
function zeroModel(preprocessor: Preprocessor, outputs: number): SavedModel {
  const engine = { predict: async (_x: Float32Array, rows: number) => new Float32Array(rows * outputs) };
  return { preprocessor, engine } as unknown as SavedModel;
}

describe('corrupt images: one policy in training, evaluate and predict, in our words', () => {
  it('a truncated PNG is skipped by training and listed by evaluate and predict with the same reason', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-corrupt-')), 'digits');
    const written = spawnSync(process.execPath, [join(ROOT, 'scripts', 'mnist-csv.mjs'), '--images', dir, '--rows', '30'], { encoding: 'utf8' });
    expect(written.status, written.stderr).toBe(0);
    const whole = readFileSync(join(dir, '3', readdirSync(join(dir, '3'))[0]!));
    writeFileSync(join(dir, '3', 'truncated.png'), whole.subarray(0, Math.floor(whole.length / 2)));
    const reason = `a PNG file that does not decode (${Math.floor(whole.length / 2)} bytes: cut short or corrupt)`;

    const set = readImageFolder(dir, { colorMode: 'grayscale' });
    expect(set.labels.length).toBe(30);
    expect(set.warnings).toEqual([`1 image file(s) skipped: ${join(dir, '3', 'truncated.png')} (${reason})`]);

    const classes = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
    const pre: Preprocessor = { version: 1, drop: [], columns: [], features: [], label: { column: 'class', type: 'categorical', classes }, input: { kind: 'images', shape: [28, 28, 1], colorMode: 'grayscale', scale: 1 / 255 } };
    const { enc, files } = readModelInputs(pre, dir, { requireLabel: true });
    expect(enc.rows).toBe(30);
    expect(enc.rejected).toEqual([{ line: 31, reason: `3/truncated.png: ${reason}` }]);
    expect(files![30]).toBe('3/truncated.png');

    const out = join(dirname(dir), 'predictions.csv');
    await predictCsv(zeroModel(pre, 10), dir, out);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(32);
    // line, file, ten probabilities and the predicted class left empty, then the reason
    expect(lines[31]).toBe(`31,3/truncated.png${','.repeat(12)}3/truncated.png: ${reason}`);
  });
});

describe('predict writes the id column', () => {
  it('the columns the model dropped (customerID) come along, or the ones --keep names', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-predict-id-'));
    const csv = telcoDemoCsv(40, 2);
    const file = join(dir, 'churn.csv');
    writeFileSync(file, csv);
    const pre = fitPreprocessor(parseCsv(csv, file), { drop: ['customerID'], numeric: ['TotalCharges'], categorical: [], label: { column: 'Churn', type: 'binary', positive: 'Yes' } });
    const out = join(dir, 'predictions.csv');
    await predictCsv(zeroModel(pre, 1), file, out);
    const [header, ...rows] = readFileSync(out, 'utf8').trim().split('\n');
    expect(header).toBe('line,customerID,probability_Yes,predicted,error');
    const ids = csv.trim().split('\n').slice(1).map((l) => l.split(',')[0]);
    expect(rows.map((r) => r.split(',')[1])).toEqual(ids);
    expect(rows[0]).toMatch(new RegExp(`^2,${ids[0]},0,No,$`));

    await predictCsv(zeroModel(pre, 1), file, out, { keep: ['customerID', 'gender'] });
    expect(readFileSync(out, 'utf8').split('\n')[0]).toBe('line,customerID,gender,probability_Yes,predicted,error');
    await expect(predictCsv(zeroModel(pre, 1), file, out, { keep: ['custid'] })).rejects.toThrow(`unknown column "custid" in --keep; ${file} has columns: customerID,`);
  });
});

describe('the epoch timer', { timeout: 180_000 }, () => {
  it('leaves out the time spent waiting for worker nodes', async () => {
    const job = jobFolder(400, { ...churnJob, fit: { epochs: 1, batchSize: 32 }, cluster: { threads: 1, minWorkers: 1, backend: 'wasm' }, checkpoint: { everySteps: 0 } });
    const coordinator = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    procs.push(coordinator);
    const url = await coordinatorUrl(coordinator);
    await coordinator.waitFor(/waiting for worker nodes: 0 of 1 connected/);
    const waitStart = performance.now();
    await new Promise((r) => setTimeout(r, 5000));
    const worker = startWorker('w1', url, job.tokenFile);
    procs.push(worker);
    expect(await coordinator.exited, coordinator.output).toBe(0);
    const wall = (performance.now() - waitStart) / 1000;
    const history = JSON.parse(readFileSync(join(job.out, 'history.json'), 'utf8')) as { seconds: number[] };
    expect(wall).toBeGreaterThan(5);
    expect(history.seconds[0]).toBeLessThan(wall - 4);
    const printed = Number(/^Epoch 1\/1 - \d+ steps - ([\d.]+)s/m.exec(coordinator.output)?.[1]);
    expect(printed).toBeCloseTo(history.seconds[0]!, 1);
  });
});

/** The shell commands of a Markdown file's bash blocks and of a YAML file's `# Run:` lines, one per line. */
function commandsIn(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  if (file.endsWith('.yaml')) return [...text.matchAll(/^#\s+(?:Run:)?\s+((?:npx|node) .*)$/gm)].map((m) => m[1]!);
  return [...text.matchAll(/```(?:bash|sh)\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n')).filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
}

describe('what the documented commands leave in the clone', () => {
  const documents = [
    join(ROOT, 'README.md'),
    ...(existsSync(join(ROOT, 'docs')) ? readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(ROOT, 'docs', f)) : []),
    ...readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml')).map((f) => join(ROOT, 'examples', f)),
  ];

  it('every token, data file or folder a documented command writes goes outside the clone, or into an ignored runs/ or deploy/ folder', () => {
    const inClone: { file: string; command: string; target: string }[] = [];
    for (const file of documents) {
      for (const command of commandsIn(file)) {
        for (const m of command.matchAll(/(?:^|\s)(?:>|--out|--images|--token-file)\s+([^\s;&|]+)/g)) {
          if (!/^(\/|~|\$|<)/.test(m[1]!)) inClone.push({ file: relative(ROOT, file), command: command.trim(), target: m[1]! });
        }
      }
    }
    const ignored = new Set(spawnSync('git', ['check-ignore', '--no-index', ...inClone.map((w) => w.target)], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\n'));
    expect(inClone.filter((w) => !/^(runs|deploy)\//.test(w.target) || !ignored.has(w.target)).map((w) => `${w.file}: ${w.command}`)).toEqual([]);
  });

  it('what they wrote there before is ignored by git: a token, mnist.csv, digits/', () => {
    const ignored = spawnSync('git', ['check-ignore', 'secret', 'token', 'mnist.csv', 'digits/', 'runs/'], { cwd: ROOT, encoding: 'utf8' });
    expect(ignored.stdout.trim().split('\n')).toEqual(['secret', 'token', 'mnist.csv', 'digits/', 'runs/']);
  });

  it('the examples say what they are for and run with dptrain; the Keras reproduction points at the tuned example', () => {
    const first = readFileSync(join(ROOT, 'examples', 'telco-churn.yaml'), 'utf8').split('\n')[0];
    expect(first).toMatch(/^# For comparing with Keras, not for everyday use \(that is telco-churn-tuned\.yaml\)/);
    for (const file of documents.filter((f) => f.endsWith('.yaml'))) {
      expect(readFileSync(file, 'utf8'), file).not.toMatch(/seed notebook|the seed's|npx coordinator/);
      for (const command of commandsIn(file)) expect(command, file).toMatch(/^(npx dptrain|node scripts\/)/);
    }
  });
});
