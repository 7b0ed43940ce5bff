/**
 * Disk faults: a full disk (short writes and ENOSPC), a file system that turns read-only mid-run,
 * a read-only output folder from the start, stale temp files, and --out on a folder that holds
 * another run. Faults are injected into the coordinator's file system calls (storage.ts fsOps):
 * mounting a small tmpfs needs privileges CI does not have. No run may end with only an unusable
 * checkpoint, and each error names the file.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { CHECKPOINT_DIR, loadLatestCheckpoint, writeCheckpoint } from '../coordinator/checkpoint.js';
import type { Summary } from '../coordinator/job.js';
import { fsOps } from '../coordinator/storage.js';
import { train } from '../index.js';
import { StorageError } from '../shared/errors.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const rows = Array.from({ length: 96 }, (_, i) => ({ a: i % 7, b: (i * 13) % 5, y: i % 7 > 3 ? 'yes' : 'no' }));
const job = (dir: string, keep = 1) => ({
  data: { label: { column: 'y', positive: 'yes' } },
  model: { layers: [{ units: 4, activation: 'relu' as const }, { units: 1, activation: 'sigmoid' as const }] },
  compile: { optimizer: 'adam' as const, loss: 'binaryCrossentropy' as const },
  fit: { epochs: 3, batchSize: 16 },
  metrics: { listen: false as const },
  checkpoint: { everySteps: 1, keep },
  output: { dir },
});

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

const isCheckpointTemp = (path: unknown): boolean => typeof path === 'string' && path.includes(`${CHECKPOINT_DIR}/`) && path.includes('.ckpt.tmp-');

/** After `good` checkpoint files were opened, `fault` decides what each later one does. */
function faultAfter(good: number, fault: 'short' | 'enospc' | 'erofs'): void {
  // checkpoints are written with the asynchronous calls (the event loop stays free)
  let opened = 0;
  const realOpen = fsOps.openAsync;
  const realWrite = fsOps.writeAsync;
  const failing = new Set<number>();
  vi.spyOn(fsOps, 'openAsync').mockImplementation(async (path: string, flags: string) => {
    if (!isCheckpointTemp(path)) return realOpen(path, flags);
    if (++opened <= good) return realOpen(path, flags);
    if (fault === 'erofs') throw errno('EROFS');
    const fd = await realOpen(path, flags);
    failing.add(fd);
    return fd;
  });
  const realClose = fsOps.closeAsync;
  vi.spyOn(fsOps, 'closeAsync').mockImplementation(async (fd: number) => {
    failing.delete(fd); // the descriptor's number is free for the next file
    await realClose(fd);
  });
  vi.spyOn(fsOps, 'writeAsync').mockImplementation(async (fd: number, buffer: Uint8Array, offset: number, length: number) => {
    if (!failing.has(fd)) return realWrite(fd, buffer, offset, length);
    if (fault === 'enospc') throw errno('ENOSPC');
    // a full disk: part of the first write lands, then nothing more
    return offset === 0 ? realWrite(fd, buffer, 0, Math.min(length, 100)) : 0;
  });
}

async function runWith(fault: 'short' | 'enospc' | 'erofs'): Promise<{ summary: Summary; lines: string[]; dir: string }> {
  const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-disk-')), 'run');
  faultAfter(3, fault);
  const lines: string[] = [];
  const { summary } = await train(job(dir), { rows, log: (l) => lines.push(l) });
  vi.restoreAllMocks();
  return { summary, lines, dir };
}

describe('a disk that fills up or turns read-only mid-run', () => {
  for (const [fault, message] of [
    ['short', /cannot write .*step-\d+\.ckpt\.tmp-\d+: wrote 100 of \d+ bytes \(short write: is the disk full\?\)/],
    ['enospc', /cannot write .*step-\d+\.ckpt: no space left on the device \(ENOSPC\)/],
    ['erofs', /cannot write .*step-\d+\.ckpt: the file system is read-only \(EROFS\)/],
  ] as const) {
    it(`${fault}: the run goes on, says so loudly and in summary.json, and keeps its last good checkpoint`, async () => {
      const { summary, lines, dir } = await runWith(fault);
      const warnings = lines.filter((l) => l.startsWith('warning: the checkpoint of step'));
      expect(warnings.length).toBeGreaterThan(0);
      expect(warnings[0]).toMatch(message);
      expect(warnings[0]).toMatch(/the last good one is .*step-00000003\.ckpt/);
      expect(lines).toContainEqual(expect.stringMatching(/^warning: the last checkpoint of this run \(step \d+\) failed: .*; the newest good one is .*step-00000003\.ckpt/));
      expect(summary.checkpoint.last).toMatch(/step-00000003\.ckpt$/);
      expect(summary.checkpoint.lastFailed).toMatchObject({ step: summary.steps });
      const written = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as Summary;
      expect(written.checkpoint.lastFailed?.error).toMatch(message);
      // keep: 1, and still a usable checkpoint: the failed writes deleted nothing, left no temp files
      const files = readdirSync(join(dir, CHECKPOINT_DIR));
      expect(files).toEqual(['step-00000003.ckpt']);
      expect(loadLatestCheckpoint(join(dir, CHECKPOINT_DIR), () => {}).state.step).toBe(3);
    }, 120_000);
  }
});

