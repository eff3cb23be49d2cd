// The status bar item: the server's `blockfill/status` notification, plus what only the editor knows
// (completions toggled off, the server not starting). Clicking it opens the output channel.

import * as vscode from 'vscode';

/** `blockfill/status` params, as lsp_server/server.py sends them. */
export interface ServerStatus {
  state: 'loading' | 'ready' | 'busy' | 'error' | string;
  model?: string | null;
  lastLatencyMs?: number | null;
  message?: string | null;
}

export type EditorState = 'starting' | 'stopped' | 'server-missing';

export interface StatusView {
  text: string;
  tooltip: string;
  error: boolean;
}

export const SHOW_OUTPUT_COMMAND = 'blockfill.showOutput';

function latency(ms: number | null | undefined): string {
  if (typeof ms !== 'number') return '';
  return ms >= 1000 ? ` · ${(ms / 1000).toFixed(1)} s` : ` · ${Math.round(ms)} ms`;
}

/** What the item shows for a server status, an editor-side state, and the toggle. Pure, for tests. */
export function statusView(server: ServerStatus | undefined, editor: EditorState | undefined, enabled: boolean): StatusView {
  const model = server?.model || 'blockfill';
  const lines: string[] = [];
  let text: string;
  let error = false;
  if (editor === 'server-missing') {
    text = '$(error) blockfill: server not found';
    error = true;
  } else if (editor === 'stopped') {
    text = '$(error) blockfill: stopped';
    error = true;
  } else if (editor === 'starting' || !server) {
    text = '$(loading~spin) blockfill: starting';
  } else {
    switch (server.state) {
      case 'loading':
        text = `$(loading~spin) ${model}: loading`;
        break;
      case 'ready':
        text = `$(sparkle) ${model}: ready${latency(server.lastLatencyMs)}`;
        break;
      case 'busy':
        text = `$(sync~spin) ${model}: busy${latency(server.lastLatencyMs)}`;
        break;
      case 'error':
        text = `$(error) ${model}: error`;
        error = true;
        break;
      default:
        text = `$(question) ${model}: ${server.state}`;
    }
  }
  if (!enabled && !error) text = `$(circle-slash) ${model}: off`;
  lines.push(`blockfill: ${enabled ? 'completions on' : 'completions off (blockfill.toggle turns them on)'}`);
  if (server?.model) lines.push(`model: ${server.model}`);
  lines.push(`state: ${editor ?? server?.state ?? 'starting'}`);
  if (typeof server?.lastLatencyMs === 'number') lines.push(`last completion: ${Math.round(server.lastLatencyMs)} ms`);
  if (server?.message) lines.push(server.message);
  lines.push('Click to open the blockfill output.');
  return { text, tooltip: lines.join('\n'), error };
}

export class StatusItem implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  server: ServerStatus | undefined;
  editor: EditorState | undefined = 'starting';
  enabled = true;
  private readonly listeners: Array<(status: ServerStatus) => void> = [];

  constructor() {
    this.item = vscode.window.createStatusBarItem('blockfill.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'blockfill';
    this.item.command = SHOW_OUTPUT_COMMAND;
    this.render();
    this.item.show();
  }

  /** A `blockfill/status` notification arrived. */
  update(status: ServerStatus): void {
    this.server = status;
    this.editor = undefined;
    this.render();
    for (const listener of this.listeners) listener(status);
  }

  setEditorState(state: EditorState | undefined, message?: string): void {
    this.editor = state;
    if (message !== undefined) this.server = { ...(this.server ?? { state: 'error' }), message };
    this.render();
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.render();
  }

  onUpdate(listener: (status: ServerStatus) => void): void {
    this.listeners.push(listener);
  }

  view(): StatusView {
    return statusView(this.server, this.editor, this.enabled);
  }

  private render(): void {
    const view = this.view();
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor = view.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
