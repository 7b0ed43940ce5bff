/**
 * Optimizers as pure functions over flat Float32Array weights, owned by the coordinator.
 *
 * Each one follows TensorFlow.js's own float32 sequence operation by operation (`f` = Math.fround
 * after every arithmetic step, constants rounded the way tfjs rounds its scalars), so one step
 * here equals one `tf.train.*` step bit for bit given the same gradient. This matters for Adam:
 * it divides by sqrt of tiny second moments and amplifies any rounding difference.
 *
 * Two implementations of each rule give the same bits: the JavaScript loops below (the readable
 * reference) and WebAssembly SIMD kernels (wasm/optimizers.wat, four lanes at a time; timings in
 * BENCHMARKS.md, from bench/optimizer-step.ts). The kernels are used wherever the runtime
 * has WebAssembly SIMD, which Node 20 always has. Rules without a kernel (adagrad, adamax, nadam,
 * adadelta, and Adam's amsgrad and RMSprop's centered variants) run the JavaScript loop whatever
 * implementation is asked for, and say so in `implementation`.
 */
import { kernelArena, type KernelArena } from '../wasm/kernels.js';
import type { AdadeltaConfig, AdagradConfig, AdamaxConfig, AdamConfig, AdamwConfig, NadamConfig, OptimizerConfig, OptimizerName, RmspropConfig, SgdConfig } from '../config/optimizer-config.js';

export type { AdadeltaConfig, AdagradConfig, AdamaxConfig, AdamConfig, AdamwConfig, NadamConfig, OptimizerConfig, OptimizerName, RmspropConfig, SgdConfig };

const f = Math.fround;

/** Everything an optimizer needs to continue exactly where it left off. */
export interface OptimizerState {
  readonly name: OptimizerName;
  readonly iterations: number;
  readonly slots: Record<string, Float32Array>;
  readonly scalars: Record<string, number>;
  /** A rate a callback set (ReduceLROnPlateau), which replaces the config's from then on. */
  readonly learningRate?: number;
}

/**
 * The slot arrays (one value per parameter each) and scalars each optimizer's state holds: what a
 * checkpoint must carry, no more and no less, for the optimizer to continue (checkpoint.ts checks).
 * `optionSlots`: the slots an option adds, kept only while it is on (Adam's and AdamW's amsgrad:
 * vHat, the largest v so far; RMSprop's centered: mg, the mean gradient), after `slots`;
 * `stateLayout` gives the exact list for a config.
 */
export const OPTIMIZER_STATE: {
  readonly [K in OptimizerName]: { readonly slots: readonly string[]; readonly scalars: readonly string[]; readonly optionSlots?: readonly string[] };
} = {
  adam: { slots: ['m', 'v'], scalars: ['accBeta1', 'accBeta2'], optionSlots: ['vHat'] },
  sgd: { slots: ['momentum'], scalars: [] },
  rmsprop: { slots: ['rms', 'momentum'], scalars: [], optionSlots: ['mg'] },
  adamw: { slots: ['m', 'v'], scalars: ['accBeta1', 'accBeta2'], optionSlots: ['vHat'] },
  adagrad: { slots: ['accumulator'], scalars: [] },
  adamax: { slots: ['m', 'u'], scalars: ['accBeta1'] },
  nadam: { slots: ['m', 'v'], scalars: ['uProduct'] },
  adadelta: { slots: ['accumulatedGrad', 'accumulatedDeltaVar'], scalars: [] },
};

/** Whether `config` turns on the option that adds its optimizer's `optionSlots` (amsgrad, centered). */
function optionOn(config: OptimizerConfig): boolean {
  return ((config.name === 'adam' || config.name === 'adamw') && config.amsgrad === true) || (config.name === 'rmsprop' && config.centered === true);
}

