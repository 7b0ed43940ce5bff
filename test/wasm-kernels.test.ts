/**
 * The WebAssembly SIMD kernels: the committed bytes are the assembled sources, and each kernel
 * gives the same bits as its JavaScript reference (which optimizers.test.ts holds to tf.train,
 * reduce.test.ts to the mean's definition), on sizes that are not a multiple of 4 and on extreme
 * values.
 */
import { readFileSync, readdirSync } from 'node:fs';
import wabtInit from 'wabt';
import { describe, expect, it } from 'vitest';
import { createOptimizer, type OptimizerConfig } from '../shared/optimize/optimizers.js';
import { Rng } from '../shared/math/rng.js';
import { kernelArena } from '../shared/wasm/kernels.js';
import { GradientReducer, weightedAverage, type GradientContribution } from '../coordinator/reduce/reduce.js';
import { OPTIMIZERS_WASM_BASE64 } from '../shared/wasm/optimizers-binary.js';
import { REDUCE_WASM_BASE64 } from '../shared/wasm/reduce-binary.js';
import { MAX_KERNEL_PARTS } from '../shared/wasm/reduce-kernel.js';
import { decodeFloat16, encodeFloat16, toFloat16Bits } from '../shared/math/float16.js';
import { CNN_BACKWARD_WASM_BASE64 } from '../shared/wasm/cnn-backward-binary.js';
import { FLOAT16_WASM_BASE64 } from '../shared/wasm/float16-binary.js';
import { Float16Kernel } from '../shared/wasm/float16-kernel.js';
import { TRANSPOSE_WASM_BASE64 } from '../shared/wasm/transpose-binary.js';
import { Transposer } from '../shared/wasm/transpose-kernel.js';
import { MaxPoolArgmax } from '../shared/wasm/max-pool-kernel.js';
import { MAX_POOL_WASM_BASE64 } from '../shared/wasm/max-pool-binary.js';

