/** uint8 samples (images, uint8 .npy) as the float32 features the models take. */

/** Features from uint8 values: value x scale, rounded to float32 (what a node computes from the same bytes). */
export function scalePixels(values: Uint8Array, scale: number, out: Float32Array = new Float32Array(values.length)): Float32Array {
  for (let i = 0; i < values.length; i++) out[i] = values[i]! * scale;
  return out;
}
