// Shared by the VS Code test drivers: launch Debian's chromium through playwright-core, open the code-server
// workbench with the extension loaded from its folder (extensionDevelopmentPath), log with timestamps.
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

module.exports = { log, sleep, waitFor, env, workbenchUrl, launch };
