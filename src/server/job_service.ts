// What the routes call: submit, look up, cancel/delete, and the finish/progress bookkeeping the executors
// report into. One place writes the store and then wakes the event hub, so every state change reaches SSE.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FINISHED } from './job_store.js';
import type { JobRecord, JobStore } from './job_store.js';
import type { EventHub } from './event_hub.js';
import { RequestError, normaliseRequest } from './job_params.js';
import type { JobParams, Limits, VideoRequest } from './job_params.js';
import type { ModelRegistry } from './models.js';
import { DEFAULT_MODEL_ID } from './models.js';
import type { StepProgress } from './run_job.js';

/** Runs queued jobs: in this process (LocalExecutor) or on BullMQ workers (RedisExecutor). */
export interface Executor {
  start(service: JobService): Promise<void>;
  /** A new job was stored as queued. */
  enqueue(job: JobRecord): Promise<void>;
  /** A running job should stop at its next step. */
  cancelRunning(job: JobRecord): Promise<void>;
  close(): Promise<void>;
  /** A queued job was cancelled in the store. */
  cancelQueued?(job: JobRecord): Promise<void>;
  /** The server listens at `url` (where BullMQ workers send finished videos). */
  listening?(url: string): Promise<void>;
  readonly kind: 'local' | 'redis';
}

export class JobService {
  readonly videosDir: string;

  constructor(
    readonly store: JobStore,
    readonly hub: EventHub,
    readonly models: ModelRegistry,
    readonly limits: Limits,
    dataDir: string,
    readonly executor: Executor,
  ) {
    this.videosDir = join(dataDir, 'videos');
    mkdirSync(this.videosDir, { recursive: true });
  }

  /** Re-queues what was running at the last stop, removes half-written temp files, starts the executor. */
  async start(): Promise<string[]> {
    const requeued = this.store.recoverAfterRestart();
    for (const name of readdirSync(this.videosDir))
      if (name.startsWith('.') && name.includes('.partial'))
        rmSync(join(this.videosDir, name), { force: true, recursive: true });
    await this.executor.start(this);
    return requeued;
  }

  async submit(body: VideoRequest, client: string): Promise<JobRecord> {
    const modelId = body.model ?? DEFAULT_MODEL_ID;
    const model = this.models.find(modelId);
    if (!model)
      throw new RequestError(
        400,
        'SERVER_UNKNOWN_MODEL',
        'model',
        `model: no model with id '${modelId}' (see GET /v1/models)`,
      );
    const params = normaliseRequest(body, this.limits, modelId, model.defaults);
    if (this.store.activeCountForClient(client) >= this.limits.maxActivePerClient)
      throw new RequestError(
        429,
        'SERVER_CLIENT_QUEUE_FULL',
        null,
        `this client already has ${this.limits.maxActivePerClient} jobs queued or running (the limit per client)`,
      );
    if (this.store.queuedCount() >= this.limits.maxQueued)
      throw new RequestError(
        503,
        'SERVER_QUEUE_FULL',
        null,
        `the queue is full (${this.limits.maxQueued} jobs)`,
      );
    const job = this.store.create(params, client, params.steps);
    await this.executor.enqueue(job);
    return job;
  }

  get(id: string): JobRecord {
    const job = this.store.get(id);
    if (!job) throw new RequestError(404, 'SERVER_NOT_FOUND', 'id', `id: no video with id '${id}'`);
    return job;
  }

  outputPath(id: string, params: JobParams): string {
    return join(this.videosDir, `${id}.${params.format}`);
  }

  /** Queued → cancelled; running → cancel requested (stops within one step); finished → deleted with its file. */
  async cancelOrDelete(id: string): Promise<'cancelled' | 'cancelling' | 'deleted'> {
    const job = this.get(id);
    if (job.status === 'queued' && this.finishJob(id, 'cancelled')) {
      await this.executor.cancelQueued?.(job);
      return 'cancelled';
    }
    if (job.status === 'running') {
      this.store.requestCancel(id);
      await this.executor.cancelRunning(job);
      return 'cancelling';
    }
    const now = this.get(id);
    if (!FINISHED.has(now.status)) return this.cancelOrDelete(id);
    if (now.output) rmSync(join(this.videosDir, now.output), { force: true });
    this.store.delete(id);
    this.hub.deleted(id);
    return 'deleted';
  }

  // --- reported by the executors ---

  markRunning(id: string, extra: Record<string, unknown> = {}): boolean {
    const ok = this.store.markRunning(id, extra);
    if (ok) {
      this.hub.notify(id);
      this.hub.notifyPositions();
    }
    return ok;
  }

  progress(id: string, p: StepProgress): void {
    this.store.recordProgress(id, p.step, p.total, null, { step: p.step, total: p.total });
    if (p.preview) this.store.appendEvent(id, 'preview', { step: p.step, image: p.preview });
    this.hub.notify(id);
  }

  finishJob(
    id: string,
    status: 'succeeded' | 'failed' | 'cancelled',
    o: { error?: { code: string; message: string }; output?: string } = {},
  ): boolean {
    const event = status === 'succeeded' ? { url: `/v1/videos/${id}/content` } : undefined;
    const ok = this.store.finish(id, status, { ...o, ...(event && { event }) });
    if (ok) {
      this.hub.notify(id);
      this.hub.notifyPositions();
    }
    return ok;
  }

  requeue(id: string, reason: string): void {
    if (this.store.requeue(id, reason)) {
      this.hub.notify(id);
      this.hub.notifyPositions();
    }
  }

  isCancelRequested(id: string): boolean {
    const job = this.store.get(id);
    return !job || job.cancelRequested || job.status !== 'running';
  }

  hasOutput(job: JobRecord): boolean {
    return job.output !== null && existsSync(join(this.videosDir, job.output));
  }
}
