/**
 * What data costs the coordinator: peak RSS (VmHWM) of `coordinator start` for one epoch of a
 * small model on a `.npy` array and a CSV (each in memory, and left on disk: data.inMemory false) and a
 * folder of PNG images, each at a small and a large size; the cost of the data is the difference
 * between the two runs' peaks, set against the data's own size in memory (the float32 features
 * and the labels the training reads). The small run trains for as many epochs as make the large
 * run's steps: V8's heap and the wasm memory grow with the steps taken, and that growth is not
 * the data's. The large run's samples/s is printed beside it.
 *
 *   npm run build && node dist/bench/data-memory.js [--rows N] [--only csv] [--out bench/data-memory.json]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PNG } from 'pngjs';
import { telcoDemoCsv } from '../shared/data/synthetic.js';
import { Rng } from '../shared/math/rng.js';

const COORDINATOR = fileURLToPath(new URL('../../bin/coordinator.js', import.meta.url));

interface Kind {
  readonly name: string;
  /** Rows of this kind per row asked for: a CSV row holds 17x fewer bytes than a digit, and its cost is measured on as many bytes. */
  readonly rowsScale?: number;
  /** Writes `rows` samples into `dir`; the job's data keys and the bytes of x and y in memory. */
  readonly make: (dir: string, rows: number) => { data: Record<string, unknown>; dataBytes: number; fileBytes: number; model: unknown[]; loss: string };
}

/** A .npy file's bytes: header padded to 64, then the values. */
function npy(descr: string, shape: number[], values: ArrayBufferView): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(values.buffer, values.byteOffset, values.byteLength)]);
}

/** float32 .npy samples, read into memory or (data.inMemory false) read per batch from the file. */
function npyKind(inMemory: boolean): Kind {
  return {
    name: `.npy (float32, 784 features, 10 classes)${inMemory ? '' : ', on disk'}`,
    make: (dir, rows) => {
      const rng = new Rng(1);
      const x = Float32Array.from({ length: rows * 784 }, () => rng.next());
      const y = BigInt64Array.from({ length: rows }, () => BigInt(Math.floor(rng.next() * 10)));
      const xb = npy('<f4', [rows, 784], x);
      writeFileSync(join(dir, 'x.npy'), xb);
      writeFileSync(join(dir, 'y.npy'), npy('<i8', [rows], y));
      return {
        data: { path: join(dir, 'x.npy'), labels: join(dir, 'y.npy'), testSize: 0.1, inMemory },
        dataBytes: rows * (784 + 10) * 4,
        fileBytes: xb.length,
        model: [{ units: 64, activation: 'relu' }, { units: 10, activation: 'softmax' }],
        loss: 'categoricalCrossentropy',
      };
    },
  };
}

/** Telco-schema CSV, read into memory or (data.inMemory false) left on disk and encoded per batch. */
function csvKind(inMemory: boolean): Kind {
  return {
    name: `CSV (Telco columns, 45 features)${inMemory ? '' : ', on disk'}`,
    rowsScale: 10,
    make: (dir, rows) => {
      const csv = telcoDemoCsv(rows, 3);
      writeFileSync(join(dir, 'data.csv'), csv);
      return {
        data: { path: join(dir, 'data.csv'), drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true, testSize: 0.1, inMemory },
        dataBytes: rows * (45 + 1) * 4,
        fileBytes: Buffer.byteLength(csv),
        model: [{ units: 16, activation: 'relu' }, { units: 1, activation: 'sigmoid' }],
        loss: 'binaryCrossentropy',
      };
    },
  };
}

