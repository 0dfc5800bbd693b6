// End-to-end test of the web page in headless Chromium (the system's, driven by
// playwright-core): load the page, ask for 2026, check the canvas, save a screenshot.
// Usage: node e2e.mjs URL SCREENSHOT.png   (run by `cargo xtask web --e2e`)
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const profile = mkdtempSync(join(tmpdir(), 'cdcgan-e2e-'));
const fail = (msg) => { throw new Error(msg); };

const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--no-first-run'],
  viewport: { width: 900, height: 640 },
});
try {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const t0 = Date.now();
  await page.goto(url);
  // Type the number as a user would, then draw.
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 60000 });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== 'ready') fail(`page did not start: ${await page.textContent('#status')} ${errors}`);
  const firstDigitMs = Date.now() - t0;
  await page.fill('#number', '2026');
  await page.fill('#seed', '0');
  await page.click('#draw');
  await page.waitForFunction(() => location.hash.includes('n=2026'));
  const result = await page.evaluate(() => {
    const c = document.getElementById('out');
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const cellW = c.width / 4;
    const cells = [0, 1, 2, 3].map((k) => {
      const v = [];
      for (let y = 0; y < c.height; y++) {
        for (let x = k * cellW; x < (k + 1) * cellW; x++) v.push(data[(y * c.width + x) * 4]);
      }
      return v;
    });
    return { width: c.width, height: c.height, cells, ms: document.body.dataset.ms,
             status: document.getElementById('status').textContent };
  });
  if (result.width !== 4 * 28 * 4 || result.height !== 28 * 4) {
    fail(`canvas is ${result.width}x${result.height}, expected ${4 * 112}x112`);
  }
  const lit = result.cells.map((v) => v.filter((p) => p > 127).length / v.length);
  lit.forEach((f, k) => { if (f < 0.03 || f > 0.6) fail(`digit ${k} is blank or flooded (${f})`); });
  const differ = (a, b) => a.reduce((n, p, i) => n + Math.abs(p - b[i]), 0) / a.length;
  for (let i = 0; i < 4; i++) {
    for (let j = i + 1; j < 4; j++) {
      const d = differ(result.cells[i], result.cells[j]);
      // 2026 has two 2s: drawn with different noise, they differ too.
      if (d < 5) fail(`cells ${i} and ${j} are alike (mean abs diff ${d.toFixed(1)})`);
    }
  }
  if (errors.length) fail(`page errors: ${errors.join('; ')}`);
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ ok: true, canvas: [result.width, result.height],
    lit: lit.map((f) => +f.toFixed(3)), first_digit_ms: firstDigitMs, generate_ms: +result.ms,
    status: result.status }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
