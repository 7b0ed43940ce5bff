/**
 * The masking key a node's WebSocket client frames carry: all zeros, which `ws` takes as "skip the
 * XOR" on both sides. Masking (RFC 6455, 5.3) keeps scripts in a browser from steering what
 * intermediaries cache; a node is not a browser, and masking costs a byte-by-byte pass over every
 * gradient and shard on the sender and again on the receiver (`ws`'s generateMask option).
 */
export function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}
