// Runs queued jobs in this process, `concurrency` at a time, oldest first. The store is the queue: a job is
// taken by the queued → running transition, so after a crash `JobService.start` re-queues it and it runs here
// again. Each running job holds its own pipeline instance (see PipelinePool).
import { isKinemaError } from '../errors.js';
import type { JobRecord } from './job_store.js';
import type { Executor, JobService } from './job_service.js';
import { PipelinePool } from './models.js';
import { JobCancelledError, runJob } from './run_job.js';

export class LocalExecutor implements Executor {
  readonly kind = 'local';
  private service: JobService | null = null;
  private readonly running = new Map<string, Promise<void>>();
  private readonly pool = new PipelinePool();
  private closing = false;

  constructor(
    private readonly concurrency: number,
    private readonly previewEvery: number,
  ) {}

  async start(service: JobService): Promise<void> {
    this.service = service;
    this.pump();
  }

  async enqueue(_job: JobRecord): Promise<void> {
    this.pump();
  }

  async cancelRunning(_job: JobRecord): Promise<void> {
    // The run checks the store's cancel flag after every step.
  }

  /** Stops taking jobs; running ones stop at their next step and go back to the queue for the next start. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.running.values()]);
  }

  private pump(): void {
    const service = this.service;
    if (!service) return;
    while (!this.closing && this.running.size < this.concurrency) {
      const job = service.store.nextQueued();
      if (!job || !service.markRunning(job.id)) return;
      const done = this.run(service, job).finally(() => {
        this.running.delete(job.id);
        this.pump();
      });
      this.running.set(job.id, done);
    }
  }

  private async run(service: JobService, job: JobRecord): Promise<void> {
    const model = service.models.find(job.params.model);
    if (!model) {
      service.finishJob(job.id, 'failed', {
        error: {
          code: 'SERVER_UNKNOWN_MODEL',
          message: `model '${job.params.model}' is no longer available`,
        },
      });
      return;
    }
    const output = service.outputPath(job.id, job.params);
    let pipe;
    try {
      pipe = await this.pool.acquire(model.dir);
    } catch (err) {
      service.finishJob(job.id, 'failed', { error: describe(err) });
      return;
    }
    try {
      await runJob(job.id, {
        pipe,
        modelDir: model.dir,
        params: job.params,
        outputPath: output,
        previewEvery: this.previewEvery,
        isCancelled: () => this.closing || service.isCancelRequested(job.id),
        onStep: (p) => service.progress(job.id, p),
      });
      service.finishJob(job.id, 'succeeded', { output: output.slice(service.videosDir.length + 1) });
    } catch (err) {
      if (err instanceof JobCancelledError) {
        if (this.closing && !service.store.get(job.id)?.cancelRequested)
          service.requeue(job.id, 'server stopped');
        else service.finishJob(job.id, 'cancelled');
      } else service.finishJob(job.id, 'failed', { error: describe(err) });
    } finally {
      this.pool.release(model.dir, pipe);
    }
  }
}

export function describe(err: unknown): { code: string; message: string } {
  if (isKinemaError(err)) return { code: err.code, message: err.message };
  return { code: 'SERVER_JOB_FAILED', message: err instanceof Error ? err.message : String(err) };
}
