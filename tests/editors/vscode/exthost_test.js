// Run the extension's own test suite inside code-server's (Node) extension host, the way @vscode/test-web
// does it: the workbench URL's payload names extensionDevelopmentPath and extensionTestsPath, and the
// workbench reports the suite's outcome through window.codeAutomationExit (console output through
// window.codeAutomationLog). Env: PORT, WS, EXT_DEV, EXT_TESTS, ARTIFACTS. Prints `RESULT <json>`.
'use strict';
const path = require('path');
const { log, env, workbenchUrl, launch } = require('./browser');

const TIMEOUT = Number(process.env.SUITE_TIMEOUT_MS || 200000);

(async () => {
  const result = { exitCode: null, passed: 0, failed: 0 };
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  // VS Code newer than 1.100 honours the payload only with developmentOptions.enableSmokeTestDriver, which
  // code-server cannot set from its command line: patch the workbench configuration as it is read.
  await page.addInitScript(() => {
    const getAttribute = Element.prototype.getAttribute;
    Element.prototype.getAttribute = function (name) {
      const value = getAttribute.call(this, name);
      if (this.id === 'vscode-workbench-web-configuration' && name === 'data-settings' && value) {
        const config = JSON.parse(value);
        config.developmentOptions = { ...(config.developmentOptions || {}), enableSmokeTestDriver: true };
        return JSON.stringify(config);
      }
      return value;
    };
  });
  let finish;
  const exited = new Promise((resolve) => (finish = resolve));
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const text = (args || []).map(String).join(' ');
    if (/^(Creating|\[Service)/.test(text)) return; // the extension host's own start-up chatter
    const summary = /SUITE passed=(\d+) failed=(\d+)/.exec(text);
    if (summary) [result.passed, result.failed] = [Number(summary[1]), Number(summary[2])];
    log(`[ext-host ${type}] ${text}`);
  });
  await page.exposeFunction('codeAutomationExit', (code) => finish(code));
  try {
    await page.goto(workbenchUrl(env('EXT_TESTS')));
    result.exitCode = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), TIMEOUT))]);
    if (result.exitCode !== 0) await page.screenshot({ path: path.join(env('ARTIFACTS'), 'vscode-exthost-failure.png') });
  } catch (error) {
    result.error = error.message;
    log('ERROR ' + error.message);
  } finally {
    await browser.close().catch(() => {});
  }
  log(`extension tests exit code: ${result.exitCode}`);
  console.log('RESULT ' + JSON.stringify(result));
  process.exit(result.exitCode === 0 ? 0 : 1);
})();