const configs: OptimizerConfig[] = [
  { name: 'adam', learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
  { name: 'adam', learningRate: 0.3, beta1: 0.5, beta2: 0.9, epsilon: 1e-3 },
  { name: 'sgd', learningRate: 0.1, momentum: 0, nesterov: false },
  { name: 'sgd', learningRate: 0.01, momentum: 0.9, nesterov: false },
  { name: 'sgd', learningRate: 0.01, momentum: 0.9, nesterov: true },
  { name: 'rmsprop', learningRate: 0.001, rho: 0.9, momentum: 0, epsilon: 1e-7 },
  { name: 'rmsprop', learningRate: 0.01, rho: 0.95, momentum: 0.5, epsilon: 1e-6 },
];

/** Gradients mixing ordinary, tiny (subnormal squares), huge and exactly zero values. */
function gradients(steps: number, size: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  const scales = [1, 1e-3, 1e-20, 1e-38, 1e15, 0];
  return Array.from({ length: steps }, () => Float32Array.from({ length: size }, () => rng.normal() * scales[Math.floor(rng.next() * scales.length)]!));
}

describe('WebAssembly optimizer kernels', () => {
  it('the committed binaries are the .wat sources assembled (run `npm run build:wasm` after editing one)', async () => {
    const wabt = await wabtInit();
    const dir = new URL('../shared/wasm/', import.meta.url);
    const committed: Record<string, string> = { 'cnn-backward.wat': CNN_BACKWARD_WASM_BASE64, 'float16.wat': FLOAT16_WASM_BASE64, 'max-pool.wat': MAX_POOL_WASM_BASE64, 'optimizers.wat': OPTIMIZERS_WASM_BASE64, 'reduce.wat': REDUCE_WASM_BASE64, 'transpose.wat': TRANSPOSE_WASM_BASE64 };
    // a new .wat needs its binary imported here
    expect(readdirSync(dir).filter((f) => f.endsWith('.wat')).sort()).toEqual(Object.keys(committed));
    for (const [file, base64] of Object.entries(committed)) {
      const module = wabt.parseWat(file, readFileSync(new URL(file, dir), 'utf8'), { simd: true });
      const { buffer } = module.toBinary({});
      module.destroy();
      expect(Buffer.from(buffer).toString('base64'), file).toBe(base64);
    }
  });

  it('run on this Node (WebAssembly SIMD), and optimizers use them by default', () => {
    expect(kernelArena(10, 2)).not.toBeNull(); // null where WebAssembly SIMD does not run
    expect(createOptimizer(configs[0]!, 10).implementation).toBe('wasm');
  });

  it('arena arrays are padded to 4 floats and do not overlap', () => {
    const arena = kernelArena(1029, 2)!;
    expect(arena.padded).toBe(1032);
    const arrays = [arena.weights, arena.gradient, ...arena.slots];
    expect(arrays.map((a) => a.offset)).toEqual([0, 1, 2, 3].map((k) => k * 1032 * 4));
    expect(arrays.every((a) => a.view.length === 1029)).toBe(true);
  });

  it('give way to the reference loops when the arrays do not fit in one WebAssembly memory', () => {
    // 4 arrays x 300M floats = 4.8 GB > 4 GiB: growing fails at once, nothing is allocated.
    expect(kernelArena(300_000_000, 2)).toBeNull();
  });

  for (const config of configs) {
    it(`equal the reference bit for bit: ${JSON.stringify(config)}`, () => {
      const size = 1029;
      const [init] = gradients(1, size, 11);
      const grads = gradients(30, size, 12);
      const fast = createOptimizer(config, size, undefined, 'wasm');
      const reference = createOptimizer(config, size, undefined, 'js');
      const a = init!.slice();
      const b = init!.slice();
      grads.forEach((g, step) => {
        fast.apply(a, g);
        reference.apply(b, g);
        // Compare bits (NaN payloads and signed zeros included) after every step.
        expect(new Uint32Array(a.buffer), `step ${step}`).toEqual(new Uint32Array(b.buffer));
      });
      const [fs, rs] = [fast.state(), reference.state()];
      expect(fs.iterations).toBe(rs.iterations);
      expect(fs.scalars).toEqual(rs.scalars);
      for (const name of Object.keys(rs.slots)) {
        expect(new Uint32Array(fs.slots[name]!.buffer), name).toEqual(new Uint32Array(rs.slots[name]!.buffer));
      }
    });
  }

  it('a state saved by one implementation continues exactly in the other', () => {
    const config = configs[0]!;
    const grads = gradients(12, 37, 3);
    const straight = new Float32Array(37);
    const js = createOptimizer(config, 37, undefined, 'js');
    grads.forEach((g) => js.apply(straight, g));
    const mixed = new Float32Array(37);
    const first = createOptimizer(config, 37, undefined, 'wasm');
    grads.slice(0, 5).forEach((g) => first.apply(mixed, g));
    const second = createOptimizer(config, 37, first.state(), 'js');
    grads.slice(5, 9).forEach((g) => second.apply(mixed, g));
    const third = createOptimizer(config, 37, second.state(), 'wasm');
    grads.slice(9).forEach((g) => third.apply(mixed, g));
    expect(Array.from(mixed)).toEqual(Array.from(straight));
  });

  it('refuses a saved slot of the wrong size', () => {
    const state = createOptimizer(configs[0]!, 8).state();
    expect(() => createOptimizer(configs[0]!, 9, state)).toThrow(/slot m has 8 values, expected 9/);
  });
});

describe('WebAssembly reduce kernel', () => {
  const parts = (k: number, size: number, seed: number): GradientContribution[] =>
    gradients(k, size, seed).map((gradient, i) => ({ gradient, count: [7, 512, 3, 1, 100_000][i % 5]! }));
  const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

  it('runs here and is the default', () => {
    expect(new GradientReducer(10).implementation).toBe('wasm');
    expect(new GradientReducer(10, 'js').implementation).toBe('js');
  });

  it('equals the reference bit for bit, for 1 to 5 parts and sizes that are not a multiple of 4', () => {
    for (const size of [1, 3, 4, 1029]) {
      const reducer = new GradientReducer(size);
      for (const k of [1, 2, 3, 5, 2]) {
        const p = parts(k, size, 100 * size + k);
        const out = new Float32Array(size);
        expect(reducer.mean(p, out), `${k} parts, size ${size}`).toBe(true);
        expect(bits(out), `${k} parts, size ${size}`).toEqual(bits(weightedAverage(p)));
      }
    }
  });

  it('gives +0 for gradients of -0, as the reference does', () => {
    const out = new Float32Array(5).fill(7);
    new GradientReducer(5).mean([{ gradient: new Float32Array(5).fill(-0), count: 3 }], out);
    expect(bits(out)).toEqual(bits(weightedAverage([{ gradient: new Float32Array(5).fill(-0), count: 3 }])));
    expect(Object.is(out[0], 0)).toBe(true);
  });

  it('says the mean is not finite exactly when a part holds NaN or an infinity, wherever it is', () => {
    const size = 1030;
    const reducer = new GradientReducer(size);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      for (const at of [0, 513, size - 1]) {
        for (const k of [1, 3]) {
          const p = parts(3, size, 5);
          p[k - 1]!.gradient[at] = bad;
          const out = new Float32Array(size);
          expect(reducer.mean(p.slice(0, k), out), `${bad} at ${at} in part ${k}`).toBe(false);
          expect(Number.isFinite(out[at])).toBe(false);
        }
      }
    }
    // the largest float32 averages to itself: finite
    const max = 3.4028234663852886e38;
    expect(reducer.mean([{ gradient: new Float32Array(size).fill(max), count: 2 ** 30 }, { gradient: new Float32Array(size).fill(max), count: 3 }], new Float32Array(size))).toBe(true);
  });

  it('takes more parts than it has room for (its memory grows) and more than its table holds (the reference loop)', () => {
    const reducer = new GradientReducer(6);
    const many = parts(MAX_KERNEL_PARTS + 1, 6, 9);
    for (const k of [2, 40, MAX_KERNEL_PARTS, MAX_KERNEL_PARTS + 1, 3]) {
      const out = new Float32Array(6);
      expect(reducer.mean(many.slice(0, k), out)).toBe(true);
      expect(bits(out), `${k} parts`).toEqual(bits(weightedAverage(many.slice(0, k))));
    }
  });

  it('refuses what the reference refuses', () => {
    const reducer = new GradientReducer(2);
    expect(() => reducer.mean([], new Float32Array(2))).toThrow(/no gradients/);
    expect(() => reducer.mean([{ gradient: new Float32Array(3), count: 1 }], new Float32Array(2))).toThrow(/gradient 0 has length 3, expected 2/);
    expect(() => reducer.mean([{ gradient: new Float32Array(2), count: 0 }], new Float32Array(2))).toThrow(/sample count 0/);
    expect(() => reducer.mean([{ gradient: new Float32Array(2), count: 1 }], new Float32Array(3))).toThrow(/output has length 3, expected 2/);
  });
});

