/** Data paths that name several files: tar shards, .npy files in parts. */
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DataError } from '../errors.js';

/**
 * The files a data path names: one file; a pattern with `*` in its file name (sorted); or
 * WebDataset's brace range, `train-{000..009}.tar` (zero-padded as written).
 */
export function expandPaths(pattern: string): string[] {
  const brace = /\{(\d+)\.\.(\d+)\}/.exec(pattern);
  if (brace) {
    const [whole, from, to] = brace as unknown as [string, string, string];
    const width = from.length;
    const paths: string[] = [];
    for (let i = Number(from); i <= Number(to); i++) paths.push(pattern.replace(whole, String(i).padStart(width, '0')));
    return paths;
  }
  const name = basename(pattern);
  if (!name.includes('*')) return [pattern];
  const dir = dirname(pattern);
  const re = new RegExp(`^${name.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    throw new DataError(`${pattern}: the folder ${dir} cannot be read`);
  }
  const paths = entries.filter((e) => re.test(e)).sort().map((e) => join(dir, e));
  if (paths.length === 0) throw new DataError(`${pattern}: no file matches`);
  return paths;
}
