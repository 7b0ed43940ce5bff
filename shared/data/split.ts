/**
 * Seeded train/test splits. Stratified: each class is split separately so train and test keep
 * the class proportions, then each side is shuffled so classes are mixed (validationSplit takes
 * the last rows of train, as Keras does, so the order matters).
 */
import { Rng, shuffleInPlace } from '../math/rng.js';

export interface TrainTest {
  readonly train: Int32Array;
  readonly test: Int32Array;
}

/**
 * Splits rows 0..n-1 with `testSize` (fraction) of each class in test. `classOf[i]` is row i's
 * class; pass all zeros (or use `randomSplit`) to split without stratifying.
 */
export function stratifiedSplit(classOf: ArrayLike<number>, testSize: number, rng: Rng): TrainTest {
  if (!(testSize >= 0 && testSize < 1)) throw new RangeError(`testSize must be in [0, 1), got ${testSize}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < classOf.length; i++) {
    const c = classOf[i]!;
    let list = byClass.get(c);
    if (!list) byClass.set(c, (list = []));
    list.push(i);
  }
  const train: number[] = [];
  const test: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const rows = shuffleInPlace(byClass.get(c)!, rng);
    const nTest = Math.round(rows.length * testSize);
    // a loop, not push(...rows): spreading a class of ~100k rows overflows the call stack
    for (let k = 0; k < rows.length; k++) (k < nTest ? test : train).push(rows[k]!);
  }
  return { train: shuffleInPlace(Int32Array.from(train), rng), test: shuffleInPlace(Int32Array.from(test), rng) };
}

/** Keras' validationSplit: the last `fraction` of the (unshuffled) training rows. */
export function validationSplit(train: Int32Array, fraction: number): TrainTest {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`validationSplit must be in [0, 1), got ${fraction}`);
  const splitAt = Math.floor(train.length * (1 - fraction));
  return { train: train.subarray(0, splitAt), test: train.subarray(splitAt) };
}
