/**
 * Tar shards of images in WebDataset's layout (key.png + key.cls): the index from headers only,
 * shard patterns, training streamed from the shards equal to the same images in memory (threads
 * and a worker node), and clear errors for a missing shard, a truncated tar, a corrupt image.
 */
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readJobData } from '../coordinator/job-data.js';
import { Trainer, modelSpec } from '../coordinator/fit/trainer.js';
import { evaluateCsv, loadSavedModel, predictCsv } from '../coordinator/saved-model.js';
import { initBackend } from '../shared/backend.js';
import { loadConfig } from '../shared/config/load.js';
import { DataError } from '../shared/errors.js';
import { featureRows } from '../shared/data/feature-rows.js';
import { indexShards } from '../shared/data/shards.js';
import { shardChunks } from '../shared/data/shard-data.js';
import { expandPaths } from '../shared/data/paths.js';
import { readTarMembers, writeTar } from '../shared/data/tar.js';
import { coordinatorUrl, jobFolder, readRunWeights, readSummary, runKillingOneOfTwoNodes, runWithNodes, startCoordinator, startWorker, trackProcesses } from './cluster-helpers.js';
import { rangeServer } from './helpers.js';
import { maxAbsDiff, trainOnLanes } from './thread-runs.js';

const require = createRequire(import.meta.url);
const track = trackProcesses();

beforeAll(async () => {
  await initBackend('wasm');
});

function png(pixels: Uint8Array): Uint8Array {
  const image = new PNG({ width: 28, height: 28, colorType: 0 });
  for (let p = 0; p < 784; p++) image.data.set([pixels[p]!, pixels[p]!, pixels[p]!, 255], p * 4);
  return PNG.sync.write(image, { colorType: 0 });
}

/** `n` real MNIST digits as `shards` tar shards (train-000.tar, ...) of key.png + key.cls; the folder. */
function mnistShards(n: number, shards: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-shards-'));
  const digits = Array.from({ length: 10 }, (_, d) => require(`mnist/src/digits/${d}.json`).data as number[]);
  const perShard = Math.ceil(n / shards);
  for (let s = 0; s < shards; s++) {
    const files = [];
    for (let i = s * perShard; i < Math.min(n, (s + 1) * perShard); i++) {
      const d = i % 10;
      const k = Math.floor(i / 10);
      const key = `sample${String(i).padStart(6, '0')}`;
      files.push({ name: `${key}.png`, bytes: png(Uint8Array.from(digits[d]!.slice(k * 784, (k + 1) * 784), (v) => Math.round(v * 255))) });
      files.push({ name: `${key}.cls`, bytes: Buffer.from(String(d)) });
    }
    writeFileSync(join(dir, `train-${String(s).padStart(3, '0')}.tar`), writeTar(files));
  }
  return dir;
}

