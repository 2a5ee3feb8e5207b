import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { JsonParseError, parseJsonLenient, readJsonLenient } from '../../src/io/json.js';

test('standard JSON parses as JSON.parse does', () => {
  const text = '{"a": [1, -2.5e3, true, false, null], "b": {"c": "x\\"y\\u00e9\\n"}, "d": []}';
  assert.deepEqual(parseJsonLenient(text), JSON.parse(text));
});

test('Python literals NaN, Infinity, -Infinity are accepted outside strings', () => {
  const v = parseJsonLenient(
    '{"lambda_min_clipped": -Infinity, "hi": Infinity, "n": NaN, "l": [1, -Infinity]}',
  );
  assert.deepEqual(v, {
    lambda_min_clipped: Number.NEGATIVE_INFINITY,
    hi: Number.POSITIVE_INFINITY,
    n: Number.NaN,
    l: [1, Number.NEGATIVE_INFINITY],
  });
});

test('the same words inside strings stay strings, and nesting/escapes survive the slow path', () => {
  const v = parseJsonLenient('{"s": "NaN -Infinity", "t": "a\\\\", "x": NaN, "o": {"k": [{"z": "\\t"}]}}');
  assert.deepEqual(v, { s: 'NaN -Infinity', t: 'a\\', x: Number.NaN, o: { k: [{ z: '\t' }] } });
});

test('a "__proto__" key becomes an own property, not a prototype change', () => {
  const v = parseJsonLenient('{"__proto__": {"polluted": 1}, "x": NaN}') as Record<string, unknown>;
  assert.ok(Object.prototype.hasOwnProperty.call(v, '__proto__'));
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('errors name the source and the line:column of the problem', () => {
  const bad = [
    ['{"a": 1,\n  "b": +Infinity}', 2, 8],
    ['{"a": nan}', 1, 7],
    ['[1, 2', 1, 6],
    ['{"a" 1}', 1, 6],
    ['{"a": "x}', 1, 7],
    ['{"a": 1} x', 1, 10],
    ['{"a": 01}', 1, 8],
  ] as const;
  for (const [text, line, column] of bad) {
    assert.throws(
      () => parseJsonLenient(text, 'cfg.json'),
      (e: unknown) =>
        e instanceof JsonParseError &&
        e.line === line &&
        e.column === column &&
        e.message.startsWith(`cfg.json:${line}:${column}:`),
      `for ${JSON.stringify(text)}`,
    );
  }
});

test('readJsonLenient reads a file and names it in errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-json-'));
  try {
    writeFileSync(join(dir, 'ok.json'), '{"x": -Infinity}');
    writeFileSync(join(dir, 'bad.json'), '{"x": -Inf}');
    assert.deepEqual(await readJsonLenient(join(dir, 'ok.json')), { x: Number.NEGATIVE_INFINITY });
    await assert.rejects(readJsonLenient(join(dir, 'bad.json')), /bad\.json:1:7:/);
    await assert.rejects(readJsonLenient(join(dir, 'missing.json')), /missing\.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
