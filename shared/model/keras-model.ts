/**
 * A user's own tfjs-layers model as a spec (`KerasModelSpec`): its serialisation
 * (getConfig, read back with fromConfig, synchronously), its weights in layer order and its
 * shapes; and the model built again from the spec on any participant.
 */
import type * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ConfigError, ModelError } from '../errors.js';
import { kerasWeightShapes } from './keras-shapes.js';
import { SeededDropout, withRowContext, type RowContext } from './row-layers.js';
import type { KerasModelSpec } from './spec.js';

/** What train() accepts as a model: a tfjs-layers LayersModel (duck-typed: another copy of tfjs-layers works too). */
export interface LayersModelLike {
  getClassName(): string;
  getConfig(): unknown;
  readonly layers: readonly { readonly weights: readonly { readonly originalName: string; readonly shape: readonly (number | null)[]; readonly trainable: boolean; read(): tf.Tensor }[] }[];
  readonly inputs: readonly { readonly shape: readonly (number | null)[] }[];
  readonly outputs: readonly { readonly shape: readonly (number | null)[] }[];
}

function sampleShape(shape: readonly (number | null)[], what: string): number[] {
  const rest = shape.slice(1);
  if (rest.some((n) => n === null || !(n > 0))) throw new ConfigError(`model: the ${what} shape [${shape.join(', ')}] has unknown sizes; give the model a fixed ${what} shape`);
  return rest as number[];
}

/** The spec of a user's model and its current weights (the run's initial weights), in layer order. */
export async function kerasSpecOf(model: LayersModelLike): Promise<{ keras: KerasModelSpec; weights: Float32Array }> {
  const className = model.getClassName();
  if (className !== 'Sequential' && className !== 'Model') throw new ConfigError(`model: a ${className} is not a tfjs-layers Sequential or functional model`);
  if (model.inputs.length !== 1 || model.outputs.length !== 1) throw new ConfigError(`model: ${model.inputs.length} inputs and ${model.outputs.length} outputs; dptrain trains models with one input and one output`);
  const all = model.layers.flatMap((layer) => layer.weights);
  const frozen = all.filter((w) => !w.trainable);
  if (frozen.length > 0) {
    throw new ConfigError(
      `model: non-trainable weights (${frozen.slice(0, 3).map((w) => w.originalName).join(', ')}${frozen.length > 3 ? ', ...' : ''}); batch normalisation in a tfjs-layers model cannot be split exactly: use model.layers with type batchNormalization (ghost batch norm), or unfreeze the layers`,
    );
  }
  const outputShape = sampleShape(model.outputs[0]!.shape, 'output');
  if (outputShape.length !== 1) throw new ConfigError(`model: the output has shape [${outputShape.join(', ')}] per sample; dptrain needs a flat output (units)`);
  const total = all.reduce((a, w) => a + w.shape.reduce<number>((b, n) => b * (n ?? 0), 1), 0);
  const weights = new Float32Array(total);
  let offset = 0;
  for (const w of all) {
    const values = (await w.read().data()) as Float32Array;
    weights.set(values, offset);
    offset += values.length;
  }
  const keras: KerasModelSpec = {
    className,
    config: JSON.parse(JSON.stringify(model.getConfig())) as Record<string, unknown>,
    inputShape: sampleShape(model.inputs[0]!.shape, 'input'),
    weights: all.map((w) => ({ name: w.originalName, shape: w.shape as number[] })),
    outputs: outputShape[0]!,
  };
  return { keras, weights };
}

interface LayerConfig {
  className: string;
  config: Record<string, unknown>;
}

/**
 * The model built again from its spec (new variables), checked against the spec's weights.
 * `rows`: for a gradient engine, its Dropout layers become SeededDropout (masks from seed, step
 * and row, the seed from `seed` and the layer's position), so the split cannot change them.
 */
export function buildKerasModel(keras: KerasModelSpec, rows?: RowContext, seed = 0): tfl.LayersModel {
  // the shapes its config would make, before anything is allocated: they must be the declared ones
  const made = kerasWeightShapes(keras).map((shape) => shape.join('x')).join(', ');
  const declared = keras.weights.map((w) => w.shape.join('x')).join(', ');
  if (made !== declared) throw new ModelError(`the tfjs-layers model's config makes weights of shapes [${cut(made)}]; its spec declares [${cut(declared)}]`);
  let model: tfl.LayersModel;
  try {
    const cls = keras.className === 'Sequential' ? tfl.Sequential : tfl.LayersModel;
    const config = JSON.parse(JSON.stringify(keras.config)) as { layers?: LayerConfig[] };
    if (rows) {
      config.layers?.forEach((layer, i) => {
        if (layer.className !== 'Dropout') return;
        layer.className = SeededDropout.className;
        layer.config = { name: layer.config['name'], rate: layer.config['rate'], seed: (Math.imul(seed, 0x9e3779b1) + i) | 0 };
      });
    }
    const build = (): tfl.LayersModel => cls.fromConfig(cls, config as never) as tfl.LayersModel;
    model = rows ? withRowContext(rows, build) : build();
  } catch (err) {
    throw new ModelError(`the tfjs-layers model cannot be built from its config: ${(err as Error).message}`);
  }
  const weights = model.layers.flatMap((layer) => layer.weights);
  const names = weights.map((w) => w.originalName).join(', ');
  if (names !== keras.weights.map((w) => w.name).join(', ')) throw new ModelError(`the tfjs-layers model built from its config has weights ${names}; its spec lists ${keras.weights.map((w) => w.name).join(', ')}`);
  if (weights.some((w) => !w.trainable)) throw new ModelError('the tfjs-layers model has non-trainable weights; dptrain trains models whose weights are all trainable');
  return model;
}

/** A list cut to a readable length for an error. */
function cut(list: string): string {
  return list.length > 300 ? `${list.slice(0, 300)}...` : list;
}
