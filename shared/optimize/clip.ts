/**
 * Gradient clipping as Keras's optimizers do it, on the reduced gradient just before the update
 * (so once per step, whatever the split): `clipnorm` scales each variable's gradient (a kernel, a
 * bias) to an L2 norm of at most clipnorm, `globalClipnorm` scales the whole gradient to a global
 * norm of at most globalClipnorm, `clipvalue` clips each value to [-clipvalue, clipvalue]. Keras
 * allows one of the three; so does the config. Norms are summed in float64, the scaled values
 * rounded to float32 once. Not the same as `cluster.clipNorm`, which bounds each participant's
 * share under robust aggregation.
 */
import type { ClipSettings } from '../config/optimizer-config.js';

/** A variable's values in the flat gradient. */
export interface VariableRange {
  readonly offset: number;
  readonly size: number;
}

function squaredNorm(g: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += (g[i] as number) * (g[i] as number);
  return sum;
}

/** Clips `gradient` in place; `variables` are the trainable variables' ranges (for clipnorm). */
export function clipGradient(gradient: Float32Array, variables: readonly VariableRange[], clip: ClipSettings): void {
  if (clip.clipnorm !== undefined) {
    const c = clip.clipnorm;
    for (const v of variables) {
      const norm = Math.sqrt(squaredNorm(gradient, v.offset, v.offset + v.size));
      // Keras's clip_by_norm: g * c / max(norm, c)
      if (norm > c) for (let i = v.offset; i < v.offset + v.size; i++) gradient[i] = ((gradient[i] as number) * c) / norm;
    }
  } else if (clip.globalClipnorm !== undefined) {
    const c = clip.globalClipnorm;
    let sum = 0;
    for (const v of variables) sum += squaredNorm(gradient, v.offset, v.offset + v.size);
    const norm = Math.sqrt(sum);
    if (norm > c) for (const v of variables) for (let i = v.offset; i < v.offset + v.size; i++) gradient[i] = ((gradient[i] as number) * c) / norm;
  }
  if (clip.clipvalue !== undefined) {
    const c = clip.clipvalue;
    for (let i = 0; i < gradient.length; i++) gradient[i] = Math.min(c, Math.max(-c, gradient[i] as number));
  }
}
