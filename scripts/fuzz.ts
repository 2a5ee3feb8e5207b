// npm run fuzz -- --minutes N [--target NAME …] [--seed S]: runs every fuzz target (test/fuzz/targets.ts)
// round-robin with a new seed per batch until the time is up, prints the cases run per target and each failure
// with its seed and shrunk input, and saves every failing input into test/corpus/<target>/ (committed; npm
// test replays it). Each target runs in its own child process (test/fuzz/worker.ts), watched: a case that
// gives no answer for WATCHDOG_MS (a synchronous spin no in-process timeout can stop) gets the child killed,
// and a child that dies (a native crash in a decoder) is reported too, each with the input that caused it. The last line is the summary `N cases, F failures`; exit 1 on failure.
import { Command } from 'commander';
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { CASE_TIME_LIMIT_MS, TARGETS } from '../test/fuzz/targets.js';
import { preview, saveToCorpus } from '../test/fuzz/runner.js';
import type { FuzzFailure, FuzzResult } from '../test/fuzz/runner.js';

/** Cases per target per batch: small, so every target gets turns even in a one-minute run. */
const BATCH: Record<string, number> = { video: 10, tokenizer: 15, torch_ckpt: 40, cli_generate_args: 30 };
const DEFAULT_BATCH = 100;
const WATCHDOG_MS = CASE_TIME_LIMIT_MS * 3;
/** Worker start (tsx compiles the targets, the video target encodes its base files). */
const START_MS = 120_000;

const program = new Command()
  .name('fuzz')
  .option(
    '--minutes <n>',
    'how long to fuzz',
    (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new Error(`--minutes must be a positive number, got '${v}'`);
      return n;
    },
    1,
  )
  .option('--target <name...>', `only these targets (${TARGETS.map((t) => t.name).join(', ')})`)
  .option('--seed <n>', 'first seed (each batch adds 1)', (v) => Number.parseInt(v, 10), Date.now() % 2 ** 31)
  .parse();
const opts = program.opts<{ minutes: number; target?: string[]; seed: number }>();
const unknown = (opts.target ?? []).filter((n) => !TARGETS.some((t) => t.name === n));
if (unknown.length > 0) {
  console.error(
    `fuzz: unknown target ${unknown.join(', ')}; known: ${TARGETS.map((t) => t.name).join(', ')}`,
  );
  process.exit(2);
}
const names = opts.target ?? TARGETS.map((t) => t.name);

type Answer = { kind: 'ready' } | { kind: 'case'; input: Uint8Array } | { kind: 'done'; result: FuzzResult };

/** The child process of one target, restarted after a hang or a crash. */
class TargetWorker {
  private worker: ChildProcess | null = null;
  private lastInput: Uint8Array = new Uint8Array();
  private onAnswer: ((a: Answer) => void) | null = null;
  constructor(readonly name: string) {}

  private start(): ChildProcess {
    const w = fork(new URL('../test/fuzz/worker.ts', import.meta.url), [this.name], {
      execArgv: ['--import', 'tsx'],
      serialization: 'advanced', // Uint8Arrays survive the IPC channel
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    w.on('message', (a: Answer) => {
      if (a.kind === 'case') this.lastInput = a.input;
      this.onAnswer?.(a);
    });
    w.on('exit', (code, signal) => {
      if (this.worker !== w) return; // killed by us
      this.worker = null;
      const why = signal ? `the process died of ${signal}` : `the process exited with status ${code}`;
      this.onAnswer?.({ kind: 'done', result: { runs: 1, failure: this.crash(`${why} (a native crash?)`) } });
    });
    return w;
  }

  private crash(reason: string): FuzzFailure {
    return { target: this.name, seed: -1, reason, input: this.lastInput };
  }

  /** Waits for the next answer that is not a case, resetting the watchdog on every case. */
  private next(limitMs: number): Promise<Answer | null> {
    return new Promise((resolve) => {
      let timer = setTimeout(() => resolve(null), limitMs);
      this.onAnswer = (a) => {
        clearTimeout(timer);
        if (a.kind === 'case') timer = setTimeout(() => resolve(null), WATCHDOG_MS);
        else resolve(a);
      };
    });
  }

  async batch(seed: number, runs: number): Promise<FuzzResult> {
    if (this.worker === null) {
      this.worker = this.start();
      const ready = await this.next(START_MS);
      if (ready?.kind !== 'ready')
        return this.hang(seed, `the worker did not start within ${START_MS / 1000} s`);
    }
    this.worker.send({ seed, runs });
    const answer = await this.next(WATCHDOG_MS);
    if (answer === null) return this.hang(seed, `no answer within ${WATCHDOG_MS} ms (a synchronous spin)`);
    if (answer.kind !== 'done') return this.hang(seed, 'unexpected message');
    if (answer.result.failure) answer.result.failure.seed = seed;
    return answer.result;
  }

  private async hang(seed: number, reason: string): Promise<FuzzResult> {
    const w = this.worker;
    this.worker = null;
    w?.kill('SIGKILL');
    return { runs: 1, failure: { ...this.crash(reason), seed } };
  }

  close(): void {
    const w = this.worker;
    this.worker = null;
    w?.kill();
  }
}

const deadline = Date.now() + opts.minutes * 60_000;
const workers = names.map((n) => new TargetWorker(n));
const cases = new Map<string, number>(names.map((n) => [n, 0]));
const failures: string[] = [];
let seed = opts.seed;
console.log(`fuzzing ${names.length} targets for ${opts.minutes} min from seed ${seed}`);
for (let round = 1; Date.now() < deadline; round++) {
  for (const w of workers) {
    if (Date.now() >= deadline) break;
    const r = await w.batch(seed, BATCH[w.name] ?? DEFAULT_BATCH);
    cases.set(w.name, cases.get(w.name)! + r.runs);
    if (r.failure) {
      const saved = r.failure.input.length > 0 ? saveToCorpus(r.failure) : '(no input)';
      const line = `${w.name} seed ${seed}: ${r.failure.reason}\n  input: ${preview(r.failure.input)}\n  saved: ${saved}`;
      failures.push(line);
      console.log(`FAIL ${line}`);
    }
    seed++;
  }
  const total = [...cases.values()].reduce((a, b) => a + b, 0);
  const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
  process.stderr.write(`round ${round}: ${total} cases, ${failures.length} failures, ${left} s left\n`);
}
for (const w of workers) w.close();

console.log('\ncases per target:');
for (const [name, n] of cases) console.log(`  ${name.padEnd(20)} ${String(n).padStart(7)}`);
const total = [...cases.values()].reduce((a, b) => a + b, 0);
console.log(`${total} cases, ${failures.length} failures`);
process.exit(failures.length > 0 ? 1 : 0);
