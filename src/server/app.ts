// `createServer(options)`: the Kinema service as a library function. It wires the durable job store, the event
// hub, the model registry and an executor (in-process, or BullMQ workers with `queue: 'redis://…'`) behind a
// fastify app; `kinema serve` only parses flags and calls it. Checks that can refuse a configuration (a
// non-loopback host without a token, an unreadable data folder) run before anything binds or loads.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { KinemaError } from '../errors.js';
import { checkBindAllowed, tokenHook } from './access.js';
import { EventHub } from './event_hub.js';
import { installErrorHandlers } from './http_errors.js';
import { DEFAULT_LIMITS } from './job_params.js';
import type { Limits } from './job_params.js';
import { JobService } from './job_service.js';
import type { Executor } from './job_service.js';
import { JobStore } from './job_store.js';
import { LocalExecutor } from './local_executor.js';
import { ModelRegistry, REPO_MODELS_DIR } from './models.js';
import { openApiDocument } from './openapi.js';
import { registerVideoRoutes } from './routes_videos.js';
import { registerWorkerRoutes } from './routes_worker.js';
import { buildWebAssets } from './web_assets.js';

export const SERVER_VERSION = '0.1.0';

export interface ServerOptions {
  /** Folder of the job database, the finished videos (videos/) and extra models (models/). */
  dataDir: string;
  host?: string;
  /** 0: any free port (see `url` after listen). */
  port?: number;
  /** Without it the server binds loopback only; with it every request needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Jobs run at once by the in-process executor. */
  concurrency?: number;
  /** `redis://host:port`: jobs go to BullMQ and run on `kinema worker`s. */
  queue?: string;
  /** Model roots searched for model ids (default: the repo's models/ and <dataDir>/models). */
  modelRoots?: string[];
  limits?: Partial<Limits>;
  /** A preview image every this many steps (0: none). */
  previewEvery?: number;
  /** The URL workers upload finished videos to (BullMQ mode; default: the listening address). */
  publicUrl?: string;
  logger?: boolean;
}

export interface KinemaServer {
  app: FastifyInstance;
  service: JobService;
  /** Binds; resolves to the base URL (http://host:port). */
  listen(): Promise<string>;
  /** Stops accepting requests; running jobs stop at their next step and stay queued for the next start. */
  close(): Promise<void>;
  url: string | null;
}

async function makeExecutor(o: ServerOptions, previewEvery: number): Promise<Executor> {
  if (!o.queue) return new LocalExecutor(o.concurrency ?? 1, previewEvery);
  if (!/^rediss?:\/\//.test(o.queue))
    throw new KinemaError('SERVER_BAD_QUEUE_URL', `--queue ${o.queue}: expected redis://host:port`);
  const { RedisExecutor } = await import('./redis_executor.js');
  return new RedisExecutor(o.queue);
}

export async function createServer(o: ServerOptions): Promise<KinemaServer> {
  const host = o.host ?? '127.0.0.1';
  checkBindAllowed(host, o.token);
  const dataDir = resolve(o.dataDir);
  try {
    mkdirSync(join(dataDir, 'models'), { recursive: true });
  } catch (err) {
    throw new KinemaError(
      'SERVER_DATA_DIR',
      `--data ${dataDir}: cannot create it (${(err as Error).message})`,
    );
  }
  const limits: Limits = { ...DEFAULT_LIMITS, ...o.limits };
  const previewEvery = o.previewEvery ?? 5;
  const store = new JobStore(join(dataDir, 'kinema.db'));
  const hub = new EventHub(store);
  const models = new ModelRegistry(o.modelRoots ?? [REPO_MODELS_DIR, join(dataDir, 'models')]);
  const executor = await makeExecutor(o, previewEvery);
  const service = new JobService(store, hub, models, limits, dataDir, executor);
  const assets = await buildWebAssets();

  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: limits.maxBodyBytes,
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
  });
  installErrorHandlers(app);
  if (o.token) app.addHook('onRequest', tokenHook(o.token));
  registerVideoRoutes(app, service);
  registerWorkerRoutes(app, service);
  app.get('/v1/models', async () => ({ data: models.list().map((m) => ({ id: m.id, object: 'model' })) }));
  app.get('/openapi.json', async () => openApiDocument(limits, SERVER_VERSION));
  app.get('/healthz', async () => ({
    ok: true,
    queue: executor.kind,
    queued: store.queuedCount(),
    running: store.runningIds().length,
  }));
  for (const [path, asset] of assets)
    app.get(path, async (_req, reply) => reply.type(asset.type).send(asset.body));

  const server: KinemaServer = {
    app,
    service,
    url: null,
    async listen() {
      await service.start();
      const address = await app.listen({ host, port: o.port ?? 8188 });
      server.url = address;
      await executor.listening?.(o.publicUrl ?? address);
      return address;
    },
    async close() {
      hub.close(); // ends the SSE streams, which would otherwise hold app.close() open
      await executor.close();
      await app.close();
      store.close();
    },
  };
  return server;
}
