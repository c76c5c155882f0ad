// The settings a user sees in VS Code's Settings UI are the ones the server applies: the manifest is checked against
// the completion options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMPLETION_DEFAULTS, COMPLETION_RANGES, DEFAULT_LANGUAGES, MODES, STOP_ATS } from '../completion/options';
import { BACKEND_CHOICES } from '../backends/select';
import { parseSettings, SETTINGS_DEFAULTS } from '../server/settings';

interface ManifestProperty {
  type: string;
  default: unknown;
  minimum?: number;
  maximum?: number;
  enum?: string[];
}

const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
const properties: Record<string, ManifestProperty> = manifest.contributes.configuration.properties;
const setting = (key: string) => {
  const property = properties[`charComplete.${key}`];
  assert.ok(property, `package.json declares charComplete.${key}`);
  return property;
};

test('every numeric completion option in the manifest has the engine’s default, range and type', () => {
  for (const [key, [min, max, integer]] of Object.entries(COMPLETION_RANGES)) {
    const property = properties[`charComplete.${key}`];
    // topK, topP and seed are for tools and tests, not the Settings UI.
    if (!property) continue;
    assert.equal(property.default, COMPLETION_DEFAULTS[key as keyof typeof COMPLETION_RANGES], `${key} default`);
    assert.equal(property.minimum, min, `${key} minimum`);
    assert.equal(property.maximum, max, `${key} maximum`);
    assert.equal(property.type, integer ? 'integer' : 'number', `${key} type`);
  }
  for (const key of ['temperature', 'beamWidth', 'maxChars', 'minConfidence']) setting(key);
});

test('the manifest’s choices are the ones the server accepts, with the same defaults', () => {
  assert.deepEqual(setting('mode').enum, [...MODES]);
  assert.equal(setting('mode').default, COMPLETION_DEFAULTS.mode);
  assert.deepEqual(setting('stopAt').enum, [...STOP_ATS]);
  assert.equal(setting('stopAt').default, COMPLETION_DEFAULTS.stopAt);
  assert.deepEqual(setting('backend').enum, [...BACKEND_CHOICES]);
  assert.equal(setting('backend').default, SETTINGS_DEFAULTS.backend);
  assert.deepEqual(setting('languages').default, [...DEFAULT_LANGUAGES]);
  const activation: string[] = manifest.activationEvents;
  for (const language of DEFAULT_LANGUAGES)
    assert.ok(activation.includes(`onLanguage:${language}`), `activates on ${language}`);
});

test('the manifest’s defaults parse to the engine’s defaults without a warning', () => {
  const raw = Object.fromEntries(
    Object.entries(properties).map(([key, property]) => [key.replace('charComplete.', ''), property.default]),
  );
  const { settings, warnings } = parseSettings(raw);
  assert.deepEqual(warnings, []);
  assert.deepEqual(settings.completion, COMPLETION_DEFAULTS);
});

test('an untrusted workspace’s settings cannot choose the model, where completions apply or where the model runs', () => {
  // A cloned repository's .vscode/settings.json could otherwise point the server at a model it
  // ships, switch completions on for source code, or force a backend that loads native code.
  const restricted: string[] = manifest.capabilities.untrustedWorkspaces.restrictedConfigurations;
  for (const key of ['modelPath', 'learnFromSaves', 'languages', 'backend']) {
    setting(key);
    assert.ok(restricted.includes(`charComplete.${key}`), `charComplete.${key} is a restricted configuration`);
  }
  for (const key of restricted) assert.ok(properties[key], `restricted ${key} is a declared setting`);
});

test('charComplete.exclude is a list of globs in the manifest, empty by default as in the server', () => {
  const exclude = setting('exclude') as ManifestProperty & { items?: { type: string } };
  assert.equal(exclude.type, 'array');
  assert.deepEqual(exclude.items, { type: 'string' });
  assert.deepEqual(exclude.default, SETTINGS_DEFAULTS.exclude);
});

test('charComplete.model picks a model by name per workspace; a name that is not one is a warning, not a crash', () => {
  const model = setting('model') as ManifestProperty & { scope?: string };
  assert.equal(model.type, 'string');
  assert.equal(model.default, SETTINGS_DEFAULTS.model);
  assert.ok(['window', 'resource'].includes(model.scope ?? ''), 'settable in a workspace');
  assert.equal(parseSettings({ model: 'journal' }).settings.model, 'journal');
  const bad = parseSettings({ model: '../elsewhere' });
  assert.equal(bad.settings.model, '');
  assert.match(bad.warnings.join('\n'), /charComplete\.model: "\.\.\/elsewhere" is not a model name/);
});

test('charComplete.learnWhileTyping is on by default in the manifest and the server; a non-boolean is a warning', () => {
  assert.equal(properties['charComplete.learnWhileTyping'].type, 'boolean');
  assert.equal(properties['charComplete.learnWhileTyping'].default, SETTINGS_DEFAULTS.learnWhileTyping);
  assert.equal(SETTINGS_DEFAULTS.learnWhileTyping, true);
  assert.equal(parseSettings({ learnWhileTyping: false }).settings.learnWhileTyping, false);
  const bad = parseSettings({ learnWhileTyping: 'no' });
  assert.equal(bad.settings.learnWhileTyping, true);
  assert.match(bad.warnings.join('\n'), /learnWhileTyping must be true or false/);
});
