/**
 * A BatchEngine around another that passes every call through; a wrapper (micro-batches,
 * augmentation) overrides what it changes.
 */
import type { WeightLayout } from '../shared/model/layout.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import type { ModelSpec } from '../shared/model/spec.js';
import type { BatchEngine, BatchGradient, BatchSums } from './engine.js';

export class EngineWrapper implements BatchEngine {
  constructor(protected readonly inner: BatchEngine) {}

  get spec(): ModelSpec {
    return this.inner.spec;
  }

  get layout(): WeightLayout {
    return this.inner.layout;
  }

  setWeights(flat: Float32Array): void {
    this.inner.setWeights(flat);
  }

  gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, onReady?: (start: number) => void, rows?: BatchRows): Promise<BatchGradient> {
    return this.inner.gradient(x, y, count, out, onReady, rows);
  }

  evaluate(x: Float32Array, y: Float32Array, count: number, weights?: Float32Array): Promise<BatchSums> {
    return this.inner.evaluate(x, y, count, weights);
  }

  predict(x: Float32Array, count: number): Promise<Float32Array> {
    return this.inner.predict(x, count);
  }

  dispose(): void {
    this.inner.dispose();
  }
}
