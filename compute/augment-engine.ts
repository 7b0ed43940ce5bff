/**
 * Augmentation before the model (spec.augment, Keras's random preprocessing layers): a training
 * batch's images are augmented, as a function of (seed, step, training row), then passed to the
 * engine it wraps; evaluation and prediction see the images as they are, as Keras's layers do
 * outside training.
 */
import { ModelError } from '../shared/errors.js';
import { augmentBatch, type AugmentSpec } from '../shared/model/augment.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import type { BatchEngine, BatchGradient } from './engine.js';
import { EngineWrapper } from './engine-wrapper.js';

export class AugmentEngine extends EngineWrapper {
  constructor(
    inner: BatchEngine,
    private readonly augment: AugmentSpec,
  ) {
    super(inner);
  }

  /** Augments a copy of x (the caller's rows stay as they are), then the inner engine's gradient. */
  override gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, onReady?: (start: number) => void, rows?: BatchRows): Promise<BatchGradient> {
    if (!rows) throw new ModelError('augmentation layers need the step and the training rows of a batch (the engine got none)');
    const augmented = x.slice();
    augmentBatch(augmented, count, this.augment, rows.step, rows.rows);
    return this.inner.gradient(augmented, y, count, out, onReady, rows);
  }
}
