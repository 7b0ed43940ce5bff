/**
 * What both command lines share: a subcommand's own --help, and negative numbers as flag values.
 */

/** Whether a subcommand's arguments ask for its help (before they are parsed strictly). */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.some((a) => a === '--help' || a === '-h');
}

/**
 * node:util parseArgs refuses `--epochs -1` as ambiguous (the value looks like a flag). A value
 * that is a negative number is joined to its flag (`--epochs=-1`), so the flag's own check
 * refuses it with a message about the value instead of about the syntax.
 */
export function joinNegativeValues(argv: readonly string[], valueFlags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg.startsWith('--') && !arg.includes('=') && valueFlags.includes(arg.slice(2)) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}
