/** What the fit loop reports: per epoch, and the time spent in each phase of the steps. */

export interface EpochLog {
  readonly epoch: number;
  readonly steps: number;
  readonly seconds: number;
  readonly samples: number;
  readonly samplesPerSecond: number;
  /** loss, metrics, val_loss, val_metrics. */
  readonly values: Readonly<Record<string, number>>;
}

/** Seconds spent in each phase of the steps, summed. */
export interface PhaseTimes {
  compute: number;
  reduce: number;
  apply: number;
  broadcast: number;
}

export function zeroPhases(): PhaseTimes {
  return { compute: 0, reduce: 0, apply: 0, broadcast: 0 };
}

export function addPhases(into: PhaseTimes, add: Readonly<PhaseTimes>): void {
  into.compute += add.compute;
  into.reduce += add.reduce;
  into.apply += add.apply;
  into.broadcast += add.broadcast;
}
