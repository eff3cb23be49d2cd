// The extension as a user first meets it, in a real VS Code (code-server) driven through chromium: no blockfill
// settings, so the server is `blockfill serve` found on PATH and the model is the default. Enter at the end of a
// function's header opens its empty body; the ghost text is what the default model writes there; Tab accepts it
// and Ctrl+S saves. tests/editors/test_vscode.py then runs the file, whose own assert must pass.
// Env: PORT, WS, EXT_DEV, ARTIFACTS, FILE (a file in WS whose first line is the header). Prints `RESULT <json>`.
'use strict';
const fs = require('fs');
const path = require('path');
const { log, waitFor, env, workbenchUrl, launch, waitGhost, waitStatus, openFile } = require('./browser');

const FILE = env('FILE');
// Measured on a 2-core CPU: ready ~10 s after start and a body in a few seconds when idle, 4x that when busy.
const READY_MS = 120000;
const GHOST_MS = 60000;

(async () => {
  const result = { ok: false };
  const before = fs.readFileSync(FILE, 'utf8');
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  page.on('pageerror', (e) => log('pageerror: ' + e.message));
  let step = 'workbench';
  try {
    await page.goto(workbenchUrl());
    await page.waitForSelector('.monaco-workbench', { timeout: READY_MS });
    step = 'status ready';
    result.status = await waitStatus(page, READY_MS);
    log('status bar: ' + JSON.stringify(result.status));
    step = 'open the file';
    await openFile(page, path.basename(FILE), READY_MS);
    step = 'Enter after the header: ghost text in the body';
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('End');
    await page.keyboard.press('Enter');
    result.ghost = await waitGhost(page, 'ghost text in the body', GHOST_MS);
    log('ghost: ' + JSON.stringify(result.ghost));
    step = 'Tab accepts, Ctrl+S saves';
    await page.keyboard.press('Tab');
    await page.keyboard.press('Control+S');
    result.saved = await waitFor(async () => {
      const text = fs.readFileSync(FILE, 'utf8');
      return text !== before && text;
    }, 15000, 'the file saved to disk');
    result.ok = true;
  } catch (error) {
    result.error = `${step}: ${error.message}`;
    log('ERROR ' + result.error);
    await page.screenshot({ path: path.join(env('ARTIFACTS'), 'vscode-default-model-failure.png') }).catch(() => {});
  } finally {
    await browser.close().catch(() => {});
  }
  console.log('RESULT ' + JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
})();
