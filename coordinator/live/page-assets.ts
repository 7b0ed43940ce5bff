/**
 * The live page's files, read once and served from memory: index.html, app.js, style.css and
 * favicon.svg from coordinator/live/page/ (shipped as they are: the package lists that folder),
 * and uPlot from its npm package. Nothing is fetched from elsewhere.
 *
 * The page folder is found next to this module when it runs from source (tests, tsx), and at
 * the package root's coordinator/live/page/ when it runs compiled from dist/coordinator/live/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const PAGE_FILES: Readonly<Record<string, string>> = {
  '/index.html': 'text/html; charset=utf-8',
  '/app.js': 'text/javascript; charset=utf-8',
  '/style.css': 'text/css; charset=utf-8',
  '/favicon.svg': 'image/svg+xml',
};

/** The folder holding index.html. */
export function pageDir(): string {
  const candidates = [new URL('./page/', import.meta.url), new URL('../../../coordinator/live/page/', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((dir) => existsSync(`${dir}index.html`));
  if (!found) throw new Error(`the live page's files are missing (looked in ${candidates.join(' and ')}); reinstall dptrain`);
  return found;
}

let cached: ReadonlyMap<string, Asset> | undefined;

/** Every asset by URL path ('/' is index.html). */
export function pageAssets(): ReadonlyMap<string, Asset> {
  if (cached) return cached;
  const dir = pageDir();
  const assets = new Map<string, Asset>();
  for (const [path, type] of Object.entries(PAGE_FILES)) assets.set(path, { type, body: readFileSync(`${dir}${path.slice(1)}`) });
  assets.set('/', assets.get('/index.html')!);
  const require = createRequire(import.meta.url);
  assets.set('/uplot.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js')) });
  assets.set('/uplot.css', { type: 'text/css; charset=utf-8', body: readFileSync(require.resolve('uplot/dist/uPlot.min.css')) });
  cached = assets;
  return assets;
}
