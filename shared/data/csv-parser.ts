/**
 * An RFC 4180 CSV parser fed text in chunks of any size, so a file is parsed as it is read and
 * never held whole: quoted fields (with doubled quotes, commas and line breaks inside), \n, \r\n
 * or \r line ends, a UTF-8 byte order mark, empty lines skipped, every record the header's
 * length. Each record reaches `onRecord` with the line it ends on (1-based), as csv-parse's
 * `info.lines` counts them, and where it is in the text (from the end of the record before it to
 * its line end: parsed alone, that span gives the record again). Errors name the source and the
 * line.
 */
import { DataError } from '../errors.js';

const COMMA = 44;
const QUOTE = 34;
const LF = 10;
const CR = 13;

type State = 'field' | 'unquoted' | 'quoted' | 'quote-in-quoted';

export interface CsvParserOptions {
  /**
   * The text is a file's bytes read as latin1, one character a byte, so records' spans are byte
   * offsets; fields are decoded from UTF-8. (CSV's commas, quotes and line ends are ASCII, and no
   * byte of a UTF-8 multi-byte character is.)
   */
  readonly bytes?: boolean;
}

/** A record, the line it ends on, and its span [start, end) in the text. */
export type OnRecord = (record: string[], line: number, start: number, end: number) => void;

/** UTF-8's byte order mark read as latin1. */
const BYTES_BOM = '\xEF\xBB\xBF';

export class CsvParser {
  private state: State = 'field';
  /** The current field's text from earlier chunks (a field cut by a chunk's end). */
  private pending = '';
  private record: string[] = [];
  /** The current field was quoted (an empty quoted field is a value, not an empty line). */
  private wasQuoted = false;
  private line = 1;
  /** A \r ended the last record: a \n right after it belongs to it. */
  private afterCr = false;
  private started = false;
  private columns = -1;
  private atLineStart = true;
  /** Characters of the text before the chunk being read. */
  private consumed = 0;
  /** Where the record being read starts (after the line end of the one before). */
  private recordStart = 0;
  private readonly bytes: boolean;

  constructor(
    private readonly source: string,
    private readonly onRecord: OnRecord,
    options: CsvParserOptions = {},
  ) {
    this.bytes = options.bytes === true;
  }

  write(text: string): void {
    let i = 0;
    if (!this.started && text.length > 0) {
      this.started = true;
      if (this.bytes ? text.startsWith(BYTES_BOM) : text.charCodeAt(0) === 0xfeff) i = this.recordStart = this.bytes ? 3 : 1;
    }
    const n = text.length;
    let start = i;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (this.afterCr) {
        this.afterCr = false;
        if (c === LF) {
          start = ++i;
          continue;
        }
      }
      switch (this.state) {
        case 'field':
          if (c === QUOTE) {
            this.state = 'quoted';
            this.wasQuoted = true;
            start = ++i;
            continue;
          }
          this.state = 'unquoted';
          start = i;
          continue;
        case 'unquoted': {
          // the field's plain characters at once, up to what ends it
          let k = i;
          for (; k < n; k++) {
            const d = text.charCodeAt(k);
            if (d === COMMA || d === LF || d === CR || d === QUOTE) break;
          }
          if (k === n) {
            this.pending += text.slice(start, n);
            i = start = n;
            continue;
          }
          const d = text.charCodeAt(k);
          if (d === QUOTE) throw this.error(`a quote inside the unquoted field ${this.record.length + 1} (${JSON.stringify(this.pending + text.slice(start, k + 1))}); quote the whole field and double the quotes inside it`);
          this.endField(text.slice(start, k));
          if (d !== COMMA) this.endRecord(d, k);
          i = start = k + 1;
          continue;
        }
        case 'quoted': {
          const q = text.indexOf('"', i);
          const end = q < 0 ? n : q;
          for (let k = text.indexOf('\n', i); k >= 0 && k < end; k = text.indexOf('\n', k + 1)) this.line++;
          if (q < 0) {
            this.pending += text.slice(start, n);
            i = start = n;
            continue;
          }
          this.pending += text.slice(start, q);
          this.state = 'quote-in-quoted';
          i = start = q + 1;
          continue;
        }
        case 'quote-in-quoted':
          if (c === QUOTE) {
            // a doubled quote: one quote of the value
            this.pending += '"';
            this.state = 'quoted';
            start = ++i;
          } else if (c === COMMA) {
            this.endField('');
            start = ++i;
          } else if (c === LF || c === CR) {
            this.endField('');
            this.endRecord(c, i);
            start = ++i;
          } else {
            throw this.error(`the quoted field ${this.record.length + 1} (${JSON.stringify(this.pending.slice(0, 40))}) is followed by ${JSON.stringify(text[i])}, not a comma or a line end`);
          }
          continue;
      }
    }
    if (n > 0) {
      const last = text.charCodeAt(n - 1);
      this.atLineStart = last === LF || last === CR;
    }
    this.consumed += n;
  }

  /** Lines read so far (a last line without a line end counts). */
  get linesRead(): number {
    return this.atLineStart ? this.line - 1 : this.line;
  }

  /** The end of the input: the last record, if it has no line end. */
  end(): void {
    if (this.state === 'quoted') throw this.error('a quoted field is not closed before the end of the file');
    if (this.state === 'field' && this.record.length === 0) return;
    this.endField('');
    this.emit(this.consumed);
  }

  private endField(tail: string): void {
    const value = this.pending + tail;
    this.record.push(this.bytes && /[\x80-\xff]/.test(value) ? Buffer.from(value, 'latin1').toString('utf8') : value);
    this.pending = '';
    this.state = 'field';
  }

  /** The record ends at character `at` of this chunk (its line end, `c`). */
  private endRecord(c: number, at: number): void {
    this.emit(this.consumed + at);
    this.recordStart = this.consumed + at + 1;
    this.line++;
    if (c === CR) this.afterCr = true;
  }

  private emit(end: number): void {
    const record = this.record;
    this.record = [];
    const empty = record.length === 1 && record[0] === '' && !this.wasQuoted;
    this.wasQuoted = false;
    if (empty) return;
    if (this.columns < 0) this.columns = record.length;
    else if (record.length !== this.columns) throw this.error(`${record.length} fields where the header has ${this.columns}`);
    this.onRecord(record, this.line, this.recordStart, end);
  }

  private error(why: string): DataError {
    return new DataError(`${this.source}: cannot parse CSV: line ${this.line}: ${why}`);
  }
}
