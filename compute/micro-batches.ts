/**
 * Gradient accumulation (`cluster.microBatchSize`): a participant computes its part of a batch
 * in micro-batches of at most that many rows, one forward and backward pass each, and sums them:
 * the gradient is the count-weighted mean of the micro-batches' mean gradients (summed in
 * float64), the loss and metric sums add. So a global batch can exceed what one device holds,
 * and the model is the one without micro-batches, up to float rounding. A model with batch
 * normalisation keeps each virtual batch whole in one micro-batch, so its statistics do not
 * change; a virtual batch larger than the micro-batch is refused.
 */
import { ModelError } from '../shared/errors.js';
import type { BatchRows } from '../shared/model/row-layers.js';
import { outputDim } from '../shared/model/spec.js';
import { gradientOut, type BatchEngine, type BatchGradient, type BatchSums } from './engine.js';
import { PartSums } from './part-sums.js';
import { EngineWrapper } from './engine-wrapper.js';

/** Sample indices of a batch split into micro-batches of at most `size`, each virtual batch (group) whole. */
export function microBatches(count: number, size: number, groups?: Int32Array): number[][] {
  const chunks: number[][] = [];
  if (!groups) {
    for (let a = 0; a < count; a += size) chunks.push(Array.from({ length: Math.min(size, count - a) }, (_, i) => a + i));
    return chunks;
  }
  const byGroup = new Map<number, number[]>();
  for (let i = 0; i < count; i++) {
    const members = byGroup.get(groups[i]!);
    if (members) members.push(i);
    else byGroup.set(groups[i]!, [i]);
  }
  let chunk: number[] = [];
  for (const [group, members] of byGroup) {
    if (members.length > size) throw new ModelError(`virtual batch ${group} has ${members.length} rows, more than cluster.microBatchSize (${size}): a virtual batch is computed in one pass`);
    if (chunk.length + members.length > size) {
      chunks.push(chunk);
      chunk = [];
    }
    chunk.push(...members);
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** The values of `indices`' rows of a row-major array with `width` values a row. */
function gather(values: Float32Array, width: number, indices: readonly number[]): Float32Array {
  const out = new Float32Array(indices.length * width);
  indices.forEach((r, i) => out.set(values.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

export class MicroBatchEngine extends EngineWrapper {
  constructor(
    inner: BatchEngine,
    private readonly size: number,
  ) {
    super(inner);
  }

  private get widths(): { readonly features: number; readonly outputs: number } {
    return { features: this.inner.spec.inputDim, outputs: outputDim(this.inner.spec) };
  }

  override async gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, onReady?: (start: number) => void, rows?: BatchRows): Promise<BatchGradient> {
    if (count <= this.size) return this.inner.gradient(x, y, count, out, onReady, rows);
    const { features, outputs } = this.widths;
    const gradient = gradientOut(this.layout.size, out);
    const total = new PartSums();
    for (const chunk of microBatches(count, this.size, rows?.groups)) {
      const part = rows
        ? {
            step: rows.step,
            rows: Int32Array.from(chunk, (i) => rows.rows[i]!),
            ...(rows.groups ? { groups: Int32Array.from(chunk, (i) => rows.groups![i]!) } : {}),
            ...(rows.weights ? { weights: Float32Array.from(chunk, (i) => rows.weights![i]!) } : {}),
          }
        : undefined;
      total.add(await this.inner.gradient(gather(x, features, chunk), gather(y, outputs, chunk), chunk.length, undefined, undefined, part));
    }
    return { ...total.sums(), gradient: total.gradientInto(gradient) };
  }

  override async evaluate(x: Float32Array, y: Float32Array, count: number, weights?: Float32Array): Promise<BatchSums> {
    if (count <= this.size) return this.inner.evaluate(x, y, count, weights);
    const { features, outputs } = this.widths;
    const total = new PartSums();
    for (let a = 0; a < count; a += this.size) {
      const n = Math.min(this.size, count - a);
      total.add(await this.inner.evaluate(x.subarray(a * features, (a + n) * features), y.subarray(a * outputs, (a + n) * outputs), n, weights?.subarray(a, a + n)));
    }
    return total.sums();
  }

  override async predict(x: Float32Array, count: number): Promise<Float32Array> {
    if (count <= this.size) return this.inner.predict(x, count);
    const { features, outputs } = this.widths;
    const all = new Float32Array(count * outputs);
    for (let a = 0; a < count; a += this.size) {
      const n = Math.min(this.size, count - a);
      all.set(await this.inner.predict(x.subarray(a * features, (a + n) * features), n), a * outputs);
    }
    return all;
  }
}
