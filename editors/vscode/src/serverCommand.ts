// Which command starts `blockfill serve`, and what to tell the user when none works.
//
// Order: `blockfill.server.path` (the `blockfill` script), then `blockfill.pythonPath` (`python -m lsp_server`),
// then a workspace folder's `.venv`, then `blockfill` on PATH. A path the user set is never silently replaced by
// a later candidate: if it is wrong, they are told so.

import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { LaunchSettings } from './settings';

export interface ServerCommand {
  command: string;
  args: string[];
  kind: 'script' | 'python';
  source: string; // where it came from, for messages: "blockfill.pythonPath", "PATH", ...
}

/** A message meant for the user: what was tried and what to do. */
export class ServerProblem extends Error {
  constructor(
    message: string,
    readonly tried: string[],
  ) {
    super(message);
  }
}

export const INSTALL_HINT =
  'Install blockfill into a Python 3.11+ environment (in a blockfill checkout: `bash setup.sh`, which makes ' +
  '.venv; or `python -m pip install -e <checkout>`), then set "blockfill.pythonPath" to that environment\'s ' +
  'python (e.g. <checkout>/.venv/bin/python) or "blockfill.server.path" to its `blockfill` script.';

const WINDOWS = process.platform === 'win32';

function isExecutableFile(file: string): boolean {
  try {
    if (!fs.statSync(file).isFile()) return false;
    if (!WINDOWS) fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A bare name ("python3") looked up on PATH, a path made absolute against the first workspace folder. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv, cwd?: string): string | undefined {
  if (name.startsWith('~')) name = path.join(env.HOME ?? env.USERPROFILE ?? '', name.slice(1));
  if (name.includes('/') || name.includes('\\')) {
    const file = path.isAbsolute(name) || !cwd ? name : path.join(cwd, name);
    return isExecutableFile(file) ? file : undefined;
  }
  const exts = WINDOWS ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').concat(['']) : [''];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    for (const ext of exts) {
      const file = path.join(dir, name + ext);
      if (dir && isExecutableFile(file)) return file;
    }
  }
  return undefined;
}

function venvScript(folder: string): string {
  return WINDOWS ? path.join(folder, '.venv', 'Scripts', 'blockfill.exe') : path.join(folder, '.venv', 'bin', 'blockfill');
}

export function resolveServerCommand(
  launch: LaunchSettings,
  workspaceFolders: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ServerCommand {
  const cwd = workspaceFolders[0];
  if (launch.serverPath) {
    const found = findExecutable(launch.serverPath, env, cwd);
    if (!found) {
      throw new ServerProblem(
        `blockfill: "blockfill.server.path" is set to ${launch.serverPath}, which is not an executable file. ` +
          INSTALL_HINT,
        [launch.serverPath],
      );
    }
    return { command: found, args: ['serve', ...launch.args], kind: 'script', source: 'blockfill.server.path' };
  }
  if (launch.pythonPath) {
    const found = findExecutable(launch.pythonPath, env, cwd);
    if (!found) {
      throw new ServerProblem(
        `blockfill: no Python at "blockfill.pythonPath" = ${launch.pythonPath}. ` + INSTALL_HINT,
        [launch.pythonPath],
      );
    }
    return { command: found, args: ['-m', 'lsp_server', ...launch.args], kind: 'python', source: 'blockfill.pythonPath' };
  }
  const tried: string[] = [];
  for (const folder of workspaceFolders) {
    const script = venvScript(folder);
    tried.push(script);
    if (isExecutableFile(script)) {
      return { command: script, args: ['serve', ...launch.args], kind: 'script', source: 'the workspace .venv' };
    }
  }
  tried.push('`blockfill` on PATH');
  const onPath = findExecutable('blockfill', env);
  if (onPath) return { command: onPath, args: ['serve', ...launch.args], kind: 'script', source: 'PATH' };
  throw new ServerProblem(
    `blockfill: could not find the blockfill language server (tried ${tried.join(', ')}). ` + INSTALL_HINT,
    tried,
  );
}

function run(command: string, args: string[], cwd: string | undefined, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: timeoutMs, windowsHide: true }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, out: `${stdout}${stderr}`.trim() });
    });
  });
}

// Exit 3: Python too old; exit 4: the package is not importable. find_spec imports nothing heavy (~50 ms).
const PROBE =
  'import importlib.util as u, sys\n' +
  'if sys.version_info < (3, 11): print(sys.version.split()[0]); sys.exit(3)\n' +
  'sys.exit(0 if u.find_spec("lsp_server") and u.find_spec("engine") else 4)';

/**
 * Before starting `python -m lsp_server`: is it a Python 3.11+ with blockfill installed? Undefined when it is,
 * else the message to show. Run in the server's working directory, since `-m` (like `-c`) imports from it.
 * A script (`blockfill serve`) carries its own interpreter: nothing to probe.
 */
export async function preflight(server: ServerCommand, cwd: string | undefined): Promise<string | undefined> {
  if (server.kind !== 'python') return undefined;
  const { code, out } = await run(server.command, ['-c', PROBE], cwd, 15000);
  if (code === 0) return undefined;
  if (code === 3) {
    return `blockfill: ${server.command} (from ${server.source}) is Python ${out}; blockfill needs 3.11 or newer. ` + INSTALL_HINT;
  }
  if (code === 4) {
    return (
      `blockfill: the Python at ${server.command} (from ${server.source}) does not have blockfill installed ` +
      '(no module lsp_server). ' + INSTALL_HINT
    );
  }
  return `blockfill: ${server.command} (from ${server.source}) did not run as Python (${out || `exit ${code}`}). ` + INSTALL_HINT;
}

/** The message for a server that started but died before it answered `initialize`. */
export function startFailureMessage(server: ServerCommand, stderrTail: string[], error: unknown): string {
  const last = stderrTail.filter((line) => line.trim()).slice(-3).join(' | ');
  const command = [server.command, ...server.args].join(' ');
  const detail = last || (error instanceof Error ? error.message : String(error));
  let hint = 'See the blockfill output for the full log.';
  if (/No module named/.test(last)) hint = 'A Python package is missing from that environment. ' + INSTALL_HINT;
  return `blockfill: the language server did not start: \`${command}\` (from ${server.source}) failed: ${detail}. ${hint}`;
}
