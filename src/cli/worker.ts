// `kinema worker --queue redis://…`: runs jobs from a `kinema serve --queue` server's BullMQ queue.
import { Command } from 'commander';
import { intOption } from './options.js';
import { startWorker } from '../server/worker.js';

interface WorkerFlags {
  queue: string;
  concurrency: number;
  token?: string;
  lockMs: number;
  previewEvery: number;
}

export function workerCommand(): Command {
  return new Command('worker')
    .description('run queued jobs from a `kinema serve --queue redis://…` server (BullMQ)')
    .requiredOption('--queue <url>', 'redis://host:port of the server’s queue')
    .option('--concurrency <n>', 'jobs run at once', intOption('--concurrency', 1), 1)
    .option('--token <t>', "the server's token, for uploading results (or env KINEMA_TOKEN)")
    .option(
      '--lock-ms <n>',
      'job lock duration: a dead worker’s job moves on after about this',
      intOption('--lock-ms', 1000),
      30000,
    )
    .option(
      '--preview-every <n>',
      'a preview image every n steps (0: none)',
      intOption('--preview-every', 0),
      5,
    )
    .action(async (flags: WorkerFlags) => {
      const token = flags.token ?? process.env['KINEMA_TOKEN'];
      const worker = await startWorker({
        queue: flags.queue,
        concurrency: flags.concurrency,
        lockMs: flags.lockMs,
        previewEvery: flags.previewEvery,
        ...(token && { token }),
        onJob: (id) => process.stderr.write(`kinema worker: running ${id}\n`),
      });
      process.stderr.write(`kinema worker ${worker.name}: waiting for jobs on ${flags.queue}\n`);
      const stop = (): void => {
        void worker.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
