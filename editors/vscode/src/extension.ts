// blockfill for VS Code: starts `blockfill serve` with vscode-languageclient (whose built-in inline completion
// feature makes the ghost text), keeps a status bar item from `blockfill/status`, forwards settings, and reports
// accepted completions with `blockfill/accepted`.

import * as fs from 'fs';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  Middleware,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { preflight, ServerCommand, ServerProblem, resolveServerCommand, startFailureMessage } from './serverCommand';
import {
  changedKeys,
  ExtensionSettings,
  languageEnabled,
  readSettings,
  sameLaunch,
  SECTION,
} from './settings';
import { SHOW_OUTPUT_COMMAND, ServerStatus, StatusItem } from './status';

export const STATUS_NOTIFICATION = 'blockfill/status';
export const ACCEPTED_NOTIFICATION = 'blockfill/accepted';
export const ACCEPTED_COMMAND = 'blockfill._accepted'; // run by VS Code after an item is accepted in full
const ENABLED_KEY = 'blockfill.enabled';
const STDERR_LINES = 20;
const MAX_RESTARTS = 3; // crashes within RESTART_WINDOW_MS before giving up
const RESTART_WINDOW_MS = 3 * 60 * 1000;
const MAX_EVENTS = 500;

/** What `activate` returns: the extension's state, for its own tests and for other extensions. */
export interface BlockfillApi {
  readonly client: LanguageClient | undefined;
  readonly status: StatusItem;
  readonly enabled: boolean;
  readonly settings: ExtensionSettings;
  readonly server: ServerCommand | undefined;
  /** initializationOptions of the running server, and every didChangeConfiguration payload since. */
  readonly sentSettings: Array<Record<string, unknown>>;
  /** Recent events (inline requests, accepts, status), newest last. */
  readonly events: Array<Record<string, unknown>>;
  /** Resolves once the current start attempt is over (started or failed). */
  whenStarted(): Promise<void>;
  restart(): Promise<void>;
}