describe('a read-only or missing output folder', () => {
  it('is found before training starts, naming the folder and the reason', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-ro-')), 'run');
    vi.spyOn(fsOps, 'openSync').mockImplementation(() => {
      throw errno('EROFS');
    });
    const lines: string[] = [];
    const err = await train(job(dir), { rows, log: (l) => lines.push(l) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('E_STORAGE');
    expect((err as Error).message).toMatch(new RegExp(`cannot write ${dir}/\\.dptrain-write-test-\\d+: the file system is read-only \\(EROFS\\)`));
    expect(lines.filter((l) => l.startsWith('Epoch'))).toEqual([]);
  });

  it('a folder that cannot be created says so', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'dptrain-ro-')), 'a-file');
    writeFileSync(file, 'x');
    await expect(train(job(join(file, 'run')), { rows, log: () => {} })).rejects.toThrow(new RegExp(`cannot create the folder ${file}/run: (a part of the path is not a folder \\(ENOTDIR\\)|it already exists \\(EEXIST\\))`));
  });
});

describe('checkpoint files', () => {
  it('stale temp files of an earlier process are removed; the new file is verified before the rename', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-tmp-')), CHECKPOINT_DIR);
    const { fit } = await train(job(join(dir, '..', 'run'), 3), { rows, log: () => {} });
    const state = loadLatestCheckpoint(join(dir, '..', 'run', CHECKPOINT_DIR), () => {}).state;
    expect(state.step).toBe(fit.steps);
    const target = join(dir, '..', 'run', CHECKPOINT_DIR);
    writeFileSync(join(target, 'step-00000001.ckpt.tmp-99999'), 'half a file');
    // a write whose bytes come back different is refused before it replaces anything
    const realRead = fsOps.readFileAsync;
    vi.spyOn(fsOps, 'readFileAsync').mockImplementationOnce(async (path: string) => {
      const bytes = await realRead(path);
      bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
      return bytes;
    });
    await expect(writeCheckpoint(target, { ...state, step: state.step + 1 }, 3)).rejects.toThrow(/cannot write .*step-\d+\.ckpt: .*checksum mismatch/);
    expect(readdirSync(target).some((f) => f.includes(`${state.step + 1}`))).toBe(false);
    await writeCheckpoint(target, { ...state, step: state.step + 2 }, 3);
    expect(readdirSync(target).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }, 120_000);
});

describe('--out on a folder that holds another run', () => {
  it('is refused unless resuming or overwriting; overwriting leaves only the new run', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dptrain-out-')), 'run');
    await train({ ...job(dir, 2), fit: { epochs: 6, batchSize: 16 } }, { rows, log: () => {} });
    await expect(train(job(dir, 2), { rows, log: () => {} })).rejects.toThrow(new RegExp(`output\\.dir ${dir} holds another run \\(config\\.json\\); .*--resume ${dir}.*--overwrite`));
    const { summary } = await train({ ...job(dir, 2), output: { dir, overwrite: true } }, { rows, log: () => {} });
    const files = readdirSync(join(dir, CHECKPOINT_DIR)).sort();
    // the new run's own newest two (the old run's higher step numbers are gone, not kept over them)
    expect(files).toEqual([`step-${String(summary.steps - 1).padStart(8, '0')}.ckpt`, `step-${String(summary.steps).padStart(8, '0')}.ckpt`]);
    expect(existsSync(join(dir, 'summary.json'))).toBe(true);
  }, 120_000);
});

/** A real small tmpfs where this machine lets us mount one (root with CAP_SYS_ADMIN); else skipped (the injected faults above always run). */
function mountTmpfs(bytes: number): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-tmpfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? dir : undefined;
}
const tmpfs = process.platform === 'linux' ? mountTmpfs(1 << 20) : undefined;

describe.skipIf(!tmpfs)('a real full disk (1 MiB tmpfs)', () => {
  afterAll(() => {
    spawnSync('umount', [tmpfs!]);
  });
  it('a checkpoint that does not fit fails with ENOSPC naming the file; the run finishes with its last good one', async () => {
    const dir = join(tmpfs!, 'run');
    const lines: string[] = [];
    let filled = false;
    const { summary } = await train(
      { ...job(dir), model: { layers: [{ units: 100, activation: 'relu' }, { units: 100, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] }, checkpoint: { everySteps: 0, keep: 1 } },
      {
        rows,
        log: (l) => {
          lines.push(l);
          if (!filled && l.startsWith('Epoch 2/')) {
            // leave ~100 KB: less than a checkpoint (~126 KB: weights and two Adam slots), more than the model
            filled = true;
            const free = Number(spawnSync('df', ['--output=avail', '-B1', tmpfs!], { encoding: 'utf8' }).stdout.trim().split('\n')[1]);
            writeFileSync(join(tmpfs!, 'filler'), Buffer.alloc(Math.max(0, free - 100_000)));
          }
        },
      },
    );
    expect(lines).toContainEqual(expect.stringMatching(/^warning: the checkpoint of step \d+ failed: cannot write .*step-\d+\.ckpt.*(ENOSPC|short write)/));
    expect(summary.checkpoint.lastFailed).toBeDefined();
    expect(readdirSync(join(dir, CHECKPOINT_DIR))).toEqual([expect.stringMatching(/^step-\d+\.ckpt$/)]);
    expect(loadLatestCheckpoint(join(dir, CHECKPOINT_DIR), () => {}).state.step).toBeGreaterThan(0);
  }, 120_000);
});
