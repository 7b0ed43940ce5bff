/**
 * Plots as Vega-Lite specs rendered headless: Vega-Lite compiles to Vega, Vega renders SVG
 * without a browser or canvas, and resvg turns the SVG into a PNG. Two charts: a run's history
 * (loss and accuracy per epoch, train vs validation) and the activation functions of the model
 * registry over [-10, 10], computed with the same TensorFlow.js functions the models use.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** Loss and each other metric per epoch, train and validation as separate series, one panel per quantity. */
export function historySpec(history: Record<string, number[]>, title: string): VegaLiteSpec {
  const epochs = history['epoch'];
  if (!epochs || epochs.length === 0) throw new ConfigError(`${title}: history.json has no epochs`);
  const quantities = Object.keys(history).filter((k) => !k.startsWith('val_') && !['epoch', 'seconds', 'samples_per_second'].includes(k));
  const values: Row[] = [];
  for (const quantity of quantities) {
    for (const [split, key] of [['train', quantity], ['validation', `val_${quantity}`]] as const) {
      const series = history[key];
      if (!series) continue;
      series.forEach((v, i) => {
        if (Number.isFinite(v)) values.push({ epoch: epochs[i]!, quantity, split, value: v });
      });
    }
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values },
    facet: { column: { field: 'quantity', type: 'nominal', title: null, sort: quantities } },
    spec: {
      width: 320,
      height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', axis: { format: 'd', ...(epochs.length <= 20 ? { values: epochs } : {}) } },
        y: { field: 'value', type: 'quantitative', scale: { zero: false } },
        color: { field: 'split', type: 'nominal', title: null },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/** `coordinator plot history RUN_DIR`: history.svg/.png in the run directory. */
export async function plotHistory(runDir: string, outDir = runDir): Promise<string[]> {
  let history: Record<string, number[]>;
  try {
    history = JSON.parse(readFileSync(join(runDir, 'history.json'), 'utf8')) as Record<string, number[]>;
  } catch (err) {
    throw new ConfigError(`${join(runDir, 'history.json')}: ${(err as Error).message}`);
  }
  mkdirSync(outDir, { recursive: true });
  return writeChart(historySpec(history, `Training history (${runDir})`), join(outDir, 'history'));
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

export function activationsSpec(values: Row[]): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Activation functions (TensorFlow.js, as the models use them)',
    width: 480,
    height: 320,
    data: { values },
    mark: { type: 'line' },
    encoding: {
      x: { field: 'x', type: 'quantitative' },
      y: { field: 'y', type: 'quantitative' },
      color: { field: 'activation', type: 'nominal', sort: [...PLOTTED_ACTIVATIONS] },
    },
  };
}

/** `coordinator plot activations --out DIR`: activations.svg/.png. */
export async function plotActivations(outDir: string): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  return writeChart(activationsSpec(await activationValues()), join(outDir, 'activations'));
}
