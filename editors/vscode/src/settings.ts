// The extension's settings (`blockfill.*`) and how they map onto the server's.
//
// The server takes any engine setting plus its own (lsp_server/settings.py) as initializationOptions and in
// workspace/didChangeConfiguration, camelCase or snake_case. Only server keys are sent: the editor-side ones
// (server command, enable, trigger) would each come back as an "unknown setting" warning.

export const SECTION = 'blockfill';

/** The subset of vscode.WorkspaceConfiguration used here, so the mapping is a pure function. */
export interface ConfigReader {
  get<T>(section: string): T | undefined;
}

export type TriggerMode = 'automatic' | 'manual';

/** How to start the server, from `blockfill.server.path`, `blockfill.pythonPath` and `blockfill.server.args`. */
export interface LaunchSettings {
  serverPath: string; // the `blockfill` console script; runs `<path> serve`
  pythonPath: string; // a Python with blockfill installed; runs `<python> -m lsp_server`
  args: string[]; // appended after `serve` / `-m lsp_server`
}

export interface ExtensionSettings {
  launch: LaunchSettings;
  enable: Record<string, boolean>; // language id (or "*") -> on/off, as in `blockfill.enable`
  trigger: TriggerMode;
  server: Record<string, unknown>; // what the server gets: initializationOptions and didChangeConfiguration
}

const DEFAULT_ENABLE: Record<string, boolean> = { '*': true, plaintext: false, markdown: false, scminput: false };

function str(config: ConfigReader, key: string): string {
  const value = config.get<unknown>(key);
  return typeof value === 'string' ? value.trim() : '';
}

function num(config: ConfigReader, key: string): number | undefined {
  const value = config.get<unknown>(key);
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** `blockfill.enable` with the defaults under it, so `{"python": false}` keeps "*" on. */
export function enableMap(config: ConfigReader): Record<string, boolean> {
  const raw = config.get<unknown>('enable');
  const map: Record<string, boolean> = { ...DEFAULT_ENABLE };
  if (raw && typeof raw === 'object') {
    for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof value === 'boolean') map[key] = value;
    }
  }
  return map;
}

/** Whether completions are on for a language: its own entry, else "*". */
export function languageEnabled(enable: Record<string, boolean>, languageId: string): boolean {
  return languageId in enable ? enable[languageId] : enable['*'] !== false;
}

/**
 * The server's `languages` setting: "*" when every language is on by default (the exceptions are filtered
 * in the editor, since the server only takes an allow-list), else the languages switched on.
 */
export function serverLanguages(enable: Record<string, boolean>): string[] {
  if (enable['*'] !== false) return ['*'];
  return Object.keys(enable).filter((key) => key !== '*' && enable[key]);
}

/** Settings as the server takes them; `blockfill.serverSettings` (free-form) is merged in last. */
export function serverSettings(config: ConfigReader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const model = str(config, 'model');
  if (model) out.model = model;
  const device = str(config, 'device');
  if (device) out.device = device;
  const debounce = num(config, 'debounceMs');
  if (debounce !== undefined) out.debounceMs = Math.max(0, Math.round(debounce));
  const block = num(config, 'maxBlockSize');
  if (block !== undefined) out.blockCanvas = Math.max(1, Math.round(block));
  const alternatives = num(config, 'alternatives');
  if (alternatives !== undefined) out.alternatives = Math.max(1, Math.round(alternatives));
  out.languages = serverLanguages(enableMap(config));
  const extra = config.get<unknown>('serverSettings');
  if (extra && typeof extra === 'object' && !Array.isArray(extra)) Object.assign(out, extra);
  return out;
}

export function readSettings(config: ConfigReader): ExtensionSettings {
  const args = config.get<unknown>('server.args');
  return {
    launch: {
      serverPath: str(config, 'server.path'),
      pythonPath: str(config, 'pythonPath'),
      args: Array.isArray(args) ? args.filter((a): a is string => typeof a === 'string') : [],
    },
    enable: enableMap(config),
    trigger: config.get<unknown>('trigger') === 'manual' ? 'manual' : 'automatic',
    server: serverSettings(config),
  };
}

/** Keys whose value differs between two server-settings objects (a removed key counts). */
export function changedKeys(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]));
}

export function sameLaunch(a: LaunchSettings, b: LaunchSettings): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
