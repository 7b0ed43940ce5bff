/**
 * The `dptrain` command: one name for both sides of a run.
 *
 *   dptrain start | evaluate | predict | plot | view | demo-data ...   (the coordinator's commands)
 *   dptrain worker start --connect URL ...                            (a worker node)
 *
 * `coordinator` and `worker` remain as aliases: `coordinator X` is `dptrain X`, `worker X` is
 * `dptrain worker X`.
 */
import { main as coordinatorMain } from './coordinator/cli.js';
import { main as workerMain } from './worker/cli.js';

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'worker') return workerMain(rest);
  return coordinatorMain(argv);
}
