// The extension's own tests, run inside a real VS Code extension host (code-server) against the real
// `blockfill serve` on the embedded model: see tests/editors/test_vscode.py, which loads this module through
// extensionTestsPath. `run()` resolving means every test passed; VS Code reports that as exit code 0.
//
// The model writes code-shaped noise, so the tests check where text goes, never what it says.

import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import type { BlockfillApi } from '../../src/extension';
import { INSTALL_HINT, preflight, resolveServerCommand, ServerProblem } from '../../src/serverCommand';
import { readSettings, serverLanguages, ConfigReader } from '../../src/settings';
import { statusView } from '../../src/status';

const STEP_MS = 60_000; // generous: two cores shared with other work; the happy path takes well under a second
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = STEP_MS): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

function reader(values: Record<string, unknown>): ConfigReader {
  return { get: <T>(key: string) => values[key] as T | undefined };
}

let api: BlockfillApi;
const config = () => vscode.workspace.getConfiguration('blockfill');
const workspace = () => vscode.workspace.workspaceFolders![0].uri.fsPath;

/** Set a global setting and wait until the extension has seen it. */
async function setSetting(key: string, value: unknown): Promise<void> {
  if (JSON.stringify(config().inspect(key)?.globalValue) === JSON.stringify(value)) return; // no event would come
  const seen = new Promise<void>((resolve) => {
    const listener = vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(`blockfill.${key}`)) {
        listener.dispose();
        setTimeout(resolve, 50); // the extension's own listener runs in the same tick
      }
    });
  });
  await config().update(key, value, vscode.ConfigurationTarget.Global);
  await seen;
}

function eventsSince(start: number, kind: string): Array<Record<string, any>> {
  return api.events.slice(start).filter((event) => event.event === kind);
}

/** A python file in the workspace, open in an editor, cursor at the end of `text`. */
async function openAt(name: string, text: string): Promise<vscode.TextEditor> {
  const file = path.join(workspace(), name);
  fs.writeFileSync(file, text);
  const document = await vscode.workspace.openTextDocument(file);
  const editor = await vscode.window.showTextDocument(document);
  const end = document.positionAt(text.length);
  editor.selection = new vscode.Selection(end, end);
  return editor;
}

// Where the server is asked: an empty function body (a block) first, then ends of lines. The weak model's
// answer at a given place can be empty (its filters drop noise), so a test takes the first place that answers.
const HEAD = 'import os\n\n\ndef list_names(folder):\n    return sorted(os.listdir(folder))\n\n\n';
const PLACES = [
  'def count_names(folder):\n    ',
  'names = list_',
  'path = os.path.join(folder, ',
  'for name in ',
];

/** Ask for a completion at the cursor (an Invoked request) and wait for VS Code to get the answer. */
async function triggerAndWait(editor: vscode.TextEditor): Promise<Record<string, any>> {
  const start = api.events.length;
  const uri = editor.document.uri.toString();
  await vscode.commands.executeCommand('blockfill.trigger');
  const inline = await waitFor(() => eventsSince(start, 'inline').find((e) => e.uri === uri && e.trigger === 'invoked'), 'inline items');
  await sleep(300); // VS Code renders the ghost text after the provider answers
  return inline;
}

/**
 * A file open at the first of PLACES where the server suggests something; the editor and that answer. Each
 * place is asked twice: a request can be superseded by a newer one for the same document (then it is empty).
 */
let firstPlace = 0; // where the last test got an answer: the model is deterministic, so start there

async function openWithSuggestion(stem: string): Promise<[vscode.TextEditor, Record<string, any>]> {
  const answers: unknown[] = [];
  for (let n = 0; n < PLACES.length; n++) {
    const i = (firstPlace + n) % PLACES.length;
    const editor = await openAt(`${stem}-${i}.py`, HEAD + PLACES[i]);
    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt) {
        // VS Code asks only once per document version and position: a no-op edit makes a new version.
        await vscode.commands.executeCommand('type', { text: ' ' });
        await vscode.commands.executeCommand('deleteLeft');
      }
      const inline = await triggerAndWait(editor);
      if (inline.items >= 1) {
        firstPlace = i;
        return [editor, inline];
      }
      answers.push(inline);
    }
  }
  throw new Error(`no suggestion at any of ${PLACES.length} places: ${JSON.stringify(answers)}`);
}