describe('WebAssembly transpose kernel', () => {
  it('moves every value, bits included (NaN payloads, -0), for full 4 x 4 blocks, edges and bands', () => {
    const transposer = Transposer.create()!;
    const shapes: [number, number][] = [[1, 1], [1, 7], [7, 1], [3, 5], [4, 4], [5, 4], [4, 9], [33, 17], [45, 66], [70, 36], [37, 1]];
    for (const [rows, cols] of shapes) {
      const bits = Uint32Array.from({ length: rows * cols }, (_, i) => [0x7fc01234, 0x80000000, 0x00000001][i % 7] ?? (i * 2654435761) >>> 0);
      const src = new Float32Array(bits.buffer);
      const out = new Uint32Array(transposer.transpose(src, rows, cols)!.slice().buffer);
      const expected = new Uint32Array(rows * cols);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) expected[j * rows + i] = bits[i * cols + j]!;
      expect(out, `${rows} x ${cols}`).toEqual(expected);
    }
  });

  it('grows its memory for a larger matrix and refuses values that do not match the shape', () => {
    const transposer = Transposer.create()!;
    expect(Array.from(transposer.transpose(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 3)!)).toEqual([1, 4, 2, 5, 3, 6]);
    const big = Float32Array.from({ length: 300 * 200 }, (_, i) => i);
    const t = transposer.transpose(big, 300, 200)!;
    expect([t[0], t[1], t[300], t[300 * 200 - 1]]).toEqual([0, 200, 1, 300 * 200 - 1]);
    expect(() => transposer.transpose(new Float32Array(5), 2, 3)).toThrow(/2 x 3 matrix has 6 values, got 5/);
  });
});

