// `npm run web -- --port N`: serves the built page (web/dist, from `npm run build:web`) on 127.0.0.1. Every
// response carries the COOP/COEP headers that make the page cross-origin isolated, which WebAssembly threads
// (SharedArrayBuffer) need. No network access beyond that: the page and the model are all local files.
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KinemaError } from '../src/errors.js';

const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'web', 'dist');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
};

/** Starts the static server on `port` (0: any free port); resolves once it listens. */
export function serveWeb(opts: {
  port: number;
  host?: string;
  root?: string;
  /** Send COOP/COEP (default true); false serves a page without WebAssembly threads (tests its message). */
  isolated?: boolean;
}): Promise<Server> {
  const root = opts.root ?? DIST;
  try {
    statSync(join(root, 'index.html'));
  } catch {
    throw new KinemaError('WEB_NOT_BUILT', `${root}/index.html is missing: run npm run build:web first`);
  }
  const server = createServer((req, res) => {
    const headers: Record<string, string> = {
      ...(opts.isolated !== false && {
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
        'Cross-Origin-Resource-Policy': 'same-origin',
      }),
      'Cache-Control': 'no-cache',
    };
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const path = normalize(join(root, urlPath.endsWith('/') ? `${urlPath}index.html` : urlPath));
    let size = -1;
    try {
      if (path === root || path.startsWith(root + sep))
        size = statSync(path).isFile() ? statSync(path).size : -1;
    } catch {
      size = -1;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, headers).end();
      return;
    }
    if (size < 0) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end(`not found: ${urlPath}\n`);
      return;
    }
    res.writeHead(200, {
      ...headers,
      'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream',
      'Content-Length': String(size),
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(path).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => ok(server));
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--port');
  const port = at >= 0 ? Number(args[at + 1]) : 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`kinema web: --port must be an integer from 0 to 65535, got ${args[at + 1]}\n`);
    process.exit(2);
  }
  try {
    const server = await serveWeb({ port });
    const addr = server.address();
    const bound = typeof addr === 'object' && addr ? addr.port : port;
    process.stdout.write(`Kinema web page: http://127.0.0.1:${bound}/\n`);
  } catch (err) {
    process.stderr.write(`kinema web: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
