// The `charComplete` settings: read from workspace/configuration or initializationOptions, with
// every bad value clamped or replaced by its default and reported, never thrown.
import { BACKEND_CHOICES, BackendChoice } from '../backends/select';
import {
  COMPLETION_DEFAULTS,
  COMPLETION_RANGES,
  CompletionOptions,
  Mode,
  MODES,
  STOP_ATS,
  StopAt,
} from '../completion/options';
import { globProblem } from '../model/exclusions';
import { modelNameProblem } from '../model/models';

export interface Settings {
  completion: CompletionOptions;
  modelPath: string;
  /** The model served by name (a folder of <data dir>/models, or "default"); modelPath, when set, wins. */
  model: string;
  backend: BackendChoice;
  /** Whether notes saved in the workspace are added to the n-gram. */
  learnFromSaves: boolean;
  /** Whether each document's match model and online mixing learn from what is typed in it. */
  learnWhileTyping: boolean;
  /** Globs of saved notes never learnt, besides the default key and credential files and .gitignore'd paths. */
  exclude: string[];
  /** The language ids served (charComplete.languages); undefined serves every document the client sends. */
  languages?: string[];
}

export const SETTINGS_DEFAULTS: Settings = {
  completion: COMPLETION_DEFAULTS,
  modelPath: '',
  model: '',
  backend: 'auto',
  learnFromSaves: true,
  learnWhileTyping: true,
  exclude: [],
};

export function parseSettings(raw: unknown): { settings: Settings; warnings: string[] } {
  const warnings: string[] = [];
  const input = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  if (raw !== undefined && raw !== null && input !== raw)
    warnings.push(`charComplete settings must be an object; using defaults`);
  const completion: CompletionOptions = { ...COMPLETION_DEFAULTS };

  const choice = <T extends string>(key: string, allowed: readonly T[], fallback: T): T => {
    const value = input[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    warnings.push(
      `charComplete.${key} must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}, using ${fallback}`,
    );
    return fallback;
  };
  completion.mode = choice<Mode>('mode', MODES, completion.mode);
  completion.stopAt = choice<StopAt>('stopAt', STOP_ATS, completion.stopAt);
  const backend = choice<BackendChoice>('backend', BACKEND_CHOICES, 'auto');

  for (const [key, [min, max, integer]] of Object.entries(COMPLETION_RANGES)) {
    const value = input[key];
    if (value === undefined || value === null) continue;
    const n =
      typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
    if (!Number.isFinite(n)) {
      warnings.push(
        `charComplete.${key} must be a number; got ${JSON.stringify(value)}, using ${completion[key as keyof typeof COMPLETION_RANGES]}`,
      );
      continue;
    }
    let v = integer ? Math.round(n) : n;
    if (v < min || v > max) {
      v = Math.min(max, Math.max(min, v));
      warnings.push(`charComplete.${key} must be from ${min} to ${max}; ${n} was clamped to ${v}`);
    }
    (completion as unknown as Record<string, number>)[key] = v;
  }

  let modelPath = '';
  if (input.modelPath !== undefined && input.modelPath !== null) {
    if (typeof input.modelPath === 'string') modelPath = input.modelPath.trim();
    else
      warnings.push(
        `charComplete.modelPath must be a string; got ${JSON.stringify(input.modelPath)}, using the default location`,
      );
  }
  let model = '';
  if (input.model !== undefined && input.model !== null && input.model !== '') {
    const problem = modelNameProblem(input.model);
    if (problem) warnings.push(`charComplete.model: ${problem}; using the default model`);
    else model = input.model as string;
  }
  const flag = (key: 'learnFromSaves' | 'learnWhileTyping'): boolean => {
    const value = input[key];
    if (value === undefined || value === null) return SETTINGS_DEFAULTS[key];
    if (typeof value === 'boolean') return value;
    warnings.push(
      `charComplete.${key} must be true or false; got ${JSON.stringify(value)}, using ${SETTINGS_DEFAULTS[key]}`,
    );
    return SETTINGS_DEFAULTS[key];
  };
  const learnFromSaves = flag('learnFromSaves');
  const learnWhileTyping = flag('learnWhileTyping');
  const exclude: string[] = [];
  if (input.exclude !== undefined && input.exclude !== null) {
    if (!Array.isArray(input.exclude))
      warnings.push(
        `charComplete.exclude must be a list of globs; got ${JSON.stringify(input.exclude)}, so only the default exclusions apply`,
      );
    for (const glob of Array.isArray(input.exclude) ? input.exclude : []) {
      const problem = globProblem(glob);
      if (problem) warnings.push(`charComplete.exclude: ${JSON.stringify(glob)} is left out: ${problem}`);
      else exclude.push(glob as string);
    }
  }
  // An editor without the setting chooses the documents it sends; VS Code's client sends every file and leaves the
  // choice to the list, so that a change of it applies without restarting the server.
  let languages: string[] | undefined;
  if (Array.isArray(input.languages)) languages = input.languages.filter((l): l is string => typeof l === 'string');
  else if (input.languages !== undefined && input.languages !== null)
    warnings.push(`charComplete.languages must be a list of language ids; got ${JSON.stringify(input.languages)}`);
  return {
    settings: { completion, modelPath, model, backend, learnFromSaves, learnWhileTyping, exclude, languages },
    warnings,
  };
}

/**
 * The globs of VS Code's files.exclude: the keys set to true. A rule with a "when" condition hides generated files
 * beside their sources, which is not about privacy, and one that is not a usable glob is the editor's to report.
 */
export function filesExcludeGlobs(raw: unknown): string[] {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return [];
  return Object.entries(raw as Record<string, unknown>)
    .filter(([glob, on]) => on === true && globProblem(glob) === undefined)
    .map(([glob]) => glob);
}
