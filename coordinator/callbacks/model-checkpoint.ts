/**
 * Keras's ModelCheckpoint: at each epoch's end, the model (in the saved-model format `predict`
 * and `tf.loadLayersModel` read) is written to a folder of the run; with `saveBestOnly` (the
 * default here) only when `monitor` improved on the best so far (`mode` auto: higher is better
 * for accuracies, precision, recall, F1 and AUCs; `initialValueThreshold` the value to beat
 * first). A `{epoch}` or `{epoch:03d}` in the folder's name gives every save its own folder.
 * These are models to use, beside the rolling checkpoints that resume training; the best value
 * so far is a piece of training state, so a resumed run does not overwrite a better model.
 */
import type { ModelCheckpointConfig } from '../../shared/config/schema.js';
import { higherIsBetter } from '../../shared/model/metric-sums.js';
import type { EpochLog } from '../fit/logs.js';
import type { Stateful } from '../fit/state.js';
import type { Callback, FitLoopView } from './callback.js';

/** What a checkpoint keeps of a ModelCheckpoint. */
export interface ModelCheckpointState {
  /** The best monitored value so far (the threshold, or +-Infinity, before any save). */
  readonly best: number;
  /** 1-based epoch of the last save, 0 before any. */
  readonly savedEpoch: number;
}

/** Writes the model with these weights into `folder` (relative to the run), and says where. */
export type SaveModel = (weights: Float32Array, folder: string) => Promise<string>;

/** The folder for `epoch`: `{epoch}` and `{epoch:0Nd}` in the name replaced by the epoch (1-based). */
export function folderFor(template: string, epoch: number): string {
  return template.replace(/\{epoch(?::0(\d)d)?\}/g, (_, width: string | undefined) => String(epoch).padStart(width === undefined ? 0 : Number(width), '0'));
}

export class ModelCheckpoint implements Callback, Stateful<ModelCheckpointState> {
  private readonly higherIsBetter: boolean;
  private loop?: FitLoopView;
  private best: number;
  private savedEpoch = 0;

  constructor(
    readonly config: ModelCheckpointConfig,
    private readonly saveModel: SaveModel,
    private readonly log: (line: string) => void = () => {},
  ) {
    this.higherIsBetter = config.mode === 'max' || (config.mode === 'auto' && higherIsBetter(config.monitor));
    this.best = config.initialValueThreshold ?? (this.higherIsBetter ? -Infinity : Infinity);
  }

  setLoop(loop: FitLoopView): void {
    this.loop = loop;
  }

  private improves(value: number): boolean {
    return this.higherIsBetter ? value > this.best : value < this.best;
  }

  async onEpochEnd(log: EpochLog): Promise<void> {
    const value = log.values[this.config.monitor];
    const { monitor, saveBestOnly } = this.config;
    if (saveBestOnly) {
      // a NaN never improves (Keras's comparison is false too)
      if (value === undefined || !this.improves(value)) return;
      const from = Number.isFinite(this.best) ? this.best.toFixed(5) : String(this.best);
      const where = await this.saveModel(this.loop!.weights, folderFor(this.config.dir, log.epoch));
      this.log(`Epoch ${log.epoch}: ${monitor} improved from ${from} to ${value.toFixed(5)}; model saved to ${where}`);
      this.best = value;
    } else {
      await this.saveModel(this.loop!.weights, folderFor(this.config.dir, log.epoch));
    }
    this.savedEpoch = log.epoch;
  }

  /** 1-based epoch of the model last saved, 0 before any. */
  get epoch(): number {
    return this.savedEpoch;
  }

  save(): ModelCheckpointState {
    return { best: this.best, savedEpoch: this.savedEpoch };
  }

  restore(state: ModelCheckpointState): void {
    this.best = state.best;
    this.savedEpoch = state.savedEpoch;
  }
}
