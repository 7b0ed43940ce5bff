/**
 * docs/configuration.md against the code, so the reference cannot drift: the job config schema
 * (shared/config/schema.ts), walked through zod's definitions, has exactly the keys the page's
 * tables list, with the same defaults, and every value an enum allows is named in its row's type;
 * the flag tables list exactly the flags each command's --help shows, and the config key each
 * flag overrides.
 *
 * Page format: a key row is `| \`dotted.path\` | type | default | meaning |`. `[]` is a list
 * entry; `[type=conv2d]` a list entry (or object) whose `type` is `conv2d`. A default cell starts
 * with "required", with "–" (no default; prose may follow), or with the default in backticks as
 * YAML, which the key's own schema must turn into its default. A flag row is
 * `| \`--flag VALUE\` | \`config.key\` or – | meaning |` under a heading `### \`dptrain COMMAND\``.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it, vi } from 'vitest';
import { main as coordinatorMain } from '../coordinator/cli.js';
import { JobConfigSchema } from '../shared/config/schema.js';
import { main as workerMain } from '../worker/cli.js';
import { ROOT } from './helpers.js';

const PAGE = 'docs/configuration.md';
const page = readFileSync(join(ROOT, PAGE), 'utf8');

/** What this test reads of a zod 4 schema (its `_zod.def`). */
interface ZodNode {
  readonly _zod: { readonly def: ZodDef };
  safeParse(value: unknown): { success: boolean; data?: unknown };
}
interface ZodDef {
  readonly type: string;
  readonly innerType?: ZodNode;
  readonly in?: ZodNode;
  readonly out?: ZodNode;
  readonly element?: ZodNode;
  readonly shape?: Readonly<Record<string, ZodNode>>;
  readonly options?: readonly ZodNode[];
  readonly discriminator?: string;
  readonly entries?: Readonly<Record<string, string | number>>;
  readonly values?: readonly unknown[];
}

/** Keys documented as a whole: train() writes model.keras from a tfjs-layers model; nobody writes it by hand. */
const OPAQUE = new Set(['model.keras']);

interface SchemaKey {
  /** The key's own schema (with its optional/default wrapper); absent for a discriminator. */
  readonly schema?: ZodNode;
  /** The literal values it allows (enum options, literals), which its row's type must name. */
  readonly values: readonly unknown[];
}

const def = (s: ZodNode): ZodDef => s._zod.def;
/** Through optional, default, prefault and pipes (a preprocess or transform is skipped). */
function core(s: ZodNode): ZodNode {
  const d = def(s);
  if (d.innerType && ['optional', 'default', 'prefault', 'nullable', 'readonly'].includes(d.type)) return core(d.innerType);
  if (d.type === 'pipe') return core(def(d.in!).type === 'transform' ? d.out! : d.in!);
  return s;
}
/** Literal values a key allows: enum options, literals, and those of a (non-discriminated) union's options. */
function literals(s: ZodNode): unknown[] {
  const d = def(core(s));
  if (d.type === 'enum') return Object.values(d.entries!);
  if (d.type === 'literal') return [...d.values!];
  if (d.type === 'union' && d.discriminator === undefined) return d.options!.flatMap(literals);
  return [];
}

