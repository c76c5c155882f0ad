// npm run test:e2e: the packaged extension in a real VS Code (code-server), driven through
// Debian's chromium with playwright-core. Phase 1 runs the extension-host suite; phase 2 types in
// a markdown file and checks the model's continuation as ghost text, Tab, and a settings change.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  openSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, Page } from 'playwright-core';
import { LspSession } from '../../tools/lsp-driver';

const ROOT = join(__dirname, '..', '..');
const CODE_SERVER =
  process.env.CODE_SERVER ?? join(ROOT, '.cache', 'code-server', 'node_modules', '.bin', 'code-server');
const VSIX = join(ROOT, 'char-complete.vsix');
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(ROOT, 'e2e-artifacts');
const LINE = 'the quick brown fox jumps over the lazy dog.\n';
const TYPED = 'the quick br';
const BROWSER_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const t0 = Date.now();
const log = (...args: unknown[]) => console.log(`[e2e +${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...args);
const results: Array<{ name: string; ok: boolean; detail?: string }> = [];
const record = (name: string, ok: boolean, detail?: string) => {
  results.push({ name, ok, detail });
  log(`${ok ? 'ok' : 'not ok'} - ${name}${detail ? `: ${detail}` : ''}`);
};

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, ms: number): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

async function main(): Promise<void> {
  for (const [what, path] of [
    ['code-server', CODE_SERVER],
    ['the .vsix (npm run package)', VSIX],
    ['chromium', '/usr/bin/chromium'],
  ]) {
    if (!existsSync(path)) throw new Error(`${what} is missing at ${path}; .ci/run shows how to install it`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'char-complete-e2e-'));
  const workspace = join(tmp, 'notes');
  mkdirSync(workspace);
  writeFileSync(join(workspace, 'fox.md'), LINE.repeat(400));
  writeFileSync(join(workspace, 'draft.md'), '# Draft\n');
  const modelDir = join(tmp, 'model');
  const serverLog = join(tmp, 'server.log');

  // A small model that knows the training line, and what the server itself completes it with.
  const trained = spawnSync(
    process.execPath,
    [
      join(ROOT, 'dist', 'train.js'),
      join(workspace, 'fox.md'),
      '--out',
      modelDir,
      '--epochs',
      '6',
      '--layers',
      '1',
      '--hidden',
      '48',
      '--embed',
      '16',
      '--seq',
      '32',
      '--batch',
      '8',
      '--lr',
      '0.01',
      '--dropout',
      '0',
    ],
    { encoding: 'utf8', env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' } },
  );
  if (trained.status !== 0) throw new Error(`training failed: ${trained.stderr}`);
  const session = new LspSession({ initializationOptions: { modelPath: modelDir } });
  await session.initialize();
  await session.open('file:///e2e/draft.md', `# Draft\n${TYPED}`);
  const expected = await session.inline('file:///e2e/draft.md', 1, TYPED.length);
  await session.shutdown();
  if (!expected) throw new Error('the model offers no completion for the typed text');
  log(`the server completes ${JSON.stringify(TYPED)} with ${JSON.stringify(expected)}`);

  const home = join(tmp, 'home');
  const userData = join(tmp, 'user-data');
  const extensions = join(tmp, 'extensions');
  mkdirSync(join(userData, 'User'), { recursive: true });
  const settingsFile = join(userData, 'User', 'settings.json');
  const settings: Record<string, unknown> = {
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    'telemetry.telemetryLevel': 'off',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'workbench.tips.enabled': false,
    'editor.inlineSuggest.enabled': true,
    'charComplete.modelPath': modelDir,
  };
  writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
  const env = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_DATA_HOME: join(home, '.local/share'),
    XDG_CACHE_HOME: join(home, '.cache'),
    CHAR_COMPLETE_LOG_FILE: serverLog,
    CHAR_COMPLETE_WASM_THREADS: '1',
  };
  const install = spawnSync(
    CODE_SERVER,
    ['--install-extension', VSIX, '--extensions-dir', extensions, '--user-data-dir', userData],
    { encoding: 'utf8', env },
  );
  record(
    'the .vsix installs into code-server',
    install.status === 0,
    install.status === 0 ? undefined : install.stderr + install.stdout,
  );

  const port = await freePort();
  const codeServer: ChildProcess = spawn(
    CODE_SERVER,
    [
      '--auth',
      'none',
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--config',
      join(tmp, 'config.yaml'),
      '--user-data-dir',
      userData,
      '--extensions-dir',
      extensions,
    ],
    {
      env,
      detached: true,
      stdio: [
        'ignore',
        openSync(join(ARTIFACTS, 'code-server.log'), 'w'),
        openSync(join(ARTIFACTS, 'code-server.err'), 'w'),
      ],
    },
  );
  const base = `http://127.0.0.1:${port}`;
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: BROWSER_FLAGS });
  try {
    const up = await waitFor(async () => {
      try {
        return (await fetch(`${base}/healthz`)).ok ? true : undefined;
      } catch {
        return undefined;
      }
    }, 30_000);
    if (!up) throw new Error('code-server did not start');
    log(`code-server is up on ${base}`);
    const remote = (path: string) => `vscode-remote://127.0.0.1:${port}${path}`;
    const url = (payload?: unknown) =>
      `${base}/?folder=${encodeURIComponent(workspace)}${payload ? `&payload=${encodeURIComponent(JSON.stringify(payload))}` : ''}`;

    // Phase 1: the suite inside the extension host.
    {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      page.on('console', (message) => appendFileSync(join(ARTIFACTS, 'extension-host.log'), message.text() + '\n'));
      let exit!: (code: number) => void;
      const exited = new Promise<number>((resolve) => (exit = resolve));
      await page.exposeFunction('codeAutomationExit', (code: number) => exit(code));
      await page.goto(
        url([
          ['extensionDevelopmentPath', remote(ROOT)],
          ['extensionTestsPath', remote(join(ROOT, 'dist', 'e2e', 'suite.js'))],
        ]),
      );
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 180_000))]);
      record(
        'the extension-host suite passes in code-server',
        code === 0,
        code === 0 ? undefined : `exit ${code}; see ${join(ARTIFACTS, 'extension-host.log')}`,
      );
      await context.close();
    }

    // Phase 2: the installed extension in the editor.
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    try {
      await page.goto(url());
      await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
      await page.waitForTimeout(1500);
      await openFile(page, 'draft.md');
      await page.click('.monaco-editor .view-lines');
      await page.keyboard.press('Control+End');
      await page.keyboard.type(TYPED, { delay: 80 });
      const ghost = await waitFor(async () => {
        // The editor renders spaces in ghost text as no-break spaces.
        const text = (
          await page.$$eval('.monaco-editor .ghost-text-decoration', (els) =>
            els.map((e) => e.textContent ?? '').join(''),
          )
        ).replace(/\u00a0/g, ' ');
        return text.length > 0 ? text : undefined;
      }, 20_000);
      await page.screenshot({ path: join(ARTIFACTS, 'ghost-text.png') });
      record(
        "the model's continuation appears as ghost text",
        ghost === expected,
        `ghost ${JSON.stringify(ghost)}, server ${JSON.stringify(expected)}`,
      );
      if (ghost) {
        await page.keyboard.press('Tab');
        await page.waitForTimeout(500);
        const lines = await page.$$eval('.monaco-editor .view-line', (els) =>
          els.map((e) => {
            const copy = e.cloneNode(true) as typeof e;
            copy
              .querySelectorAll('.ghost-text-decoration,.ghost-text-decoration-preview,.ghost-text')
              .forEach((g: { remove(): void }) => g.remove());
            return (copy.textContent ?? '').replace(/\u00a0/g, ' ');
          }),
        );
        record('Tab inserts the completion', lines.includes(TYPED + ghost), `lines ${JSON.stringify(lines)}`);
      }

      // As a user would: the Settings UI, searched for the setting, with a new value typed in.
      await page.keyboard.press('Control+Comma');
      await page.waitForSelector(
        '.settings-editor .suggest-input-container textarea, .settings-editor .search-container textarea',
        { timeout: 30_000 },
      );
      await page.keyboard.type('charComplete.temperature', { delay: 20 });
      // Wait until the search has filtered the list down to the setting, then edit its row.
      const row = page.locator('.settings-editor .setting-item-number', { hasText: 'Temperature' }).first();
      await row.waitFor({ timeout: 30_000 });
      await row.locator('input').fill('1.3');
      await page.keyboard.press('Tab');
      await page.screenshot({ path: join(ARTIFACTS, 'settings.png') });
      const received = await waitFor(
        () => (existsSync(serverLog) && /temperature=1\.3\b/.test(readFileSync(serverLog, 'utf8')) ? true : undefined),
        30_000,
      );
      record(
        'a temperature change in settings reaches the server',
        received === true,
        received
          ? undefined
          : `server log: ${existsSync(serverLog) ? readFileSync(serverLog, 'utf8').slice(-600) : 'none'}`,
      );
      if (results.some((r) => !r.ok))
        await page.screenshot({ path: join(ARTIFACTS, 'failure.png') }).catch(() => undefined);
    } catch (error) {
      await page.screenshot({ path: join(ARTIFACTS, 'failure.png') }).catch(() => undefined);
      throw error;
    } finally {
      await context.close();
    }
  } finally {
    await browser.close();
    // code-server leaves children (a file watcher) that outlive it: end the whole group.
    try {
      process.kill(-codeServer.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Quick Open, as a user would; tried again once, because the first file search of a fresh workbench can come back empty on a loaded machine. */
async function openFile(page: Page, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('Control+P');
    await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
    await page.keyboard.type(name);
    await page
      .waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${name}"]`, { timeout: 30_000 })
      .catch(() => undefined);
    await page.keyboard.press('Enter');
    try {
      await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30_000 });
      break;
    } catch (error) {
      if (attempt >= 2) throw error;
      await page.keyboard.press('Escape');
    }
  }
  await page.waitForTimeout(1000);
}

main().then(
  () => {
    const failed = results.filter((r) => !r.ok).length;
    console.log(`e2e: ${results.length - failed} passed, ${failed} failed`);
    process.exit(failed > 0 ? 1 : 0);
  },
  (error) => {
    console.error(error);
    console.log(`e2e: ${results.filter((r) => r.ok).length} passed, ${results.filter((r) => !r.ok).length + 1} failed`);
    process.exit(1);
  },
);
