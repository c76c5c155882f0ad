// npm run test:vscode: the extension-host suite in a desktop VS Code through @vscode/test-electron.
// It cannot download VS Code offline, so VSCODE_EXECUTABLE_PATH must point at an installed one.
import { runTests } from '@vscode/test-electron';
import { join } from 'node:path';

async function main(): Promise<void> {
  const vscodeExecutablePath = process.env.VSCODE_EXECUTABLE_PATH;
  if (!vscodeExecutablePath) {
    console.error(
      'Set VSCODE_EXECUTABLE_PATH to an installed VS Code (for example /usr/share/code/code) to run this suite.',
    );
    process.exit(2);
  }
  const root = join(__dirname, '..', '..');
  const code = await runTests({
    vscodeExecutablePath,
    extensionDevelopmentPath: root,
    extensionTestsPath: join(__dirname, 'suite.js'),
    launchArgs: ['--disable-extensions', '--disable-workspace-trust'],
  });
  process.exit(code);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
