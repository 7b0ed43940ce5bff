/**
 * Peer-supplied text (a worker's name, its backend, a version, an error it reports) made safe
 * to log and echo: control characters (newlines, ANSI escapes) become "?", and it is cut to
 * `max` characters. A peer cannot forge log lines or flood the log through it.
 */
export function printable(text: string, max = 80): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}... (${text.length} characters)` : clean;
}

/** JSON.stringify of a peer's value, cut like printable (for values that may not be strings). */
export function printableValue(value: unknown, max = 40): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = typeof value;
  }
  return printable(text, max);
}

/**
 * A WebSocket close reason: at most 123 bytes of UTF-8 (RFC 6455 5.5: control frames carry 125,
 * two of them the code); ws throws on more, so a long or non-ASCII message must be cut by bytes.
 */
export function closeReason(text: string): string {
  let out = printable(text, 123);
  while (Buffer.byteLength(out, 'utf8') > 123) out = out.slice(0, -1);
  return out;
}
