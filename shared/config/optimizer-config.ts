/** What a config may say about the optimizer: each rule's settings and Keras's defaults (the rules: shared/optimize/). */

/** Keras's learning-rate schedules (coordinator/optimize/schedules.ts); the initial rate is the optimizer's learningRate. */
export type LearningRateSchedule =
  | { readonly name: 'exponentialDecay'; readonly decaySteps: number; readonly decayRate: number; readonly staircase: boolean }
  | { readonly name: 'piecewiseConstantDecay'; readonly boundaries: readonly number[]; readonly values: readonly number[] }
  | { readonly name: 'polynomialDecay'; readonly decaySteps: number; readonly endLearningRate: number; readonly power: number; readonly cycle: boolean }
  | { readonly name: 'cosineDecay'; readonly decaySteps: number; readonly alpha: number; readonly warmupTarget?: number; readonly warmupSteps: number };

/** Keras's gradient clipping, one of the three at most (shared/optimize/clip.ts). */
export interface ClipSettings {
  readonly clipnorm?: number;
  readonly clipvalue?: number;
  readonly globalClipnorm?: number;
}

export interface AdamConfig extends ClipSettings {
  readonly name: 'adam';
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  /** Keras's AMSGrad: divide by the largest second moment so far (one more slot); absent: false. */
  readonly amsgrad?: boolean;
}
export interface SgdConfig extends ClipSettings {
  readonly name: 'sgd';
  readonly learningRate: number;
  readonly momentum: number;
  readonly nesterov: boolean;
}
export interface RmspropConfig extends ClipSettings {
  readonly name: 'rmsprop';
  readonly learningRate: number;
  readonly rho: number;
  readonly momentum: number;
  readonly epsilon: number;
  /** Keras's centered RMSprop: divide by an estimate of the gradient's variance (one more slot); absent: false. */
  readonly centered?: boolean;
}
/** Keras's AdamW: Adam with decoupled weight decay. */
export interface AdamwConfig extends ClipSettings {
  readonly name: 'adamw';
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  /** As Adam's. */
  readonly amsgrad?: boolean;
}
export interface AdagradConfig extends ClipSettings {
  readonly name: 'adagrad';
  readonly learningRate: number;
  readonly initialAccumulatorValue: number;
  readonly epsilon: number;
}
/** Keras's Adamax (Adam with the infinity norm) and Nadam (Adam with Nesterov momentum). */
export interface AdamaxConfig extends ClipSettings {
  readonly name: 'adamax';
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
}
export interface NadamConfig extends ClipSettings {
  readonly name: 'nadam';
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
}
/** Keras's Adadelta: steps scaled by running averages of the squared gradients and squared updates. */
export interface AdadeltaConfig extends ClipSettings {
  readonly name: 'adadelta';
  readonly learningRate: number;
  readonly rho: number;
  readonly epsilon: number;
}
export type OptimizerConfig = AdamConfig | SgdConfig | RmspropConfig | AdamwConfig | AdagradConfig | AdamaxConfig | NadamConfig | AdadeltaConfig;
export type OptimizerName = OptimizerConfig['name'];

/** Keras defaults for each optimizer's hyper-parameters. */
export const optimizerDefaults = {
  adam: { learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
  sgd: { learningRate: 0.01, momentum: 0, nesterov: false },
  rmsprop: { learningRate: 0.001, rho: 0.9, momentum: 0, epsilon: 1e-7 },
  adamw: { learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0.004 },
  adagrad: { learningRate: 0.001, initialAccumulatorValue: 0.1, epsilon: 1e-7 },
  adamax: { learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
  nadam: { learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
  adadelta: { learningRate: 0.001, rho: 0.95, epsilon: 1e-7 },
} as const;
