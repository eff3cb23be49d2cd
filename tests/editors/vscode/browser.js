// Shared by the VS Code test drivers: launch Debian's chromium through playwright-core, open the code-server
// workbench with the extension loaded from its folder (extensionDevelopmentPath), open a file, read the status
// bar item and the ghost text on screen, log with timestamps.
'use strict';
const { chromium } = require('playwright-core');

const t0 = Date.now();
const log = (message) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${message}`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `fn` until it returns something truthy; throw after `ms` with `what` in the message. */
async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/**
 * The workbench URL for folder WS with the extension loaded from EXT_DEV (and a test module, if given).
 * EXT_DEV empty: the extensions installed in code-server (used to try the packaged .vsix).
 */
function workbenchUrl(extTests) {
  const authority = `127.0.0.1:${env('PORT')}`;
  const url = `http://${authority}/?folder=${encodeURIComponent(env('WS'))}`;
  if (!process.env.EXT_DEV) return url;
  const payload = [['extensionDevelopmentPath', `vscode-remote://${authority}${process.env.EXT_DEV}`]];
  if (extTests) payload.push(['extensionTestsPath', `vscode-remote://${authority}${extTests}`]);
  return `${url}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROME || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'],
  });
  // Close the browser on SIGTERM (from `timeout`), then leave: playwright would otherwise keep waiting.
  process.on('SIGTERM', () => { browser.close().finally(() => process.exit(124)); });
  return browser;
}

const GHOST = '.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text';
// The extension's item says "<model>: <state>"; VS Code's own progress item says "Loading model <model>".
const STATUS = /blockfill\S*: /;

/**
 * Ghost text on screen, one string per screen line, top to bottom ([] when none). VS Code renders it as
 * syntax-highlighted spans: `.ghost-text-decoration` on the cursor line, `.ghost-text` in the view zone of the
 * lines below; grouping the spans by their on-screen row puts the pieces back together in reading order.
 */
async function ghostLines(page) {
  const lines = await page.evaluate((selector) => {
    const rows = new Map();
    for (const span of document.querySelectorAll(selector)) {
      const box = span.getBoundingClientRect();
      if (!box.width && !box.height) continue;
      const top = Math.round(box.top);
      if (!rows.has(top)) rows.set(top, []);
      rows.get(top).push([box.left, span.textContent]);
    }
    return [...rows.keys()].sort((a, b) => a - b)
      .map((top) => rows.get(top).sort((a, b) => a[0] - b[0]).map((piece) => piece[1]).join(''));
  }, GHOST);
  return lines.map((line) => line.replace(/\u00a0/g, ' ').replace(/\s+$/, '')).filter((line) => line.trim());
}

/**
 * Ghost text once it has settled: two reads 300 ms apart agree. While VS Code swaps alternatives or fills a
 * block's view zone, a single read can catch a state that is neither the old ghost nor the new one.
 */
async function waitGhost(page, what, ms, previous) {
  return waitFor(async () => {
    const lines = await ghostLines(page);
    if (!lines.length) return undefined;
    if (previous !== undefined && lines.join('\n') === previous.join('\n')) return undefined;
    await sleep(300);
    const again = await ghostLines(page);
    return again.join('\n') === lines.join('\n') ? lines : undefined;
  }, ms, what);
}

/** The status bar item's text once it is past starting and loading: "<model>: ready", an error, "server not found". */
async function waitStatus(page, ms) {
  return waitFor(async () => {
    const text = (await page.locator('.statusbar-item').filter({ hasText: STATUS }).first().innerText()).trim();
    return !/starting|loading/.test(text) && text;
  }, ms, 'the status bar item to say "ready"');
}

/** Open `name` from the workspace folder with Quick Open (Ctrl+P) and put the focus in its editor. */
async function openFile(page, name, ms) {
  await page.keyboard.press('Control+P');
  await page.waitForSelector('.quick-input-widget input', { timeout: ms });
  await page.keyboard.type(name);
  await page.waitForSelector(`.quick-input-list .monaco-list-row:has-text("${name}")`, { timeout: ms });
  await sleep(200);
  await page.keyboard.press('Enter');
  await page.waitForSelector('.monaco-editor .view-lines', { timeout: ms });
  await page.click('.monaco-editor .view-lines');
}

module.exports = { log, sleep, waitFor, env, workbenchUrl, launch, ghostLines, waitGhost, waitStatus, openFile };
