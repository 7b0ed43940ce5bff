/**
 * Plots as Vega-Lite specs rendered headless: Vega-Lite compiles to Vega, Vega renders SVG
 * without a browser or canvas, and resvg turns the SVG into a PNG. Two charts: a run's history
 * (loss and each metric per epoch, train vs validation, the restored epoch marked) and the
 * activation functions of the model registry over [-10, 10], one panel each, computed with the
 * same TensorFlow.js functions the models use.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { ConfigError } from '../shared/errors.js';

type Row = Record<string, number | string>;
// A Vega-Lite spec (kept loose: vega-lite's TopLevelSpec type is a deep union).
type VegaLiteSpec = Record<string, unknown>;

/** SVG and PNG of a Vega-Lite spec. */
export async function render(spec: VegaLiteSpec): Promise<{ svg: string; png: Buffer }> {
  const compiled = vegaLite.compile(spec as unknown as vegaLite.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  return { svg, png };
}

/** Writes `<base>.svg` and `<base>.png`; returns their paths. */
export async function writeChart(spec: VegaLiteSpec, base: string): Promise<string[]> {
  const { svg, png } = await render(spec);
  writeFileSync(`${base}.svg`, svg);
  writeFileSync(`${base}.png`, png);
  return [`${base}.svg`, `${base}.png`];
}

/** The epoch whose weights early stopping restored, to mark on the history chart. */
export interface RestoredEpoch {
  readonly epoch: number;
}

/**
 * Loss and each other metric per epoch, train and validation as separate series, one panel per
 * quantity with its name on the y axis; the epoch whose weights were restored (early stopping's
 * restoreBestWeights) marked in every panel.
 */
export function historySpec(history: Record<string, number[]>, title: string, restored?: RestoredEpoch): VegaLiteSpec {
  const epochs = history['epoch'];
  if (!epochs || epochs.length === 0) throw new ConfigError(`${title}: history.json has no epochs`);
  const quantities = Object.keys(history).filter((k) => !k.startsWith('val_') && !['epoch', 'seconds', 'samples_per_second'].includes(k));
  const panel = (quantity: string): VegaLiteSpec => {
    const values: Row[] = [];
    for (const [split, key] of [['train', quantity], ['validation', `val_${quantity}`]] as const) {
      history[key]?.forEach((v, i) => {
        if (Number.isFinite(v)) values.push({ epoch: epochs[i]!, split, value: v });
      });
    }
    const line: VegaLiteSpec = {
      data: { values },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', axis: { format: 'd', ...(epochs.length <= 20 ? { values: epochs } : {}) } },
        y: { field: 'value', type: 'quantitative', title: quantity, scale: { zero: false } },
        color: { field: 'split', type: 'nominal', title: null },
      },
    };
    const mark: VegaLiteSpec[] = restored
      ? [
          { data: { values: [{ epoch: restored.epoch }] }, mark: { type: 'rule', strokeDash: [4, 3], color: 'gray' }, encoding: { x: { field: 'epoch', type: 'quantitative' } } },
          {
            data: { values: [{ epoch: restored.epoch, label: `restored: epoch ${restored.epoch}` }] },
            mark: { type: 'text', align: 'left', baseline: 'top', dx: 4, dy: 4, color: 'gray' },
            encoding: { x: { field: 'epoch', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } },
          },
        ]
      : [];
    return { width: 320, height: 220, layer: [line, ...mark] };
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    hconcat: quantities.map(panel),
    resolve: { scale: { y: 'independent' } },
  };
}

/** `dptrain plot history RUN_DIR`: history.svg/.png in the run directory. */
export async function plotHistory(runDir: string, outDir = runDir): Promise<string[]> {
  let history: Record<string, number[]>;
  try {
    history = JSON.parse(readFileSync(join(runDir, 'history.json'), 'utf8')) as Record<string, number[]>;
  } catch (err) {
    throw new ConfigError(`${join(runDir, 'history.json')}: ${(err as Error).message}`);
  }
  const summaryFile = join(runDir, 'summary.json');
  let restored: RestoredEpoch | undefined;
  if (existsSync(summaryFile)) {
    const summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as { restoredBestWeights?: boolean; bestEpoch?: number };
    if (summary.restoredBestWeights && typeof summary.bestEpoch === 'number') restored = { epoch: summary.bestEpoch };
  }
  mkdirSync(outDir, { recursive: true });
  return writeChart(historySpec(history, `Training history (${runDir})`, restored), join(outDir, 'history'));
}

export const PLOTTED_ACTIVATIONS = ['sigmoid', 'tanh', 'swish', 'relu', 'leakyRelu'] as const;

/** The activations over [-10, 10] (401 points), computed by the registry's TensorFlow.js functions. */
export async function activationValues(): Promise<Row[]> {
  const [{ initBackend }, tf, { activations }] = await Promise.all([import('../shared/backend.js'), import('@tensorflow/tfjs-core'), import('../shared/model/registries.js')]);
  await initBackend('cpu');
  const xs = Array.from({ length: 401 }, (_, i) => -10 + i * 0.05);
  const input = tf.tensor1d(xs);
  const rows: Row[] = [];
  for (const name of PLOTTED_ACTIVATIONS) {
    const out = activations[name].fn(input);
    const ys = out.dataSync();
    out.dispose();
    xs.forEach((x, i) => rows.push({ activation: name, x, y: ys[i]! }));
  }
  input.dispose();
  return rows;
}

/** Reference lines per activation: x = 0 and y = 0 in each panel, and sigmoid's y = 0.5. */
const REFERENCE_Y: Readonly<Record<string, readonly number[]>> = { sigmoid: [0, 0.5] };

/** One panel per activation (as the Keras tutorial draws them), each with its reference lines. */
export function activationsSpec(values: Row[]): VegaLiteSpec {
  const references: Row[] = PLOTTED_ACTIVATIONS.flatMap((activation) => (REFERENCE_Y[activation] ?? [0]).map((ref) => ({ activation, ref })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Activation functions (TensorFlow.js, as the models use them)',
    data: { values: [...values, ...references] },
    facet: { field: 'activation', type: 'nominal', title: null, sort: [...PLOTTED_ACTIVATIONS] },
    columns: 5,
    spec: {
      width: 170,
      height: 170,
      layer: [
        { transform: [{ filter: 'isValid(datum.ref)' }], mark: { type: 'rule', color: 'gray', strokeDash: [4, 3] }, encoding: { y: { field: 'ref', type: 'quantitative' } } },
        { transform: [{ filter: 'datum.ref === 0' }], mark: { type: 'rule', color: 'gray', strokeDash: [4, 3] }, encoding: { x: { datum: 0, type: 'quantitative' } } },
        {
          transform: [{ filter: 'isValid(datum.y)' }],
          mark: { type: 'line', strokeWidth: 2 },
          encoding: {
            x: { field: 'x', type: 'quantitative', title: 'x' },
            y: { field: 'y', type: 'quantitative', title: 'f(x)' },
            color: { field: 'activation', type: 'nominal', sort: [...PLOTTED_ACTIVATIONS], legend: null },
          },
        },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/** `dptrain plot activations --out DIR`: activations.svg/.png. */
export async function plotActivations(outDir: string): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  return writeChart(activationsSpec(await activationValues()), join(outDir, 'activations'));
}
