// Where the PyTorch engine comes from: its Python file (shipped beside the bundles) and an interpreter that can import
// torch, found without importing it, with the errors that say what is missing and how to install it.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { BUILT_DIRS, builtFile } from '../backends/built-files';

export const TORCH_INSTALL_HINT =
  'install PyTorch (Debian or Ubuntu: apt-get install python3-torch libopenblas0-pthread; elsewhere: pip install torch), or name the interpreter that has it with CHAR_COMPLETE_PYTHON';

/** No interpreter here can import torch; the message says which were tried and how to install it. */
export class TorchUnavailableError extends Error {}

/** The engine failed or died; the message says how and what to do. */
export class TorchEngineError extends Error {}

/** The engine's file: copied beside the bundles (dist/) by the build, else in the repository. */
export function enginePath(): string {
  const candidates = [...BUILT_DIRS, ...BUILT_DIRS.map((dir) => path.join(dir, '..', 'training'))];
  const found = builtFile('torch_engine.py', candidates);
  if (!found)
    throw new TorchEngineError(
      `torch_engine.py is missing (looked in ${candidates.join(', ')}); rebuild with npm run build`,
    );
  return found;
}

/**
 * The interpreter to run the engine with: CHAR_COMPLETE_PYTHON if set, else the first of python3
 * and the system's /usr/bin/python3 that can import torch (a pyenv or venv python3 on PATH often
 * lacks the system's torch). Looking costs no torch import.
 */
export function findPython(env: NodeJS.ProcessEnv = process.env): { python: string; note?: string } {
  const named = env.CHAR_COMPLETE_PYTHON;
  const candidates = named
    ? [named]
    : process.platform === 'win32'
      ? ['python', 'python3']
      : ['python3', '/usr/bin/python3'];
  const tried: string[] = [];
  for (const candidate of candidates) {
    const check = spawnSync(
      candidate,
      [
        '-c',
        'import importlib.util, sys; print(sys.executable); sys.exit(0 if importlib.util.find_spec("torch") else 3)',
      ],
      { encoding: 'utf8', timeout: 30_000, env },
    );
    const executable = check.stdout?.trim() || candidate;
    if (check.status === 0) {
      const note = tried.length ? `${tried.join('; ')}; using ${executable}, which has torch` : undefined;
      return { python: candidate, note };
    }
    const where = executable === candidate ? candidate : `${candidate} (${executable})`;
    tried.push(
      check.error
        ? `${candidate}: ${(check.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : check.error.message}`
        : check.status === 3
          ? `${where} has no torch module`
          : `${where} failed (exit code ${check.status})`,
    );
  }
  throw new TorchUnavailableError(
    `PyTorch not found: ${tried.join('; ')}. To use --engine torch, ${TORCH_INSTALL_HINT}.`,
  );
}
