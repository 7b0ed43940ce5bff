/**
 * The live page's part in a job (job.ts): the feed opened with the run's facts, the page's
 * routes for the metrics server, and the run's last record.
 */
import { basename } from 'node:path';
import type { JobConfig } from '../../shared/config/schema.js';
import type { Dataset } from '../../shared/data/dataset.js';
import { describeModel } from '../../shared/model/layers.js';
import { weightLayout } from '../../shared/model/layout.js';
import type { ModelSpec } from '../../shared/model/spec.js';
import { metricKeys } from '../../shared/model/metric-sums.js';
import type { RunDir } from '../run-dir.js';
import type { Summary } from '../summary.js';
import { liveRoutes, type LiveRoutes } from './live-server.js';
import { finite } from './records.js';
import { EVENTS_FILE, RunFeed } from './run-feed.js';

export interface FeedFacts {
  readonly runDir: RunDir;
  readonly config: JobConfig;
  readonly dataset: Dataset;
  readonly spec: ModelSpec;
  /** The checkpoint resumed from, and its step. */
  readonly resumedFrom?: { readonly file: string; readonly step: number } | undefined;
  readonly log: (line: string) => void;
}

export function openRunFeed({ runDir, config, dataset, spec, resumedFrom, log }: FeedFacts): RunFeed {
  const es = config.fit.earlyStopping;
  return RunFeed.open({
    file: runDir.file(EVENTS_FILE),
    log,
    earlyStopping: es ? { monitor: es.monitor, patience: es.patience } : undefined,
    run: {
      name: basename(runDir.path),
      model: describeModel(spec),
      parameters: weightLayout(spec).size,
      epochs: config.fit.epochs,
      batchSize: config.fit.batchSize,
      trainRows: dataset.train.count,
      valRows: dataset.val.count,
      testRows: dataset.test.count,
      features: dataset.features,
      metrics: metricKeys(spec.metrics, spec.weightedMetrics),
      startStep: resumedFrom?.step ?? 0,
      // the checkpoint's name: the page needs no more, and the run directory may move
      ...(resumedFrom ? { resumedFrom: basename(resumedFrom.file) } : {}),
    },
  });
}

/** The page's routes, where the config has a metrics server; a page that cannot load is reported, and the run goes on without. */
export function livePage(feed: RunFeed, config: JobConfig, log: (line: string) => void): LiveRoutes | undefined {
  const listen = config.metrics.listen;
  if (listen === false) return undefined;
  try {
    // an unparsable address fails in startMetricsServer, with its own message
    return liveRoutes(feed, { host: /^(.*):\d+$/.exec(listen)?.[1]?.replace(/^\[(.*)\]$/, '$1') });
  } catch (err) {
    log(`warning: no live run page: ${(err as Error).message}`);
    return undefined;
  }
}

/** The run's end record, from its summary. */
export function endRunFeed(feed: RunFeed, summary: Summary, runDir: string): void {
  if (summary.interrupted) {
    const resume = summary.checkpoint.last ? `; continue with: dptrain start --resume ${runDir}` : ' before its first checkpoint';
    feed.end('interrupted', `run interrupted at step ${summary.steps}${resume}`);
    return;
  }
  const test = Object.fromEntries(Object.entries(summary.test).map(([k, v]) => [k, finite(v)]));
  const testText = summary.testRows > 0 ? `; test ${Object.entries(test).map(([k, v]) => `${k} ${v === null ? 'n/a' : v.toFixed(4)}`).join(', ')}` : '';
  const early = summary.stoppedEarly ? ` (stopped early${summary.restoredBestWeights ? `, weights of epoch ${summary.bestEpoch} restored` : ''})` : '';
  // wallSeconds is this process's: a resumed run's total is not known here
  const wall = summary.resumedFrom ? '' : ` in ${summary.wallSeconds.toFixed(1)} s`;
  feed.end('finished', `run finished: ${summary.epochs} epoch(s), ${summary.steps} steps${wall}${early}${testText}`, {
    ...(summary.testRows > 0 ? { test } : {}),
    bestEpoch: summary.bestEpoch,
  });
}
