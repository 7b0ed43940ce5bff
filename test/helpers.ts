/** Shared test helpers: where the Telco file is, and small data sets made in memory. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobConfigInput } from '../index.js';
import { loadConfig } from '../shared/config/load.js';
import { stringify } from 'yaml';

export const TELCO_CSV = process.env['DPTRAIN_TELCO_CSV'] ?? fileURLToPath(new URL('../../shared/data/telco-customer-churn.csv', import.meta.url));
/**
 * Tests that read the real Telco file skip where it is absent (a user's machine); with
 * DPTRAIN_REQUIRE_TELCO=1 (CI, which has it) its absence fails them instead. DPTRAIN_TELCO_CSV
 * points elsewhere (test/fresh-machine.test.ts uses it to play a machine without the file).
 */
export const HAVE_TELCO = existsSync(TELCO_CSV);
if (!HAVE_TELCO && process.env['DPTRAIN_REQUIRE_TELCO'] === '1') {
  throw new Error(`DPTRAIN_REQUIRE_TELCO=1 but ${TELCO_CSV} is missing: the tests that read it would be skipped`);
}
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * The backends the equivalence suites train on: wasm, and native (onnxruntime's products; the
 * suite sends every product there, however small: vitest.config.ts).
 */
export const TRAINING_BACKENDS = ['wasm', 'native'] as const;
export type TrainingBackend = (typeof TRAINING_BACKENDS)[number];
export const COORDINATOR_BIN = fileURLToPath(new URL('../bin/coordinator.js', import.meta.url));

/** Telco preprocessing options, as in examples/telco-churn.yaml. */
export const TELCO_PREPROCESS = {
  drop: ['customerID'],
  numeric: ['TotalCharges'],
  categorical: [],
  label: { column: 'Churn', type: 'binary' as const, positive: 'Yes', negative: 'No' },
};

/** A process's peak RSS so far (VmHWM), MiB; undefined once it has exited. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const kB = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kB === undefined ? undefined : Number(kB) / 1024;
  } catch {
    return undefined;
  }
}

/**
 * A small job on the generated Telco-schema data (`train(job, { demo: true })`): standardized
 * features, 8 relu units and a sigmoid, binary cross-entropy, the cpu backend, no metrics server.
 * `compile`, `fit` and `cluster` given replace the defaults whole.
 */
export function demoJob(out: string, seed: number, over: Pick<JobConfigInput, 'compile' | 'fit' | 'cluster'>): JobConfigInput {
  return {
    seed,
    data: { drop: ['customerID'], numeric: ['TotalCharges'], label: { column: 'Churn', positive: 'Yes' }, standardize: true },
    model: { layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'sigmoid' }] },
    metrics: { listen: false },
    output: { dir: out },
    ...over,
  };
}

/** A .npy file's bytes (format 1.0), C order. */
export function npy(descr: string, shape: number[], data: ArrayBufferView, fortran = false): Uint8Array {
  return Buffer.concat([npyHeader(descr, shape, fortran), new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
}

/** The header of a .npy file (format 1.0), padded so the values start on a 64-byte boundary, as np.save writes it. */
export function npyHeader(descr: string, shape: number[], fortran = false): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const out = new Uint8Array(10 + header.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  return out;
}

/** A static file server on loopback answering single byte ranges (or, with ranges false, ignoring them), counting ranged requests. */
export async function rangeServer(dir: string, ranges = true): Promise<{ url: string; ranges: () => number; close: () => void }> {
  let served = 0;
  const server = createServer((req, res) => {
    const path = join(dir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!ranges || !range) {
      res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
      return;
    }
    served++;
    const first = Number(range[1]);
    const last = Math.min(Number(range[2]), bytes.length - 1);
    res.writeHead(206, { 'content-range': `bytes ${first}-${last}/${bytes.length}`, 'content-length': last - first + 1 }).end(bytes.subarray(first, last + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ranges: () => served, close: () => server.close() };
}

/** The job config of `configFile` with data.inMemory set to `value`. */
export function configInMemory(configFile: string, value: boolean): ReturnType<typeof loadConfig> {
  const config = loadConfig(configFile);
  return { ...config, data: { ...config.data, inMemory: value } };
}

/** Writes `job` as `dir`/job.yaml; its path. */
export function writeJobYaml(dir: string, job: Record<string, unknown>): string {
  const configFile = join(dir, 'job.yaml');
  writeFileSync(configFile, stringify(job));
  return configFile;
}
