import { describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { CsvParser } from '../shared/data/csv-parser.js';
import { parseCsv, tableRow } from '../shared/data/csv.js';
import { Rng } from '../shared/math/rng.js';

/** Records and their lines, the text fed in chunks of `size` characters (0: whole). */
function ours(text: string, size = 0): { records: string[][]; lines: number[]; linesRead: number } {
  const records: string[][] = [];
  const lines: number[] = [];
  const parser = new CsvParser('t.csv', (record, line) => {
    records.push(record);
    lines.push(line);
  });
  if (size === 0) parser.write(text);
  else for (let i = 0; i < text.length; i += size) parser.write(text.slice(i, i + size));
  parser.end();
  return { records, lines, linesRead: parser.linesRead };
}

/** What csv-parse makes of the same text, with the options dptrain used it with. */
function reference(text: string): { records: string[][]; lines: number[] } {
  const records: string[][] = [];
  const lines: number[] = [];
  parse(text, {
    bom: true,
    skip_empty_lines: true,
    on_record: (record: string[], context: { lines: number }) => {
      records.push(record);
      lines.push(context.lines);
      return null;
    },
  });
  return { records, lines };
}

const CASES = [
  'a,b\n1,2\n3,4\n',
  'a,b\r\n1,2\r\n3,4',
  'a,b\r1,2\r3,4\r',
  '\uFEFFname,v\nx,1\n',
  'a,b\n\n1,2\n\n\n3,4\n\n',
  'a,b\n"",x\n"q ""quoted"" here","with, comma"\n',
  'a,b\n"multi\nline\r\nfield",2\n3,"x"\n',
  'a,b,c\n,,\n1,,3\n',
  'only\n""\nx\n',
  'a,b\n"é, ü",日本\n😀,"😀\n😀"\n',
];

describe('CsvParser', () => {
  it('reads the records and lines csv-parse reads, whatever the chunks', () => {
    for (const text of CASES) {
      const want = reference(text);
      for (const size of [0, 1, 2, 3, 7, 64]) {
        const got = ours(text, size);
        expect(got.records, `${JSON.stringify(text)} in chunks of ${size}`).toEqual(want.records);
        // csv-parse counts a \r\n inside quotes as two lines; an editor, and we, as one
        if (!/"[^"]*\r\n/.test(text)) expect(got.lines, `${JSON.stringify(text)} in chunks of ${size}`).toEqual(want.lines);
      }
    }
  });

  it('agrees with csv-parse on 200 random files of quoted, multi-line and unicode fields', () => {
    const rng = new Rng(11);
    const pieces = ['a', 'bc', ' ', '1.5', ',', '"', '\n', '\r\n', 'é', '😀', 'x y'];
    for (let file = 0; file < 200; file++) {
      const columns = 1 + rng.int(4);
      const rows = 1 + rng.int(8);
      const eol = rng.next() < 0.5 ? '\n' : '\r\n';
      const lines: string[] = [];
      for (let r = 0; r <= rows; r++) {
        const cells = Array.from({ length: columns }, () => {
          const value = Array.from({ length: rng.int(4) }, () => pieces[rng.int(pieces.length)]!).join('');
          return /[",\r\n]/.test(value) || (rng.next() < 0.2 && value !== '') ? `"${value.replaceAll('"', '""')}"` : value;
        });
        lines.push(cells.join(','));
      }
      const text = lines.join(eol) + (rng.next() < 0.5 ? eol : '');
      let want: ReturnType<typeof reference>;
      try {
        want = reference(text);
      } catch {
        continue; // a record csv-parse refuses (a one-column blank line, say) is covered below
      }
      const got = ours(text, 1 + rng.int(9));
      expect(got.records, JSON.stringify(text)).toEqual(want.records);
      if (!text.includes('\r')) expect(got.lines, JSON.stringify(text)).toEqual(want.lines);
    }
  });

  it('gives each record the line it ends on, a \\r\\n counted once inside quotes too', () => {
    expect(ours('a,b\r\n"multi\r\nline",2\r\n3,4\r\n').lines).toEqual([1, 3, 4]);
  });

  it('counts the lines of a file, a last line without a line end included', () => {
    expect(ours('a\n1\n2\n').linesRead).toBe(3);
    expect(ours('a\n1\n2').linesRead).toBe(3);
    expect(ours('a\r\n"x\ny"\r\n').linesRead).toBe(3);
    expect(ours('').linesRead).toBe(0);
  });

  it('refuses malformed text, naming the source and the line', () => {
    expect(() => ours('a,b\n1,2\n3,4,5\n')).toThrow('t.csv: cannot parse CSV: line 3: 3 fields where the header has 2');
    expect(() => ours('a,b\n1,x"y\n')).toThrow('t.csv: cannot parse CSV: line 2: a quote inside the unquoted field 2 ("x\\"")');
    expect(() => ours('a,b\n1,"x" y\n')).toThrow('t.csv: cannot parse CSV: line 2: the quoted field 2 ("x") is followed by " ", not a comma or a line end');
    expect(() => ours('a,b\n1,"open\n2,3\n')).toThrow('t.csv: cannot parse CSV: line 4: a quoted field is not closed before the end of the file');
  });
});

describe('a table kept by column', () => {
  it('reads back every cell, past 256 and 65,536 distinct values in a column', () => {
    const n = 70_000;
    const text = `id,kind,v\n${Array.from({ length: n }, (_, i) => `row-${i}-with-a-long-name,${['a', 'b', 'c'][i % 3]},${i % 300}`).join('\n')}\n`;
    const table = parseCsv(text, 't.csv');
    expect(table.rowCount).toBe(n);
    for (const r of [0, 255, 256, 257, 65_535, 65_536, 65_537, n - 1]) {
      expect(tableRow(table, r)).toEqual([`row-${r}-with-a-long-name`, ['a', 'b', 'c'][r % 3], String(r % 300)]);
      expect(table.lines[r]).toBe(r + 2);
    }
  });

  it('keeps no values of the columns it is told to skip', () => {
    const table = parseCsv('id,y\nA-1,yes\nB-2,no\n', 't.csv', { skip: ['id'] });
    expect(table.header).toEqual(['id', 'y']);
    expect(tableRow(table, 1)).toEqual(['', 'no']);
  });

  it('refuses a header that names a column twice', () => {
    expect(() => parseCsv('a,b,a\n1,2,3\n', 't.csv')).toThrow('t.csv: column "a" appears twice in the header');
  });
});
