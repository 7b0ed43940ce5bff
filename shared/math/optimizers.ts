/**
 * Optimizers as pure functions over flat Float32Array weights, owned by the coordinator.
 *
 * Each one follows TensorFlow.js's own float32 sequence operation by operation (`f` = Math.fround
 * after every arithmetic step, constants rounded the way tfjs rounds its scalars), so one step
 * here equals one `tf.train.*` step bit for bit given the same gradient. This matters for Adam:
 * it divides by sqrt of tiny second moments and amplifies any rounding difference.
 */
const f = Math.fround;

export interface AdamConfig {
  readonly name: 'adam';
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
}
export interface SgdConfig {
  readonly name: 'sgd';
  readonly learningRate: number;
  readonly momentum: number;
  readonly nesterov: boolean;
}
export interface RmspropConfig {
  readonly name: 'rmsprop';
  readonly learningRate: number;
  readonly rho: number;
  readonly momentum: number;
  readonly epsilon: number;
}
export type OptimizerConfig = AdamConfig | SgdConfig | RmspropConfig;
export type OptimizerName = OptimizerConfig['name'];

/** Everything an optimizer needs to continue exactly where it left off. */
export interface OptimizerState {
  readonly name: OptimizerName;
  readonly iterations: number;
  readonly slots: Record<string, Float32Array>;
  readonly scalars: Record<string, number>;
}

export interface Optimizer {
  readonly config: OptimizerConfig;
  /** Updates `weights` in place with one step along `gradient`. */
  apply(weights: Float32Array, gradient: Float32Array): void;
  readonly iterations: number;
  state(): OptimizerState;
}

/**
 * Wraps an update rule into an Optimizer: checks lengths, counts iterations, exposes the state.
 * `update` changes weights and its own slots in place; `state` snapshots them.
 */
function optimizer(
  config: OptimizerConfig,
  size: number,
  startIterations: number,
  update: (weights: Float32Array, gradient: Float32Array) => void,
  state: () => Pick<OptimizerState, 'slots' | 'scalars'>,
): Optimizer {
  let iterations = startIterations;
  return {
    config,
    get iterations() {
      return iterations;
    },
    apply(weights, gradient) {
      if (weights.length !== size || gradient.length !== size) {
        throw new RangeError(`optimizer expects ${size} parameters, got weights ${weights.length} and gradient ${gradient.length}`);
      }
      update(weights, gradient);
      iterations++;
    },
    state: () => ({ name: config.name, iterations, ...state() }),
  };
}

/** Adam as tf.train.adam: accBeta products iterated in float32, epsilon added after sqrt. */
export function adam(config: AdamConfig, size: number, from?: OptimizerState): Optimizer {
  const b1 = f(config.beta1);
  const b2 = f(config.beta2);
  const oneMinusB1 = f(1 - config.beta1);
  const oneMinusB2 = f(1 - config.beta2);
  const eps = f(config.epsilon);
  const negLr = f(-config.learningRate);
  const m = from?.slots['m'] ?? new Float32Array(size);
  const v = from?.slots['v'] ?? new Float32Array(size);
  let accBeta1 = from?.scalars['accBeta1'] ?? b1;
  let accBeta2 = from?.scalars['accBeta2'] ?? b2;
  const update = (weights: Float32Array, gradient: Float32Array): void => {
    const c1 = f(1 - accBeta1);
    const c2 = f(1 - accBeta2);
    for (let i = 0; i < weights.length; i++) {
      const g = gradient[i] as number;
      const mi = f(f((m[i] as number) * b1) + f(g * oneMinusB1));
      const vi = f(f((v[i] as number) * b2) + f(f(g * g) * oneMinusB2));
      m[i] = mi;
      v[i] = vi;
      const mHat = f(mi / c1);
      const vHat = f(vi / c2);
      weights[i] = f(f(f(mHat / f(f(Math.sqrt(vHat)) + eps)) * negLr) + (weights[i] as number));
    }
    accBeta1 = f(accBeta1 * b1);
    accBeta2 = f(accBeta2 * b2);
  };
  return optimizer(config, size, from?.iterations ?? 0, update, () => ({ slots: { m: m.slice(), v: v.slice() }, scalars: { accBeta1, accBeta2 } }));
}

/** SGD as tf.train.sgd, or with momentum as tf.train.momentum (optionally Nesterov). */
export function sgd(config: SgdConfig, size: number, from?: OptimizerState): Optimizer {
  const c = f(-config.learningRate);
  const mom = f(config.momentum);
  const acc = from?.slots['momentum'] ?? new Float32Array(size);
  const update = (weights: Float32Array, gradient: Float32Array): void => {
    for (let i = 0; i < weights.length; i++) {
      const g = gradient[i] as number;
      if (config.momentum === 0) {
        weights[i] = f(f(c * g) + (weights[i] as number));
        continue;
      }
      const a = f(f(mom * (acc[i] as number)) + g);
      acc[i] = a;
      const direction = config.nesterov ? f(g + f(a * mom)) : a;
      weights[i] = f(f(c * direction) + (weights[i] as number));
    }
  };
  return optimizer(config, size, from?.iterations ?? 0, update, () => ({ slots: { momentum: acc.slice() }, scalars: {} }));
}

/** RMSProp as tf.train.rmsprop (not centered): epsilon added inside the sqrt. */
export function rmsprop(config: RmspropConfig, size: number, from?: OptimizerState): Optimizer {
  const rho = f(config.rho);
  const oneMinusRho = f(1 - config.rho);
  const lr = f(config.learningRate);
  const mom = f(config.momentum);
  const eps = f(config.epsilon);
  const ms = from?.slots['rms'] ?? new Float32Array(size);
  const moments = from?.slots['momentum'] ?? new Float32Array(size);
  const update = (weights: Float32Array, gradient: Float32Array): void => {
    for (let i = 0; i < weights.length; i++) {
      const g = gradient[i] as number;
      const s = f(f((ms[i] as number) * rho) + f(f(g * g) * oneMinusRho));
      ms[i] = s;
      const mo = f(f((moments[i] as number) * mom) + f(f(g * lr) / f(Math.sqrt(f(s + eps)))));
      moments[i] = mo;
      weights[i] = f((weights[i] as number) - mo);
    }
  };
  return optimizer(config, size, from?.iterations ?? 0, update, () => ({ slots: { rms: ms.slice(), momentum: moments.slice() }, scalars: {} }));
}

/** The optimizer registry: name -> factory. Add an optimizer by adding one entry. */
export const optimizers: {
  readonly [K in OptimizerName]: (config: Extract<OptimizerConfig, { name: K }>, size: number, from?: OptimizerState) => Optimizer;
} = { adam, sgd, rmsprop };

/** Keras defaults for each optimizer's hyper-parameters. */
export const optimizerDefaults = {
  adam: { learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
  sgd: { learningRate: 0.01, momentum: 0, nesterov: false },
  rmsprop: { learningRate: 0.001, rho: 0.9, momentum: 0, epsilon: 1e-7 },
} as const;

export function createOptimizer(config: OptimizerConfig, size: number, from?: OptimizerState): Optimizer {
  const factory = optimizers[config.name] as (c: OptimizerConfig, n: number, s?: OptimizerState) => Optimizer;
  return factory(config, size, from);
}
