/**
 * The file Piscina loads in each thread: CommonJS, so that Piscina's `require()` of its entry
 * never reaches the ESM thread module. Node 20's require(esm) can abort the whole process
 * (a V8 fatal error, not an exception) on a graph with top-level await, which thread.ts has;
 * `import()` has no such path. The import starts when the thread loads, so the backend and
 * model are built while the pool starts, and every task awaits the same module.
 */
const threadModule = import('./thread.js');
type ThreadTask = Parameters<Awaited<typeof threadModule>['default']>[0];
// A failed start is reported by the first task, not as an unhandled rejection here.
threadModule.catch(() => undefined);

module.exports = async function handle(task: ThreadTask): Promise<unknown> {
  return (await threadModule).default(task);
};
