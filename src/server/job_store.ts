// The durable job queue: jobs, their state and their event log in one SQLite file (better-sqlite3, WAL mode,
// this process the only writer). Every state change is one synchronous transaction, so a `kill -9` at any moment
// leaves either the old or the new state on disk; `recoverAfterRestart` re-queues what was running
// (at-least-once), and the event log lets an SSE client resume from its Last-Event-ID after either restart.
import Database from 'better-sqlite3';
import type { Database as DatabaseType, Statement } from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import type { JobParams } from './job_params.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINISHED: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'cancelled']);

export interface JobRecord {
  id: string;
  /** Insertion order; the list endpoint's cursor. */
  seq: number;
  status: JobStatus;
  params: JobParams;
  client: string;
  created: string;
  started: string | null;
  finished: string | null;
  error: { code: string; message: string } | null;
  step: number;
  total: number;
  chunk: number | null;
  /** File name of the finished video inside the videos folder. */
  output: string | null;
  /** Shared with the worker that runs the job (BullMQ mode): only it may upload the result. */
  uploadKey: string;
  /** Set while a cancel of a running job waits for the runner to stop at the next step. */
  cancelRequested: boolean;
  attempts: number;
}

export interface JobEvent {
  seq: number;
  type: string;
  data: Record<string, unknown>;
}

interface JobRow {
  id: string;
  seq: number;
  status: JobStatus;
  params: string;
  client: string;
  created: string;
  started: string | null;
  finished: string | null;
  error: string | null;
  step: number;
  total: number;
  chunk: number | null;
  output: string | null;
  upload_key: string;
  cancel_requested: number;
  attempts: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL,
  params TEXT NOT NULL,
  client TEXT NOT NULL,
  created TEXT NOT NULL,
  started TEXT,
  finished TEXT,
  error TEXT,
  step INTEGER NOT NULL DEFAULT 0,
  total INTEGER NOT NULL DEFAULT 0,
  chunk INTEGER,
  output TEXT,
  upload_key TEXT NOT NULL,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);
