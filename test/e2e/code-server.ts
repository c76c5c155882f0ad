// npm run test:e2e: the packaged extension in a real VS Code (code-server), driven through
// Debian's chromium with playwright-core. Phase 1 runs the extension-host suite; phase 2 types in
// a markdown file and checks the model's continuation as ghost text, Tab, a settings change, and that "Forget this
// file" forgets a note learnt from saves, Alt+] showing the next suggestion, and the status bar menu turning completions
// off for markdown only; phase 3 trains a folder of notes into a model named after it from the editor and gets ghost
// text from the new model, then cancels a longer training run and still gets ghost text.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  openSync,
  utimesSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, Page } from 'playwright-core';
import { LspSession } from '../../tools/lsp-driver';
import { TINY_TRAINING_FLAGS } from '../support/tiny-training';
import { contextsHeader, makeContextsOneVersionOld } from '../support/contexts-header';
import { NOTES_CONTEXTS_FILE } from '../../model/notes-text';
import { SERVER_NODE_FLAGS } from '../../protocol/server-process';

const ROOT = join(__dirname, '..', '..');
const CODE_SERVER =
  process.env.CODE_SERVER ?? join(ROOT, '.cache', 'code-server', 'node_modules', '.bin', 'code-server');
const VSIX = join(ROOT, 'char-complete.vsix');
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(ROOT, 'e2e-artifacts');
const LINE = 'the quick brown fox jumps over the lazy dog.\n';
/** What a run writes to ARTIFACTS; each run starts by removing them, so none is left from an earlier run. */
const ARTIFACT_FILES = [
  'code-server.log',
  'code-server.err',
  'extension-host.log',
  'workbench.log',
  'server.log',
  'status-bar.txt',
  'ghost-text.png',
  'settings.png',
  'no-model-notice.png',
  'walkthrough.png',
  'train-confirm.png',
  'train-progress.png',
  'train-ready.png',
  'forget-learnt.png',
  'forget-forgotten.png',
  'menu.png',
  'menu-markdown-off.png',
  'menu-plaintext-on.png',
  'train-ghost-text.png',
  'next-first.png',
  'next-second.png',
  'line-end.png',
  'paragraph.png',
  'cancel-progress.png',
  'cancel-stopped.png',
  'cancel-ghost-text.png',
  'failure.png',
];
const TYPED = 'the quick br';
/** Typed in a note of its own, where the model offers more than one suggestion for Alt+] to cycle through. */
const NEXT_NOTE = '# Next\n';
const NEXT_TYPED = 'the ';
/** Typed in an empty note, where the model is sure of the rest of the line and that it ends there. */
const LINE_END_TYPED = 'the quick brown fox jumps over the lazy d';
/**
 * A note whose paragraphs the blank lines between them part, ending on the empty line below the last: the document
 * teaches the blank line, and the suggestion there opens the next paragraph with it.
 */
