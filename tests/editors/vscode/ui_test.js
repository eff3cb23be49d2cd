// The extension as a person uses it, in a real VS Code (code-server) driven through chromium:
// the status bar item reaches "ready"; typing shows ghost text; Alt+] asks for alternatives; Tab accepts and
// Ctrl+S saves exactly what was shown; a multi-line block appears at an empty function body (screenshot).
// Env: PORT, WS, EXT_DEV, EVENTS (the extension's event log), ARTIFACTS (screenshots), SCREENSHOT (optional
// path for the block screenshot kept in docs/). Prints `RESULT <json>`; exit 0 on success.
'use strict';
const fs = require('fs');
const path = require('path');
const {
  log, sleep, waitFor, env, workbenchUrl, launch, ghostLines, waitGhost, waitStatus, openFile,
} = require('./browser');

const WS = env('WS');
const FILE = path.join(WS, 'demo.py');
const ARTIFACTS = env('ARTIFACTS');
const TIMEOUT = Number(process.env.STEP_TIMEOUT_MS || 60000); // generous: the machine may be busy

const LINE_PLACES = ['names = list_', 'path = os.path.join(folder, ', 'for name in ', 'count = '];
// What the weak model writes where changes with each model: the first header that gets a multi-line block is used.
const BLOCK_PLACES = [
  'def read_lines(path):',
  'def count_names(folder):',
  'def main():',
  'class Inventory:',
  'def parse(text):',
  'if __name__ == "__main__":',
  'def load(path, encoding="utf-8"):',
  'for line in open(path):',
];

