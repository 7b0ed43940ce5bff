/** Runs one benchmark case (or the kernel measurements) given as JSON and prints the result as one JSON line. */
import { runCase, type Case } from './cases.js';
import { runKernels } from './kernels.js';

const arg = JSON.parse(process.argv[2] ?? '{}') as Case | { kernels: Case['backend'] };
try {
  const result = 'kernels' in arg ? await runKernels(arg.kernels) : await runCase(arg);
  console.log(JSON.stringify(result));
  process.exit(0);
} catch (err) {
  console.error((err as Error).stack);
  process.exit(1);
}
