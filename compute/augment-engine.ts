/**
 * Augmentation before the model (spec.augment, Keras's random preprocessing layers): a training
 * batch's images are augmented, as a function of (seed, step, training row), then passed to the
 * engine it wraps; evaluation and prediction see the images as they are, as Keras's layers do
 * outside training.
 */
import { ModelError } from '../shared/errors.js';
import { augmentBatch, type AugmentSpec } from '../shared/model/augment.js';
import type { WeightLayout } from '../shared/model/layout.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { BatchEngine, BatchGradient, BatchSums } from './engine.js';

export class AugmentEngine implements BatchEngine {
  constructor(
    private readonly inner: BatchEngine,
    private readonly augment: AugmentSpec,
  ) {}

  get spec(): ModelSpec {
    return this.inner.spec;
  }

  get layout(): WeightLayout {
    return this.inner.layout;
  }

  setWeights(flat: Float32Array): void {
    this.inner.setWeights(flat);
  }

  /** Augments a copy of x (the caller's rows stay as they are), then the inner engine's gradient. */
  gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, onReady?: (start: number) => void, rows?: BatchRows): Promise<BatchGradient> {
    if (!rows) throw new ModelError('augmentation layers need the step and the training rows of a batch (the engine got none)');
    const augmented = x.slice();
    augmentBatch(augmented, count, this.augment, rows.step, rows.rows);
    return this.inner.gradient(augmented, y, count, out, onReady, rows);
  }

  evaluate(x: Float32Array, y: Float32Array, count: number): Promise<BatchSums> {
    return this.inner.evaluate(x, y, count);
  }

  predict(x: Float32Array, count: number): Promise<Float32Array> {
    return this.inner.predict(x, count);
  }

  dispose(): void {
    this.inner.dispose();
  }
}
