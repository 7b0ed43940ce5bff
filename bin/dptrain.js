#!/usr/bin/env node
// `dptrain worker ...` runs a worker node; every other command is the coordinator's
// (`dptrain start`, `evaluate`, `predict`, `plot`, `view`, `demo-data`).
const [command, ...rest] = process.argv.slice(2);
const worker = command === 'worker';
const { main } = worker ? await import('../dist/worker/cli.js') : await import('../dist/coordinator/cli.js');

process.exitCode = await main(worker ? rest : process.argv.slice(2));
