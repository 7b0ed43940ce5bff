/**
 * Plots: `dptrain plot history RUN_DIR` and `plot activations` write valid PNGs of real size
 * and SVGs with one line per series; the activation values are the registry's TensorFlow.js
 * functions.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { activationValues, PLOTTED_ACTIVATIONS } from '../coordinator/plot.js';
import { COORDINATOR_BIN, ROOT } from './helpers.js';

function coordinator(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [COORDINATOR_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Width and height from a PNG's IHDR, after checking the signature. */
function pngSize(file: string): { width: number; height: number; bytes: number } {
  const b = readFileSync(file);
  expect(b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), `${file} is a PNG`).toBe(true);
  expect(b.subarray(12, 16).toString('ascii')).toBe('IHDR');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), bytes: b.length };
}

/** The series drawn as lines: the label of the first point of each line mark's path. */
function lineSeries(svg: string, field: string): string[] {
  return [...svg.matchAll(/<g class="mark-line role-mark[^"]*"[^>]*>(.*?)<\/g>/gs)].flatMap((m) =>
    [...m[1]!.matchAll(/<path aria-label="([^"]*)"/g)].map((p) => new RegExp(`${field}: ([^;"]+)`).exec(p[1]!)?.[1] ?? '?'),
  );
}

/** The data marks of a kind (line, rule) in an SVG, in order: their aria labels and how many lines they draw. */
function markGroups(svg: string, kind: string): { labels: string[]; lines: number }[] {
  return [...svg.matchAll(new RegExp(`<g class="mark-${kind} role-mark[^"]*"[^>]*>(.*?)</g>`, 'gs'))].map((m) => ({
    labels: [...m[1]!.matchAll(/aria-label="([^"]*)"/g)].map((l) => l[1]!),
    lines: [...m[1]!.matchAll(/<line|<path/g)].length,
  }));
}

/** The axis titles drawn. */
function axisTitles(svg: string): string[] {
  return [...svg.matchAll(/<g class="mark-text role-axis-title"[^>]*>(.*?)<\/g>/gs)].flatMap((m) => [...m[1]!.matchAll(/>([^<>]+)<\/text>/g)].map((t) => t[1]!));
}

describe('plots', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dptrain-plot-'));

  it('history: loss and accuracy, train and validation: four lines, SVG and PNG', () => {
    writeFileSync(
      join(dir, 'history.json'),
      JSON.stringify({ epoch: [1, 2, 3, 4], seconds: [1, 1, 1, 1], samples_per_second: [9, 9, 9, 9], loss: [0.9, 0.6, 0.5, 0.45], accuracy: [0.6, 0.7, 0.75, 0.78], val_loss: [0.8, 0.62, 0.55, 0.56], val_accuracy: [0.62, 0.71, 0.74, 0.74] }),
    );
    const r = coordinator(['plot', 'history', dir]);
    expect(r.status, r.stderr).toBe(0);
    const svg = readFileSync(join(dir, 'history.svg'), 'utf8');
    expect(lineSeries(svg, 'split').sort()).toEqual(['train', 'train', 'validation', 'validation']);
    // each panel's y axis is its quantity; no epoch is marked without a restore
    expect(axisTitles(svg)).toEqual(expect.arrayContaining(['loss', 'accuracy', 'epoch']));
    expect(axisTitles(svg)).not.toContain('value');
    expect(svg).not.toContain('restored');
    const png = pngSize(join(dir, 'history.png'));
    expect(png.width).toBeGreaterThan(500);
    expect(png.height).toBeGreaterThan(200);
    expect(png.bytes).toBeGreaterThan(10_000);
  });

  it('history: the epoch whose weights early stopping restored is marked (summary.json)', () => {
    const restored = join(dir, 'restored');
    mkdirSync(restored);
    writeFileSync(join(restored, 'history.json'), JSON.stringify({ epoch: [1, 2, 3, 4], loss: [0.9, 0.6, 0.5, 0.45], val_loss: [0.8, 0.62, 0.55, 0.56] }));
    writeFileSync(join(restored, 'summary.json'), JSON.stringify({ restoredBestWeights: true, bestEpoch: 3 }));
    const r = coordinator(['plot', 'history', restored]);
    expect(r.status, r.stderr).toBe(0);
    const svg = readFileSync(join(restored, 'history.svg'), 'utf8');
    expect(svg).toContain('restored: epoch 3');
    expect(markGroups(svg, 'rule').map((g) => g.labels)).toEqual([['epoch: 3']]);
  });

  it('activations: one panel per function over [-10, 10] with reference lines x = 0, y = 0 (sigmoid: y = 0.5), SVG and PNG', () => {
    const out = join(dir, 'act');
    const r = coordinator(['plot', 'activations', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const svg = readFileSync(join(out, 'activations.svg'), 'utf8');
    expect(lineSeries(svg, 'activation').sort()).toEqual([...PLOTTED_ACTIVATIONS].sort());
    // one line mark per panel, each panel titled with its function
    expect(markGroups(svg, 'line')).toHaveLength(PLOTTED_ACTIVATIONS.length);
    for (const name of PLOTTED_ACTIVATIONS) expect(svg).toContain(`>${name}<`);
    // horizontal references per panel (sigmoid's 0 and 0.5), then one vertical x = 0 per panel
    const rules = markGroups(svg, 'rule');
    expect(rules.map((g) => g.labels)).toEqual([['ref: 0', 'ref: 0.5'], [], ['ref: 0'], [], ['ref: 0'], [], ['ref: 0'], [], ['ref: 0'], []]);
    expect(rules.map((g) => g.lines)).toEqual([2, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const png = pngSize(join(out, 'activations.png'));
    expect(png.width).toBeGreaterThan(400);
    expect(png.bytes).toBeGreaterThan(10_000);
  });

  it('the plotted values are the activation functions', async () => {
    const rows = await activationValues();
    const at = (name: string, x: number): number => rows.find((r) => r['activation'] === name && Math.abs((r['x'] as number) - x) < 1e-9)!['y'] as number;
    expect(at('sigmoid', 0)).toBeCloseTo(0.5, 6);
    expect(at('tanh', 1)).toBeCloseTo(Math.tanh(1), 6);
    expect(at('swish', 2)).toBeCloseTo(2 / (1 + Math.exp(-2)), 5);
    expect(at('relu', -3)).toBe(0);
    expect(at('leakyRelu', -10)).toBeCloseTo(-3, 5);
    expect(rows.filter((r) => r['activation'] === 'relu')).toHaveLength(401);
  });

  it('a run directory without history.json is named in the error', () => {
    const r = coordinator(['plot', 'history', join(dir, 'nope')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error \[E_CONFIG\]: .*nope\/history\.json/);
  });
});
