// Shared pieces of the browser tests: the built page served on a free port, Debian's chromium driven by
// playwright-core, and a run of the page that waits for window.kinemaResult (or window.kinemaError).
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { serveWeb } from '../../scripts/serve_web.js';

export const CHROMIUM = process.env['KINEMA_CHROMIUM'] ?? '/usr/bin/chromium';
/** NOTES.md's flags for Debian's chromium in a container. */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Why the browser tests cannot run here, or null. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM)
    ? null
    : `no chromium at ${CHROMIUM} (bash scripts/install-chromium.sh, or set KINEMA_CHROMIUM)`;
}

export async function launch(flags: string[] = CHROMIUM_FLAGS): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: flags, env: { ...process.env } });
}

export async function serve(opts: { isolated?: boolean } = {}): Promise<{ server: Server; url: string }> {
  const server = await serveWeb({ port: 0, ...opts });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

export function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((ok) => server.close(() => ok()));
}

export interface PageRun {
  state: 'done' | 'error';
  error?: { code: string; message: string };
  frames: Uint8Array[];
  width: number;
  height: number;
  backend: string;
  msPerStep: number;
  download?: { totalBytes: number; cachedBytes: number };
  /** The text the page shows in its error box (empty when hidden). */
  errorText: string;
  wallMs: number;
}

/** Opens `url` (an autorun URL) and waits for the run to end either way. */
export async function runPage(page: Page, url: string, timeoutMs: number): Promise<PageRun> {
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(
    () => {
      const w = globalThis as unknown as { kinemaState?: string };
      return w.kinemaState === 'done' || w.kinemaState === 'error';
    },
    null,
    { timeout: timeoutMs, polling: 250 },
  );
  const wallMs = Date.now() - t0;
  const r = await page.evaluate(() => {
    const w = globalThis as unknown as {
      document: { getElementById(id: string): { hidden: boolean; textContent: string | null } };
      kinemaState: 'done' | 'error';
      kinemaError?: { code: string; message: string };
      kinemaResult?: {
        frames: Uint8Array[];
        width: number;
        height: number;
        backend: string;
        msPerStep: number;
      };
      kinemaDownload?: { totalBytes: number; cachedBytes: number };
    };
    const box = w.document.getElementById('error');
    return {
      state: w.kinemaState,
      error: w.kinemaError,
      frames: (w.kinemaResult?.frames ?? []).map((f) => Array.from(f)),
      width: w.kinemaResult?.width ?? 0,
      height: w.kinemaResult?.height ?? 0,
      backend: w.kinemaResult?.backend ?? '',
      msPerStep: w.kinemaResult?.msPerStep ?? NaN,
      download: w.kinemaDownload,
      errorText: box.hidden ? '' : (box.textContent ?? ''),
    };
  });
  return { ...r, frames: r.frames.map((f) => Uint8Array.from(f)), wallMs } as PageRun;
}

/** Mean absolute difference (in 0–255 levels) of two RGB frames. */
export function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`frame sizes differ: ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}