/** The slots (in this order) and scalars the optimizer `config` describes keeps: its state() holds exactly these. */
export function stateLayout(config: OptimizerConfig): { readonly slots: readonly string[]; readonly scalars: readonly string[] } {
  const { slots, scalars, optionSlots = [] } = OPTIMIZER_STATE[config.name];
  return { slots: optionOn(config) ? [...slots, ...optionSlots] : slots, scalars };
}

/** 'wasm': SIMD kernels (the default where available); 'js': the reference loops. */
export type OptimizerImplementation = 'wasm' | 'js';

export interface Optimizer {
  readonly config: OptimizerConfig;
  /** Which implementation runs the update rule. */
  readonly implementation: OptimizerImplementation;
  /** Updates `weights` in place with one step along `gradient`. */
  apply(weights: Float32Array, gradient: Float32Array): void;
  /** The rate the next step uses: the config's, until a schedule or a callback sets another. */
  learningRate: number;
  readonly iterations: number;
  state(): OptimizerState;
}

/**
 * An optimizer's slot arrays (restored from `from` when given) and, with the 'wasm'
 * implementation, the kernel arena they live in. Falls back to 'js' where SIMD is missing.
 * A saved state must hold exactly `names`: one saved with amsgrad or centered on cannot continue
 * with the option off, nor the other way round (a missing slot would silently start at zero).
 */
function slotArrays(
  size: number,
  names: readonly string[],
  from: OptimizerState | undefined,
  implementation: OptimizerImplementation,
): { arena: KernelArena | null; slots: Float32Array[] } {
  if (from) {
    const saved = Object.keys(from.slots);
    if (saved.length !== names.length || !names.every((name) => saved.includes(name))) {
      throw new RangeError(`optimizer state has slots ${saved.join(', ') || 'none'}, expected ${names.join(', ')}`);
    }
  }
  const arena = implementation === 'wasm' ? kernelArena(size, names.length) : null;
  const slots = names.map((name, k) => {
    const saved = from?.slots[name];
    if (saved !== undefined && saved.length !== size) throw new RangeError(`optimizer slot ${name} has ${saved.length} values, expected ${size}`);
    const slot = arena ? arena.slots[k]!.view : new Float32Array(size);
    if (saved) slot.set(saved);
    return slot;
  });
  return { arena, slots };
}

/**
 * Runs one kernel call on `weights` and `gradient`: copies both into the arena, calls `kernel`
 * with the byte offsets of weights, gradient and slots, copies the new weights back.
 */
function inArena(arena: KernelArena, weights: Float32Array, gradient: Float32Array, kernel: (w: number, g: number, slots: number[]) => void): void {
  arena.weights.view.set(weights);
  arena.gradient.view.set(gradient);
  kernel(arena.weights.offset, arena.gradient.offset, arena.slots.map((slot) => slot.offset));
  weights.set(arena.weights.view);
}

/**
 * Wraps an update rule into an Optimizer: checks lengths, counts iterations, exposes the state.
 * `update` changes weights and its own slots in place; `state` snapshots them.
 */
function optimizer(
  config: OptimizerConfig,
  size: number,
  startIterations: number,
  arena: KernelArena | null,
  update: (weights: Float32Array, gradient: Float32Array, learningRate: number) => void,
  state: () => Pick<OptimizerState, 'slots' | 'scalars'>,
): Optimizer {
  let iterations = startIterations;
  return {
    config,
    implementation: arena ? 'wasm' : 'js',
    learningRate: config.learningRate,
    get iterations() {
      return iterations;
    },
    apply(weights, gradient) {
      if (weights.length !== size || gradient.length !== size) {
        throw new RangeError(`optimizer expects ${size} parameters, got weights ${weights.length} and gradient ${gradient.length}`);
      }
      update(weights, gradient, this.learningRate);
      iterations++;
    },
    state: () => ({ name: config.name, iterations, ...state() }),
  };
}