function events() {
  try {
    return fs.readFileSync(env('EVENTS'), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
  } catch {
    return [];
  }
}

/** Normalise for comparing the screen with the file: the DOM renders spaces as nbsp and may split words. */
const squash = (text) => text.replace(/\s+/g, '');

/**
 * Type `text`, then wait for ghost text; undefined when the server answered this place with nothing (the
 * extension logs every answer to EVENTS, so an empty one is seen at once instead of waiting for a timeout).
 */
async function typeAndWatch(page, text) {
  await page.keyboard.type(text, { delay: 25 });
  const typedAt = Date.now();
  const outcome = await waitFor(async () => {
    const lines = await ghostLines(page);
    if (lines.length) return { lines };
    const answers = events().filter((e) => e.event === 'inline' && e.time >= typedAt && e.uri.endsWith('/demo.py'));
    if (answers.some((e) => e.items === 0) && Date.now() - typedAt > 1500) return { lines: undefined };
    return undefined;
  }, TIMEOUT, `ghost text or an empty answer after typing ${JSON.stringify(text)}`);
  if (!outcome.lines) return undefined;
  await sleep(400); // more of a block may still be on its way into the view zone
  return waitGhost(page, 'ghost text', TIMEOUT);
}

/**
 * Alt+] asks for alternatives (an Invoked request); when they differ, Alt+] and Alt+[ change what is shown.
 * Returns the ghost text shown at the end.
 */
async function cycle(page, result, what) {
  const invokedBefore = events().filter((e) => e.event === 'inline' && e.trigger === 'invoked').length;
  await page.keyboard.press('Alt+BracketRight');
  const invoked = await waitFor(async () => {
    const list = events().filter((e) => e.event === 'inline' && e.trigger === 'invoked');
    return list.length > invokedBefore && list[list.length - 1];
  }, TIMEOUT, 'an Invoked request after Alt+]');
  const distinct = new Set(invoked.texts).size;
  let shown = await waitGhost(page, 'ghost text after Alt+]', TIMEOUT);
  const record = { alternatives: invoked.texts.length, distinct };
  if (distinct > 1) {
    await page.keyboard.press('Alt+BracketRight');
    const next = await waitGhost(page, 'a different alternative after Alt+]', TIMEOUT, shown).catch(() => shown);
    await page.keyboard.press('Alt+BracketLeft');
    shown = await waitGhost(page, 'the previous alternative after Alt+[', TIMEOUT, next);
    record.cycled = true;
  }
  log(`${what}: Alt+] got ${invoked.texts.length} alternatives (${distinct} distinct); shown: ${JSON.stringify(shown)}`);
  result.cycles = [...(result.cycles || []), { what, ...record }];
  return shown;
}

async function saveAndRead(page, expectChange) {
  const before = fs.readFileSync(FILE, 'utf8');
  await page.keyboard.press('Control+S');
  if (!expectChange) return fs.readFileSync(FILE, 'utf8');
  return waitFor(async () => {
    const text = fs.readFileSync(FILE, 'utf8');
    return text !== before && text;
  }, 15000, 'the file saved to disk');
}

(async () => {
  const result = { ok: false };
  fs.writeFileSync(FILE, 'import os\n\n\ndef list_names(folder):\n    return sorted(os.listdir(folder))\n\n\n');
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  page.on('pageerror', (e) => log('pageerror: ' + e.message));
  let step = 'start';
  try {
    log('chromium ' + browser.version());
    step = 'workbench';
    await page.goto(workbenchUrl());
    await page.waitForSelector('.monaco-workbench', { timeout: TIMEOUT });
    log('workbench loaded');

    step = 'status ready';
    result.status = await waitStatus(page, TIMEOUT);
    log('status bar: ' + JSON.stringify(result.status));

    step = 'open demo.py';
    await openFile(page, 'demo.py', TIMEOUT);
    await page.keyboard.press('Control+End');
    log('editor open');

    // Single-line ghost text, typed at the end of the file. The weak model's answer at a given place can be
    // empty (its filters drop noise), so the first of a few places that gets one is used.
    step = 'ghost text while typing a line';
    for (const typed of LINE_PLACES) {
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Enter');
      let shown = await typeAndWatch(page, typed);
      if (!shown) continue;
      result.ghost = shown;
      log(`ghost text after ${JSON.stringify(typed)}: ${JSON.stringify(shown)}`);
      await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-ghost-line.png') });
      step = 'Alt+] cycles the line';
      shown = await cycle(page, result, 'line');
      step = 'Tab accepts the line';
      await page.keyboard.press('Tab');
      await sleep(300);
      const saved = await saveAndRead(page, true);
      const line = saved.split('\n').find((l) => l.startsWith(typed)) || '';
      log('line on disk: ' + JSON.stringify(line));
      if (!squash(line).startsWith(squash(typed + shown[0]))) {
        throw new Error(`the file has ${JSON.stringify(line)}, not what was shown: ${JSON.stringify(typed + shown[0])}`);
      }
      result.acceptedLine = line;
      break;
    }
    if (!result.ghost) log(`no single-line suggestion at ${LINE_PLACES.length} places`);

    // A block at an empty function body: ghost text over several lines, Alt+] / Alt+[ cycle, Tab, save.
    step = 'block at an empty function body';
    let block;
    for (const header of BLOCK_PLACES) {
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Escape');
      block = await typeAndWatch(page, `\n\n${header}\n`);
      if (block && block.length > 1) break;
      log(`no multi-line block after ${JSON.stringify(header)}: ${JSON.stringify(block)}`);
      block = undefined;
    }
    if (!block) throw new Error(`no multi-line ghost text at any of ${BLOCK_PLACES.length} function bodies`);
    result.block = block;
    log('block: ' + JSON.stringify(block));
    await sleep(300); // let the view zone settle before the picture
    await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-ghost-block.png') });
    if (process.env.SCREENSHOT) {
      fs.mkdirSync(path.dirname(process.env.SCREENSHOT), { recursive: true });
      fs.copyFileSync(path.join(ARTIFACTS, 'vscode-ghost-block.png'), process.env.SCREENSHOT);
    }

    step = 'Alt+] cycles the block';
    const shown = await cycle(page, result, 'block');

    step = 'Tab accepts the block, Ctrl+S saves';
    await page.keyboard.press('Tab');
    await sleep(300);
    const withBlock = await saveAndRead(page, true);
    const header = BLOCK_PLACES.find((h) => withBlock.includes(h));
    const body = withBlock.slice(withBlock.lastIndexOf(header) + header.length);
    result.blockOnDisk = body;
    if (!squash(body).startsWith(squash(shown.join('\n')))) {
      throw new Error(`the file has ${JSON.stringify(body)} after the header, not what was shown: ${JSON.stringify(shown)}`);
    }
    const accepted = await waitFor(async () => events().find((e) => e.event === 'accepted' && !e.partial), 10000,
      'the accept to be reported (blockfill/accepted)');
    result.acceptedReport = accepted.text;
    result.ok = true;
  } catch (error) {
    result.error = `${step}: ${error.message}`;
    log('ERROR ' + result.error);
    await page.screenshot({ path: path.join(ARTIFACTS, 'vscode-ui-failure.png') }).catch(() => {});
  } finally {
    await browser.close().catch(() => {});
  }
  console.log('RESULT ' + JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
})();