describe('WebAssembly float16 kernels', () => {
  it('round every float32 bit pattern as the reference does (a stride through all 2^32, and the edges)', () => {
    const edges = [0, 0x80000000, 0x00000001, 0x337fffff, 0x33000000, 0x33000001, 0x387fefff, 0x387ff000, 0x38800000, 0x477fe000, 0x477fefff, 0x477ff000, 0x47800000, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001];
    const bits = new Uint32Array(2 ** 32 / 4099 + edges.length);
    bits.set(edges);
    for (let i = edges.length, b = 17; i < bits.length; i++, b += 4099) bits[i] = b >>> 0;
    const values = new Float32Array(bits.buffer);
    const out = new Uint16Array(values.length);
    expect(Float16Kernel.create()!.encode(values, out, () => 0)).toBe(0);
    const wrong: string[] = [];
    values.forEach((v, i) => {
      if (out[i] !== toFloat16Bits(v) && wrong.length < 5) wrong.push(`0x${bits[i]!.toString(16)} -> 0x${out[i]!.toString(16)}, reference 0x${toFloat16Bits(v).toString(16)}`);
    });
    expect(wrong).toEqual([]);
  });

  it('encode gradients as the reference does, for scales up, down and beyond 2^127', () => {
    const rng = new Rng(4);
    for (const magnitude of [1, 1e-3, 1e9, 1e-30, 1e-38, 1e-44]) {
      for (const length of [1, 7, 8, 1001]) {
        const values = Float32Array.from({ length }, (_, i) => (i === 3 ? Number.NaN : i === 5 ? -Infinity : rng.normal() * magnitude));
        const fast = encodeFloat16(values, 'wasm');
        const reference = encodeFloat16(values, 'js');
        expect(fast.scaleExp, `${magnitude} x ${length}`).toBe(reference.scaleExp);
        expect(fast.halves, `${magnitude} x ${length}`).toEqual(reference.halves);
      }
    }
    expect(encodeFloat16(Float32Array.from([1e-44]), 'wasm').scaleExp).toBeGreaterThan(127);
  });

  it('decode every float16 bit pattern as the reference does, at any scale', () => {
    const halves = Uint16Array.from({ length: 65536 }, (_, h) => h);
    for (const scaleExp of [0, 14, -9, 60, 140, 160]) {
      const fast = decodeFloat16(halves, scaleExp, undefined, 'wasm');
      const reference = decodeFloat16(halves, scaleExp, undefined, 'js');
      const wrong = [...halves].filter((h) => !(Object.is(fast[h], reference[h]) || (Number.isNaN(fast[h]) && Number.isNaN(reference[h]))));
      expect(wrong.slice(0, 5), `scale 2^-${scaleExp}`).toEqual([]);
    }
  });

  it('give way to the reference loops when the values do not fit in a WebAssembly memory', () => {
    // 6 bytes per value: 800M values need 4.8 GB > 4 GiB; growing fails at once, nothing is allocated
    expect(Float16Kernel.create()!.fits(800_000_000)).toBe(false);
    expect(Float16Kernel.create()!.fits(1000)).toBe(true);
  });

  it('pad with zeros when a shorter array follows a longer one', () => {
    const long = Float32Array.from({ length: 20 }, () => 1000);
    encodeFloat16(long, 'wasm');
    const short = Float32Array.from([0.001, 0.002, 0.003]);
    expect(encodeFloat16(short, 'wasm')).toEqual(encodeFloat16(short, 'js'));
  });
});

describe('WebAssembly max-pool argmax kernel', () => {
  /** Each window's first largest value, by brute force. */
  function reference(src: Float32Array, planes: number, h: number, w: number, ph: number, pw: number): number[] {
    const ho = Math.floor(h / ph);
    const wo = Math.floor(w / pw);
    const out: number[] = [];
    for (let p = 0; p < planes; p++) {
      for (let i = 0; i < ho; i++) {
        for (let j = 0; j < wo; j++) {
          let best = -1;
          for (let a = 0; a < ph; a++) for (let b = 0; b < pw; b++) {
            const k = p * h * w + (i * ph + a) * w + j * pw + b;
            if (best < 0 || src[k]! > src[best]!) best = k;
          }
          out.push(best);
        }
      }
    }
    return out;
  }

  // 2 x 2 windows four at a time and the rest one by one; other window shapes; ties everywhere
  for (const [planes, h, w, ph, pw] of [
    [6, 26, 26, 2, 2],
    [3, 11, 11, 2, 2],
    [2, 9, 19, 2, 2],
    [4, 7, 9, 3, 2],
    [2, 8, 8, 1, 4],
  ] as const) {
    it(`${planes} planes of ${h} x ${w}, ${ph} x ${pw} windows: the first largest value's index, in wasm and in JavaScript`, () => {
      const rng = new Rng(h * w + ph);
      // few distinct values: most windows hold ties
      const src = Float32Array.from({ length: planes * h * w }, () => Math.floor(rng.next() * 3) - 1);
      const pool = { planes, h, w, ho: Math.floor(h / ph), wo: Math.floor(w / pw), ph, pw };
      const n = planes * pool.ho * pool.wo;
      const kernel = new MaxPoolArgmax();
      const arena = kernel.arena(src.length, n);
      arena.floats.set(src);
      kernel.argmax(arena.floats, arena.indices, pool);
      const expected = reference(src, planes, h, w, ph, pw);
      expect(Array.from(arena.indices, Number)).toEqual(expected);
      // plain arrays: the JavaScript loop
      const plain = new BigInt64Array(n);
      kernel.argmax(src, plain, pool);
      expect(Array.from(plain, Number)).toEqual(expected);
    });
  }
});
