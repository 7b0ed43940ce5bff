/** Runs one benchmark group (or the kernel measurements) given as JSON and prints the results as one JSON line. */
import { runGroup, type Case, type Group } from './cases.js';
import { runKernels } from './kernels.js';

const arg = JSON.parse(process.argv[2] ?? '{}') as Group | { kernels: Case['backend'] };
try {
  const result = 'kernels' in arg ? await runKernels(arg.kernels) : await runGroup(arg);
  console.log(JSON.stringify(result));
  process.exit(0);
} catch (err) {
  console.error((err as Error).stack);
  process.exit(1);
}
