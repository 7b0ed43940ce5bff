/**
 * Who a peer connection comes from. A token holder could otherwise say any node's id in its
 * peer_hello and send blocks as that node. Each node makes a key of its own and gives it to the
 * coordinator only (in its hello); for every pair the coordinator tells node i the proof to show
 * node j, an HMAC of the job and i's id under j's key. Node j checks it against its own key: a
 * node cannot make the proof of another id, and a stranger with the token none at all.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new node's peer key (hex, 32 random bytes). */
export function newPeerKey(): string {
  return randomBytes(32).toString('hex');
}

/** The proof that `from` shows the node whose key is `key`, in job `jobId`. */
export function peerProof(key: string, jobId: string, from: string): string {
  return createHmac('sha256', Buffer.from(key, 'hex')).update(`${jobId}\n${from}`).digest('hex');
}

/** Whether `proof` is what `from` would show the node of `key` (compared in constant time). */
export function provesPeer(key: string, jobId: string, from: string, proof: string): boolean {
  const want = Buffer.from(peerProof(key, jobId, from), 'hex');
  const got = Buffer.from(proof, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}
