/**
 * The shared cluster token: read from a file or the DPTRAIN_TOKEN environment variable (never a
 * command-line argument, which `ps` and shell history would show), and compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UsageError } from './errors.js';

export const TOKEN_ENV = 'DPTRAIN_TOKEN';
export const MIN_TOKEN_LENGTH = 16;

/** The token from `file` (trimmed) or, without a file, from $DPTRAIN_TOKEN. */
export function readToken(file: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  let token: string;
  let source: string;
  if (file !== undefined) {
    source = `token file ${file}`;
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`${source}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
  } else if (env[TOKEN_ENV] !== undefined) {
    source = `$${TOKEN_ENV}`;
    token = env[TOKEN_ENV]!.trim();
  } else {
    throw new UsageError(`a shared token is required: give --token-file FILE or set ${TOKEN_ENV} (e.g. \`openssl rand -hex 32 > secret\`)`);
  }
  if (token.length < MIN_TOKEN_LENGTH) throw new UsageError(`${source}: the token has ${token.length} characters, at least ${MIN_TOKEN_LENGTH} are required`);
  return token;
}

/** A checker that compares candidates with `token` in constant time (hashes of equal length). */
export function tokenChecker(token: string): (candidate: string) => boolean {
  const expected = createHash('sha256').update(token).digest();
  return (candidate) => timingSafeEqual(createHash('sha256').update(candidate).digest(), expected);
}
