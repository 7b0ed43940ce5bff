/**
 * Loads a job config from YAML or JSON, applies command-line overrides, validates it, and turns
 * schema failures into one line naming the file and the key's path.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { JobConfigSchema, type JobConfig } from './schema.js';

/** Values from command-line flags, as dotted config paths (`fit.epochs`) to values. */
export type Overrides = Readonly<Record<string, unknown>>;

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)), '');
}

/** A zod issue as `path: message` (unknown keys by their full paths): config and checkpoint errors name the field so. */
export function formatIssue(issue: z.core.$ZodIssue): string {
  const at = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (at ? `${at}.${k}` : k));
    return `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`;
  }
  return `${at || '(top level)'}: ${issue.message}`;
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let node = target;
  keys.slice(0, -1).forEach((key) => {
    const next = node[key];
    if (next === undefined || next === null) node[key] = {};
    else if (typeof next !== 'object' || Array.isArray(next)) throw new ConfigError(`cannot set ${dotted}: ${key} is not an object`);
    node = node[key] as Record<string, unknown>;
  });
  node[keys[keys.length - 1]!] = value;
}

/**
 * Names for where overrides came from (`{ 'fit.epochs': '--epochs' }`): a bad value there is
 * blamed on that name instead of on the config's source.
 */
export type OverrideNames = Readonly<Record<string, string>>;

/** The override an issue is about (its path, or a parent of it), if any. */
function overrideOf(issue: z.core.$ZodIssue, overrides: Overrides): string | undefined {
  const at = formatPath(issue.path);
  return Object.keys(overrides).find((key) => overrides[key] !== undefined && (at === key || at.startsWith(`${key}.`) || at.startsWith(`${key}[`)));
}

/** Validates a raw config object (after overrides); `source` names it in errors. */
export function validateConfig(raw: unknown, source: string, overrides: Overrides = {}, names: OverrideNames = {}): JobConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${source}: the config must be a mapping with keys data, model, compile, fit, cluster, output`);
  }
  const copy = structuredClone(raw) as Record<string, unknown>;
  for (const [path, value] of Object.entries(overrides)) {
    if (value !== undefined) setPath(copy, path, value);
  }
  const result = JobConfigSchema.safeParse(copy);
  if (!result.success) {
    const fromSource: string[] = [];
    const fromOverrides: string[] = [];
    for (const issue of result.error.issues) {
      const key = overrideOf(issue, overrides);
      if (key === undefined) fromSource.push(formatIssue(issue));
      else fromOverrides.push(`${names[key] ?? `override ${key}`} ${JSON.stringify(overrides[key])}: ${issue.message} (${formatIssue(issue).split(':')[0]})`);
    }
    throw new ConfigError([...fromOverrides, ...(fromSource.length ? [`${source}: ${fromSource.join('; ')}`] : [])].join('; '));
  }
  return result.data;
}

/** Reads and validates a config file. Relative `data.path` is resolved against the file's folder. */
export function loadConfig(file: string, overrides: Overrides = {}, names: OverrideNames = {}): JobConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`cannot read config file ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  const config = validateConfig(raw, file, overrides, names);
  // Paths in the file are relative to the file; paths given as flags stay as given.
  const near = (path: string | undefined, override: string): string | undefined =>
    path && overrides[override] === undefined && !isAbsolute(path) ? resolve(dirname(file), path) : path;
  const { cluster } = config;
  const dataPath = near(config.data.path, 'data.path');
  const labelsPath = near(config.data.labels, 'data.labels');
  const { validation } = config.data;
  const validationPaths = validation && { path: near(validation.path, 'data.validation.path')!, ...(validation.labels ? { labels: near(validation.labels, 'data.validation.labels')! } : {}) };
  const tokenFile = near(cluster.tokenFile, 'cluster.tokenFile');
  const tls = cluster.tls && { cert: near(cluster.tls.cert, 'cluster.tls.cert')!, key: near(cluster.tls.key, 'cluster.tls.key')! };
  return {
    ...config,
    data: { ...config.data, ...(dataPath ? { path: dataPath } : {}), ...(labelsPath ? { labels: labelsPath } : {}), ...(validationPaths ? { validation: validationPaths } : {}) },
    cluster: { ...cluster, ...(tokenFile ? { tokenFile } : {}), ...(tls ? { tls } : {}) },
  };
}

/**
 * The config with every file path absolute (resolved against `base`, the directory the run
 * started in): what a run directory's config.json holds, so `--resume` finds the data from any
 * directory.
 */
export function withAbsolutePaths(config: JobConfig, base = process.cwd()): JobConfig {
  const abs = (path: string | undefined): string | undefined => (path === undefined ? undefined : resolve(base, path));
  const { data, cluster, output } = config;
  const tls = cluster.tls && { cert: abs(cluster.tls.cert)!, key: abs(cluster.tls.key)! };
  return {
    ...config,
    data: {
      ...data,
      ...(data.path ? { path: abs(data.path) } : {}),
      ...(data.labels ? { labels: abs(data.labels) } : {}),
      ...(data.validation ? { validation: { path: abs(data.validation.path)!, ...(data.validation.labels ? { labels: abs(data.validation.labels)! } : {}) } } : {}),
    },
    cluster: { ...cluster, ...(cluster.tokenFile ? { tokenFile: abs(cluster.tokenFile) } : {}), ...(tls ? { tls } : {}) },
    output: { ...output, ...(output.dir ? { dir: abs(output.dir) } : {}) },
  };
}