/**
 * Adam as tf.train.adam: accBeta products iterated in float32, epsilon added after sqrt.
 *
 * With amsgrad, Keras's AMSGrad (keras/src/optimizers/adam.py): vHat = max(vHat, v), of the raw
 * (not bias-corrected) second moment, replaces v in the denominator. The step keeps tfjs's form,
 * as without amsgrad: -lr x m/(1 - beta1^t) / (sqrt(vHat/(1 - beta2^t)) + epsilon), where Keras
 * writes -lr sqrt(1 - beta2^t)/(1 - beta1^t) x m / (sqrt(vHat) + epsilon): the same rule with
 * epsilon scaled by sqrt(1 - beta2^t), the one difference Adam already has from Keras's. Where v
 * never falls, the bits are Adam's. The reference loop only (no kernel).
 */
export function adam(config: AdamConfig, size: number, from?: OptimizerState, implementation: OptimizerImplementation = 'wasm'): Optimizer {
  const b1 = f(config.beta1);
  const b2 = f(config.beta2);
  const oneMinusB1 = f(1 - config.beta1);
  const oneMinusB2 = f(1 - config.beta2);
  const eps = f(config.epsilon);
  const names = stateLayout(config).slots;
  const { arena, slots } = slotArrays(size, names, from, config.amsgrad === true ? 'js' : implementation);
  const [m, v, vMax] = slots as [Float32Array, Float32Array, Float32Array | undefined];
  let accBeta1 = from?.scalars['accBeta1'] ?? b1;
  let accBeta2 = from?.scalars['accBeta2'] ?? b2;
  const update = (weights: Float32Array, gradient: Float32Array, learningRate: number): void => {
    const negLr = f(-learningRate);
    const c1 = f(1 - accBeta1);
    const c2 = f(1 - accBeta2);
    if (arena) {
      inArena(arena, weights, gradient, (w, g, [mo, vo]) =>
        arena.kernels.adam(w, g, mo!, vo!, arena.padded, b1, b2, oneMinusB1, oneMinusB2, c1, c2, eps, negLr),
      );
    } else if (vMax) {
      for (let i = 0; i < weights.length; i++) {
        const g = gradient[i] as number;
        const mi = f(f((m[i] as number) * b1) + f(g * oneMinusB1));
        const vi = f(f((v[i] as number) * b2) + f(f(g * g) * oneMinusB2));
        const largest = Math.max(vMax[i] as number, vi);
        m[i] = mi;
        v[i] = vi;
        vMax[i] = largest;
        const mHat = f(mi / c1);
        const vHat = f(largest / c2);
        weights[i] = f(f(f(mHat / f(f(Math.sqrt(vHat)) + eps)) * negLr) + (weights[i] as number));
      }
    } else {
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
    }
    accBeta1 = f(accBeta1 * b1);
    accBeta2 = f(accBeta2 * b2);
  };
  return optimizer(config, size, from?.iterations ?? 0, arena, update, () => ({ slots: Object.fromEntries(names.map((name, k) => [name, slots[k]!.slice()])), scalars: { accBeta1, accBeta2 } }));
}