/** Every key of the schema by dotted path. */
function schemaKeys(): Map<string, SchemaKey> {
  const keys = new Map<string, SchemaKey>();
  const visit = (s: ZodNode, path: string): void => {
    const d = def(core(s));
    if (d.type === 'array') return visit(d.element!, `${path}[]`);
    if (d.type === 'object') {
      for (const [name, field] of Object.entries(d.shape!)) {
        const p = path ? `${path}.${name}` : name;
        keys.set(p, { schema: field, values: literals(field) });
        if (!OPAQUE.has(p)) visit(field, p);
      }
      return;
    }
    if (d.type !== 'union') return;
    if (d.discriminator === undefined) {
      for (const option of d.options!) visit(option, path);
      return;
    }
    // a discriminated union: the discriminator as one key, each branch's keys under [disc=value]
    const disc = d.discriminator;
    const base = path.endsWith('[]') ? path.slice(0, -2) : path;
    const branches = d.options!.map((o) => [literals(def(core(o)).shape![disc]!)[0], def(core(o)).shape!] as const);
    keys.set(`${path}.${disc}`, { values: branches.map(([v]) => v) });
    for (const [value, shape] of branches) {
      for (const [name, field] of Object.entries(shape)) {
        if (name === disc) continue;
        const p = `${base}[${disc}=${String(value)}].${name}`;
        keys.set(p, { schema: field, values: literals(field) });
        visit(field, p);
      }
    }
  };
  visit(JobConfigSchema as unknown as ZodNode, '');
  return keys;
}

/** A Markdown table row's cells (a `\|` inside a cell is not a separator). */
const cells = (line: string): string[] => line.trim().replace(/^\||\|$/g, '').split(/(?<!\\)\|/).map((c) => c.trim());

interface KeyRow {
  readonly key: string;
  readonly type: string;
  readonly default: string;
  readonly line: number;
}

/** The page's key rows: a first cell that is one backticked key (flags, which start with --, are not keys). */
function keyRows(): KeyRow[] {
  return page.split('\n').flatMap((line, i) => {
    const c = cells(line);
    const key = /^`([A-Za-z][^`]*)`$/.exec(c[0] ?? '')?.[1];
    if (!line.startsWith('|') || key === undefined || c.length < 4) return [];
    return [{ key, type: c[1]!, default: c[2]!, line: i + 1 }];
  });
}

describe(`${PAGE}: the job config keys`, () => {
  const keys = schemaKeys();
  const rows = keyRows();
  const documented = new Map(rows.map((r) => [r.key, r]));

  it('walks the schema (a sanity check of the walk itself)', () => {
    for (const k of ['seed', 'data.label.column', 'model.layers[].type', 'model.layers[type=conv2d].kernelSize', 'compile.optimizer[name=adam].beta1', 'cluster.stepDeadline.factor', 'output.overwrite']) {
      expect(keys.has(k), k).toBe(true);
    }
    expect(keys.get('cluster.backend')!.values).toContain('native');
    expect(keys.size).toBeGreaterThan(100);
  });

  it('lists every key of the schema, once', () => {
    const missing = [...keys.keys()].filter((k) => !documented.has(k));
    expect(missing, `keys of shared/config/schema.ts without a row in ${PAGE}`).toEqual([]);
    const twice = rows.filter((r, i) => rows.findIndex((o) => o.key === r.key) !== i).map((r) => `${r.key} (line ${r.line})`);
    expect(twice, 'keys with more than one row').toEqual([]);
  });

  it('names no key the schema lacks', () => {
    const extra = rows.filter((r) => !keys.has(r.key)).map((r) => `${r.key} (line ${r.line})`);
    expect(extra, `rows of ${PAGE} for keys shared/config/schema.ts does not have`).toEqual([]);
  });

  it("gives each key the schema's default", () => {
    const wrong: string[] = [];
    for (const row of rows) {
      const schema = keys.get(row.key)?.schema;
      if (schema === undefined) continue;
      const given = schema.safeParse(undefined);
      const where = `${row.key} (line ${row.line}): default cell "${row.default}"`;
      if (!given.success) {
        if (!row.default.startsWith('required')) wrong.push(`${where}, but the key is required`);
      } else if (given.data === undefined) {
        if (!row.default.startsWith('–')) wrong.push(`${where}, but the schema has no default: start the cell with "–"`);
      } else {
        const code = /^`([^`]+)`/.exec(row.default)?.[1];
        const parsed = code === undefined ? undefined : schema.safeParse(parseYaml(code));
        if (!parsed?.success) wrong.push(`${where}, but the default is ${JSON.stringify(given.data)}: start the cell with it in backticks`);
        else if (JSON.stringify(parsed.data) !== JSON.stringify(given.data)) wrong.push(`${where} means ${JSON.stringify(parsed.data)}, but the default is ${JSON.stringify(given.data)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('names every value an enum allows in its type cell', () => {
    const unnamed: string[] = [];
    for (const row of rows) {
      for (const v of keys.get(row.key)?.values ?? []) {
        if (!row.type.includes(`\`${String(v)}\``)) unnamed.push(`${row.key} (line ${row.line}): \`${String(v)}\``);
      }
    }
    expect(unnamed).toEqual([]);
  });
});

