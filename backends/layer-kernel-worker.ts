// A worker thread of the whole-layer LSTM kernel: runs each posted job on its share of the units.
import { parentPort, workerData } from 'node:worker_threads';
import { KernelExports, JobKind, runJob, WorkerSetup } from './layer-kernel';

const { module, memory, control, thread, threads } = workerData as WorkerSetup;
const kernel = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
const words = new Int32Array(memory.buffer, control, 32);
let seen = Atomics.load(words, 0);
parentPort!.postMessage('ready');
for (;;) {
  Atomics.wait(words, 0, seen);
  seen = Atomics.load(words, 0);
  if (words[1] === JobKind.Quit) break;
  try {
    runJob(kernel, words, thread, threads);
  } catch {
    // runJob raised the abort word; the calling thread reports the failure.
  }
}
