/**
 * The weight shapes a tfjs-layers model config would create, found without creating them: each
 * layer is made from its config (which allocates nothing) and built on the shape its inputs
 * would have, with Layer.addWeight replaced meanwhile by one that records the shape instead of
 * running an initializer. A worker checks these against the job's declared weights before it
 * builds the model, so a job cannot declare two small weights and carry a config whose layers
 * would allocate gigabytes (a 30000x30000 Dense layer is 3.6 GB).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ModelError } from '../errors.js';
import type { KerasModelSpec } from './spec.js';

type Shape = (number | null)[];

interface LayerEntry {
  readonly className: string;
  readonly config: Record<string, unknown>;
  readonly name?: string;
  /** Functional models: per application, the [layer name, node index, tensor index, kwargs] of its inputs. */
  readonly inboundNodes?: unknown;
}

interface DryLayer {
  build(shape: Shape | Shape[]): void;
  computeOutputShape(shape: Shape | Shape[]): Shape | Shape[];
}

/** A layer object made from its config, unbuilt. */
function construct(entry: LayerEntry): DryLayer {
  const map = (tf.serialization.SerializationMap as unknown as { getMap(): { classNameMap: Record<string, [unknown, (cls: unknown, config: unknown) => unknown]> } }).getMap().classNameMap;
  const known = Object.hasOwn(map, entry.className) ? map[entry.className] : undefined;
  if (!known) throw new ModelError(`layer class ${entry.className} is not one tfjs-layers knows`);
  return known[1](known[0], { ...entry.config }) as DryLayer;
}

/** A stand-in for the LayerVariable addWeight would return (builds keep it; nothing reads it). */
function placeholder(name: string, shape: number[]): unknown {
  return { name, originalName: name, shape, dtype: 'float32', trainable: true, read: () => { throw new ModelError(`${name} was not created (shapes only)`); } };
}

function checkedShape(name: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.some((n) => !Number.isInteger(n) || (n as number) < 0)) throw new ModelError(`weight ${name} would have shape ${JSON.stringify(shape)}`);
  return shape as number[];
}

/** Where `entry` reads its inputs in a functional config: one list of [layer, node, tensor] per application. */
function inboundOf(entry: LayerEntry): [string, number, number][][] {
  const nodes = entry.inboundNodes;
  if (!Array.isArray(nodes)) throw new ModelError(`layer ${entry.name ?? entry.className} has no inbound nodes`);
  return nodes.map((node) => {
    if (!Array.isArray(node)) throw new ModelError(`layer ${entry.name ?? entry.className}: an inbound node is not a list`);
    return node.map((input) => {
      if (!Array.isArray(input) || typeof input[0] !== 'string' || !Number.isInteger(input[1]) || !Number.isInteger(input[2])) throw new ModelError(`layer ${entry.name ?? entry.className}: an inbound tensor is not [layer, node, tensor]`);
      return [input[0], input[1], input[2]] as [string, number, number];
    });
  });
}

/** The weight shapes the model of `keras` would create, in its layers' order (that of model.weights). */
export function kerasWeightShapes(keras: KerasModelSpec): number[][] {
  const layers = (keras.config as { layers?: unknown }).layers;
  if (!Array.isArray(layers)) throw new ModelError('the tfjs-layers config has no layers');
  const shapes: number[][] = [];
  const proto = tfl.layers.Layer.prototype as unknown as { addWeight: (name: string, shape: unknown) => unknown };
  const real = proto.addWeight;
  proto.addWeight = (name: string, shape: unknown) => {
    const checked = checkedShape(name, shape);
    shapes.push(checked);
    return placeholder(name, checked);
  };
  try {
    if (keras.className === 'Sequential') {
      let shape: Shape | Shape[] = [null, ...keras.inputShape];
      for (const entry of layers as LayerEntry[]) {
        if (entry.className === 'InputLayer') continue;
        const layer = construct(entry);
        layer.build(shape);
        shape = layer.computeOutputShape(shape);
      }
    } else {
      // each layer's output shape per application (node), by name; the config lists layers after their inputs
      const outputs = new Map<string, (Shape | Shape[])[]>();
      for (const entry of layers as LayerEntry[]) {
        const name = entry.name ?? String(entry.config['name']);
        if (entry.className === 'InputLayer') {
          const batchInputShape = entry.config['batchInputShape'];
          if (!Array.isArray(batchInputShape)) throw new ModelError(`input layer ${name} has no batchInputShape`);
          outputs.set(name, [batchInputShape as Shape]);
          continue;
        }
        const layer = construct(entry);
        const applied: (Shape | Shape[])[] = [];
        inboundOf(entry).forEach((node, i) => {
          const inputs = node.map(([from, nodeIndex, tensorIndex]) => {
            const out = outputs.get(from)?.[nodeIndex];
            if (out === undefined) throw new ModelError(`layer ${name} reads ${from} before it is computed`);
            return (Array.isArray(out[0]) ? (out as Shape[])[tensorIndex] : out) as Shape;
          });
          const input = inputs.length === 1 ? inputs[0]! : inputs;
          if (i === 0) layer.build(input);
          applied.push(layer.computeOutputShape(input));
        });
        outputs.set(name, applied);
      }
    }
  } catch (err) {
    throw err instanceof ModelError ? err : new ModelError(`the tfjs-layers config cannot be read for its weight shapes: ${(err as Error).message}`);
  } finally {
    proto.addWeight = real;
  }
  return shapes;
}
