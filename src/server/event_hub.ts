// Server-Sent Events for one job. The event log lives in the job store (so it outlives the process); the hub
// only tells live streams that a job has new events, and each stream reads from the log what follows the last
// id it sent. A client that reconnects with Last-Event-ID therefore gets exactly the events it missed, whether
// it lost the connection or the server restarted. The queue position is not logged (it changes with every job
// that starts): it is sent, without an id, on connect and whenever it changes.
import type { ServerResponse } from 'node:http';
import { FINISHED } from './job_store.js';
import type { JobEvent, JobStore } from './job_store.js';

const TERMINAL_EVENTS = new Set(['done', 'failed', 'cancelled', 'deleted']);
const HEARTBEAT_MS = 15_000;

interface Stream {
  res: ServerResponse;
  lastSeq: number;
  lastPosition: number | null;
}

function frame(e: JobEvent): string {
  return `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

export class EventHub {
  private readonly streams = new Map<string, Set<Stream>>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly store: JobStore) {
    this.heartbeat = setInterval(() => {
      for (const set of this.streams.values()) for (const s of set) s.res.write(': keep-alive\n\n');
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Streams a job's events to `res` from after `lastEventId`; ends the response after the terminal event. */
  open(jobId: string, res: ServerResponse, lastEventId: number): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 1000\n\n');
    const stream: Stream = { res, lastSeq: lastEventId, lastPosition: null };
    // Reading the log and registering the stream happen in the same tick (better-sqlite3 is synchronous):
    // no event can fall between them.
    if (this.flush(jobId, stream)) return;
    let set = this.streams.get(jobId);
    if (!set) this.streams.set(jobId, (set = new Set()));
    set.add(stream);
    this.sendPosition(jobId, stream);
    res.on('close', () => this.drop(jobId, stream));
  }

  /** New events were logged for this job: every open stream sends what it has not sent yet. */
  notify(jobId: string): void {
    const set = this.streams.get(jobId);
    if (!set) return;
    for (const s of [...set]) if (this.flush(jobId, s)) this.drop(jobId, s);
  }

  /** The queue moved: queued jobs' streams send their new position. */
  notifyPositions(): void {
    for (const [jobId, set] of this.streams) for (const s of set) this.sendPosition(jobId, s);
  }

  /** A deleted job: its streams get a terminal `deleted` event. */
  deleted(jobId: string): void {
    const set = this.streams.get(jobId);
    if (!set) return;
    for (const s of [...set]) {
      s.res.end(`event: deleted\ndata: {}\n\n`);
      this.drop(jobId, s);
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const [id, set] of this.streams) for (const s of [...set]) (s.res.end(), this.drop(id, s));
  }

  /** Writes the logged events after s.lastSeq; true when the stream ended (terminal event or finished job). */
  private flush(jobId: string, s: Stream): boolean {
    const events = this.store.eventsAfter(jobId, s.lastSeq);
    for (const e of events) {
      s.res.write(frame(e));
      s.lastSeq = e.seq;
      if (TERMINAL_EVENTS.has(e.type)) {
        s.res.end();
        return true;
      }
    }
    const job = this.store.get(jobId);
    if (!job || FINISHED.has(job.status)) {
      // Finished before this stream's cursor (e.g. Last-Event-ID at the last event): nothing more will come.
      s.res.end();
      return true;
    }
    return false;
  }

  private sendPosition(jobId: string, s: Stream): void {
    const job = this.store.get(jobId);
    if (!job || job.status !== 'queued') return;
    const position = this.store.queuePosition(job);
    if (position === s.lastPosition) return;
    s.lastPosition = position;
    s.res.write(`event: position\ndata: ${JSON.stringify({ position })}\n\n`);
  }

  private drop(jobId: string, s: Stream): void {
    const set = this.streams.get(jobId);
    set?.delete(s);
    if (set && set.size === 0) this.streams.delete(jobId);
  }
}
