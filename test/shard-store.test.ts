/**
 * A node's rows read a step ahead (ShardStore.prefetch, from step.next) where they come over the
 * network: the step they were read for takes them without reading again, rows not read ahead are
 * read in the step, a prefetch that failed leaves the step to read (and report) itself, and the
 * features are the file's either way. From a local folder nothing is read ahead.
 */
import { describe, expect, it } from 'vitest';
import type { DataFileReader } from '../worker/data-files.js';
import { ShardStore } from '../worker/shard-store.js';

/** A file of 20 rows of 2 features (row r: r, -r) whose reads are counted and may be made to fail. */
function file(remote: boolean): DataFileReader & { reads: number[][]; fail: boolean } {
  const reader = {
    path: 'x.npy',
    refWidth: 1 as const,
    remote,
    reads: [] as number[][],
    fail: false,
    check: () => undefined,
    read: async (refs: Float64Array, out: Float32Array) => {
      reader.reads.push(Array.from(refs));
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (reader.fail) throw new Error('x.npy: the server answered 503');
      refs.forEach((r, i) => out.set([r, -r], 2 * i));
    },
  };
  return reader;
}

function store(reader: DataFileReader): ShardStore {
  const s = new ShardStore(2, 1, reader);
  // held rows 100..109 are file rows 10..19
  s.add(100, 10, new Float32Array(0), new Float32Array(10), undefined, Float64Array.from({ length: 10 }, (_, i) => 10 + i));
  return s;
}

const none = new Float32Array(0);

describe('ShardStore read-ahead', () => {
  it('the step takes the rows read ahead for it, reads the others, and gets the file values', async () => {
    const reader = file(true);
    const s = store(reader);
    // 999 is not held: left out of the read
    s.prefetch(4, Int32Array.from([101, 103, 999]));
    expect(reader.reads).toEqual([[11, 13]]);
    const { xs } = await s.batch(Int32Array.from([103, 105, 101]), none, none, undefined, 4);
    expect(Array.from(xs)).toEqual([13, -13, 15, -15, 11, -11]);
    expect(reader.reads).toEqual([[11, 13], [15]]);
    expect(s.reads).toEqual({ ahead: 2, inStep: 1 });
    // used once: the next step reads its rows itself
    await s.batch(Int32Array.from([101]), none, none, undefined, 5);
    expect(reader.reads.at(-1)).toEqual([11]);
  });

  it('a failed read ahead leaves the step to read and report; from a folder nothing is read ahead', async () => {
    const reader = file(true);
    const s = store(reader);
    reader.fail = true;
    s.prefetch(2, Int32Array.from([102]));
    await expect(s.batch(Int32Array.from([102]), none, none, undefined, 2)).rejects.toThrow('503');
    // the read ahead fails, the server is back by the step: the step reads again and succeeds
    s.prefetch(3, Int32Array.from([102]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    reader.fail = false;
    const reads = reader.reads.length;
    expect(Array.from((await s.batch(Int32Array.from([102]), none, none, undefined, 3)).xs)).toEqual([12, -12]);
    expect(reader.reads.length).toBe(reads + 1);
    expect(s.reads.ahead).toBe(0);
    const local = file(false);
    const t = store(local);
    t.prefetch(1, Int32Array.from([100]));
    expect(local.reads).toEqual([]);
  });
});
