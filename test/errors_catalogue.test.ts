// The error catalogue (docs/errors.md) and the code agree: every error code raised in src/ is listed with its
// cause and remedy, every listed code is still raised, and no plain Error/RangeError/TypeError is thrown
// (those would reach the user without a code). Codes are the UPPER_SNAKE string literals of src/, apart from
// a few names that are not errors (env variables, enum members of file formats) and the short reasons of the
// two prefixed families (SafetensorsError → SAFETENSORS_<reason>, VideoError → VIDEO_<reason>).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const SRC = 'src';
const NOT_ERROR_CODES = new Set(['INTER_LINEAR', 'F8_E4M3', 'F8_E5M2']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The literal members of `export type <name> = 'A' | 'B' …;` in a source file. */
function unionMembers(file: string, typeName: string): string[] {
  const text = readFileSync(file, 'utf8');
  const m = new RegExp(`export type ${typeName} =([^;]+);`).exec(text);
  assert.ok(m, `${file}: no type ${typeName}`);
  return [...m[1]!.matchAll(/'([A-Z_0-9]+)'/g)].map((x) => x[1]!);
}

function codesInSource(): Map<string, string> {
  const families: [string, string, string][] = [
    ['src/io/safetensors_format.ts', 'SafetensorsErrorCode', 'SAFETENSORS_'],
    ['src/io/video/errors.ts', 'VideoErrorCode', 'VIDEO_'],
  ];
  const reasons = new Set<string>();
  const codes = new Map<string, string>(); // code → first file raising it
  for (const [file, type, prefix] of families) {
    for (const r of unionMembers(file, type)) {
      reasons.add(r);
      codes.set(prefix + r, file);
    }
  }
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/['"]([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)['"]/g)) {
      const c = m[1]!;
      if (NOT_ERROR_CODES.has(c) || c.startsWith('KINEMA_') || reasons.has(c)) continue;
      if (!codes.has(c)) codes.set(c, relative('.', file));
    }
  }
  return codes;
}

function codesInCatalogue(): Set<string> {
  const text = readFileSync('docs/errors.md', 'utf8');
  return new Set([...text.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]!));
}

test('every error code raised in src/ is in docs/errors.md, and every catalogued code is raised', () => {
  const src = codesInSource();
  const doc = codesInCatalogue();
  assert.ok(src.size > 50 && doc.size > 50, `found ${src.size} codes in src, ${doc.size} in the catalogue`);
  const undocumented = [...src].filter(([c]) => !doc.has(c)).map(([c, f]) => `${c} (${f})`);
  assert.deepEqual(undocumented, [], `codes missing from docs/errors.md: ${undocumented.join(', ')}`);
  const stale = [...doc].filter((c) => !src.has(c));
  assert.deepEqual(stale, [], `docs/errors.md lists codes no longer raised: ${stale.join(', ')}`);
});

test('src/ throws no plain Error, RangeError or TypeError (each would reach the user without a code)', () => {
  const offenders: string[] = [];
  for (const file of sourceFiles(SRC)) {
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (
          /\b(throw|return|reject\()\s*new (Range|Type)?Error\(/.test(line) ||
          /throw (Range|Type)?Error\(/.test(line)
        )
          offenders.push(`${relative('.', file)}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(offenders, [], offenders.join('\n'));
});

test('the catalogue is linked from the README', () => {
  assert.match(readFileSync('README.md', 'utf8'), /docs\/errors\.md/);
});
