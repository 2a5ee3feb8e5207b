// `kinema serve`: flags → createServer(options) → listen. Everything else lives in src/server/.
import { Command } from 'commander';
import { intOption } from './options.js';
import { createServer } from '../server/app.js';
import type { ServerOptions } from '../server/app.js';

interface ServeFlags {
  port: number;
  host: string;
  data: string;
  token?: string;
  concurrency: number;
  queue?: string;
  previewEvery: number;
  maxPerClient?: number;
  publicUrl?: string;
}

export function serveOptions(flags: ServeFlags): ServerOptions {
  return {
    dataDir: flags.data,
    host: flags.host,
    port: flags.port,
    concurrency: flags.concurrency,
    previewEvery: flags.previewEvery,
    ...(flags.token !== undefined && { token: flags.token }),
    ...(flags.queue !== undefined && { queue: flags.queue }),
    ...(flags.publicUrl !== undefined && { publicUrl: flags.publicUrl }),
    ...(flags.maxPerClient !== undefined && { limits: { maxActivePerClient: flags.maxPerClient } }),
  };
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the HTTP API, the job queue and the web UI')
    .option('--port <n>', 'port', intOption('--port', 0), 8188)
    .option('--host <addr>', 'address to bind (non-loopback needs --token)', '127.0.0.1')
    .option('--data <dir>', 'folder for the job database, videos/ and extra models/', 'kinema-data')
    .option('--token <t>', 'require Authorization: Bearer <t> on every request (or env KINEMA_TOKEN)')
    .option('--concurrency <n>', 'jobs run at once in this process', intOption('--concurrency', 1), 1)
    .option('--queue <url>', 'redis://host:port: put jobs on BullMQ for `kinema worker`s')
    .option(
      '--preview-every <n>',
      'a preview image every n steps (0: none)',
      intOption('--preview-every', 0),
      5,
    )
    .option(
      '--max-per-client <n>',
      'jobs queued or running per client address',
      intOption('--max-per-client', 1),
    )
    .option('--public-url <url>', 'the URL workers upload results to (default: the listening address)')
    .action(async (flags: ServeFlags) => {
      const token = flags.token ?? process.env['KINEMA_TOKEN'];
      const server = await createServer(serveOptions({ ...flags, ...(token && { token }) }));
      const url = await server.listen();
      process.stderr.write(`kinema serve: listening on ${url}\n`);
      const stop = (): void => {
        void server.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
