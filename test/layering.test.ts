/** The lint rule that keeps imports going down the data flow (eslint.config.js) fails a wrong arrow. */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const eslint = new ESLint({ cwd: ROOT });

async function problems(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${ROOT}/${file}` });
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('import direction', () => {
  it('refuses imports that go up or across', async () => {
    expect(await problems('compute/x.ts', "import { WorkerMetrics } from '../worker/metrics.js';\nexport const x = WorkerMetrics;\n")).toEqual([
      "'../worker/metrics.js' import is restricted from being used by a pattern. compute/ must not import worker/: the engines are used by both sides and know neither",
    ]);
    expect(await problems('shared/model/x.ts', "import { createEngine } from '../../compute/gradient.js';\nexport const x = createEngine;\n")).toHaveLength(1);
    expect(await problems('coordinator/participants/x.ts', "import { NodeClient } from '../../worker/node-client.js';\nexport const x = NodeClient;\n")).toHaveLength(1);
    expect(await problems('worker/x.ts', "import { Trainer } from '../coordinator/fit/trainer.js';\nexport const x = Trainer;\n")).toHaveLength(1);
    // the coordinator's pure stages know nothing above them
    expect(await problems('shared/plan/x.ts', "import { Cluster } from '../../coordinator/participants/cluster.js';\nexport const x = Cluster;\n")).toHaveLength(1);
    expect(await problems('coordinator/reduce/x.ts', "import { StepRunner } from '../fit/step.js';\nexport const x = StepRunner;\n")).toHaveLength(1);
    expect(await problems('coordinator/optimize/x.ts', "import { runJob } from '../job.js';\nexport const x = runJob;\n")).toHaveLength(1);
  });
  it('allows imports that go down', async () => {
    expect(await problems('coordinator/x.ts', "import { createEngine } from '../compute/gradient.js';\nimport { Rng } from '../shared/math/rng.js';\nexport const x = [createEngine, Rng];\n")).toEqual([]);
    expect(await problems('worker/x.ts', "import { LocalLane } from '../compute/local-lane.js';\nexport const x = LocalLane;\n")).toEqual([]);
    expect(await problems('coordinator/fit/x.ts', "import { assignRows } from '../../shared/plan/split-plan.js';\nimport { GradientReducer } from '../reduce/reduce.js';\nexport const x = [assignRows, GradientReducer];\n")).toEqual([]);
    expect(await problems('shared/plan/x.ts', "import { splitCounts } from './split-plan.js';\nimport { Rng } from '../math/rng.js';\nexport const x = [splitCounts, Rng];\n")).toEqual([]);
  });
});
