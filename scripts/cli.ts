// Shared by the command-line entry points: flag parsing with usage errors, and number checks.
import { parseArgs, ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

export function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>, usage: string) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${usage}`);
  }
}

/** Reads a numeric flag, rejecting anything outside [min, max] (and non-integers where asked). */
export function numberFlag(value: string | undefined, name: string, min: number, max: number, integer: boolean, usage: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${value}"\n\n${usage}`);
  }
  return n;
}

/** Runs main, turning usage and input errors into a message and exit code 2. */
export function runMain(main: () => Promise<void>, inputErrors: Array<new (...args: never[]) => Error>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      const isInput = error instanceof UsageError || inputErrors.some((kind) => error instanceof kind);
      process.stderr.write(`error: ${error instanceof Error ? (isInput ? error.message : error.stack) : String(error)}\n`);
      process.exit(isInput ? 2 : 1);
    },
  );
}
