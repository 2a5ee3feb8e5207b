// JSON reading that also accepts the non-standard literals Python's `json` module writes by default:
// `NaN`, `Infinity` and `-Infinity` (outside strings). Hub scheduler configs contain e.g.
// `"lambda_min_clipped": -Infinity`, which plain `JSON.parse` rejects.

import { resolveLoader } from './loader.js';
import type { FileLoader } from './loader.js';
import { KinemaError } from '../errors.js';

/** Parse error with the source name and a 1-based line:column position. */
export class JsonParseError extends KinemaError {
  constructor(
    message: string,
    readonly source: string,
    readonly offset: number,
    readonly line: number,
    readonly column: number,
  ) {
    super('JSON_INVALID', `${source}:${line}:${column}: ${message}`);
    this.name = 'JsonParseError';
  }
}

/**
 * Parse JSON text, additionally accepting `NaN`, `Infinity` and `-Infinity` as numbers.
 * `source` names the text (usually a file path) in error messages.
 */
export function parseJsonLenient(text: string, source = '<json>'): unknown {
  try {
    return JSON.parse(text) as unknown; // fast path: standard JSON
  } catch {
    return new LenientJsonParser(text, source).parseDocument();
  }
}

/** Read a UTF-8 file and parse it with {@link parseJsonLenient}; errors name the file. */
export async function readJsonLenient(path: string, loader?: FileLoader): Promise<unknown> {
  let text: string;
  try {
    text = resolveLoader(loader).readText(path);
  } catch (err) {
    throw new KinemaError('FILE_UNREADABLE', `cannot read JSON file ${path}: ${(err as Error).message}`);
  }
  return parseJsonLenient(text, path);
}

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

class LenientJsonParser {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly source: string,
  ) {}

  parseDocument(): unknown {
    const value = this.parseValue();
    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail('unexpected content after the JSON value');
    return value;
  }

  private parseValue(): unknown {
    this.skipWhitespace();
    const ch = this.text[this.pos];
    if (ch === undefined) this.fail('unexpected end of input, expected a value');
    if (ch === '{') return this.parseObject();
    if (ch === '[') return this.parseArray();
    if (ch === '"') return this.parseString();
    for (const [word, value] of KEYWORDS) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.parseNumber();
  }

  private parseObject(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.pos++; // '{'
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.fail('expected a string key');
      const key = this.parseString();
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') this.fail("expected ':' after an object key");
      this.pos++;
      Object.defineProperty(out, key, {
        value: this.parseValue(),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      this.skipWhitespace();
      const sep = this.text[this.pos++];
      if (sep === '}') return out;
      if (sep !== ',') this.fail("expected ',' or '}' in an object", this.pos - 1);
    }
  }

  private parseArray(): unknown[] {
    const out: unknown[] = [];
    this.pos++; // '['
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.parseValue());
      this.skipWhitespace();
      const sep = this.text[this.pos++];
      if (sep === ']') return out;
      if (sep !== ',') this.fail("expected ',' or ']' in an array", this.pos - 1);
    }
  }

  private parseString(): string {
    const start = this.pos;
    let i = start + 1;
    for (;;) {
      const code = this.text.charCodeAt(i);
      if (Number.isNaN(code)) this.fail('unterminated string', start);
      if (code === 0x22) break; // closing quote
      if (code < 0x20) this.fail('control character in string', i);
      i += code === 0x5c ? 2 : 1; // skip the escaped character after a backslash
    }
    this.pos = i + 1;
    try {
      return JSON.parse(this.text.slice(start, this.pos)) as string; // decodes escapes
    } catch {
      return this.fail('invalid escape sequence in string', start);
    }
  }

  private parseNumber(): number {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.text);
    if (m === null) this.fail('unexpected character, expected a value');
    this.pos += m[0].length;
    return Number(m[0]);
  }

  private skipWhitespace(): void {
    while (this.pos < this.text.length && WHITESPACE.has(this.text[this.pos] as string)) this.pos++;
  }

  private fail(message: string, at = this.pos): never {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < at && i < this.text.length; i++) {
      if (this.text.charCodeAt(i) === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    throw new JsonParseError(message, this.source, at, line, at - lineStart + 1);
  }
}

// Order matters: '-Infinity' must be tried before the number grammar sees the '-'.
const KEYWORDS: ReadonlyArray<readonly [string, unknown]> = [
  ['true', true],
  ['false', false],
  ['null', null],
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-Infinity', Number.NEGATIVE_INFINITY],
];
