/**
 * A check value of a weights array (32-bit FNV-1a over its float32 bit patterns): with
 * cluster.reduction peers every node steps the optimizer itself, and the coordinator sends this
 * value of its own weights with each commit, so a node whose weights differ by one bit finds out
 * at the step it happened. Not a defence against a peer that lies: a check that copies bits.
 */
export function weightsCheck(values: Float32Array): number {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let hash = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) hash = Math.imul(hash ^ (words[i] as number), 0x01000193);
  return hash >>> 0;
}