const PARAGRAPH_NOTE = `# Paragraphs\n\n${LINE}\n${LINE}`;
/** A word in no training corpus, learnt only from saving the note that holds it. */
const UNIQUE = 'zenakovirum';
const UNIQUE_NOTE = `Met ${UNIQUE} today. ${UNIQUE} said hi.`;
/** The entry of the status bar item the extension creates with the id charComplete.status. */
const STATUS_ENTRY = '.statusbar-item[id$="charComplete.status"]';
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
  for (const file of ARTIFACT_FILES) rmSync(join(ARTIFACTS, file), { force: true });
  const tmp = mkdtempSync(join(tmpdir(), 'char-complete-e2e-'));
  const workspace = join(tmp, 'notes');
  mkdirSync(workspace);
  writeFileSync(join(workspace, 'fox.md'), LINE.repeat(400));
  writeFileSync(join(workspace, 'draft.md'), '# Draft\n');
  writeFileSync(join(workspace, 'met.md'), `${UNIQUE_NOTE}\n`);
  for (const probe of ['probe-1.md', 'probe-2.md', 'probe-3.md', 'probe.txt'])
    writeFileSync(join(workspace, probe), '');
  writeFileSync(join(workspace, 'next.md'), NEXT_NOTE);
  writeFileSync(join(workspace, 'line-end.md'), '');
  // Without its last line break, which the test types, since the editor asks for suggestions as the user types.
  writeFileSync(join(workspace, 'paragraph.md'), PARAGRAPH_NOTE.slice(0, -1));
  const modelDir = join(tmp, 'model');
  const serverLog = join(tmp, 'server.log');
  // A second folder of notes with no model yet, which phase 3 trains from the editor into the model named after it.
  const untrained = join(tmp, 'journal');
  mkdirSync(join(untrained, '.vscode'), { recursive: true });
  writeFileSync(join(untrained, 'fox.md'), LINE.repeat(400));
  writeFileSync(join(untrained, 'today.md'), '# Today\n');
  writeFileSync(
    join(untrained, '.vscode', 'settings.json'),
    JSON.stringify({ 'charComplete.modelPath': '', 'charComplete.trainMinutes': 0.3 }),
  );

  // A small model that knows the training line, and what the server itself completes it with.
  const trained = spawnSync(
    process.execPath,
    [join(ROOT, 'dist', 'train.js'), join(workspace, 'fox.md'), '--out', modelDir, ...TINY_TRAINING_FLAGS],
    { encoding: 'utf8', env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' } },
  );
  if (trained.status !== 0) throw new Error(`training failed: ${trained.stderr}`);
  const session = new LspSession({ initializationOptions: { modelPath: modelDir } });
  await session.initialize();
  await session.open('file:///e2e/draft.md', `# Draft\n${TYPED}`);
  const expected = await session.inline('file:///e2e/draft.md', 1, TYPED.length);
  await session.open('file:///e2e/next.md', NEXT_NOTE + NEXT_TYPED);
  // Asked as Alt+] asks: an invoked request.
  const suggestions = await session.inlineItems('file:///e2e/next.md', 1, NEXT_TYPED.length, 1);
  await session.open('file:///e2e/paragraph.md', PARAGRAPH_NOTE);
  const paragraph = await session.inline('file:///e2e/paragraph.md', PARAGRAPH_NOTE.split('\n').length - 1, 0);
  await session.shutdown();
  if (!expected) throw new Error('the model offers no completion for the typed text');
  if (suggestions.length < 2) throw new Error(`the model offers one suggestion for Alt+]: ${suggestions}`);
  if (!paragraph?.startsWith('\n'))
    throw new Error(`the model does not open a paragraph below the last one: ${JSON.stringify(paragraph)}`);
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
    const url = (payload?: unknown, folder = workspace) =>
      `${base}/?folder=${encodeURIComponent(folder)}${payload ? `&payload=${encodeURIComponent(JSON.stringify(payload))}` : ''}`;

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

    // Phase 2: the installed extension in the editor. Phase 1's extension host outlives its page
    // (code-server keeps it for a reconnection) and its server logs to the same file, so phase 2's
    // server is told apart by its pid: the one whose first line comes after this point.
    const phase2LogStart = existsSync(serverLog) ? readFileSync(serverLog, 'utf8').length : 0;
    const phase2Pid = () => {
      const text = existsSync(serverLog) ? readFileSync(serverLog, 'utf8').slice(phase2LogStart) : '';
      return /^\S+ \[(\d+)\] Backend: /m.exec(text)?.[1];
    };
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.on('console', (message) => appendFileSync(join(ARTIFACTS, 'workbench.log'), message.text() + '\n'));
    try {
      await page.goto(url());
      await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
      await page.waitForTimeout(1500);
      await openFile(page, 'draft.md');
      // The editor asks for inline completions as keys are typed, from the providers registered at
      // that moment, and not again when one registers later: text typed before the language server
      // is up never gets ghost text. A user sees the status bar change from "starting" to the
      // model; so does the test, before it types.
      const ready = await waitFor(async () => {
        const text = await statusBarText(page);
        return text && !/starting|no model|failed/.test(text) ? text : undefined;
      }, 120_000);
      record(
        'the status bar shows the loaded model',
        ready !== undefined,
        `status bar ${JSON.stringify(ready ?? (await statusBarText(page)))}`,
      );
      const ghost = await typeForGhostText(page, 'ghost-text.png');
      const shown = ghost !== undefined && sameContinuation(ghost, expected);
      record(
        "the model's continuation appears as ghost text",
        shown,
        `ghost ${JSON.stringify(ghost)}, server ${JSON.stringify(expected)}` +
          (shown ? '' : `; status bar ${JSON.stringify(await statusBarText(page))}; see ${ARTIFACTS}`),
      );
      if (ghost) {
        await page.keyboard.press('Tab');
        await page.waitForTimeout(500);
        const lines = await editorLines(page);
        record('Tab inserts the completion', lines.includes(TYPED + ghost), `lines ${JSON.stringify(lines)}`);
      }
      await nextSuggestion(page, suggestions);
      await completesTheLineBreak(page);
      await opensTheParagraph(page, paragraph);

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
      // Phase 1's server gets the change too, as user settings are global: only phase 2's counts.
      const received = await waitFor(() => {
        const pid = phase2Pid();
        if (!pid || !existsSync(serverLog)) return undefined;
        return new RegExp(`^\\S+ \\[${pid}\\] Settings: .*temperature=1\\.3\\b`, 'm').test(
          readFileSync(serverLog, 'utf8'),
        )
          ? true
          : undefined;
      }, 30_000);
      record(
        'a temperature change in settings reaches the server',
        received === true,
        received
          ? undefined
          : `server log: ${existsSync(serverLog) ? readFileSync(serverLog, 'utf8').slice(-600) : 'none'}`,
      );
      const serverPid = phase2Pid();
      const commandLine = serverPid ? readFileSync(`/proc/${serverPid}/cmdline`, 'utf8').split('\0') : [];
      record(
        'the editor starts the server with its Node flags',
        SERVER_NODE_FLAGS.every((flag) => commandLine.includes(flag)),
        `server ${serverPid}: ${JSON.stringify(commandLine)}`,
      );
      await forgetThisFile(page);
      await offForMarkdown(page);
      await relearnsContexts(modelDir, serverLog, phase2Pid());
      if (results.some((r) => !r.ok)) await saveFailure(page);
    } catch (error) {
      await saveFailure(page);
      throw error;
    } finally {
      await context.close();
    }

    // Phase 3: a folder of notes with no model, trained from the editor: the command, the folder picker, the
    // confirmation, progress in a notification, the "model ready" message, then ghost text from the new model.
    const trainContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const trainPage = await trainContext.newPage();
    try {
      await trainPage.goto(url(undefined, untrained));
      await trainPage.waitForSelector('.monaco-workbench', { timeout: 60_000 });
      await trainPage.waitForTimeout(1500);
      await openFile(trainPage, 'today.md');
      await noModelNotice(trainPage);
      await runCommand(trainPage, 'Char Complete: Train on your notes');
      // The folder picker, with the workspace folder ticked.
      await trainPage.waitForSelector('.quick-input-widget .monaco-list-row', { state: 'visible', timeout: 30_000 });
      await trainPage.keyboard.press('Enter');
      const dialog = await trainPage.waitForSelector('.monaco-dialog-box', { timeout: 60_000 }).catch(() => undefined);
      const confirmation = ((await dialog?.textContent()) ?? '').replace(/\s+/g, ' ');
      await trainPage.screenshot({ path: join(ARTIFACTS, 'train-confirm.png') });
      record(
        'the confirmation names the files, their size, the minutes and the model, named after the folder',
        /Train on 2 files, \d+ KB, for about 0\.3 minutes/.test(confirmation) &&
          /Model: "journal", \S*models\/journal/.test(confirmation),
        JSON.stringify(confirmation.slice(0, 300)),
      );
      await trainPage.click('.monaco-dialog-box .monaco-button:has-text("Train")');
      const progress = await waitFor(async () => {
        const text = await notificationsText(trainPage);
        return /\d+% · (ETA \S+ · )?[\d,]+ chars\/s/.test(text) ? text : undefined;
      }, 120_000);
      await trainPage.screenshot({ path: join(ARTIFACTS, 'train-progress.png') });
      record('training shows %, ETA and chars/s in a notification', progress !== undefined, progress);
      const ready = await waitFor(async () => {
        const text = await notificationsText(trainPage);
        return /model ready/.test(text) ? text : undefined;
      }, 180_000);
      await trainPage.screenshot({ path: join(ARTIFACTS, 'train-ready.png') });
      record(
        'training ends with one "model ready" message and its score',
        /bits per character|not scored/.test(ready ?? ''),
        ready ?? (await notificationsText(trainPage)),
      );
      const loaded = await waitFor(async () => {
        const text = await statusBarText(trainPage);
        return text && !/starting|no model|failed|training/.test(text) ? text : undefined;
      }, 60_000);
      record('the status bar shows the new model', loaded !== undefined, loaded ?? (await statusBarText(trainPage)));
      const ghost = await typeForGhostText(trainPage, 'train-ghost-text.png');
      record('the model trained from the editor gives ghost text', ghost !== undefined, JSON.stringify(ghost));
      await cancelTraining(trainPage, join(untrained, '.vscode', 'settings.json'));
      await walkthrough(trainPage);
      if (results.some((r) => !r.ok)) await saveFailure(trainPage);
    } catch (error) {
      await saveFailure(trainPage);
      throw error;
    } finally {
      await trainContext.close();
    }
  } finally {
    await browser.close();
    // code-server leaves children (a file watcher) that outlive it: end the whole group.
    try {
      process.kill(-codeServer.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    // Both phases' servers log here (each line names its pid); kept for every run, since a
    // failure is diagnosed from it.
    if (existsSync(serverLog)) copyFileSync(serverLog, join(ARTIFACTS, 'server.log'));
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The model's context model made one format version old, as an upgrade of the extension leaves it: the editor's server
 * learns it again in a process of its own (the installed extension's train.js, in the editor's runtime) and loads the
 * model again with the new file. Phase 1's server, if code-server still keeps it, may be the one that learns it; then
 * phase 2's waits for its file.
 */
async function relearnsContexts(modelDir: string, serverLog: string, pid: string | undefined): Promise<void> {
  const name = 'a context model of an older version is learnt again from the editor, and served';
  if (!existsSync(join(modelDir, NOTES_CONTEXTS_FILE)) || !pid)
    return record(name, false, `no ${NOTES_CONTEXTS_FILE} in ${modelDir}, or no server pid (${pid})`);
  const from = readFileSync(serverLog, 'utf8').length;
  const version = contextsHeader(modelDir).formatVersion;
  makeContextsOneVersionOld(modelDir);
  // A new model.json is what makes a server load the model again.
  const now = new Date();
  utimesSync(join(modelDir, 'model.json'), now, now);
  // The server loads the new file as soon as it appears, which a CI run logged before "Learnt": so the sign is a
  // second load since the server last found the old version.
  const served = await waitFor(() => {
    const text = readFileSync(serverLog, 'utf8').slice(from);
    const foundOld = text.lastIndexOf(`[${pid}] the context model in`);
    const loadsSince = foundOld < 0 ? 0 : text.slice(foundOld).split(`[${pid}] Loaded model`).length - 1;
    return /Learnt the context model of .* again/.test(text) && loadsSince >= 2 ? true : undefined;
  }, 120_000);
  record(
    name,
    served === true && contextsHeader(modelDir).formatVersion === version,
    `server log since: ${readFileSync(serverLog, 'utf8').slice(from, from + 1500)}`,
  );
}

/**
 * Whether the editor's ghost text is the continuation a fresh server gave for the same text: the same, or one the
 * start of the other by whole words. The editor's server learnt the text as it was typed, and may have adapted the
 * LSTM in a pause between keys, where the fresh one read it whole; so the two can stop the same continuation at
 * different words ("…over the ", "…over the lazy" and "…over the lazy dog."). It may stop after the first word too (a
 * CI run showed "own " for "own fox jumps…"): where a suggestion reached the editor before the next key, typing that
 * key instead of Tab counts against the longer completions (the session's passed-over rule), and whether one arrived
 * in time depends on the machine's load.
 */
function sameContinuation(ghost: string, expected: string): boolean {
  if (ghost === expected) return true;
  const [shorter, longer] = ghost.length < expected.length ? [ghost, expected] : [expected, ghost];
  const wordGoesOn = /[\p{L}\p{N}]/u.test(shorter.slice(-1)) && /[\p{L}\p{N}]/u.test(longer[shorter.length]);
  return /[\p{L}\p{N}]/u.test(shorter) && longer.startsWith(shorter) && !wordGoesOn;
}

/**
 * Types TYPED at the end of the open note and waits for ghost text, with the no-break spaces it is rendered with made
 * plain; a screenshot of it goes to ARTIFACTS.
 */
async function typeForGhostText(page: Page, screenshot: string, ms = 20_000): Promise<string | undefined> {
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+End');
  await page.keyboard.type(TYPED, { delay: 80 });
  return waitForGhostText(page, screenshot, ms);
}

/**
 * How long ghost text must stay the same to be read. Right after a key the editor still shows the suggestion before
 * it, less the key typed ("…over the lazy dog" for "…over the lazy dog."), until the answer for the new position
 * replaces it.
 */
const GHOST_SETTLE_MS = 1_000;

/**
 * The ghost text shown within `ms`, once it has settled, with its no-break spaces made plain; a screenshot of it goes
 * to ARTIFACTS. `read` reads it: on the cursor's line, unless told otherwise.
 */
async function waitForGhostText(
  page: Page,
  screenshot: string,
  ms: number,
  read: (page: Page) => Promise<string | undefined> = ghostText,
): Promise<string | undefined> {
  let ghost = await waitFor(() => read(page), ms);
  if (ghost !== undefined) {
    const deadline = Date.now() + 10 * GHOST_SETTLE_MS;
    let since = Date.now();
    while (Date.now() - since < GHOST_SETTLE_MS && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      const now = await read(page);
      if (now !== ghost) [ghost, since] = [now, Date.now()];
    }
  }
  await page.screenshot({ path: join(ARTIFACTS, screenshot) });
  return ghost;
}

/**
 * Alt+] shows the server's second suggestion in place of the first, as the editor's inline suggestion toolbar offers.
 */
async function nextSuggestion(page: Page, suggestions: string[]): Promise<void> {
  await openFile(page, 'next.md');
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+End');
  await page.keyboard.type(NEXT_TYPED, { delay: 80 });
  const first = await waitForGhostText(page, 'next-first.png', 20_000);
  await page.keyboard.press('Alt+BracketRight');
  const second = await waitFor(async () => {
    const text = await ghostText(page);
    return text && text !== first ? text : undefined;
  }, 10_000);
  await page.screenshot({ path: join(ARTIFACTS, 'next-second.png') });
  // The editor's server has learnt the earlier notes as they were saved, so it may be sure enough of
  // the first suggestion to run it on past the word where the fresh server stopped, and less sure of
  // the second, which then stops inside its word where its probability falls below minConfidence
  // ("laz" for "lazy ").
  const sameSecond = second !== undefined && (second === suggestions[1] || suggestions[1].startsWith(second));
  record(
    'Alt+] shows the second suggestion',
    first !== undefined && first.startsWith(suggestions[0]) && sameSecond,
    `ghost ${JSON.stringify(first)} then ${JSON.stringify(second)}, server ${JSON.stringify(suggestions)}`,
  );
  await page.keyboard.press('Escape');
}

/**
 * Cancel of a training run started from the editor with a longer budget: the progress notification's Cancel stops the
 * trainer, one message says the model so far is in use, and ghost text still appears.
 */
async function cancelTraining(page: Page, settingsFile: string): Promise<void> {
  const settings = JSON.parse(readFileSync(settingsFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(settingsFile, JSON.stringify({ ...settings, 'charComplete.trainMinutes': 5 }));
  await page.waitForTimeout(1500);
  await runCommand(page, 'Char Complete: Train on your notes');
  await page.waitForSelector('.quick-input-widget .monaco-list-row', { state: 'visible', timeout: 30_000 });
  await page.keyboard.press('Enter');
  await page.waitForSelector('.monaco-dialog-box:has-text("for about 5 minutes")', { timeout: 60_000 });
  await page.click('.monaco-dialog-box .monaco-button:has-text("Train")');
  const progress = await waitFor(async () => {
    const text = await notificationsText(page);
    return /\d+% · /.test(text) ? text : undefined;
  }, 120_000);
  await page.screenshot({ path: join(ARTIFACTS, 'cancel-progress.png') });
  await page.click('.notification-toast:has-text("training") .monaco-button:has-text("Cancel")');
  const stopped = await waitFor(async () => {
    const text = await notificationsText(page);
    return /training stopped; the model saved so far is in use/.test(text) ? text : undefined;
  }, 120_000);
  await page.screenshot({ path: join(ARTIFACTS, 'cancel-stopped.png') });
  record(
    'Cancel in the progress notification stops training and keeps the model',
    progress !== undefined && stopped !== undefined,
    (stopped ?? (await notificationsText(page))).slice(0, 300),
  );
  const loaded = await waitFor(async () => {
    const text = await statusBarText(page);
    return text && !/starting|no model|failed/.test(text) ? text : undefined;
  }, 60_000);
  record('after Cancel the status bar shows a model', loaded !== undefined, loaded ?? (await statusBarText(page)));
  await openFile(page, 'fox.md');
  const ghost = await typeForGhostText(page, 'cancel-ghost-text.png');
  record('after Cancel the model gives ghost text', ghost !== undefined, JSON.stringify(ghost));
}

/** The lines of the editor's text on show, without ghost text and with no-break spaces made plain. */
async function editorLines(page: Page): Promise<string[]> {
  return page.$$eval('.monaco-editor .view-line', (els) =>
    els.map((e) => {
      const copy = e.cloneNode(true) as typeof e;
      copy
        .querySelectorAll('.ghost-text-decoration,.ghost-text-decoration-preview,.ghost-text')
        .forEach((g: { remove(): void }) => g.remove());
      return (copy.textContent ?? '').replace(/\u00a0/g, ' ');
    }),
  );
}

/**
 * A completion that ends its line, where the model is sure the line ends after "dog.": the ghost text shows the rest
 * of the line, and Tab types the line break too.
 */
async function completesTheLineBreak(page: Page): Promise<void> {
  await openFile(page, 'line-end.md');
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+End');
  await page.keyboard.type(LINE_END_TYPED, { delay: 80 });
  const ghost = await waitForGhostText(page, 'line-end.png', 20_000);
  if (ghost) await page.keyboard.press('Tab');
  await page.waitForTimeout(500);
  const lines = await editorLines(page);
  record(
    'Tab types the line break a completion ends with',
    ghost === 'og.' && lines.length === 2 && lines[0] === `${LINE_END_TYPED}og.` && lines[1] === '',
    `ghost ${JSON.stringify(ghost)}, lines ${JSON.stringify(lines)}`,
  );
  await page.keyboard.press('Escape');
}

/**
 * On the empty line below a paragraph, the suggestion begins with the line break that leaves the line blank: the
 * editor shows the next paragraph's start below it, and Tab types both.
 */
async function opensTheParagraph(page: Page, expected: string): Promise<void> {
  await openFile(page, 'paragraph.md');
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+End');
  await page.keyboard.press('Enter');
  const below = await waitForGhostText(page, 'paragraph.png', 20_000, ghostLinesBelow);
  if (below) await page.keyboard.press('Tab');
  await page.waitForTimeout(500);
  const lines = await editorLines(page);
  // The lines after the note's last paragraph (the editor may also hold an empty line where the ghost text was).
  const opened = lines.slice(lines.lastIndexOf(LINE.trimEnd()) + 1);
  record(
    'on the empty line below a paragraph, Tab types the blank line and the next paragraph',
    below !== undefined &&
      opened.length >= 2 &&
      opened[0] === '' &&
      opened[1].length > 0 &&
      expected.slice(1).startsWith(opened[1]) &&
      below.includes(opened[1].trim()),
    `shown below ${JSON.stringify(below)}, server ${JSON.stringify(expected)}, lines ${JSON.stringify(lines)}`,
  );
  await page.keyboard.press('Escape');
}

/** The lines of ghost text shown below the cursor's line, drawn between the editor's lines, or undefined. */
async function ghostLinesBelow(page: Page): Promise<string | undefined> {
  const text = await page.$$eval('.monaco-editor .view-zones', (els) => els.map((e) => e.textContent ?? '').join(''));
  return text.trim().length > 0 ? text.replace(/\u00a0/g, ' ') : undefined;
}

/** The ghost text shown now, with its no-break spaces made plain, or undefined. */
async function ghostText(page: Page): Promise<string | undefined> {
  const text = (
    await page.$$eval('.monaco-editor .ghost-text-decoration', (els) => els.map((e) => e.textContent ?? '').join(''))
  ).replace(/\u00a0/g, ' ');
  return text.length > 0 ? text : undefined;
}

/**
 * "Forget this file": the note holding UNIQUE is saved (and learnt), its word then completes in another note; once the
 * command runs from the palette on it, the word no longer completes.
 */
async function forgetThisFile(page: Page): Promise<void> {
  // The settings editor, left focused by the step before, keeps Quick Open from showing: back to the note's tab.
  await page.click('.tabs-container .tab:has-text("draft.md")');
  await openFile(page, 'met.md');
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+End');
  await page.keyboard.type(' ');
  await page.keyboard.press('Control+S');
  await page.waitForTimeout(1500);
  const learnt = await ghostAfter(page, 'probe-1.md', 'forget-learnt.png', 20_000);
  record(
    'a word learnt from a saved note completes in another note',
    learnt?.startsWith(UNIQUE.slice(4)) === true,
    `ghost ${JSON.stringify(learnt)}`,
  );
  await openFile(page, 'met.md');
  await runCommand(page, 'Char Complete: Forget this file');
  const said = await waitFor(async () => {
    const text = await notificationsText(page);
    return /forgot [\d,]+ characters/.test(text) ? text : undefined;
  }, 30_000);
  record('"Forget this file" says what it forgot', said !== undefined, said ?? (await notificationsText(page)));
  // Ghost text can only be shown to be absent by waiting for it a while.
  const forgotten = await ghostAfter(page, 'probe-2.md', 'forget-forgotten.png', 8_000);
  record(
    '"Forget this file" makes its unique word stop completing',
    forgotten?.startsWith(UNIQUE.slice(4)) !== true,
    `ghost ${JSON.stringify(forgotten)}`,
  );
}

/** The status bar menu's "Turn off for markdown": no ghost text in a markdown note, while a plaintext one keeps it. */
async function offForMarkdown(page: Page): Promise<void> {
  await openFile(page, 'probe-3.md');
  await fromStatusMenu(page, 'Turn off for markdown', 'menu.png');
  const off = await waitFor(
    async () => ((await statusBarText(page))?.includes('off for markdown') ? true : undefined),
    10_000,
  );
  record('the status bar says completions are off for markdown', off === true, await statusBarText(page));
  // Ghost text can only be shown to be absent by waiting for it a while.
  const markdown = await typeForGhostText(page, 'menu-markdown-off.png', 8_000);
  record('off for markdown: no ghost text in a markdown note', markdown === undefined, JSON.stringify(markdown));
  await openFile(page, 'probe.txt');
  const plaintext = await typeForGhostText(page, 'menu-plaintext-on.png', 20_000);
  record(
    'off for markdown: a plaintext note still gets ghost text',
    plaintext !== undefined,
    JSON.stringify(plaintext),
  );
  // Phase 3 types in markdown: the menu turns it back on.
  await openFile(page, 'probe-3.md');
  await fromStatusMenu(page, 'Turn on for markdown');
  const on = await waitFor(async () => (/: on$/.test((await statusBarText(page)) ?? '') ? true : undefined), 10_000);
  record('the status bar menu turns markdown back on', on === true, await statusBarText(page));
}

/** Clicks the status bar entry and chooses an item of its menu by its label. */
async function fromStatusMenu(page: Page, label: string, screenshot?: string): Promise<void> {
  await page.click(STATUS_ENTRY);
  await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
  await page.keyboard.type(label);
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${label}"]`, { timeout: 10_000 });
  if (screenshot) await page.screenshot({ path: join(ARTIFACTS, screenshot) });
  await page.keyboard.press('Enter');
}

/** The ghost text after UNIQUE's first four letters, typed at the end of a note that never held it. */
async function ghostAfter(page: Page, note: string, screenshot: string, ms: number): Promise<string | undefined> {
  await openFile(page, note);
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+End');
  await page.keyboard.type(`Met ${UNIQUE.slice(0, 4)}`, { delay: 80 });
  return waitForGhostText(page, screenshot, ms);
}

/** A window with a note open and no model says so once, with buttons and without a command line to type. */
async function noModelNotice(page: Page): Promise<void> {
  const notice = await waitFor(async () => {
    const text = await notificationsText(page);
    return /no model yet/.test(text) ? text : undefined;
  }, 60_000);
  await page.screenshot({ path: join(ARTIFACTS, 'no-model-notice.png') });
  const toasts = await page.$$eval('.notification-toast', (els) => els.length);
  record(
    'with no model, one notification, with buttons and no npm',
    notice !== undefined && toasts === 1 && /Train on your notes…/.test(notice) && !/npm/.test(notice),
    // The toasts' text ends with the list's stylesheet: the message comes first.
    `${toasts} toast(s): ${JSON.stringify(notice?.slice(0, 200))}`,
  );
}

/**
 * The walkthrough, last: its page keeps the keyboard from the command palette. The notice's "Open walkthrough" runs
 * the same command.
 */
async function walkthrough(page: Page): Promise<void> {
  await runCommand(page, 'Char Complete: Get started');
  const shown = await page
    .waitForSelector('.gettingStartedContainer :text("Choose your notes")', { timeout: 30_000 })
    .then(() => true)
    .catch(() => false);
  await page.screenshot({ path: join(ARTIFACTS, 'walkthrough.png') });
  record('"Get started" shows the walkthrough and its steps', shown);
}

/** Every notification toast's text as shown, joined: innerText leaves out the style sheets a toast carries. */
async function notificationsText(page: Page): Promise<string> {
  return (
    await page.$$eval('.notification-toast', (els) =>
      els.map((e) => (e as unknown as { innerText?: string }).innerText ?? '').join(' | '),
    )
  )
    .replace(/\s+/g, ' ')
    .trim();
}

/** Runs a command from the command palette by its title, as a user would. */
async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
  await page.keyboard.type(title);
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${title}"]`, { timeout: 30_000 });
  await page.keyboard.press('Enter');
}

/** The extension's status bar entry as shown (codicons become their names), or undefined before it appears. */
async function statusBarText(page: Page): Promise<string | undefined> {
  const entry = page.locator(STATUS_ENTRY).first();
  if ((await entry.count()) === 0) return undefined;
  return ((await entry.getAttribute('aria-label')) ?? (await entry.textContent()) ?? '').trim();
}

async function saveFailure(page: Page): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, 'failure.png') }).catch(() => undefined);
  const status = await statusBarText(page).catch((error: Error) => `unreadable: ${error.message}`);
  writeFileSync(join(ARTIFACTS, 'status-bar.txt'), `${status ?? 'no Char Complete entry in the status bar'}\n`);
}