function shardJob(path: string, inMemory: boolean, cluster: Record<string, unknown> = {}, augment: unknown[] = []): ReturnType<typeof jobFolder> {
  const job = jobFolder(10, {});
  writeFileSync(
    job.configFile,
    stringify({
      seed: 8,
      data: { path, colorMode: 'grayscale', inMemory, testSize: 0.2 },
      model: { layers: [...augment, { type: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' }, { type: 'maxPooling2d', poolSize: 2 }, { type: 'flatten' }, { units: 10, activation: 'softmax' }] },
      compile: { optimizer: { name: 'adam', learningRate: 0.003 }, loss: 'categoricalCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 2, batchSize: 32 },
      cluster: { threads: 2, backend: 'wasm', heartbeatInterval: 0.5, heartbeatTimeout: 60, stepTimeout: 180, waitTimeout: 300, ...cluster },
    }),
  );
  return job;
}

describe('tar shards', () => {
  it('reads members from headers (long names too); patterns and brace ranges name the shards', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-tar-'));
    const long = `${'d'.repeat(120)}/k.cls`;
    writeFileSync(join(dir, 'a-000.tar'), writeTar([{ name: 'x.png', bytes: new Uint8Array(700) }, { name: 'x.cls', bytes: Buffer.from('3') }]));
    writeFileSync(join(dir, 'a-001.tar'), writeTar([{ name: 'y.png', bytes: new Uint8Array(5) }]));
    expect(readTarMembers(join(dir, 'a-000.tar'))).toEqual([
      { name: 'x.png', offset: 512, size: 700 },
      { name: 'x.cls', offset: 512 + 1024 + 512, size: 1 },
    ]);
    expect(expandPaths(join(dir, 'a-*.tar'))).toEqual([join(dir, 'a-000.tar'), join(dir, 'a-001.tar')]);
    expect(expandPaths(join(dir, 'a-{000..001}.tar'))).toEqual([join(dir, 'a-000.tar'), join(dir, 'a-001.tar')]);
    expect(() => expandPaths(join(dir, 'b-*.tar'))).toThrow(/b-\*\.tar: no file matches/);
    // GNU tar's long names: a ././@LongLink member (its header and one block of name) before the file's header
    expect(readTarMembers(gnuTar(dir, long))).toEqual([{ name: long, offset: 3 * 512, size: 1 }]);
  });

  it('indexes samples without decoding; unlabelled images are counted in a warning; a truncated or damaged shard names the file', () => {
    const dir = mnistShards(30, 2);
    const extra = writeTar([{ name: 'lonely.png', bytes: new Uint8Array(10) }]);
    writeFileSync(join(dir, 'train-002.tar'), extra);
    const index = indexShards(expandPaths(join(dir, 'train-*.tar')));
    expect(index.labels.length).toBe(30);
    expect(Array.from(index.labels.subarray(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    expect(index.warnings).toEqual([`1 sample(s) with an image and no .cls left out: ${join(dir, 'train-002.tar')}: lonely`]);
    const cut = join(dir, 'train-001.tar');
    const last = readTarMembers(cut).filter((m) => m.name.endsWith('.png')).at(-1)!;
    truncateSync(cut, last.offset + 10);
    expect(() => indexShards([cut])).toThrow(DataError);
    expect(() => indexShards([cut])).toThrow(`train-001.tar: member ${last.name} (${last.size} bytes at byte ${last.offset}) is cut short: the file ends at byte ${last.offset + 10} (a truncated tar)`);
    truncateSync(cut, last.offset - 100);
    expect(() => indexShards([cut])).toThrow(`train-001.tar: ends inside a tar header at byte ${last.offset - 512} (a truncated tar)`);
    writeFileSync(cut, Buffer.from('not a tar file at all'.repeat(40)));
    expect(() => indexShards([cut])).toThrow(/train-001\.tar: the tar header at byte 0 is damaged \(checksum\)/);
    expect(() => indexShards([join(dir, 'train-009.tar')])).toThrow(/train-009\.tar: cannot be read \(ENOENT\)/);
  });

  it('streamed from the shards: the rows, split and training of the same images in memory; a corrupt image names shard and member', async () => {
    const dir = mnistShards(300, 3);
    const pattern = join(dir, 'train-{000..002}.tar');
    const streamed = loadConfig(shardJob(pattern, false).configFile);
    const inMemory = loadConfig(shardJob(pattern, true).configFile);
    const disk = readJobData(streamed).dataset;
    const memory = readJobData(inMemory).dataset;
    expect(disk.onDisk?.kind).toBe('tar');
    expect([disk.train, disk.test, disk.sampleShape]).toEqual([memory.train, memory.test, memory.sampleShape]);
    expect(disk.y).toEqual(memory.y);
    expect(featureRows(disk).range(0, 300)).toEqual(memory.x);
    const [a, b] = [await trainOnLanes(streamed, disk, 2), await trainOnLanes(inMemory, memory, 2)];
    expect(a.weights).toEqual(b.weights);
    // batches were read ahead by the reader thread (data.readAhead 2; how many depends on timing)
    expect(a.readAheadFills).toBeGreaterThan(0);
    expect(b.readAheadFills).toBe(0);
    const unread = { ...streamed, data: { ...streamed.data, readAhead: 0 } };
    const c = await trainOnLanes(unread, disk, 'in-process');
    expect(c.readAheadFills).toBe(0);
    expect((await trainOnLanes(streamed, disk, 'in-process')).weights).toEqual(c.weights);
    const bytes = readFileSync(join(dir, 'train-001.tar'));
    bytes.fill(7, 512 + 60, 512 + 120); // inside the first PNG's compressed data
    writeFileSync(join(dir, 'train-001.tar'), bytes);
    const rows = featureRows(readJobData(streamed).dataset);
    const all = Array.from({ length: 300 }, (_, i) => i);
    expect(() => rows.gather(all)).toThrow(/train-001\.tar: member sample000100\.png: a PNG file that does not decode/);
    // the checkpoint fingerprint stands on where the samples are, not their pixels: the same in
    // memory and on disk, computed without decoding (the corrupt image above is not met)
    const spec = modelSpec(streamed, disk);
    const fingerprint = (config: typeof streamed, dataset: typeof disk): string => new Trainer(config, dataset, { publish: () => {} } as never, spec).fingerprint();
    expect(fingerprint(streamed, readJobData(streamed).dataset)).toBe(fingerprint(inMemory, memory));
    expect(fingerprint(streamed, disk)).not.toBe(fingerprint(streamed, { ...disk, identity: `${disk.identity}x` }));
  }, 120_000);

  it('coordinator evaluate and predict on held-out shards: the numbers of the same images as a class-folder tree; an undecodable image and an unknown class named', async () => {
    const dir = mnistShards(200, 2);
    const job = shardJob(join(dir, 'train-*.tar'), false, { threads: 1 });
    const trained = startCoordinator(job.configFile, ['--token-file', job.tokenFile, '--out', job.out]);
    track(trained);
    expect(await trained.exited, trained.output).toBe(0);
    const model = await loadSavedModel(join(job.out, 'model'), 'wasm');
    // held out: 40 more digits as a shard, and the same PNGs as a class-folder tree
    const held = mnistShards(240, 6);
    const shard = join(held, 'train-005.tar');
    const tree = mkdtempSync(join(tmpdir(), 'dptrain-held-'));
    const members = readTarMembers(shard);
    const bytes = readFileSync(shard);
    for (const m of members.filter((m) => m.name.endsWith('.png'))) {
      const cls = bytes.subarray(members.find((c) => c.name === m.name.replace('.png', '.cls'))!.offset).subarray(0, 1).toString();
      mkdirSync(join(tree, cls), { recursive: true });
      writeFileSync(join(tree, cls, m.name), bytes.subarray(m.offset, m.offset + m.size));
    }
    const fromShards = await evaluateCsv(model, shard);
    const fromTree = await evaluateCsv(model, tree);
    expect(fromShards.rows).toBe(40);
    expect(fromShards.values).toEqual(fromTree.values);
    const out = join(held, 'predictions.csv');
    const predicted = await predictCsv(model, shard, out);
    expect(predicted.rows).toBe(40);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('line,file,probability_0,probability_1,probability_2,probability_3,probability_4,probability_5,probability_6,probability_7,probability_8,probability_9,predicted,error');
    expect(lines[1]).toMatch(new RegExp(`^1,${shard.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: sample000200,`));
    // an image that does not decode is listed with the reason; a class the model does not know is refused
    const broken = Buffer.from(bytes);
    broken.fill(7, members[0]!.offset + 60, members[0]!.offset + 120);
    writeFileSync(shard, broken);
    const listed = await evaluateCsv(model, shard);
    expect(listed.rows).toBe(39);
    expect(listed.rejected[0]!.reason).toMatch(/^.*train-005\.tar: sample000200: member sample000200\.png: a PNG file that does not decode/);
    writeFileSync(join(held, 'other.tar'), writeTar([{ name: 'x.png', bytes: bytes.subarray(members[2]!.offset, members[2]!.offset + members[2]!.size) }, { name: 'x.cls', bytes: Buffer.from('42') }]));
    await expect(evaluateCsv(model, join(held, 'other.tar'))).rejects.toThrow(/other\.tar: x: class 42 \(its \.cls\) is not one of the model's classes \(0, 1, 2, 3, 4, 5, 6, 7, 8, 9\)/);
  }, 300_000);

  it('a saved model reads shards a chunk at a time: chunks of 7 give the pixels, classes and names of all at once, an undecodable image skipped once', () => {
    const dir = mnistShards(40, 2);
    const paths = expandPaths(join(dir, 'train-*.tar'));
    const first = readTarMembers(paths[0]!)[0]!;
    const bytes = readFileSync(paths[0]!);
    bytes.fill(7, first.offset + 60, first.offset + 120);
    writeFileSync(paths[0]!, bytes);
    const classes = Array.from({ length: 10 }, (_, k) => String(k));
    const all = shardChunks(paths, [28, 28, 1], classes, true);
    const whole = { ...[...all.chunks][0]!, skipped: all.skipped };
    const { chunks, skipped } = shardChunks(paths, [28, 28, 1], classes, true, 7);
    const parts = [...chunks];
    expect(parts.map((c) => c.files.length)).toEqual([6, 7, 7, 7, 7, 5]);
    expect(parts.flatMap((c) => c.files)).toEqual(whole.files);
    expect(parts.flatMap((c) => Array.from(c.labels!))).toEqual(Array.from(whole.labels!));
    expect(Buffer.concat(parts.map((c) => c.pixels))).toEqual(Buffer.from(whole.pixels));
    expect(skipped).toEqual(whole.skipped);
    expect(skipped).toHaveLength(1);
  });

  it('1 thread + 1 worker node on streamed shards, sent the decoded rows or (--data-dir) reading the shards itself: the weights of one process', async () => {
    const dir = mnistShards(300, 3);
    const expectedOf = async (job: ReturnType<typeof jobFolder>) => {
      const config = loadConfig(job.configFile);
      return (await trainOnLanes(config, readJobData(config).dataset, 'in-process')).weights;
    };
    for (const args of [[], ['--data-dir', dir]]) {
      const job = shardJob(join(dir, 'train-*.tar'), false, { threads: 1, minWorkers: 1 });
      const expected = await expectedOf(job);
      const { coordinator, workers } = await runWithNodes(job, ['w1'], track, args);
      const worker = workers[0]!;
      expect(coordinator.output).toContain('features read per batch from 3 tar shard(s)');
      if (args.length > 0) expect(worker.output).toContain(`reading this node's images from 3 tar shard(s) at ${join(dir, 'train-000.tar')}, ...`);
      expect(readSummary(job.out).participants.find((p) => p.kind === 'node')!.samples).toBeGreaterThan(0);
      expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
    }
  }, 300_000);

  it('2 nodes reading the shards over HTTP (byte ranges), one killed with SIGKILL mid-run, augmentation on: the weights of one process; a node missing a shard refuses the job', async () => {
    const dir = mnistShards(300, 3);
    const server = await rangeServer(dir);
    try {
      const job = shardJob(join(dir, 'train-*.tar'), false, { threads: 0, minWorkers: 1, startWorkers: 2, balance: 'equal' }, [{ type: 'randomRotation', factor: 0.05 }, { type: 'randomZoom', heightFactor: 0.1 }]);
      const config = loadConfig(job.configFile);
      const expected = (await trainOnLanes(config, readJobData(config).dataset, 'in-process')).weights;
      const { survivor } = await runKillingOneOfTwoNodes(job, 3, track, ['--data-url', server.url]);
      expect(server.ranges()).toBeGreaterThan(240);
      // the coordinator named each step's likely rows with the step before: most were read a step ahead
      const [, ahead, inStep] = /rows read: (\d+) a step ahead, (\d+) in their step/.exec(survivor.output) ?? [];
      console.log(`surviving node over HTTP: ${ahead} rows read a step ahead, ${inStep} in their step`);
      expect(Number(ahead), survivor.output).toBeGreaterThan(Number(inStep));
      expect(maxAbsDiff(readRunWeights(job.out), expected)).toBeLessThan(1e-4);
      const other = mkdtempSync(join(tmpdir(), 'dptrain-shards-missing-'));
      writeFileSync(join(other, 'train-000.tar'), readFileSync(join(dir, 'train-000.tar')));
      const again = shardJob(join(dir, 'train-*.tar'), false, { threads: 1, minWorkers: 0, startWorkers: 1 });
      const coordinator = startCoordinator(again.configFile, ['--token-file', again.tokenFile, '--out', again.out]);
      track(coordinator);
      const missing = startWorker('missing', await coordinatorUrl(coordinator), again.tokenFile, ['--data-dir', other]);
      track(missing);
      expect(await missing.exited).not.toBe(0);
      expect(missing.output).toContain(`--data-dir: ${join(other, 'train-001.tar')}: cannot be read (ENOENT); the coordinator trains on train-001.tar`);
      expect(await coordinator.exited, coordinator.output).toBe(0);
    } finally {
      server.close();
    }
  }, 300_000);
});

/** A tar with a member named `name` (over 100 bytes) written by GNU tar (Debian's tar is GNU's). */
function gnuTar(dir: string, name: string): string {
  const src = mkdtempSync(join(tmpdir(), 'dptrain-gnutar-'));
  mkdirSync(dirname(join(src, name)), { recursive: true });
  writeFileSync(join(src, name), '5');
  const out = join(dir, 'gnu.tar');
  const made = spawnSync('tar', ['--format=gnu', '-cf', out, '-C', src, name], { encoding: 'utf8' });
  expect(made.status, made.stderr).toBe(0);
  return out;
}