function acceptanceLog(): string {
  return (config().get<Record<string, unknown>>('serverSettings')?.acceptanceLog as string) ?? '';
}

function logRows(file: string): Array<Record<string, unknown>> {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

const tests: Array<[string, () => Promise<void>]> = [
  ['activates and starts `blockfill serve` from blockfill.pythonPath', async () => {
    const extension = vscode.extensions.getExtension<BlockfillApi>('blockfill.blockfill');
    assert.ok(extension, 'extension blockfill.blockfill not loaded');
    api = await extension.activate();
    await api.whenStarted();
    assert.ok(api.client?.isRunning(), 'the language client is not running');
    assert.equal(api.server?.kind, 'python');
    assert.equal(api.server?.source, 'blockfill.pythonPath');
    assert.deepEqual(api.server?.args.slice(0, 2), ['-m', 'lsp_server']);
    assert.ok(api.client?.initializeResult?.capabilities.inlineCompletionProvider, 'no inlineCompletionProvider');
    assert.equal(api.client?.initializeResult?.serverInfo?.name, 'blockfill');
  }],

  ['settings become initializationOptions (server keys only)', async () => {
    const sent = api.sentSettings[0];
    assert.deepEqual(api.client!.clientOptions.initializationOptions, sent);
    assert.equal(sent.model, 'blockfill-tiny'); // blockfill.model in the test's settings.json
    assert.equal(sent.blockCanvas, 48); // blockfill.maxBlockSize in the test's settings.json
    assert.equal(sent.debounceMs, 150);
    assert.equal(sent.alternatives, 3);
    assert.deepEqual(sent.languages, ['*']);
    assert.equal(sent.device, 'cpu'); // blockfill.serverSettings comes last and wins over blockfill.device
    assert.equal(sent.threads, 1);
    for (const key of ['pythonPath', 'server', 'enable', 'trigger', 'serverSettings']) assert.ok(!(key in sent), key);
    // The mapping on its own: an allow-list when "*" is off, editor-side exceptions when it is on.
    const mapped = readSettings(reader({ enable: { '*': false, python: true, go: true }, maxBlockSize: 64.4, trigger: 'manual' }));
    assert.deepEqual(mapped.server.languages, ['python', 'go']);
    assert.equal(mapped.server.blockCanvas, 64);
    assert.equal(mapped.trigger, 'manual');
    assert.deepEqual(serverLanguages({ '*': true, markdown: false }), ['*']);
  }],

  ['the status item shows the model, ready and the last latency from blockfill/status', async () => {
    await waitFor(() => api.status.server?.state === 'ready', 'status ready');
    const item = api.status.item;
    assert.match(item.text, /blockfill-tiny: ready/);
    assert.equal(item.command, 'blockfill.showOutput');
    await openWithSuggestion('status');
    await waitFor(() => /ready · \d+/.test(item.text) && item.text, 'a latency in the status text');
    assert.match(String(item.tooltip), /model: blockfill-tiny/);
    // Each state the server can send, as the item renders it.
    assert.match(statusView({ state: 'loading', model: 'm' }, undefined, true).text, /loading~spin\) m: loading/);
    assert.match(statusView({ state: 'busy', model: 'm', lastLatencyMs: 1500 }, undefined, true).text, /busy · 1\.5 s/);
    const error = statusView({ state: 'error', model: 'm', message: 'no checkpoint' }, undefined, true);
    assert.ok(error.error && /error/.test(error.text) && /no checkpoint/.test(error.tooltip));
    assert.match(statusView({ state: 'ready', model: 'm' }, undefined, false).text, /m: off/);
  }],

  ['a protocol-level textDocument/inlineCompletion request gets items with ranges', async () => {
    const [editor] = await openWithSuggestion('protocol');
    const document = editor.document;
    const cursor = editor.selection.active;
    const client = api.client!;
    const result: any = await client.sendRequest('textDocument/inlineCompletion', {
      textDocument: client.code2ProtocolConverter.asTextDocumentIdentifier(document),
      position: client.code2ProtocolConverter.asPosition(cursor),
      context: { triggerKind: 1 }, // Invoked: several alternatives
    });
    const items = Array.isArray(result) ? result : result.items;
    assert.ok(items.length >= 1, JSON.stringify(result));
    for (const item of items) {
      assert.equal(typeof item.insertText, 'string');
      assert.ok(item.insertText.length > 0);
      assert.deepEqual(item.range.end, { line: cursor.line, character: cursor.character });
    }
    await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
  }],

  ['an accepted completion is inserted and reported with blockfill/accepted', async () => {
    const [editor, inline] = await openWithSuggestion('accept');
    const line = editor.selection.active.line;
    const start = api.events.length;
    await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
    const accepted = await waitFor(() => eventsSince(start, 'accepted')[0], 'the accept to be reported');
    assert.equal(accepted.partial, false);
    assert.ok(inline.texts.includes(accepted.text), `${accepted.text} was not shown`);
    assert.ok(editor.document.getText().includes(accepted.text), 'the accepted text is not in the document');
    assert.ok(editor.document.lineAt(line).text.endsWith(accepted.text.split('\n')[0]));
    const rows = await waitFor(() => {
      const found = logRows(acceptanceLog()).filter((row) => row.partial === false);
      return found.length > 0 && found;
    }, 'the acceptance log');
    assert.equal(rows[rows.length - 1].language, 'python');
    const stats: any = await api.client!.sendRequest('blockfill/stats', {});
    assert.ok(stats.accepted >= 1, JSON.stringify(stats));
  }],

  ['a word-by-word accept is reported as partial', async () => {
    const [editor] = await openWithSuggestion('partial');
    const before = editor.document.getText();
    const start = api.events.length;
    await vscode.commands.executeCommand('blockfill.acceptNextWord');
    await waitFor(() => editor.document.getText() !== before, 'the next word to be inserted');
    const partial = await waitFor(() => eventsSince(start, 'accepted')[0], 'the partial accept to be reported');
    assert.equal(partial.partial, true);
    assert.ok(editor.document.getText().includes(partial.text));
    const stats: any = await api.client!.sendRequest('blockfill/stats', {});
    assert.ok(stats.partial >= 1, JSON.stringify(stats));
    await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
  }],

  ['blockfill.toggle turns completions off and on', async () => {
    const editor = await openAt('toggle.py', HEAD + PLACES[0]);
    await vscode.commands.executeCommand('blockfill.toggle');
    assert.equal(api.enabled, false);
    assert.match(api.status.item.text, /off/);
    const start = api.events.length;
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    const skipped = await waitFor(() => eventsSince(start, 'skipped')[0], 'the request to be skipped');
    assert.equal(skipped.reason, 'off');
    assert.equal(eventsSince(start, 'inline').length, 0);
    await vscode.commands.executeCommand('blockfill.toggle');
    assert.equal(api.enabled, true);
    assert.doesNotMatch(api.status.item.text, /off/);
    // VS Code does not ask twice at the same position and version: type a character, as a user would.
    await vscode.commands.executeCommand('type', { text: 'n' });
    const inline = await triggerAndWait(editor);
    assert.equal(inline.trigger, 'invoked');
  }],

  ['per-language enable and manual trigger are honoured in the editor', async () => {
    const editor = await openAt('modes.py', HEAD + PLACES[0]);
    try {
      await setSetting('enable', { '*': true, python: false });
      let start = api.events.length;
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      assert.equal((await waitFor(() => eventsSince(start, 'skipped')[0], 'a skip')).reason, 'off for python');
      await setSetting('enable', undefined);
      await setSetting('trigger', 'manual');
      start = api.events.length;
      await vscode.commands.executeCommand('type', { text: 'x' }); // typing asks automatically: skipped
      const skipped = await waitFor(() => eventsSince(start, 'skipped').find((e) => e.trigger === 'automatic'), 'an automatic skip');
      assert.equal(skipped.reason, 'manual trigger');
      assert.equal((await triggerAndWait(editor)).trigger, 'invoked'); // an explicit request still goes out
    } finally {
      await setSetting('enable', undefined);
      await setSetting('trigger', undefined);
    }
  }],

  ['a settings change goes out as workspace/didChangeConfiguration and the server applies it', async () => {
    const old = config().get<Record<string, unknown>>('serverSettings')!;
    const newLog = path.join(os.tmpdir(), `blockfill-accepted-${process.pid}-${Date.now()}.jsonl`);
    try {
      const sentBefore = api.sentSettings.length;
      await setSetting('debounceMs', 100);
      assert.deepEqual(api.sentSettings[sentBefore], { debounceMs: 100 }); // only what changed
      await setSetting('serverSettings', { ...old, acceptanceLog: newLog });
      assert.deepEqual(api.sentSettings[sentBefore + 1], { acceptanceLog: newLog });
      assert.ok(api.client?.isRunning());
      // The server writes accepts where it was just told to.
      await openWithSuggestion('config');
      await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
      await waitFor(() => logRows(newLog).length > 0, `an accept logged in ${newLog}`);
    } finally {
      await setSetting('debounceMs', undefined);
      await setSetting('serverSettings', old);
      fs.rmSync(newLog, { force: true });
    }
  }],

  ['a missing Python or package gets a message that says what was tried and what to install', async () => {
    assert.throws(
      () => resolveServerCommand({ serverPath: '', pythonPath: '/nonexistent/bin/python', args: [] }, []),
      (error: unknown) => error instanceof ServerProblem && error.message.includes('/nonexistent/bin/python') && error.message.includes(INSTALL_HINT),
    );
    assert.throws(
      () => resolveServerCommand({ serverPath: '', pythonPath: '', args: [] }, ['/nonexistent-folder'], { PATH: '' }),
      (error: unknown) =>
        error instanceof ServerProblem && error.message.includes('/nonexistent-folder/.venv/bin/blockfill') && error.message.includes('on PATH'),
    );
    const bare = process.platform === 'win32' ? undefined : '/usr/bin/python3';
    if (bare && fs.existsSync(bare)) {
      const message = await preflight({ command: bare, args: ['-m', 'lsp_server'], kind: 'python', source: 'test' }, os.tmpdir());
      assert.ok(message && /does not have blockfill installed|needs 3\.11/.test(message) && message.includes(bare), message);
    }
    assert.equal(await preflight(api.server!, workspace()), undefined); // the test's own Python has blockfill
  }],

  ['a wrong blockfill.pythonPath shows in the status item; fixing it starts the server again', async () => {
    const good = config().get<string>('pythonPath');
    try {
      await setSetting('pythonPath', '/nonexistent/bin/python');
      await waitFor(() => api.status.editor === 'server-missing', 'the status to say the server is missing');
      assert.match(api.status.item.text, /server not found/);
      assert.match(String(api.status.item.tooltip), /\/nonexistent\/bin\/python/);
      assert.equal(api.client, undefined);
    } finally {
      await setSetting('pythonPath', good);
    }
    await waitFor(() => api.client?.isRunning(), 'the server to start again');
    await waitFor(() => api.status.server?.state === 'ready' && !api.status.editor, 'ready after the fix');
  }],
];

export async function run(): Promise<void> {
  const failures: string[] = [];
  let passed = 0;
  const only = process.env.BLOCKFILL_SUITE_GREP;
  for (const [name, test] of tests) {
    if (only && !name.includes(only)) continue;
    const t0 = Date.now();
    try {
      await test();
      passed += 1;
      console.log(`  ok   ${name} (${Date.now() - t0} ms)`);
    } catch (error) {
      failures.push(name);
      console.log(`  FAIL ${name} (${Date.now() - t0} ms)\n${error instanceof Error ? error.stack : error}`);
    }
  }
  console.log(`SUITE passed=${passed} failed=${failures.length}`);
  if (failures.length) throw new Error(`${failures.length} failed: ${failures.join('; ')}`);
}
