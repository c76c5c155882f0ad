// Several models side by side: each is a directory under <data dir>/models/<name>, and the directory from before
// named models (<data dir>/model, or CHAR_COMPLETE_MODEL_DIR) is the model named "default", read where it is, so
// nothing moves. Listing and deleting them are here for the trainer's --list and the server's requests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_MODEL_NAME, modelNameProblem } from '../protocol/model-names';
import type { ModelList, ModelSummary } from '../protocol/messages';
import { randomSuffix } from './files';
import { modelFilePath, readModelMetadata } from './format';
import { learnedChars } from './learned';
import { defaultModelDir, userDataDir } from './paths';

export { DEFAULT_MODEL_NAME, modelNameProblem } from '../protocol/model-names';

/** A name that cannot name a model, or a model that cannot be deleted: the message says why and what to do. */
export class ModelNameError extends Error {
  override name = 'ModelNameError';
}

/** Where named models live. */
export function modelsRoot(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(userDataDir(env), 'models');
}

/** The directory of the model called `name`. Throws ModelNameError for a name that is not one. */
export function modelDirForName(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const problem = modelNameProblem(name);
  if (problem) throw new ModelNameError(problem);
  return name === DEFAULT_MODEL_NAME ? defaultModelDir(env) : path.join(modelsRoot(env), name);
}

/** Every model with a model.json: "default" first when it exists, then the named ones by name. */
export function listModels(inUse: string, env: NodeJS.ProcessEnv = process.env): ModelList {
  const root = modelsRoot(env);
  const named: string[] = [];
  try {
    for (const entry of fs.readdirSync(root, { withFileTypes: true }))
      if (entry.isDirectory() && !modelNameProblem(entry.name) && entry.name !== DEFAULT_MODEL_NAME)
        named.push(entry.name);
  } catch {
    // No models folder yet: only the default model, if any.
  }
  const dirs: Array<[string, string]> = [
    [DEFAULT_MODEL_NAME, defaultModelDir(env)],
    ...named.sort().map((name): [string, string] => [name, path.join(root, name)]),
  ];
  const used = path.resolve(inUse);
  const models = dirs
    .filter(([, dir]) => fs.existsSync(modelFilePath(dir)))
    .map(([name, dir]) => summarise(name, dir, path.resolve(dir) === used));
  return { root, models, inUse: used };
}

function summarise(name: string, dir: string, inUse: boolean): ModelSummary {
  const sizeBytes = directoryBytes(dir);
  const learntChars = learnedChars(dir);
  try {
    const metadata = readModelMetadata(dir);
    return {
      name,
      dir,
      sources: metadata.corpus.sources,
      corpusChars: metadata.corpus.chars,
      savedAt: fs.statSync(modelFilePath(dir)).mtime.toISOString(),
      sizeBytes,
      validationBpc: metadata.validation?.bpc ?? null,
      learntChars,
      lstmTrained: metadata.lstmTrained !== false,
      inUse,
    };
  } catch (error) {
    return {
      name,
      dir,
      sources: [],
      corpusChars: 0,
      savedAt: '',
      sizeBytes,
      validationBpc: null,
      learntChars,
      lstmTrained: false,
      inUse,
      problem: (error as Error).message,
    };
  }
}

/** Bytes of every regular file below dir; links are not followed. */
function directoryBytes(dir: string): number {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += directoryBytes(full);
    else if (entry.isFile()) {
      try {
        total += fs.statSync(full).size;
      } catch {
        // Gone since the listing: a save renaming files.
      }
    }
  }
  return total;
}

/**
 * Deletes the model called `name`, all or nothing: the directory is renamed aside first, so no reader ever sees half a
 * model, then removed. Refuses the model in use. Returns the directory it was.
 */
export function deleteModel(name: string, inUse: string, env: NodeJS.ProcessEnv = process.env): string {
  const dir = modelDirForName(name, env);
  if (path.resolve(dir) === path.resolve(inUse))
    throw new ModelNameError(`"${name}" is the model in use; choose another model first, then delete it`);
  if (!fs.existsSync(modelFilePath(dir))) throw new ModelNameError(`there is no model called "${name}" in ${dir}`);
  const aside = path.join(path.dirname(dir), `.${path.basename(dir)}.deleting-${randomSuffix()}`);
  fs.renameSync(dir, aside);
  fs.rmSync(aside, { recursive: true, force: true });
  return dir;
}