/**
 * Quick Open, as a user would; tried again until the file's tab is the active one, because the first file search of a
 * fresh workbench can come back empty on a loaded machine, and Enter can pick a row before the list has filtered.
 */
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
      // The editor of another file is there already: only the active tab says the file opened.
      await page.waitForSelector(`.tabs-container .tab.active:has-text("${name}")`, {
        timeout: attempt < 3 ? 10_000 : 30_000,
      });
      await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30_000 });
      break;
    } catch (error) {
      if (attempt >= 3) throw error;
      await page.keyboard.press('Escape');
      // Quick Open can lose a keystroke or the race with its own filtering on a loaded machine; a click on the file's
      // tab, or on its row in the explorer, does not depend on either.
      const target = page.locator(`.tabs-container .tab:has-text("${name}")`).first();
      const row = page.locator(`.explorer-folders-view .monaco-list-row[aria-label="${name}"]`).first();
      if (await target.isVisible().catch(() => false)) await target.click().catch(() => undefined);
      else if (await row.isVisible().catch(() => false)) await row.click().catch(() => undefined);
      const clicked = await page
        .waitForSelector(`.tabs-container .tab.active:has-text("${name}")`, { timeout: 5_000 })
        .then(() => true)
        .catch(() => false);
      if (clicked) break;
    }
  }
  await page.waitForTimeout(1000);
}

/** The summary names what failed, so that a log cut to its tail still says which checks to look at. */
function summarize(aborted?: unknown): void {
  const failures = results.filter((r) => !r.ok);
  for (const failure of failures) console.log(`failed: ${failure.name}${failure.detail ? `: ${failure.detail}` : ''}`);
  if (aborted !== undefined) console.log(`aborted: ${aborted instanceof Error ? aborted.stack : String(aborted)}`);
  const failed = failures.length + (aborted === undefined ? 0 : 1);
  console.log(`e2e: ${results.length - failures.length} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

main().then(
  () => summarize(),
  (error: unknown) => summarize(error),
);
