// Through the real server: inline completion answers the best completion first and the other distinct beams after it
// (for the editor's Alt+] cycling), and a completion list asked on the same keystroke does not cancel it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LspSession, replayTypist } from '../tools/lsp-driver';
import { randomModel } from './support/random-model';

const root = mkdtempSync(join(tmpdir(), 'char-complete-alternatives-'));
const modelDir = join(root, 'model');
randomModel(3, { embed: 8, hidden: 16, layers: 1 }, modelDir);
after(() => rmSync(root, { recursive: true, force: true }));

const URI = 'file:///notes/a.md';
const TEXT = '# Notes\nthe quick brown fox and the lazy dog went out. the qu';
const LINE = 1;
const CHARACTER = TEXT.split('\n')[1].length;

function session(settings: Record<string, unknown>): LspSession {
  // minConfidence 0: untrained weights spread their probability thin, and every beam must stay on offer.
  return new LspSession({
    initializationOptions: { modelPath: modelDir, minConfidence: 0, stopAt: 'none', maxChars: 6, ...settings },
    env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
  });
}

/** The items of an inline completion on the test's line: triggerKind 2 as the editor asks while the user types, 1 as Alt+] asks. */
function inlineItems(lsp: LspSession, character = CHARACTER, triggerKind: 1 | 2 = 2): Promise<string[]> {
  return lsp.inlineItems(URI, LINE, character, triggerKind);
}

/** Whether no item is the same suggestion as another: one's words begin the other's, whatever ends them. */
function assertDistinct(items: string[]): void {
  const core = (text: string) => text.replace(/[^\p{L}\p{N}_]+$/u, '');
  for (let i = 0; i < items.length; i++)
    for (let j = 0; j < i; j++) {
      const [a, b] = [core(items[i]), core(items[j])];
      assert.ok(!a.startsWith(b) && !b.startsWith(a), `${JSON.stringify(items[i])} collapses into ${items[j]}`);
    }
}

test('inline completion offers the best beam first, then the other distinct beams, none collapsing into another', async () => {
  const wide = session({ beamWidth: 4 });
  const single = session({ beamWidth: 4 });
  try {
    await wide.initialize();
    await wide.open(URI, TEXT);
    const items = await inlineItems(wide);
    assert.ok(items.length >= 2, `several suggestions: ${JSON.stringify(items)}`);
    assert.ok(items.length <= 4, 'at most one per beam');
    assertDistinct(items);
    // The first is the one completion the server has always given, as a fresh session shows.
    await single.initialize();
    await single.open(URI, TEXT);
    assert.equal(await single.inline(URI, LINE, CHARACTER), items[0]);

    const narrow = session({ beamWidth: 1 });
    try {
      await narrow.initialize();
      await narrow.open(URI, TEXT);
      assert.equal((await inlineItems(narrow)).length, 1, 'one beam, one suggestion');
    } finally {
      await narrow.shutdown();
    }
  } finally {
    await wide.shutdown();
    await single.shutdown();
  }
});

test('asked for the other suggestions (Alt+]) where the user types along one, the server keeps it first and adds others', async () => {
  const lsp = session({ beamWidth: 4 });
  try {
    await lsp.initialize();
    await lsp.open(URI, TEXT);
    const [shown] = await inlineItems(lsp);
    assert.ok(shown !== undefined && shown.length >= 4, `a suggestion to type along: ${JSON.stringify(shown)}`);
    // Two of its characters typed: the rest stays on show without a search, alone.
    await lsp.change(
      URI,
      { start: { line: LINE, character: CHARACTER }, end: { line: LINE, character: CHARACTER } },
      shown.slice(0, 2),
    );
    const along = await inlineItems(lsp, CHARACTER + 2);
    assert.deepEqual(along, [shown.slice(2)]);
    // Alt+] there: the editor shows the answer's first item as the one on show and cycles to the next, so the rest
    // on show comes first, and the search's other suggestions after it.
    const asked = await inlineItems(lsp, CHARACTER + 2, 1);
    assert.equal(asked[0], shown.slice(2));
    assert.ok(asked.length >= 2, `other suggestions after the one on show: ${JSON.stringify(asked)}`);
    assert.ok(asked.length <= 4, 'at most one per beam');
    assertDistinct(asked);
  } finally {
    await lsp.shutdown();
  }
});

test('a completion list and an inline completion asked on one keystroke both get answers', async () => {
  const lsp = session({ beamWidth: 2 });
  try {
    await lsp.initialize();
    await lsp.open(URI, TEXT, 'plaintext');
    // Sent back to back, as VS Code does in plaintext with quick suggestions on: one must not cancel the other.
    const [inline, list] = await Promise.all([inlineItems(lsp), lsp.completion(URI, LINE, CHARACTER)]);
    assert.ok(inline.length >= 1, 'the inline completion was answered');
    assert.ok(list.length >= 1, 'the completion list was answered');
  } finally {
    await lsp.shutdown();
  }
});

test("the bench's typist cycles with Alt+] where asked, and each invoked request answers at least the suggestion on show", async () => {
  const lsp = session({ beamWidth: 4 });
  try {
    await lsp.initialize();
    const uri = 'file:///notes/typed.md';
    await lsp.open(uri, '');
    const result = await replayTypist(lsp, uri, '', 'the quick brown fox. the lazy dog', { invokedEvery: 2 });
    assert.ok(result.shown >= 4, `suggestions shown: ${result.shown}`);
    assert.equal(result.invoked.latenciesMs.length, Math.floor(result.shown / 2), 'one invoked request per two shown');
    assert.ok(
      result.invoked.items.every((n) => n >= 1),
      `every invoked request answers at least the suggestion on show: ${JSON.stringify(result.invoked.items)}`,
    );
    assert.ok(result.invoked.latenciesMs.every((ms) => ms > 0));
  } finally {
    await lsp.shutdown();
  }
});
