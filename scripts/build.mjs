// Bundles every entry point with esbuild and copies the wasm binaries next to the bundles,
// because tfjs-backend-wasm locates them relative to the running script.
import { build } from 'esbuild';
import asc from 'assemblyscript/asc';
import { cpSync, mkdirSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const entryPoints = {
  train: 'scripts/train.ts',
  bench: 'scripts/bench.ts',
  server: 'server/main.ts',
  eval: 'scripts/eval.ts',
  'ngram-eval': 'scripts/ngram-eval.ts',
  'contexts-eval': 'scripts/contexts-eval.ts',
  split: 'scripts/split.ts',
  client: 'client/extension.ts',
  'e2e/code-server': 'test/e2e/code-server.ts',
  'e2e/suite': 'test/vscode/suite.ts',
  'e2e/electron': 'test/vscode/electron.ts',
  'test/robust': 'test/robust.ts',
  'layer-kernel-worker': 'backends/layer-kernel-worker.ts',
};
for (const file of readdirSync(join(root, 'test'))) {
  if (file.endsWith('.test.ts')) entryPoints[`test/${file.replace(/\.ts$/, '')}`] = `test/${file}`;
}
for (const [name, path] of Object.entries(entryPoints)) {
  if (!existsSync(join(root, path))) delete entryPoints[name];
}

await build({
  absWorkingDir: root,
  entryPoints,
  outdir: dist,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  logLevel: 'warning',
  // Native TensorFlow bindings are optional and loaded at run time when present; vscode is
  // provided by the editor; the test drivers stay in node_modules.
  external: [
    '@tensorflow/tfjs-node',
    '@tensorflow/tfjs-node-gpu',
    'webgpu',
    'vscode',
    'playwright-core',
    '@vscode/test-electron',
  ],
});

// Dawn's binding for this platform, when the optional webgpu package installed, so the bundle (and
// the .vsix, which carries no node_modules) can reach the GPU (backends/select.ts).
const platformDir = `${process.platform}-${process.platform === 'darwin' ? 'universal' : process.arch}`;
const dawn = join(root, 'node_modules/webgpu/dist', platformDir, 'dawn.node');
if (existsSync(dawn)) cpSync(dawn, join(dist, 'dawn.node'));

// The threaded build's emscripten scripts are loaded by worker threads as files (backends/wasm-threads.ts).
const wasmOut = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/wasm-out');
mkdirSync(join(dist, 'test'), { recursive: true });
for (const file of readdirSync(wasmOut)) {
  if (file.endsWith('.wasm') || file.startsWith('tfjs-backend-wasm-threaded-simd.')) {
    cpSync(join(wasmOut, file), join(dist, file));
    if (file.endsWith('.wasm')) cpSync(join(wasmOut, file), join(dist, 'test', file));
  }
}

// The whole-layer LSTM kernel, compiled from source twice: with relaxed SIMD (fused multiply-add)
// for runtimes that have it, and with plain SIMD for the rest (backends/layer-kernel.ts). The
// memory limits must match LAYER_KERNEL_INITIAL_PAGES and LAYER_KERNEL_MAX_PAGES there.
const kernelSource = 'backends/assembly/lstm-layer.ts';
for (const [name, features] of [
  ['lstm-layer.relaxed.wasm', ['--enable', 'relaxed-simd']],
  ['lstm-layer.simd.wasm', []],
]) {
  const { error, stderr } = await asc.main([
    join(root, kernelSource),
    '-o',
    join(dist, name),
    '-O3',
    '--runtime',
    'stub',
    '--noAssert',
    '--enable',
    'simd',
    '--enable',
    'threads',
    ...features,
    '--importMemory',
    '--sharedMemory',
    '--initialMemory',
    '32',
    '--maximumMemory',
    '32768',
  ]);
  if (error) {
    console.error(stderr.toString());
    throw new Error(`${kernelSource}: ${error.message}`);
  }
  cpSync(join(dist, name), join(dist, 'test', name));
}
cpSync(join(dist, 'layer-kernel-worker.js'), join(dist, 'test', 'layer-kernel-worker.js'));

// The PyTorch training engine, a child process of the trainer (training/torch-engine.ts).
cpSync(join(root, 'training/torch_engine.py'), join(dist, 'torch_engine.py'));
