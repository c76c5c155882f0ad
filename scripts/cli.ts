// Shared by the command-line entry points: flag parsing with usage errors, and number checks.
import { parseArgs, ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

export function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>, usage: string) {
  try {
    return parseArgs({ args: joinNegativeValues(args, options), options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${usage}`);
  }
}

/**
 * parseArgs takes "--minutes -1" for two options and calls it ambiguous; joined as "--minutes=-1"
 * the value reaches numberFlag, whose range error says what is allowed.
 */
function joinNegativeValues(args: string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = /^--([^=]+)$/.exec(args[i])?.[1];
    if (
      name !== undefined &&
      options[name]?.type === 'string' &&
      i + 1 < args.length &&
      /^-(\d|\.\d|Infinity)/.test(args[i + 1])
    ) {
      out.push(`${args[i]}=${args[++i]}`);
    } else {
      out.push(args[i]);
    }
  }
  return out;
}

/** Reads a numeric flag, rejecting anything outside [min, max] (and non-integers where asked). */
export function numberFlag(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
  integer: boolean,
  usage: string,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(
      `--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${value}"\n\n${usage}`,
    );
  }
  return n;
}

/** Runs main, exiting with its code (0 if none), or with a message and code 2 on usage and input errors. */
export function runMain(main: () => Promise<void | number>, inputErrors: Array<new (...args: never[]) => Error>): void {
  main().then(
    (code) => process.exit(code ?? 0),
    (error: unknown) => {
      const isInput = error instanceof UsageError || inputErrors.some((kind) => error instanceof kind);
      process.stderr.write(
        `error: ${error instanceof Error ? (isInput ? error.message : error.stack) : String(error)}\n`,
      );
      process.exit(isInput ? 2 : 1);
    },
  );
}
