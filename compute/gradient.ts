/**
 * The stock way to get the gradient of a batch: a tfjs-layers model built from the spec and
 * tf.variableGrads through it. Kept as the reference the direct engine (dense-gradient.ts) is
 * tested against, and selectable with engine: 'tape'. Where the loss is computed from the logits
 * (registries.ts), the model is built without its last activation, which is applied after.
 * Works on plain Float32Arrays of features and targets, so it knows nothing of transport.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { backendName } from '../shared/backend.js';
import { ModelError } from '../shared/errors.js';
import { assignFlatWeights, buildModel, modelVariables } from '../shared/model/build.js';
import { weightLayout, type WeightLayout } from '../shared/model/layout.js';
import { metricLayoutOf, type MetricLayout, type RowWeights } from '../shared/model/metric-sums.js';
import { AugmentEngine } from './augment-engine.js';
import { MicroBatchEngine } from './micro-batches.js';
import { activations, batchLoss, evaluationLossSum, resolveLoss } from '../shared/model/registries.js';
import { RowContext, type BatchRows } from '../shared/model/row-layers.js';
import { inputShape, isDenseStack, needsRowContext, outputDim, outputLayer, type ModelSpec } from '../shared/model/spec.js';
import { DenseGradientEngine } from './dense-gradient.js';
import { NativeEngine, nativeEngineSupports } from './native-engine.js';
import { gradientOut, type BatchEngine, type BatchGradient, type BatchSums, type EngineName } from './engine.js';

export class TapeGradientEngine implements BatchEngine {
  readonly layout: WeightLayout;
  readonly inputDim: number;
  /** A sample's shape as the model takes it. */
  private readonly sampleShape: readonly number[];
  readonly outputDim: number;
  private readonly model: tfl.LayersModel;
  /** Every weight in layout order; `trainable`: those the gradient is taken of (not batch norm's statistics). */
  private readonly variables: tf.Variable[];
  private readonly trainable: tf.Variable[];
  /** The rows of a training call, for dropout and batch norm (undefined where the model has neither). */
  private readonly rowContext: RowContext | undefined;
  /** The loss of what the model outputs: its probabilities, or its logits where the loss is taken from them. */
  private readonly lossFn: (t: tf.Tensor, p: tf.Tensor) => tf.Tensor;
  /** From the model's raw output to the prediction: identity, or the last activation when the model outputs logits. */
  private readonly toPrediction: (out: tf.Tensor) => tf.Tensor;
  private readonly metricLayout: MetricLayout;

  constructor(readonly spec: ModelSpec) {
    // a tfjs-layers model of the user's: the loss of its outputs (its last activation is its own)
    const loss = resolveLoss(spec.loss, spec.lossOptions, spec.keras ? undefined : outputLayer(spec).activation);
    const logits = loss.logits;
    this.rowContext = needsRowContext(spec) ? new RowContext() : undefined;
    this.model = buildModel(spec, { logitsOutput: logits !== undefined, rows: this.rowContext });
    this.layout = weightLayout(spec);
    this.variables = modelVariables(this.model, this.layout);
    this.trainable = this.variables.filter((_, i) => this.layout.entries[i]!.trainable);
    this.inputDim = spec.inputDim;
    this.sampleShape = inputShape(spec);
    this.outputDim = outputDim(spec);
    this.lossFn = logits ?? loss.fn;
    this.toPrediction = logits ? activations[outputLayer(spec).activation].fn : (out) => out;
    this.metricLayout = metricLayoutOf(spec);
  }

  setWeights(flat: Float32Array): void {
    assignFlatWeights(this.variables, this.layout, flat);
  }

  /**
   * Mean-loss gradient, loss sum and metric sums for `count` samples. Where the model has batch
   * norm, the entries of its moving statistics get the values they move towards (the mean over
   * the batch's virtual batches), which average by count across participants like a gradient.
   */
  async gradient(x: Float32Array, y: Float32Array, count: number, out?: Float32Array, _onReady?: (start: number) => void, rows?: BatchRows): Promise<BatchGradient> {
    const gradient = gradientOut(this.layout.size, out);
    if (this.rowContext) {
      if (!rows) throw new ModelError('this model has dropout or batch normalisation: its gradient needs the step and the rows of the batch');
      this.rowContext.begin(rows, count);
    }
    const xs = tf.tensor(x, [count, ...this.sampleShape]);
    const ys = tf.tensor2d(y, [count, this.outputDim]);
    let preds: tf.Tensor | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const out = this.model.apply(xs, { training: true }) as tf.Tensor;
      preds = tf.keep(this.toPrediction(out));
      // a tfjs-layers model's regularization penalties (kernelRegularizer, ...) join the loss, as
      // its own model.fit adds them; they are per batch, so every participant's mean carries them
      // once and the count-weighted average keeps them once
      return this.model.calculateLosses().reduce((total, penalty) => tf.add(total, penalty), batchLoss(this.lossFn(ys, out), ys, this.spec.classWeights, rows?.weights)) as tf.Scalar;
    }, this.trainable);
    const parts = this.variables.map((v, i) => {
      const entry = this.layout.entries[i]!;
      return entry.trainable ? grads[v.name]! : this.statistic(entry.name);
    });
    // the statistics' tensors belong to the row context until it ends: read them all first
    const values = await Promise.all(parts.map((t) => t.data() as Promise<Float32Array>));
    values.forEach((v, i) => gradient.set(v, this.layout.entries[i]!.offset));
    this.rowContext?.end();
    const lossSum = ((await value.data())[0] as number) * count;
    const metricSums = await this.sumMetrics(y, preds!, count, { sample: rows?.weights, training: true });
    tf.dispose([xs, ys, value, preds!, ...Object.values(grads)]);
    return { gradient, count, lossSum, metricSums };
  }

  /** Loss and metric sums without a gradient (validation, test). */
  async evaluate(x: Float32Array, y: Float32Array, count: number, weights?: Float32Array): Promise<BatchSums> {
    const xs = tf.tensor(x, [count, ...this.sampleShape]);
    const ys = tf.tensor2d(y, [count, this.outputDim]);
    const out = this.model.apply(xs) as tf.Tensor;
    const preds = this.toPrediction(out);
    const loss = tf.tidy(() => evaluationLossSum(this.lossFn(ys, out), weights));
    const lossSum = (await loss.data())[0] as number;
    const metricSums = await this.sumMetrics(y, preds, count, { sample: weights, training: false });
    tf.dispose([xs, ys, out, preds, loss]);
    return { count, lossSum, metricSums };
  }

  /** Model outputs for `count` samples, row-major [count, outputDim]. */
  async predict(x: Float32Array, count: number): Promise<Float32Array> {
    const xs = tf.tensor(x, [count, ...this.sampleShape]);
    const raw = this.model.apply(xs) as tf.Tensor;
    const preds = this.toPrediction(raw);
    const out = (await preds.data()) as Float32Array;
    tf.dispose([xs, raw, preds]);
    return out;
  }

  /** A moving statistic's target from the last training call ("batch_normalization_2/moving_mean"). */
  private statistic(entryName: string): tf.Tensor {
    const [layer, weight] = entryName.split('/') as [string, string];
    const stats = this.rowContext?.statistics.get(layer);
    if (!stats) throw new ModelError(`${layer} computed no batch statistics in training`);
    return weight === 'moving_mean' ? stats.mean : stats.variance;
  }

  private async sumMetrics(y: Float32Array, preds: tf.Tensor, count: number, weights: RowWeights): Promise<number[]> {
    return this.metricLayout.width === 0 ? [] : this.metricLayout.sums(y, await preds.data(), count, weights);
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * The engine asked for. On the native backend a model its graphs compute runs as onnxruntime
 * sessions (native-engine.ts); elsewhere a Dense stack gets the Dense engine and any other model
 * the tape engine.
 */
export function createEngine(spec: ModelSpec, name: EngineName = 'dense'): BatchEngine {
  const whole = createWholeBatchEngine(spec, name);
  const engine = spec.microBatchSize ? new MicroBatchEngine(whole, spec.microBatchSize) : whole;
  return spec.augment ? new AugmentEngine(engine, spec.augment) : engine;
}

function createWholeBatchEngine(spec: ModelSpec, name: EngineName): BatchEngine {
  if (name === 'tape') return new TapeGradientEngine(spec);
  const stock = (): BatchEngine => (isDenseStack(spec) ? new DenseGradientEngine(spec) : new TapeGradientEngine(spec));
  return backendName() === 'native' && nativeEngineSupports(spec) ? new NativeEngine(spec, stock) : stock();
}
