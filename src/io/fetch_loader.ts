// The FileLoader of a browser page: a model folder fetched over HTTP into memory, each file kept in a response
// cache (the Cache API in a page) so that a second visit needs no network. The folder's `files.json` manifest
// (written by scripts/build_web.ts) lists every file with its size and SHA-256: sizes drive the progress bar,
// the digest checks each download and versions its cache entry. Works wherever `fetch` does (Node too).
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { KinemaError } from '../errors.js';
import { MemoryLoader } from './memory_loader.js';

export interface ManifestEntry {
  path: string;
  size: number;
  sha256: string;
}

/** What the page's Cache API offers (`await caches.open(name)`), narrowed to what the loader uses. */
export interface ResponseCache {
  match(url: string): Promise<Response | undefined>;
  put(url: string, response: Response): Promise<void>;
}

export interface DownloadProgress {
  file: string;
  loadedBytes: number;
  totalBytes: number;
  /** Of loadedBytes, how many came from the cache rather than the network. */
  cachedBytes: number;
  /** Network bytes per second so far (0 before the first network byte). */
  bytesPerSecond: number;
  /** Seconds left at that rate (0 when done, Infinity before any rate is known). */
  etaSeconds: number;
}

export interface FetchModelOptions {
  cache?: ResponseCache;
  onProgress?: (p: DownloadProgress) => void;
  fetch?: typeof fetch;
}

export interface FetchedModel {
  loader: MemoryLoader;
  /** The folder's path inside the loader (pass it to fromPretrained). */
  root: string;
  manifest: ManifestEntry[];
  totalBytes: number;
  /** Bytes served from the cache (all of them on an offline start). */
  cachedBytes: number;
}

const ROOT = 'model';

function downloadError(url: string, reason: string, cause?: unknown): KinemaError {
  return new KinemaError('MODEL_DOWNLOAD_FAILED', `cannot download ${url}: ${reason}`, { cause });
}

function parseManifest(url: string, text: string): ManifestEntry[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw downloadError(url, `the manifest is not JSON (${(e as Error).message})`, e);
  }
  const files = (value as { files?: unknown }).files;
  if (!Array.isArray(files)) throw downloadError(url, 'the manifest has no "files" list');
  return files.map((f: unknown, i): ManifestEntry => {
    const e = f as Partial<ManifestEntry>;
    const safe = typeof e.path === 'string' && !e.path.split('/').some((s) => s === '..' || s === '');
    if (!safe || typeof e.size !== 'number' || typeof e.sha256 !== 'string')
      throw downloadError(url, `manifest entry ${i} needs a relative "path", a "size" and a "sha256"`);
    return { path: e.path!, size: e.size, sha256: e.sha256 };
  });
}

/** The manifest from the network, else (offline) the copy cached on the last visit. */
async function fetchManifest(url: string, o: FetchModelOptions): Promise<ManifestEntry[]> {
  const get = o.fetch ?? fetch;
  let failure: string;
  try {
    const r = await get(url); // the server marks files no-cache, so a changed manifest is seen
    if (r.ok) {
      const text = await r.text();
      const manifest = parseManifest(url, text);
      await o.cache?.put(url, new Response(text, { headers: { 'content-type': 'application/json' } }));
      return manifest;
    }
    failure = `HTTP ${r.status} ${r.statusText}`.trim();
  } catch (e) {
    if (e instanceof KinemaError) throw e;
    failure = `network error (${(e as Error).message})`;
  }
  const cached = await o.cache?.match(url);
  if (cached) return parseManifest(url, await cached.text());
  throw downloadError(url, `${failure}, and no copy is cached from an earlier visit`);
}

/** Reads a response body chunk by chunk, reporting each chunk's length. */
async function readBody(r: Response, onChunk: (n: number) => void): Promise<Uint8Array> {
  if (!r.body) {
    const bytes = new Uint8Array(await r.arrayBuffer());
    onChunk(bytes.length);
    return bytes;
  }
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = r.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
    onChunk(value.length);
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Downloads (or takes from `cache`) every file of the model folder at `baseUrl` (which holds files.json) and
 * returns a loader over them. Failures are KinemaError MODEL_DOWNLOAD_FAILED naming the file and the reason.
 */
export async function fetchModelFolder(baseUrl: string, o: FetchModelOptions = {}): Promise<FetchedModel> {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const manifest = await fetchManifest(`${base}files.json`, o);
  const totalBytes = manifest.reduce((s, f) => s + f.size, 0);
  const loader = new MemoryLoader();
  const start = Date.now();
  let loaded = 0;
  let cachedBytes = 0;
  const report = (file: string): void => {
    const networkBytes = loaded - cachedBytes;
    const seconds = (Date.now() - start) / 1000;
    const bytesPerSecond = networkBytes > 0 && seconds > 0 ? networkBytes / seconds : 0;
    const left = totalBytes - loaded;
    const etaSeconds = left === 0 ? 0 : bytesPerSecond > 0 ? left / bytesPerSecond : Infinity;
    o.onProgress?.({ file, loadedBytes: loaded, totalBytes, cachedBytes, bytesPerSecond, etaSeconds });
  };
  report('files.json');
  for (const entry of manifest) {
    const url = `${base}${entry.path}`;
    const key = `${url}?sha256=${entry.sha256}`; // a changed file gets a new cache entry
    const hit = await o.cache?.match(key);
    let bytes: Uint8Array | undefined;
    if (hit) {
      const b = new Uint8Array(await hit.arrayBuffer());
      if (b.length === entry.size) {
        bytes = b;
        loaded += b.length;
        cachedBytes += b.length;
        report(entry.path);
      }
    }
    if (!bytes) {
      let r: Response;
      try {
        r = await (o.fetch ?? fetch)(url);
      } catch (e) {
        throw downloadError(url, `network error (${(e as Error).message})`, e);
      }
      if (!r.ok) throw downloadError(url, `HTTP ${r.status} ${r.statusText}`.trim());
      const before = loaded;
      bytes = await readBody(r, (n) => {
        loaded += n;
        report(entry.path);
      });
      if (bytes.length !== entry.size)
        throw downloadError(url, `got ${bytes.length} bytes, the manifest says ${entry.size}`);
      const digest = bytesToHex(sha256(bytes));
      if (digest !== entry.sha256)
        throw downloadError(url, `SHA-256 ${digest} differs from the manifest's ${entry.sha256}`);
      loaded = before + bytes.length;
      await o.cache?.put(
        key,
        new Response(bytes as Uint8Array<ArrayBuffer>, {
          headers: { 'content-length': String(bytes.length) },
        }),
      );
    }
    loader.set(`${ROOT}/${entry.path}`, bytes);
  }
  report('');
  return { loader, root: ROOT, manifest, totalBytes, cachedBytes };
}
