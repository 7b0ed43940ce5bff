/**
 * A StepRunner for the step tests: a logistic model (one sigmoid unit) over `dataset`, SGD with
 * learning rate 1, so a step's weights follow from its gradient exactly.
 */
import { modelSpec, runRngs } from '../coordinator/fit/trainer.js';
import { ModelWeights, OptimizerSlot } from '../coordinator/fit/state.js';
import { StepRunner } from '../coordinator/fit/step.js';
import type { ParticipantGroup } from '../coordinator/participants/participant.js';
import { validateConfig } from '../shared/config/load.js';
import type { Dataset } from '../shared/data/dataset.js';
import { initialWeights, weightLayout } from '../shared/model/layout.js';
import type { OptimizerConfig } from '../shared/config/optimizer-config.js';

/** 16 training rows of 3 features (the fake participants compute nothing from them). */
export const STEP_DATASET: Dataset = {
  x: new Float32Array(new SharedArrayBuffer(16 * 3 * 4)),
  y: new Float32Array(new SharedArrayBuffer(16 * 4)),
  features: 3,
  outputs: 1,
  train: { start: 0, count: 16 },
  val: { start: 16, count: 0 },
  test: { start: 16, count: 0 },
};

export function logisticStepRunner(
  group: ParticipantGroup,
  dataset: Dataset,
  optimizer: (config: OptimizerConfig, size: number) => OptimizerSlot = (config, size) => new OptimizerSlot(config, size),
): { weights: Float32Array; runner: StepRunner } {
  const config = validateConfig(
    {
      data: { label: { column: 'y', positive: '1' } },
      model: { layers: [{ units: 1, activation: 'sigmoid' }] },
      compile: { optimizer: { name: 'sgd', learningRate: 1 }, loss: 'binaryCrossentropy', metrics: ['accuracy'] },
      fit: { epochs: 1, batchSize: 8 },
      cluster: { threads: 1, backend: 'cpu' },
    },
    'test config',
  );
  const spec = modelSpec(config, dataset);
  const layout = weightLayout(spec);
  const weights = new ModelWeights(initialWeights(layout, runRngs.weights(config.seed)), group);
  return { weights: weights.values, runner: new StepRunner(spec, config.cluster, group, weights, optimizer(config.compile.optimizer, layout.size)) };
}
