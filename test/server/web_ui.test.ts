// The web UI end to end: playwright-core drives Debian's chromium against a real server (createServer) on the
// shipped default model: submit from the form, see progress and a preview from SSE, see the finished video
// play in the gallery, and cancel a second job. KINEMA_SCREENSHOT=<file.png> also saves a screenshot
// (docs/images/web-ui.png is made that way).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM_FLAGS, chromiumMissing, launch } from '../web/browser_harness.js';
import { createServer } from '../../src/server/app.js';

const SKIP = chromiumMissing() ?? false;
if (SKIP) console.log(`# skipping the web UI test: ${SKIP}`);

const FLAGS = [...CHROMIUM_FLAGS, '--autoplay-policy=no-user-gesture-required'];

test('web UI: submit, progress and preview, the video plays, cancel another', { skip: SKIP }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-web-'));
  const server = await createServer({ dataDir: dir, port: 0, previewEvery: 1 });
  const url = await server.listen();
  const browser = await launch(FLAGS);
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(url);
    await page.waitForSelector('#model option[value="default"]', { state: 'attached' });

    // 1. Submit a short job; progress and a preview come from its event stream.
    await page.fill('#steps', '4');
    await page.click('#submit');
    const card = page.locator('[data-testid="active-job"]').first();
    await card.waitFor();
    // Browser-side checks are strings: this file is type-checked without the DOM library.
    await page.waitForFunction(
      `(document.querySelector('[data-testid="active-job"] progress')?.value ?? 0) >= 1`,
    );
    await page.waitForFunction(`(() => {
      const img = document.querySelector('[data-testid="active-job"] img.preview');
      return img !== null && !img.hidden && img.src.startsWith('data:image/png') && img.naturalWidth > 0;
    })()`);

    // 2. It lands in the gallery and plays.
    const video = page.locator('[data-testid="gallery-item"][data-status="succeeded"] video');
    await video.waitFor({ timeout: 120_000 });
    await page.waitForFunction(
      `(() => {
        const v = document.querySelector('[data-testid="gallery-item"] video');
        if (v && v.paused) v.play().catch(() => undefined);
        return v !== null && v.readyState >= 2 && v.currentTime > 0 && v.videoWidth === 64;
      })()`,
      undefined,
      { timeout: 60_000 },
    );

    // 3. Submit a long job and cancel it from its card.
    await page.fill('#steps', '100');
    await page.fill('#prompt', 'a green triangle moves down on a black background');
    await page.click('#submit');
    await page.waitForFunction(
      `/^step /.test(document.querySelector('[data-testid="active-job"] .status')?.textContent ?? '')`,
    );
    const shot = process.env['KINEMA_SCREENSHOT'];
    if (shot) {
      // A later preview shows the shape forming rather than the starting noise.
      await page.waitForFunction(
        `Number(document.querySelector('[data-testid="active-job"] progress')?.value ?? 0) >= 60`,
        undefined,
        { timeout: 120_000 },
      );
      await page.screenshot({ path: shot, fullPage: true });
    }
    await page.click('[data-testid="active-job"] button.cancel');
    await page.locator('[data-testid="gallery-item"][data-status="cancelled"]').waitFor({ timeout: 60_000 });
    assert.equal(await page.locator('[data-testid="active-job"]').count(), 0);
    const statuses = await page
      .locator('[data-testid="gallery-item"]')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
    assert.deepEqual(statuses.sort(), ['cancelled', 'succeeded']);
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