class Blockfill implements BlockfillApi {
  client: LanguageClient | undefined;
  server: ServerCommand | undefined;
  settings: ExtensionSettings;
  enabled: boolean;
  readonly status: StatusItem;
  readonly output: vscode.LogOutputChannel;
  readonly sentSettings: Array<Record<string, unknown>> = [];
  readonly events: Array<Record<string, unknown>> = [];
  private starting: Promise<void> = Promise.resolve();
  private stderrTail: string[] = [];
  private crashes: number[] = [];
  private readonly shown = new Map<string, string[]>(); // document uri -> texts of the items last shown there
  private readonly eventsFile = process.env.BLOCKFILL_VSCODE_EVENTS;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel('blockfill', { log: true });
    this.status = new StatusItem();
    this.settings = readSettings(vscode.workspace.getConfiguration(SECTION));
    this.enabled = context.globalState.get<boolean>(ENABLED_KEY, true);
    this.status.setEnabled(this.enabled);
    void vscode.commands.executeCommand('setContext', ENABLED_KEY, this.enabled);
    this.status.onUpdate((status) => this.record({ event: 'status', ...status }));
    context.subscriptions.push(this.output, this.status);
  }

  record(event: Record<string, unknown>): void {
    this.events.push(event);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    if (this.eventsFile) {
      try {
        fs.appendFileSync(this.eventsFile, JSON.stringify({ time: Date.now(), ...event }) + '\n');
      } catch {
        // a test hook only: never let it break the editor
      }
    }
  }

  whenStarted(): Promise<void> {
    return this.starting;
  }

  start(): Promise<void> {
    this.starting = this.startClient().catch((error) => this.output.error(`start failed: ${error}`));
    return this.starting;
  }

  private async startClient(): Promise<void> {
    this.status.setEditorState('starting');
    const folders = (vscode.workspace.workspaceFolders ?? [])
      .filter((folder) => folder.uri.scheme === 'file')
      .map((folder) => folder.uri.fsPath);
    let server: ServerCommand;
    try {
      server = resolveServerCommand(this.settings.launch, folders);
    } catch (error) {
      if (!(error instanceof ServerProblem)) throw error;
      return this.fail(error.message, 'server-missing');
    }
    const problem = await preflight(server, this.serverCwd());
    if (problem) return this.fail(problem, 'server-missing');
    this.server = server;
    this.output.info(`starting ${[server.command, ...server.args].join(' ')} (from ${server.source})`);
    const initializationOptions = { ...this.settings.server };
    const client = new LanguageClient('blockfill', 'blockfill', this.serverOptions(server), this.clientOptions(initializationOptions));
    this.client = client;
    this.stderrTail = [];
    client.onNotification(STATUS_NOTIFICATION, (params: ServerStatus) => this.status.update(params));
    client.onDidChangeState((event) => {
      if (event.newState === State.Stopped && this.client === client && this.status.editor !== 'server-missing') {
        this.status.setEditorState('stopped');
      }
    });
    try {
      await client.start();
    } catch (error) {
      if (this.client === client) this.client = undefined;
      return this.fail(startFailureMessage(server, this.stderrTail, error), 'stopped');
    }
    this.sentSettings.splice(0, this.sentSettings.length, initializationOptions);
    const info = client.initializeResult?.serverInfo;
    this.output.info(`started ${info?.name ?? 'server'} ${info?.version ?? ''}`);
    this.record({ event: 'started', server: info ?? null, inlineCompletionProvider: !!client.initializeResult?.capabilities.inlineCompletionProvider });
  }

  private fail(message: string, state: 'server-missing' | 'stopped'): void {
    this.output.error(message);
    this.status.setEditorState(state, message);
    this.record({ event: 'failed', message });
    void vscode.window.showErrorMessage(message, 'Open Settings', 'Show Output').then((choice) => {
      if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', SECTION);
      if (choice === 'Show Output') this.output.show(true);
    });
  }

  private serverCwd(): string | undefined {
    return vscode.workspace.workspaceFolders?.find((folder) => folder.uri.scheme === 'file')?.uri.fsPath;
  }

  private serverOptions(server: ServerCommand): ServerOptions {
    return { command: server.command, args: server.args, options: { cwd: this.serverCwd(), env: process.env } };
  }

  private clientOptions(initializationOptions: Record<string, unknown>): LanguageClientOptions & {
    stdioOptions: Required<import('vscode-languageclient/node').StdioOptions>;
  } {
    const lines = (onLine: (line: string) => void) => (input: NodeJS.ReadableStream) => {
      let buffer = '';
      input.on('data', (chunk: Buffer | string) => {
        buffer += chunk.toString();
        const parts = buffer.split(/\r?\n/);
        buffer = parts.pop() ?? '';
        parts.forEach(onLine);
      });
    };
    return {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      outputChannel: this.output,
      initializationOptions,
      middleware: this.middleware(),
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => this.closed(),
      },
      initializationFailedHandler: () => false,
      stdioOptions: {
        stdout: lines((line) => this.output.info(line)),
        stderr: lines((line) => {
          this.output.warn(`[server] ${line}`);
          this.stderrTail.push(line);
          if (this.stderrTail.length > STDERR_LINES) this.stderrTail.shift();
        }),
      },
    };
  }

  /** The server process ended without being asked: restart a few times, then say so and stop. */
  private closed(): { action: CloseAction; message?: string; handled: boolean } {
    if (this.client?.state === State.Starting) return { action: CloseAction.DoNotRestart, handled: true };
    const now = Date.now();
    this.crashes = this.crashes.filter((time) => now - time < RESTART_WINDOW_MS).concat(now);
    if (this.crashes.length <= MAX_RESTARTS) {
      this.output.warn(`the server exited (${this.stderrTail.slice(-1)[0] ?? 'no message'}); restarting`);
      return { action: CloseAction.Restart, handled: true };
    }
    const message = this.server
      ? startFailureMessage(this.server, this.stderrTail, new Error(`it exited ${this.crashes.length} times in 3 minutes`))
      : 'blockfill: the server keeps exiting';
    this.fail(message, 'stopped');
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  private middleware(): Middleware {
    return {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        const invoked = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
        const trigger = invoked ? 'invoked' : 'automatic';
        const skip = !this.enabled
          ? 'off'
          : !languageEnabled(this.settings.enable, document.languageId)
            ? `off for ${document.languageId}`
            : this.settings.trigger === 'manual' && !invoked
              ? 'manual trigger'
              : undefined;
        if (skip) {
          this.record({ event: 'skipped', trigger, reason: skip, uri: document.uri.toString() });
          return undefined;
        }
        const result = await next(document, position, context, token);
        const items = Array.isArray(result) ? result : (result?.items ?? []);
        const uri = document.uri.toString();
        const texts: string[] = [];
        for (const item of items) {
          const text = typeof item.insertText === 'string' ? item.insertText : item.insertText.value;
          texts.push(text);
          item.command = { command: ACCEPTED_COMMAND, title: 'blockfill: accepted', arguments: [uri, text] };
        }
        if (texts.length) this.shown.set(uri, texts);
        this.record({ event: 'inline', trigger, uri, line: position.line, character: position.character, items: texts.length, texts });
        return result;
      },
      // The server also answers textDocument/completion (for clients without inline completion); here the
      // ghost text already shows the same thing, so the suggest widget does not ask for it a second time.
      provideCompletionItem: () => undefined,
    };
  }

  report(uri: string, text: string, partial: boolean): void {
    this.record({ event: 'accepted', uri, text, partial });
    const client = this.client;
    if (!client || !client.isRunning()) return;
    client.sendNotification(ACCEPTED_NOTIFICATION, { uri, text, partial }).catch((error) => this.output.warn(`${ACCEPTED_NOTIFICATION}: ${error}`));
  }

  /** Run VS Code's partial accept (next word / next line) and report what it inserted, if it came from us. */
  async acceptPart(builtin: string): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      await vscode.commands.executeCommand(builtin);
      return;
    }
    const document = editor.document;
    const inserted: string[] = [];
    const listener = vscode.workspace.onDidChangeTextDocument((event) => {
      if (event.document === document) inserted.push(...event.contentChanges.map((change) => change.text));
    });
    try {
      await vscode.commands.executeCommand(builtin);
      if (!inserted.length) await new Promise((resolve) => setTimeout(resolve, 50)); // the change event may trail
    } finally {
      listener.dispose();
    }
    const text = inserted.join('');
    const uri = document.uri.toString();
    if (text && (this.shown.get(uri) ?? []).some((shown) => shown.includes(text))) this.report(uri, text, true);
  }

  async setEnabled(enabled: boolean): Promise<void> {
    this.enabled = enabled;
    this.status.setEnabled(enabled);
    await this.context.globalState.update(ENABLED_KEY, enabled);
    await vscode.commands.executeCommand('setContext', ENABLED_KEY, enabled);
    if (!enabled) await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    this.record({ event: 'toggle', enabled });
  }

  async trigger(): Promise<void> {
    if (!this.enabled) {
      const choice = await vscode.window.showInformationMessage('blockfill completions are off.', 'Turn On');
      if (choice !== 'Turn On') return;
      await this.setEnabled(true);
    }
    // VS Code does not ask again for a position it already has an answer for (even an empty one): hide first.
    await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
  }

  async configurationChanged(): Promise<void> {
    const before = this.settings;
    this.settings = readSettings(vscode.workspace.getConfiguration(SECTION));
    const keys = changedKeys(before.server, this.settings.server);
    const removed = keys.filter((key) => !(key in this.settings.server));
    const client = this.client;
    const restart = !sameLaunch(before.launch, this.settings.launch) || removed.length > 0 || !client;
    this.record({ event: 'settings', changed: keys, restart });
    if (restart) {
      // A removed key cannot be sent (the server keeps what it has): a new server starts from the defaults.
      await this.restart();
      return;
    }
    if (!keys.length) return;
    const changed = Object.fromEntries(keys.map((key) => [key, this.settings.server[key]]));
    this.sentSettings.push(changed);
    this.record({ event: 'configuration', settings: changed });
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: changed } });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client && client.state !== State.Stopped) await client.stop(5000).catch(() => undefined);
  }

  async restart(): Promise<void> {
    await this.starting;
    await this.stop();
    this.crashes = [];
    await this.start();
  }
}

let instance: Blockfill | undefined;

export function activate(context: vscode.ExtensionContext): BlockfillApi {
  const blockfill = new Blockfill(context);
  instance = blockfill;
  const command = (id: string, run: (...args: any[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, run));
  command('blockfill.toggle', () => blockfill.setEnabled(!blockfill.enabled));
  command('blockfill.enable', () => blockfill.setEnabled(true));
  command('blockfill.disable', () => blockfill.setEnabled(false));
  command('blockfill.trigger', () => blockfill.trigger());
  command('blockfill.restartServer', () => blockfill.restart());
  command(SHOW_OUTPUT_COMMAND, () => blockfill.output.show(true));
  command('blockfill.acceptNextWord', () => blockfill.acceptPart('editor.action.inlineSuggest.acceptNextWord'));
  command('blockfill.acceptNextLine', () => blockfill.acceptPart('editor.action.inlineSuggest.acceptNextLine'));
  command(ACCEPTED_COMMAND, (uri: string, text: string) => blockfill.report(uri, text, false));
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(SECTION)) void blockfill.configurationChanged();
    }),
  );
  void blockfill.start();
  return blockfill;
}

export async function deactivate(): Promise<void> {
  await instance?.stop();
  instance = undefined;
}
