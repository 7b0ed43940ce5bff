/** The built-in demo job: the seed's churn model on generated Telco-schema data. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** examples/demo.yaml, read from the package (works from source and from dist). */
export function demoConfigRaw(): Record<string, unknown> {
  for (const rel of ['../examples/demo.yaml', '../../examples/demo.yaml']) {
    try {
      return parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as Record<string, unknown>;
    } catch {
      // try the next location
    }
  }
  throw new Error('examples/demo.yaml is missing from the package');
}

export const DEMO_CONFIG_SOURCE = 'demo config (examples/demo.yaml)';
