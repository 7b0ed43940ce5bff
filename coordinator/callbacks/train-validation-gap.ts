/**
 * A warning when the training figures and the validation figures disagree too much to both be
 * true: training loss far below validation loss for several epochs in a row while validation
 * accuracy stays at the majority-class baseline (the model predicts one class). The training
 * figures are the participants' own sums, so a participant that lies about them (or poisons the
 * gradient while reporting good sums) shows up here, next to the epoch lines, where it is seen;
 * so does plain overfitting, which the warning names as the other cause.
 */
import type { Dataset } from '../../shared/data/dataset.js';
import { metricName, type ModelSpec } from '../../shared/model/spec.js';
import type { EpochLog } from '../fit/logs.js';
import type { Callback } from './callback.js';

export interface GapOptions {
  /** Validation loss above this many times the training loss is a gap. */
  readonly lossRatio: number;
  /** Epochs in a row with a gap before the warning. */
  readonly epochs: number;
  /**
   * The majority-class share of the validation set and the log key of validation accuracy: a gap
   * counts only while that accuracy is within `slack` of the share. Undefined: the loss alone.
   */
  readonly baseline?: { readonly key: string; readonly share: number; readonly slack: number } | undefined;
}

export const GAP_DEFAULTS: Omit<GapOptions, 'baseline'> = { lossRatio: 2, epochs: 3 };

export class TrainValidationGap implements Callback {
  private streak = 0;
  /** Warnings given (one per streak). */
  warnings = 0;

  constructor(
    private readonly log: (line: string) => void,
    private readonly options: GapOptions,
  ) {}

  onEpochEnd({ epoch, values }: EpochLog): void {
    const { loss, val_loss: valLoss } = values;
    const { lossRatio, epochs, baseline } = this.options;
    const accuracy = baseline ? values[baseline.key] : undefined;
    const atBaseline = baseline === undefined || (accuracy !== undefined && accuracy <= baseline.share + baseline.slack);
    const gap = loss !== undefined && valLoss !== undefined && Number.isFinite(loss) && Number.isFinite(valLoss) && valLoss > lossRatio * Math.max(loss, 0) && atBaseline;
    this.streak = gap ? this.streak + 1 : 0;
    if (this.streak !== epochs) return;
    this.warnings++;
    const held = baseline && accuracy !== undefined ? ` while ${baseline.key} ${accuracy.toFixed(4)} is the majority-class share (${baseline.share.toFixed(4)})` : '';
    this.log(
      `warning: epoch ${epoch + 1}: training loss ${loss!.toFixed(4)} is less than 1/${lossRatio} of validation loss ${valLoss!.toFixed(4)} for ${epochs} epochs${held}: ` +
        'the training figures do not describe this model; a participant may be sending false sums or gradients (try cluster.aggregation: median, see SECURITY.md), or the model overfits',
    );
  }
}

/** Accuracy metrics whose validation value can be compared with the majority-class share. */
const ACCURACIES = ['accuracy', 'binaryAccuracy', 'categoricalAccuracy'] as const;

/**
 * The gap options for a model and data set: with an accuracy metric and a validation split, the
 * majority-class share of the validation labels (one output: labels >= 0.5 are the positive
 * class; several: the largest output is the class).
 */
export function gapOptions(spec: Pick<ModelSpec, 'metrics'>, dataset: Pick<Dataset, 'y' | 'outputs' | 'val'>): GapOptions {
  const metric = spec.metrics.map(metricName).find((m) => (ACCURACIES as readonly string[]).includes(m));
  const { y, outputs, val } = dataset;
  if (metric === undefined || val.count === 0) return GAP_DEFAULTS;
  const counts = new Array<number>(Math.max(2, outputs)).fill(0);
  for (let r = val.start; r < val.start + val.count; r++) {
    if (outputs === 1) counts[y[r]! >= 0.5 ? 1 : 0]!++;
    else {
      let best = 0;
      for (let k = 1; k < outputs; k++) if (y[r * outputs + k]! > y[r * outputs + best]!) best = k;
      counts[best]!++;
    }
  }
  // within one validation sample's worth, or half a point, of the share
  const slack = Math.max(0.005, 1 / val.count);
  return { ...GAP_DEFAULTS, baseline: { key: `val_${metric}`, share: Math.max(...counts) / val.count, slack } };
}
