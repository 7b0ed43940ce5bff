/**
 * Small image data for the convolutional tests: 8 x 8 images of three kinds of stroke
 * (horizontal, vertical, diagonal) with noise, as flat rows in shared memory.
 */
import type { Dataset } from '../shared/data/dataset.js';
import { Rng } from '../shared/math/rng.js';

export const SIDE = 8;
export const ROWS = 160;
export const TRAIN_ROWS = 150; // 5 steps of 32 per epoch, the last of 22

/** Strokes: class 0 a horizontal line, 1 a vertical one, 2 a diagonal; noise everywhere. */
export function strokes(rows: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const features = SIDE * SIDE;
  const x = new Float32Array(new SharedArrayBuffer(rows * features * 4));
  const y = new Float32Array(new SharedArrayBuffer(rows * 3 * 4));
  for (let r = 0; r < rows; r++) {
    const kind = r % 3;
    const at = Math.floor(rng.next() * SIDE);
    for (let i = 0; i < SIDE; i++) {
      for (let j = 0; j < SIDE; j++) {
        const on = kind === 0 ? i === at : kind === 1 ? j === at : (i + at) % SIDE === j;
        x[r * features + i * SIDE + j] = (on ? 1 : 0) + (rng.next() - 0.5) * 0.4;
      }
    }
    y[r * 3 + kind] = 1;
  }
  return { x, y, features, outputs: 3, train: { start: 0, count: TRAIN_ROWS }, val: { start: TRAIN_ROWS, count: 0 }, test: { start: TRAIN_ROWS, count: rows - TRAIN_ROWS } };
}

