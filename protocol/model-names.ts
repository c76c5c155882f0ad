// What a model may be called: a name is a folder under <data dir>/models, chosen in the editor or with the trainer's
// --name, so one rule serves the trainer, the server and the client.

/** The directory from before named models (<data dir>/model) is listed, and chosen, under this name. */
export const DEFAULT_MODEL_NAME = 'default';
const MAX_NAME_LENGTH = 64;
// Names Windows will not create as a folder, whatever the extension.
const RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

/** Why `name` cannot name a model, or undefined when it can. */
export function modelNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'a model name must be a non-empty string';
  if (name.length > MAX_NAME_LENGTH) return `a model name has at most ${MAX_NAME_LENGTH} characters`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    return `"${name}" is not a model name: use letters, digits, ".", "_" and "-", starting with a letter or digit`;
  if (name.endsWith('.')) return `"${name}" is not a model name: it may not end with "."`;
  if (RESERVED.test(name)) return `"${name}" is not a model name: Windows reserves it`;
  return undefined;
}

/** A model name made from a workspace folder's name, for the model its notes train by default. */
export function modelNameFor(folderName: string): string {
  const name = folderName
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/[.-]+$/, '')
    .slice(0, MAX_NAME_LENGTH)
    .replace(/[.-]+$/, '');
  if (!name || modelNameProblem(name)) return 'notes';
  return name;
}
