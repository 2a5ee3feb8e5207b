// Progress reporting on stderr for long CLI work. On a TTY: one line redrawn in place (bar, count, rate, ETA),
// at most ~10 times a second. Elsewhere (pipes, CI logs): an occasional plain line (every 10 s by default) and
// a final summary line, so logs stay short. A TTY of 0 columns gets a plain line per step.

export interface ProgressStream {
  write(chunk: string): boolean;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressOptions {
  /** Text before the bar, e.g. the file being processed. */
  label: string;
  /** Expected number of steps; null/undefined when unknown (no bar, no ETA). */
  total?: number | null;
  /** Unit for the rate, e.g. 'frames'. Default 'items'. */
  unit?: string;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Force TTY or plain mode (default: the stream's isTTY). */
  tty?: boolean;
  /** Minimum time between plain-mode lines, ms. Default 10000. */
  plainIntervalMs?: number;
  /** Clock in ms (for tests). Default performance.now. */
  now?: () => number;
}

/** Seconds as m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function formatRate(rate: number): string {
  if (!Number.isFinite(rate)) return '?';
  return rate >= 100 ? rate.toFixed(0) : rate >= 10 ? rate.toFixed(1) : rate.toFixed(2);
}

export class Progress {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly start: number;
  private readonly unit: string;
  private readonly plainInterval: number;
  private total: number | null;
  private count = 0;
  private lastDraw = -Infinity;
  private finished = false;

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    // A terminal that reports 0 columns (some CI runners, `script`, pipes through a pty) cannot be redrawn
    // in place without cutting the line: print a plain line per step there instead.
    const zeroColumns = this.stream.columns === 0;
    this.tty = (opts.tty ?? this.stream.isTTY === true) && !zeroColumns;
    this.now = opts.now ?? (() => performance.now());
    this.start = this.now();
    this.lastDraw = this.tty ? -Infinity : this.start;
    this.total = opts.total ?? null;
    this.unit = opts.unit ?? 'items';
    this.plainInterval = opts.plainIntervalMs ?? (zeroColumns ? 0 : 10_000);
  }

  get done(): number {
    return this.count;
  }

  setTotal(total: number | null): void {
    this.total = total;
  }

  tick(n = 1): void {
    this.update(this.count + n);
  }

  update(done: number): void {
    this.count = done;
    const t = this.now();
    if (this.tty ? t - this.lastDraw >= 100 : t - this.lastDraw >= this.plainInterval) {
      this.lastDraw = t;
      this.draw(t);
    }
  }

  /** Final line (always printed, in both modes). */
  finish(note?: string): void {
    if (this.finished) return;
    this.finished = true;
    const t = this.now();
    const elapsed = (t - this.start) / 1000;
    const tail = note !== undefined ? ` ${note}` : '';
    const line = `${this.opts.label}: ${this.count} ${this.unit} in ${formatDuration(elapsed)} (${formatRate(this.count / elapsed)} ${this.unit}/s)${tail}`;
    this.stream.write(this.tty ? `\r\x1b[K${line}\n` : `${line}\n`);
  }

  /** Clears the TTY line without a summary (e.g. before printing an error). */
  abandon(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.tty) this.stream.write('\r\x1b[K');
  }

  /** The status text (without control characters), as drawn now. */
  status(t = this.now()): string {
    const elapsed = (t - this.start) / 1000;
    const rate = elapsed > 0 ? this.count / elapsed : NaN;
    const rateText = `${formatRate(rate)} ${this.unit}/s`;
    if (this.total === null || this.total <= 0)
      return `${this.opts.label} ${this.count} ${this.unit} ${rateText}`;
    const frac = Math.min(1, this.count / this.total);
    const eta = rate > 0 ? (this.total - this.count) / rate : NaN;
    const pct = `${Math.floor(frac * 100)}%`;
    const counts = `${this.count}/${this.total}`;
    if (!this.tty)
      return `${this.opts.label}: ${counts} ${this.unit} (${pct}) ${rateText}, ETA ${formatDuration(eta)}`;
    const width = Math.max(10, Math.min(30, (this.stream.columns ?? 80) - this.opts.label.length - 45));
    const filled = Math.round(frac * width);
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
    return `${this.opts.label} ${bar} ${counts} ${pct} ${rateText} ETA ${formatDuration(eta)}`;
  }

  private draw(t: number): void {
    const text = this.status(t);
    const cols = this.stream.columns ?? 80;
    this.stream.write(
      this.tty ? `\r\x1b[K${text.length >= cols ? text.slice(0, cols - 1) : text}` : `${text}\n`,
    );
  }
}