/** SGD as tf.train.sgd, or with momentum as tf.train.momentum (optionally Nesterov). */
export function sgd(config: SgdConfig, size: number, from?: OptimizerState, implementation: OptimizerImplementation = 'wasm'): Optimizer {
  const mom = f(config.momentum);
  const { arena, slots } = slotArrays(size, OPTIMIZER_STATE.sgd.slots, from, implementation);
  const [acc] = slots as [Float32Array];
  const update = (weights: Float32Array, gradient: Float32Array, learningRate: number): void => {
    const c = f(-learningRate);
    if (arena) {
      inArena(arena, weights, gradient, (w, g, [a]) =>
        config.momentum === 0 ? arena.kernels.sgd(w, g, arena.padded, c) : arena.kernels.momentum(w, g, a!, arena.padded, c, mom, config.nesterov ? 1 : 0),
      );
      return;
    }
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
  return optimizer(config, size, from?.iterations ?? 0, arena, update, () => ({ slots: { momentum: acc.slice() }, scalars: {} }));
}

/**
 * RMSProp as tf.train.rmsprop (not centered): epsilon added inside the sqrt.
 *
 * Centered, Keras's (keras/src/optimizers/rmsprop.py): the mean gradient mg = rho mg + (1 - rho) g
 * besides rms, the increment lr g / sqrt(rms - mg^2 + epsilon), then momentum as without it.
 * tf.train.rmsprop's centered form subtracts epsilon instead (sqrt(rms - (mg^2 + epsilon))); with
 * epsilon 0 the two agree bit for bit. The reference loop only (no kernel).
 */
export function rmsprop(config: RmspropConfig, size: number, from?: OptimizerState, implementation: OptimizerImplementation = 'wasm'): Optimizer {
  const rho = f(config.rho);
  const oneMinusRho = f(1 - config.rho);
  const mom = f(config.momentum);
  const eps = f(config.epsilon);
  const names = stateLayout(config).slots;
  const { arena, slots } = slotArrays(size, names, from, config.centered === true ? 'js' : implementation);
  const [ms, moments, mg] = slots as [Float32Array, Float32Array, Float32Array | undefined];
  const update = (weights: Float32Array, gradient: Float32Array, learningRate: number): void => {
    const lr = f(learningRate);
    if (arena) {
      inArena(arena, weights, gradient, (w, g, [so, moo]) => arena.kernels.rmsprop(w, g, so!, moo!, arena.padded, rho, oneMinusRho, lr, mom, eps));
      return;
    }
    if (mg) {
      for (let i = 0; i < weights.length; i++) {
        const g = gradient[i] as number;
        const s = f(f((ms[i] as number) * rho) + f(f(g * g) * oneMinusRho));
        const a = f(f((mg[i] as number) * rho) + f(g * oneMinusRho));
        ms[i] = s;
        mg[i] = a;
        const mo = f(f((moments[i] as number) * mom) + f(f(g * lr) / f(Math.sqrt(f(f(s - f(a * a)) + eps)))));
        moments[i] = mo;
        weights[i] = f((weights[i] as number) - mo);
      }
      return;
    }
    for (let i = 0; i < weights.length; i++) {
      const g = gradient[i] as number;
      const s = f(f((ms[i] as number) * rho) + f(f(g * g) * oneMinusRho));
      ms[i] = s;
      const mo = f(f((moments[i] as number) * mom) + f(f(g * lr) / f(Math.sqrt(f(s + eps)))));
      moments[i] = mo;
      weights[i] = f((weights[i] as number) - mo);
    }
  };
  return optimizer(config, size, from?.iterations ?? 0, arena, update, () => ({ slots: Object.fromEntries(names.map((name, k) => [name, slots[k]!.slice()])), scalars: {} }));
}

/**
 * AdamW as Keras's: the decoupled weight decay w - w x (weightDecay x lr), every variable, then
 * Adam's step (tf.train.adam's rule, as `adam` above, amsgrad included).
 */
export function adamw(config: AdamwConfig, size: number, from?: OptimizerState, implementation: OptimizerImplementation = 'wasm'): Optimizer {
  const { weightDecay, ...rest } = config;
  const inner = adam({ ...rest, name: 'adam' }, size, from && { ...from, name: 'adam' }, implementation);
  return {
    config,
    implementation: inner.implementation,
    get learningRate() {
      return inner.learningRate;
    },
    set learningRate(rate: number) {
      inner.learningRate = rate;
    },
    get iterations() {
      return inner.iterations;
    },
    apply(weights, gradient) {
      if (weights.length !== size) throw new RangeError(`optimizer expects ${size} parameters, got weights ${weights.length}`);
      const decay = f(weightDecay * inner.learningRate);
      for (let i = 0; i < weights.length; i++) weights[i] = f((weights[i] as number) - f((weights[i] as number) * decay));
      inner.apply(weights, gradient);
    },
    state: () => ({ ...inner.state(), name: 'adamw' }),
  };
}

/**
 * Adagrad as tf.train.adagrad and Keras's: the accumulator starts at initialAccumulatorValue and
 * adds g^2; the step is -lr g / sqrt(accumulator + epsilon). The reference loop only (no kernel).
 */
export function adagrad(config: AdagradConfig, size: number, from?: OptimizerState): Optimizer {
  const eps = f(config.epsilon);
  const { arena, slots } = slotArrays(size, OPTIMIZER_STATE.adagrad.slots, from, 'js');
  const [acc] = slots as [Float32Array];
  if (!from) acc.fill(f(config.initialAccumulatorValue));
  const update = (weights: Float32Array, gradient: Float32Array, learningRate: number): void => {
    const negLr = f(-learningRate);
    for (let i = 0; i < weights.length; i++) {
      const g = gradient[i] as number;
      const a = f((acc[i] as number) + f(g * g));
      acc[i] = a;
      weights[i] = f(f(f(g / f(Math.sqrt(f(a + eps)))) * negLr) + (weights[i] as number));
    }
  };
  return optimizer(config, size, from?.iterations ?? 0, arena, update, () => ({ slots: { accumulator: acc.slice() }, scalars: {} }));
}

/**
 * Adamax as tf.train.adamax (and Keras's): m and the infinity norm u = max(beta2 u, |g|), the step
 * -lr / (1 - beta1^t) x m / (u + epsilon). The reference loop only.
 */
export function adamax(config: AdamaxConfig, size: number, from?: OptimizerState): Optimizer {
  const b1 = f(config.beta1);
  const b2 = f(config.beta2);
  const oneMinusB1 = f(1 - config.beta1);
  const eps = f(config.epsilon);
  const { arena, slots } = slotArrays(size, OPTIMIZER_STATE.adamax.slots, from, 'js');
  const [m, u] = slots as [Float32Array, Float32Array];
  let accBeta1 = from?.scalars['accBeta1'] ?? b1;
  const update = (weights: Float32Array, gradient: Float32Array, learningRate: number): void => {
    const step = f(f(-learningRate) / f(1 - accBeta1));
    for (let i = 0; i < weights.length; i++) {
      const g = gradient[i] as number;
      const mi = f(f((m[i] as number) * b1) + f(g * oneMinusB1));
      const ui = Math.max(f((u[i] as number) * b2), Math.abs(g));
      m[i] = mi;
      u[i] = ui;
      weights[i] = f(f(step * f(mi / f(ui + eps))) + (weights[i] as number));
    }
    accBeta1 = f(accBeta1 * b1);
  };
  return optimizer(config, size, from?.iterations ?? 0, arena, update, () => ({ slots: { m: m.slice(), u: u.slice() }, scalars: { accBeta1 } }));
}

/**
 * Nadam as Keras 3's: Adam with Nesterov momentum and its momentum schedule
 * u_t = beta1 (1 - 0.5 x 0.96^(0.004 t)), u_product their running product; scalars in float64,
 * values in float32. The reference loop only (tfjs has no Nadam).
 */
export function nadam(config: NadamConfig, size: number, from?: OptimizerState): Optimizer {
  const { arena, slots } = slotArrays(size, OPTIMIZER_STATE.nadam.slots, from, 'js');
  const [m, v] = slots as [Float32Array, Float32Array];
  const { beta1, beta2 } = config;
  let uProduct = from?.scalars['uProduct'] ?? 1;
  let t = from?.iterations ?? 0;
  const eps = f(config.epsilon);
  const update = (weights: Float32Array, gradient: Float32Array, learningRate: number): void => {
    const step = t + 1;
    const ut = beta1 * (1 - 0.5 * 0.96 ** (0.004 * step));
    const ut1 = beta1 * (1 - 0.5 * 0.96 ** (0.004 * (step + 1)));
    const uProductT = uProduct * ut;
    const uProductT1 = uProductT * ut1;
    const beta2Power = beta2 ** step;
    const [a, b] = [f(ut1 / (1 - uProductT1)), f((1 - ut) / (1 - uProductT))];
    const [oneMinusB1, oneMinusB2, vScale, lr] = [f(1 - beta1), f(1 - beta2), f(1 / (1 - beta2Power)), f(learningRate)];
    for (let i = 0; i < weights.length; i++) {
      const g = gradient[i] as number;
      const mi = f((m[i] as number) + f(f(g - (m[i] as number)) * oneMinusB1));
      const vi = f((v[i] as number) + f(f(f(g * g) - (v[i] as number)) * oneMinusB2));
      m[i] = mi;
      v[i] = vi;
      const mHat = f(f(a * mi) + f(b * g));
      const vHat = f(vi * vScale);
      weights[i] = f((weights[i] as number) - f(f(mHat * lr) / f(f(Math.sqrt(vHat)) + eps)));
    }
    uProduct = uProductT;
    t++;
  };
  return optimizer(config, size, from?.iterations ?? 0, arena, update, () => ({ slots: { m: m.slice(), v: v.slice() }, scalars: { uProduct } }));
}

/**
 * Adadelta as Keras 3's (keras/src/optimizers/adadelta.py): accumulatedGrad a = rho a + (1 - rho) g^2,
 * the update u = sqrt(accumulatedDeltaVar + epsilon) / sqrt(a + epsilon) x g with this step's a,
 * accumulatedDeltaVar = rho d + (1 - rho) u^2, and w - lr u. Operations in tf.train.adadelta's
 * float32 order; tf.train.adadelta itself divides by a before this step's g^2 is added, so the two
 * agree (bit for bit) only where a does not change. The reference loop only (no kernel).
 */
export function adadelta(config: AdadeltaConfig, size: number, from?: OptimizerState): Optimizer {
  const rho = f(config.rho);
  const oneMinusRho = f(1 - config.rho);
  const eps = f(config.epsilon);
  const { arena, slots } = slotArrays(size, OPTIMIZER_STATE.adadelta.slots, from, 'js');
  const [accGrad, accDelta] = slots as [Float32Array, Float32Array];
  const update = (weights: Float32Array, gradient: Float32Array, learningRate: number): void => {
    const negLr = f(-learningRate);
    for (let i = 0; i < weights.length; i++) {
      const g = gradient[i] as number;
      const a = f(f((accGrad[i] as number) * rho) + f(f(g * g) * oneMinusRho));
      const u = f(f(f(Math.sqrt(f((accDelta[i] as number) + eps))) / f(Math.sqrt(f(a + eps)))) * g);
      accGrad[i] = a;
      accDelta[i] = f(f((accDelta[i] as number) * rho) + f(f(u * u) * oneMinusRho));
      weights[i] = f(f(u * negLr) + (weights[i] as number));
    }
  };
  return optimizer(config, size, from?.iterations ?? 0, arena, update, () => ({ slots: { accumulatedGrad: accGrad.slice(), accumulatedDeltaVar: accDelta.slice() }, scalars: {} }));
}

/** The optimizer registry: name -> factory. Add an optimizer by adding one entry. */
export const optimizers: {
  readonly [K in OptimizerName]: (
    config: Extract<OptimizerConfig, { name: K }>,
    size: number,
    from?: OptimizerState,
    implementation?: OptimizerImplementation,
  ) => Optimizer;
} = { adam, sgd, rmsprop, adamw, adagrad, adamax, nadam, adadelta };

/**
 * The optimizer `config` names for `size` parameters, continuing from `from` when given.
 * `implementation` 'js' forces the reference loops (tests and bench/optimizer-step.ts compare the two).
 */
export function createOptimizer(config: OptimizerConfig, size: number, from?: OptimizerState, implementation: OptimizerImplementation = 'wasm'): Optimizer {
  const factory = optimizers[config.name] as (c: OptimizerConfig, n: number, s?: OptimizerState, i?: OptimizerImplementation) => Optimizer;
  return factory(config, size, from, implementation);
}
