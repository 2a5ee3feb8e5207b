// Runs one fuzz target with fast-check (shrinking a failure to a small input) and replays or extends the
// committed corpus (test/corpus/<target>/<hash>.bin: inputs that once failed, kept so they never fail again).
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkCase } from './targets.js';
import type { FuzzTarget } from './targets.js';

export const CORPUS_DIR = 'test/corpus';
const SHRINK_BUDGET_MS = 60_000;

export interface FuzzFailure {
  target: string;
  seed: number;
  reason: string;
  /** The shrunk input. */
  input: Uint8Array;
}

export interface FuzzResult {
  runs: number;
  failure: FuzzFailure | null;
}

/** `onCase` sees every input just before it runs (the fuzz script's watchdog keeps the last one). */
export async function fuzzTarget(
  target: FuzzTarget,
  seed: number,
  numRuns: number,
  onCase?: (input: Uint8Array) => void,
): Promise<FuzzResult> {
  let reason = '';
  const property = fc.asyncProperty(target.arbitrary(), async (input) => {
    onCase?.(input);
    const r = await checkCase(target, input);
    if (r !== null) {
      reason = r;
      return false;
    }
    return true;
  });
  // Shrinking a slow failure (each step up to CASE_TIME_LIMIT_MS) could take hours: stop after SHRINK_BUDGET_MS
  // and keep the smallest failing input found so far.
  const details = await fc.check(property, {
    seed,
    numRuns,
    endOnFailure: false,
    interruptAfterTimeLimit: SHRINK_BUDGET_MS,
  });
  if (!details.failed || !details.counterexample) return { runs: details.numRuns, failure: null };
  const input = details.counterexample[0];
  // The reason recorded last belongs to the last shrink step, i.e. to the counterexample.
  return { runs: details.numRuns, failure: { target: target.name, seed, reason, input } };
}

/** Saves a failing input under its content hash; returns the path (an existing file is left as is). */
export function saveToCorpus(f: FuzzFailure): string {
  const dir = join(CORPUS_DIR, f.target);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${createHash('sha256').update(f.input).digest('hex').slice(0, 16)}.bin`);
  if (!existsSync(path)) {
    writeFileSync(`${path}.tmp`, f.input);
    renameSync(`${path}.tmp`, path);
  }
  return path;
}

export function corpusFiles(target: string): string[] {
  const dir = join(CORPUS_DIR, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.endsWith('.bin'))
    .sort()
    .map((n) => join(dir, n));
}

/** Every corpus input of `target` that fails today, with why. */
export async function replayCorpus(target: FuzzTarget): Promise<{ files: number; failures: string[] }> {
  const failures: string[] = [];
  const files = corpusFiles(target.name);
  for (const path of files) {
    const r = await checkCase(target, readFileSync(path));
    if (r !== null) failures.push(`${path}: ${r}`);
  }
  return { files: files.length, failures };
}

/** A short printable preview of an input (text if it is mostly text, else hex). */
export function preview(input: Uint8Array, max = 160): string {
  const text = new TextDecoder().decode(input.slice(0, max));
  const printable = [...text].filter((c) => c >= ' ' || c === '\n').length / Math.max(1, text.length);
  const body = printable > 0.9 ? JSON.stringify(text) : Buffer.from(input.slice(0, max / 2)).toString('hex');
  return `${body}${input.length > max ? ` … (${input.length} bytes)` : ''}`;
}