CREATE TABLE IF NOT EXISTS events (
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
`;

const now = (): string => new Date().toISOString();

function fromRow(r: JobRow): JobRecord {
  return {
    id: r.id,
    seq: r.seq,
    status: r.status,
    params: JSON.parse(r.params) as JobParams,
    client: r.client,
    created: r.created,
    started: r.started,
    finished: r.finished,
    error: r.error === null ? null : (JSON.parse(r.error) as JobRecord['error']),
    step: r.step,
    total: r.total,
    chunk: r.chunk,
    output: r.output,
    uploadKey: r.upload_key,
    cancelRequested: r.cancel_requested !== 0,
    attempts: r.attempts,
  };
}

export class JobStore {
  readonly db: DatabaseType;
  private readonly stmt: Record<string, Statement>;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // FULL: a committed transaction survives power loss too, not only a process kill.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const p = (sql: string): Statement => this.db.prepare(sql);
    this.stmt = {
      insert: p(
        `INSERT INTO jobs (id, status, params, client, created, total, upload_key)
         VALUES (@id, 'queued', @params, @client, @created, @total, @uploadKey)`,
      ),
      get: p('SELECT * FROM jobs WHERE id = ?'),
      nextQueued: p(`SELECT * FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1`),
      position: p(`SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued' AND seq < ?`),
      countQueued: p(`SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'`),
      countClient: p(`SELECT COUNT(*) AS n FROM jobs WHERE client = ? AND status IN ('queued', 'running')`),
      queuedIds: p(`SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq`),
      start: p(
        `UPDATE jobs SET status = 'running', started = ?, step = 0, attempts = attempts + 1
         WHERE id = ? AND status = 'queued'`,
      ),
      progress: p(`UPDATE jobs SET step = ?, total = ?, chunk = ? WHERE id = ? AND status = 'running'`),
      finish: p(
        `UPDATE jobs SET status = @status, finished = @finished, error = @error, output = @output,
         cancel_requested = 0 WHERE id = @id AND status IN ('queued', 'running')`,
      ),
      requestCancel: p(`UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'`),
      requeueRunning: p(`UPDATE jobs SET status = 'queued', step = 0 WHERE status = 'running'`),
      requeueOne: p(`UPDATE jobs SET status = 'queued', step = 0 WHERE id = ? AND status = 'running'`),
      finishRequestedCancels: p(`SELECT id FROM jobs WHERE status = 'running' AND cancel_requested = 1`),
      runningIds: p(`SELECT id FROM jobs WHERE status = 'running' ORDER BY seq`),
      delete: p('DELETE FROM jobs WHERE id = ?'),
      deleteEvents: p('DELETE FROM events WHERE job_id = ?'),
      lastEventSeq: p('SELECT COALESCE(MAX(seq), 0) AS n FROM events WHERE job_id = ?'),
      addEvent: p('INSERT INTO events (job_id, seq, type, data) VALUES (?, ?, ?, ?)'),
      eventsAfter: p('SELECT seq, type, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq'),
    };
  }

  close(): void {
    this.db.close();
  }

  create(params: JobParams, client: string, total: number): JobRecord {
    const id = `v_${randomBytes(9).toString('base64url')}`;
    const created = now();
    this.db.transaction(() => {
      this.stmt['insert']!.run({
        id,
        params: JSON.stringify(params),
        client,
        created,
        total,
        uploadKey: randomBytes(18).toString('base64url'),
      });
      this.appendEventRaw(id, 'queued', {});
    })();
    return this.get(id)!;
  }

  get(id: string): JobRecord | undefined {
    const row = this.stmt['get']!.get(id) as JobRow | undefined;
    return row && fromRow(row);
  }

  list(o: { status?: JobStatus; limit: number; before?: number }): JobRecord[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (o.status) {
      where.push('status = ?');
      args.push(o.status);
    }
    if (o.before !== undefined) {
      where.push('seq < ?');
      args.push(o.before);
    }
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...args, o.limit) as JobRow[]).map(fromRow);
  }

  /** How many queued jobs are ahead of this one (0: next to run). */
  queuePosition(job: JobRecord): number {
    return (this.stmt['position']!.get(job.seq) as { n: number }).n;
  }

  queuedCount(): number {
    return (this.stmt['countQueued']!.get() as { n: number }).n;
  }

  queuedIds(): string[] {
    return (this.stmt['queuedIds']!.all() as { id: string }[]).map((r) => r.id);
  }

  runningIds(): string[] {
    return (this.stmt['runningIds']!.all() as { id: string }[]).map((r) => r.id);
  }

  activeCountForClient(client: string): number {
    return (this.stmt['countClient']!.get(client) as { n: number }).n;
  }

  nextQueued(): JobRecord | undefined {
    const row = this.stmt['nextQueued']!.get() as JobRow | undefined;
    return row && fromRow(row);
  }

  /** queued → running; false if the job is no longer queued (cancelled, deleted, taken). */
  markRunning(id: string, extra: Record<string, unknown> = {}): boolean {
    return this.db.transaction(() => {
      const changed = this.stmt['start']!.run(now(), id).changes === 1;
      if (changed) this.appendEventRaw(id, 'started', extra);
      return changed;
    })();
  }

  /** Records a step (and its event) in one transaction. */
  recordProgress(
    id: string,
    step: number,
    total: number,
    chunk: number | null,
    event?: JobEvent['data'],
  ): number {
    return this.db.transaction(() => {
      this.stmt['progress']!.run(step, total, chunk, id);
      return event ? this.appendEventRaw(id, 'step', event) : 0;
    })();
  }

  /** queued|running → a finished status, with its terminal event; false if it was already finished. */
  finish(
    id: string,
    status: 'succeeded' | 'failed' | 'cancelled',
    o: { error?: { code: string; message: string }; output?: string; event?: Record<string, unknown> } = {},
  ): boolean {
    return this.db.transaction(() => {
      const changed =
        this.stmt['finish']!.run({
          id,
          status,
          finished: now(),
          error: o.error ? JSON.stringify(o.error) : null,
          output: o.output ?? null,
        }).changes === 1;
      if (changed) {
        const type = status === 'succeeded' ? 'done' : status;
        this.appendEventRaw(id, type, o.event ?? (o.error ? { error: o.error } : {}));
      }
      return changed;
    })();
  }

  requestCancel(id: string): boolean {
    return this.stmt['requestCancel']!.run(id).changes === 1;
  }

  /**
   * At start-up: a job that was running when the process died runs again (at-least-once); one whose cancel was
   * requested is cancelled instead. Returns the re-queued ids.
   */
  recoverAfterRestart(): string[] {
    return this.db.transaction(() => {
      for (const { id } of this.stmt['finishRequestedCancels']!.all() as { id: string }[])
        this.finish(id, 'cancelled');
      const ids = this.runningIds();
      this.stmt['requeueRunning']!.run();
      for (const id of ids) this.appendEventRaw(id, 'requeued', { reason: 'server restarted' });
      return ids;
    })();
  }

  /** running → queued for one job (its worker died; BullMQ will run it again). */
  requeue(id: string, reason: string): boolean {
    return this.db.transaction(() => {
      const changed = this.stmt['requeueOne']!.run(id).changes === 1;
      if (changed) this.appendEventRaw(id, 'requeued', { reason });
      return changed;
    })();
  }

  delete(id: string): void {
    this.db.transaction(() => {
      this.stmt['delete']!.run(id);
      this.stmt['deleteEvents']!.run(id);
    })();
  }

  appendEvent(id: string, type: string, data: Record<string, unknown>): number {
    return this.appendEventRaw(id, type, data);
  }

  private appendEventRaw(id: string, type: string, data: Record<string, unknown>): number {
    const seq = (this.stmt['lastEventSeq']!.get(id) as { n: number }).n + 1;
    this.stmt['addEvent']!.run(id, seq, type, JSON.stringify(data));
    return seq;
  }

  lastEventSeq(id: string): number {
    return (this.stmt['lastEventSeq']!.get(id) as { n: number }).n;
  }

  eventsAfter(id: string, after: number): JobEvent[] {
    return (this.stmt['eventsAfter']!.all(id, after) as { seq: number; type: string; data: string }[]).map(
      (r) => ({ seq: r.seq, type: r.type, data: JSON.parse(r.data) as Record<string, unknown> }),
    );
  }
}
