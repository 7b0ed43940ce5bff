/**
 * Learning-rate schedules as Keras's (keras.optimizers.schedules), each a pure function of the
 * optimizer's iteration count (0 for the first update), so a resumed run continues it exactly.
 * The initial rate is the optimizer's `learningRate`.
 */
import type { LearningRateSchedule } from '../../shared/config/optimizer-config.js';

/** The rate of update `step` (0-based) starting from `initial`. */
export function scheduledRate(initial: number, schedule: LearningRateSchedule | undefined, step: number): number {
  if (!schedule) return initial;
  switch (schedule.name) {
    case 'exponentialDecay': {
      const p = step / schedule.decaySteps;
      return initial * schedule.decayRate ** (schedule.staircase ? Math.floor(p) : p);
    }
    case 'piecewiseConstantDecay': {
      // values[0] up to and including boundaries[0], values[i] after boundaries[i - 1]
      const i = schedule.boundaries.findIndex((b) => step <= b);
      return i < 0 ? schedule.values.at(-1)! : schedule.values[i]!;
    }
    case 'polynomialDecay': {
      let decaySteps = schedule.decaySteps;
      let s = step;
      if (schedule.cycle) decaySteps *= step === 0 ? 1 : Math.ceil(step / decaySteps);
      else s = Math.min(step, decaySteps);
      return (initial - schedule.endLearningRate) * (1 - s / decaySteps) ** schedule.power + schedule.endLearningRate;
    }
    case 'cosineDecay': {
      const decay = (s: number, from: number): number => {
        const fraction = Math.min(s, schedule.decaySteps) / schedule.decaySteps;
        return from * ((1 - schedule.alpha) * 0.5 * (1 + Math.cos(Math.PI * fraction)) + schedule.alpha);
      };
      if (schedule.warmupTarget === undefined) return decay(step, initial);
      // linear warmup from the initial rate to warmupTarget, then the decay from warmupTarget
      if (step < schedule.warmupSteps) return (schedule.warmupTarget - initial) * (step / schedule.warmupSteps) + initial;
      return decay(step - schedule.warmupSteps, schedule.warmupTarget);
    }
  }
}

/**
 * The linear scaling rule for large batches (Goyal et al. 2017): the factor every rate is
 * multiplied by at update `step`, batchSize / referenceBatchSize, reached linearly from 1 over
 * `warmupSteps` (their gradual warmup).
 */
export function scalingFactor(batchSize: number, scaling: { readonly referenceBatchSize: number; readonly warmupSteps: number } | undefined, step: number): number {
  if (!scaling) return 1;
  const k = batchSize / scaling.referenceBatchSize;
  if (scaling.warmupSteps === 0 || step >= scaling.warmupSteps) return k;
  return 1 + ((k - 1) * step) / scaling.warmupSteps;
}
