// Runs inside a real VS Code extension host (code-server in the e2e test, or VS Code through
// @vscode/test-electron): the extension activates, contributes its settings and commands, and
// its language client reaches the server.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';

const EXTENSION_ID = 'char-complete.char-complete';

async function check(name: string, body: () => Promise<void>, failures: string[]): Promise<void> {
  try {
    await body();
    console.log(`ok - ${name}`);
  } catch (error) {
    failures.push(name);
    console.log(`not ok - ${name}: ${(error as Error).stack ?? error}`);
  }
}

export async function run(): Promise<void> {
  const failures: string[] = [];
  const extension = vscode.extensions.getExtension(EXTENSION_ID);
  await check(
    'the extension is present and activates',
    async () => {
      assert.ok(extension, `${EXTENSION_ID} is not installed`);
      await extension.activate();
      assert.equal(extension.isActive, true);
    },
    failures,
  );
  await check(
    'settings are contributed with their defaults',
    async () => {
      const config = vscode.workspace.getConfiguration('charComplete');
      assert.equal(config.inspect('mode')?.defaultValue, 'beam');
      assert.equal(config.inspect('temperature')?.defaultValue, 0.8);
      assert.equal(config.inspect('beamWidth')?.defaultValue, 4);
      assert.ok((config.inspect<string[]>('languages')?.defaultValue ?? []).includes('markdown'));
    },
    failures,
  );
  await check(
    'commands are registered',
    async () => {
      const commands = await vscode.commands.getCommands(true);
      for (const id of [
        'charComplete.train',
        'charComplete.reloadModel',
        'charComplete.toggle',
        'charComplete.showLog',
        'charComplete.statusMenu',
      ]) {
        assert.ok(commands.includes(id), `${id} missing`);
      }
    },
    failures,
  );
  await check(
    'a window with only a .ts file open starts no server; a command that needs one starts it',
    async () => {
      const api = extension!.exports as { serverStarted(): boolean };
      assert.equal(api.serverStarted(), false, 'started with no document open');
      const code = await vscode.workspace.openTextDocument({ language: 'typescript', content: 'const x = 1;\n' });
      await vscode.window.showTextDocument(code);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(api.serverStarted(), false, 'started for a .ts file');
      await vscode.commands.executeCommand('charComplete.reloadModel');
      assert.equal(api.serverStarted(), true, 'the reload command did not start it');
      await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
    },
    failures,
  );
  await check(
    'the reload command reaches the language server',
    async () => {
      // Resolves only once the server answered the custom request.
      await vscode.commands.executeCommand('charComplete.reloadModel');
    },
    failures,
  );
  await check(
    'toggling flips charComplete.enable',
    async () => {
      const before = vscode.workspace.getConfiguration('charComplete').get<boolean>('enable');
      await vscode.commands.executeCommand('charComplete.toggle');
      assert.equal(vscode.workspace.getConfiguration('charComplete').get<boolean>('enable'), !before);
      await vscode.commands.executeCommand('charComplete.toggle');
      assert.equal(vscode.workspace.getConfiguration('charComplete').get<boolean>('enable'), before);
    },
    failures,
  );
  await check(
    'the toggle flips the effective value where the workspace sets charComplete.enable',
    async () => {
      const config = () => vscode.workspace.getConfiguration('charComplete');
      const user = config().inspect<boolean>('enable')?.globalValue;
      await config().update('enable', false, vscode.ConfigurationTarget.Workspace);
      try {
        assert.equal(config().get<boolean>('enable'), false);
        await vscode.commands.executeCommand('charComplete.toggle');
        assert.equal(config().get<boolean>('enable'), true, 'the effective value flips');
        assert.equal(config().inspect<boolean>('enable')?.workspaceValue, true, 'written in the workspace');
        assert.equal(config().inspect<boolean>('enable')?.globalValue, user, 'the user setting is untouched');
      } finally {
        await config().update('enable', undefined, vscode.ConfigurationTarget.Workspace);
      }
    },
    failures,
  );
  if (failures.length > 0) throw new Error(`${failures.length} extension-host check(s) failed: ${failures.join('; ')}`);
}
