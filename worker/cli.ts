/**
 * `worker` command line.
 *
 *   worker backends            which TensorFlow.js backends load on this machine
 *   worker start ...           join a coordinator over WebSocket (remote nodes: issue #3, not built yet)
 */
import { parseArgs } from 'node:util';
import { BACKENDS, initBackend, type BackendChoice } from '../shared/backend.js';
import { DptrainError, UsageError } from '../shared/errors.js';

const USAGE = `usage: worker <command>

commands:
  backends [--backend B]   start a backend (${BACKENDS.join(' | ')}, default: each in turn) and report it
  start                    join a coordinator (remote worker nodes are not built yet)`;

async function backends(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { backend: { type: 'string' } }, strict: true });
  const choice = values.backend as BackendChoice | undefined;
  if (choice !== undefined && !BACKENDS.includes(choice)) throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, got "${choice}"`);
  const name = await initBackend(choice ?? 'auto', (msg) => console.error(`note: ${msg}`));
  console.log(`backend ${choice ?? 'auto'}: running on "${name}"`);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === 'backends') await backends(rest);
    else if (command === 'start') {
      throw new UsageError('remote worker nodes are not implemented in this version; train with coordinator threads (`coordinator start`)');
    } else if (command === undefined || command === '--help' || command === '-h') console.log(USAGE);
    else throw new UsageError(`unknown command "${command}"; expected: backends, start`);
    return 0;
  } catch (err) {
    const code = err instanceof DptrainError ? err.code : 'E_INTERNAL';
    console.error(`error [${code}]: ${(err as Error).message}`);
    if (argv.includes('--verbose')) console.error((err as Error).stack);
    return err instanceof DptrainError ? 1 : 70;
  }
}
