// Multi-threaded XNNPACK for the wasm backend in Node. tfjs ships the threaded build but turns
// threads off in Node, because emscripten starts its workers from blob: URLs, which Node's
// worker_threads cannot load. Here the worker gets files instead: emscripten's own worker script
// and threaded module script, both shipped in tfjs-backend-wasm's wasm-out/ and copied next to
// the bundle by the build. tfjs does not support this, so the caller keeps a single-threaded
// fallback.
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';

export const THREADED_MODULE = 'tfjs-backend-wasm-threaded-simd.js';
export const THREADED_WORKER = 'tfjs-backend-wasm-threaded-simd.worker.js';

/** Sets up threaded initialisation; returns a function that undoes the global patches. */
export function prepareWasmThreads(assetDir: string): () => void {
  const moduleScript = join(assetDir, THREADED_MODULE);
  const workerScript = join(assetDir, THREADED_WORKER);
  if (!existsSync(moduleScript) || !existsSync(workerScript))
    throw new Error(`${THREADED_MODULE} is missing next to the bundle`);
  const dir = mkdtempSync(join(tmpdir(), 'char-complete-wasm-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const worker = join(dir, 'worker.js');
  // The main thread posts the module script as a Blob; the worker is told to load the file instead.
  const redirect = `\n;(() => { const handle = self.onmessage; self.onmessage = (e) => { if (e.data && e.data.cmd === 'load') e.data.urlOrBlob = ${JSON.stringify(moduleScript)}; return handle(e); }; })();\n`;
  // The shipped worker file exports the script as a string; its string literals' "\n" escapes were
  // turned into newlines by that, and are put back as tfjs itself does.
  const contents = (require(workerScript) as { wasmWorkerContents: string }).wasmWorkerContents.replace(/\n/g, '\\n');
  writeFileSync(worker, contents + redirect);

  const originalCreateObjectURL = URL.createObjectURL;
  URL.createObjectURL = () => worker;
  // XNNPACK's pool is capped at half the logical cores (it assumes hyper-threading); on a 2-core
  // machine that is 1 thread. Reporting twice the cores while it starts lifts the cap to `threads`.
  const originalCpus = os.cpus;
  os.cpus = () => [...originalCpus(), ...originalCpus()];
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  return () => {
    URL.createObjectURL = originalCreateObjectURL;
    os.cpus = originalCpus;
  };
}