/** What `run(argv)` prints (a command's --help). */
async function printed(run: (argv: string[]) => Promise<number>, argv: string[]): Promise<string> {
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void lines.push(args.join(' ')));
  try {
    expect(await run(argv)).toBe(0);
  } finally {
    spy.mockRestore();
  }
  return lines.join('\n');
}

/**
 * The flags a --help text offers (those of its usage line and of its option lines, --help
 * aside), each with the config key it says it overrides.
 */
function helpFlags(help: string): Map<string, string | undefined> {
  const [usage = '', ...rest] = help.split('\n');
  const flags = new Map<string, string | undefined>([...usage.matchAll(/--[a-z][a-z-]*/g)].map((m) => [m[0], undefined]));
  for (const line of rest) {
    const m = /^\s+(?:-\w, )?(--[a-z][a-z-]*)/.exec(line);
    if (m) flags.set(m[1]!, /\boverrides ([a-z][\w.]*)/.exec(line)?.[1]);
  }
  flags.delete('--help');
  return flags;
}

/** The flag rows under the page's heading `### \`dptrain COMMAND\``: flag -> the config key cell. */
function pageFlags(command: string): Map<string, string> {
  const lines = page.split('\n');
  const start = lines.findIndex((l) => l.trim() === `### \`dptrain ${command}\``);
  expect(start, `${PAGE} has no heading ### \`dptrain ${command}\``).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && /^#{1,3} /.test(l));
  const flags = new Map<string, string>();
  for (const line of lines.slice(start + 1, end < 0 ? undefined : end)) {
    const c = cells(line);
    const flag = /^`(--[a-z][a-z-]*)/.exec(c[0] ?? '')?.[1];
    if (line.startsWith('|') && flag) flags.set(flag, c[1] ?? '');
  }
  return flags;
}

describe(`${PAGE}: the command-line flags`, () => {
  const keys = schemaKeys();
  const commands: [string, (argv: string[]) => Promise<number>, string[]][] = [
    ['start', coordinatorMain, ['start', '--help']],
    ['evaluate', coordinatorMain, ['evaluate', '--help']],
    ['predict', coordinatorMain, ['predict', '--help']],
    ['plot', coordinatorMain, ['plot', '--help']],
    ['view', coordinatorMain, ['view', '--help']],
    ['demo-data', coordinatorMain, ['demo-data', '--help']],
    ['worker start', workerMain, ['start', '--help']],
  ];

  for (const [command, run, argv] of commands) {
    it(`dptrain ${command}: the flags of its --help, each with the key it overrides`, async () => {
      const help = helpFlags(await printed(run, argv));
      const documented = pageFlags(command);
      expect([...documented.keys()].sort(), `flags of \`dptrain ${command} --help\` vs ${PAGE}`).toEqual([...help.keys()].sort());
      for (const [flag, cell] of documented) {
        const key = /^`([^`]+)`/.exec(cell)?.[1];
        if (key !== undefined) expect(keys.has(key), `${flag}: ${key} is not a config key`).toBe(true);
        const overrides = help.get(flag);
        if (overrides !== undefined) expect(key, `${flag}: --help says it overrides ${overrides}`).toBe(overrides);
      }
    });
  }
});