const KINDS: readonly Kind[] = [
  npyKind(true),
  npyKind(false),
  csvKind(true),
  csvKind(false),
  {
    name: 'image folder (28x28 grayscale PNG, 10 classes)',
    make: (dir, rows) => {
      const rng = new Rng(2);
      let fileBytes = 0;
      for (let c = 0; c < 10; c++) mkdirSync(join(dir, 'images', String(c)), { recursive: true });
      for (let i = 0; i < rows; i++) {
        const png = new PNG({ width: 28, height: 28 });
        for (let p = 0; p < 28 * 28; p++) {
          const v = Math.floor(rng.next() * 256);
          png.data.set([v, v, v, 255], p * 4);
        }
        const bytes = PNG.sync.write(png);
        fileBytes += bytes.length;
        writeFileSync(join(dir, 'images', String(i % 10), `${i}.png`), bytes);
      }
      return {
        data: { path: join(dir, 'images'), imageSize: [28, 28], colorMode: 'grayscale', testSize: 0.1 },
        dataBytes: rows * (784 + 10) * 4,
        fileBytes,
        model: [{ type: 'flatten' }, { units: 64, activation: 'relu' }, { units: 10, activation: 'softmax' }],
        loss: 'categoricalCrossentropy',
      };
    },
  },
];

/** Runs the coordinator on `config` and samples its peak RSS (MiB) until it exits. */
function peakRss(configFile: string, out: string): Promise<{ peakMiB: number; code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [COORDINATOR, 'start', '--config', configFile, '--out', out, '--overwrite'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let peak = 0;
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const sample = (): void => {
      try {
        const kB = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
        if (kB) peak = Math.max(peak, Number(kB) / 1024);
      } catch {
        // exited between samples; the last sample stands
      }
    };
    const timer = setInterval(sample, 20);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ peakMiB: peak, code, output });
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '40000' }, only: { type: 'string' }, out: { type: 'string', default: 'bench/data-memory.json' } } });
  const large = Number(values.rows);
  const small = Math.max(200, Math.round(large / 40));
  const results = [];
  for (const kind of KINDS.filter((k) => values.only === undefined || k.name.toLowerCase().includes(values.only.toLowerCase()))) {
    const peaks: { rows: number; peakMiB: number; dataMiB: number; fileMiB: number; samplesPerSecond: number }[] = [];
    const scale = kind.rowsScale ?? 1;
    for (const rows of [small * scale, large * scale]) {
      const dir = mkdtempSync(join(tmpdir(), 'dptrain-mem-'));
      const made = kind.make(dir, rows);
      const configFile = join(dir, 'job.json');
      writeFileSync(
        configFile,
        JSON.stringify({ seed: 1, data: made.data, model: { layers: made.model }, compile: { loss: made.loss }, fit: { epochs: Math.round((large * scale) / rows), batchSize: 256 }, cluster: { threads: 1, backend: 'wasm' }, metrics: { listen: false } }),
      );
      const run = await peakRss(configFile, join(dir, 'run'));
      if (run.code !== 0) throw new Error(`${kind.name} at ${rows} rows: exit ${run.code}\n${run.output.slice(-2000)}`);
      const { samplesPerSecond } = JSON.parse(readFileSync(join(dir, 'run', 'summary.json'), 'utf8')) as { samplesPerSecond: number };
      peaks.push({ rows, peakMiB: run.peakMiB, dataMiB: made.dataBytes / 2 ** 20, fileMiB: made.fileBytes / 2 ** 20, samplesPerSecond });
      console.log(`${kind.name}, ${rows} rows: peak RSS ${run.peakMiB.toFixed(0)} MiB (data ${(made.dataBytes / 2 ** 20).toFixed(1)} MiB in memory, ${(made.fileBytes / 2 ** 20).toFixed(1)} MiB on disk), ${samplesPerSecond.toFixed(0)} samples/s`);
    }
    const [a, b] = peaks as [(typeof peaks)[number], (typeof peaks)[number]];
    const perData = (b.peakMiB - a.peakMiB) / (b.dataMiB - a.dataMiB);
    results.push({ kind: kind.name, small: a, large: b, costPerDataByte: perData });
    console.log(`  -> ${perData.toFixed(2)} bytes of peak RSS per byte of data`);
  }
  const report = { date: new Date().toISOString(), machine: `${cpus().length} x ${cpus()[0]?.model.trim() ?? '?'}`, node: process.version, results };
  writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
}

await main();
