// Which engine takes the training steps: this process's tfjs engine ("wasm", on the backend
// selected), or PyTorch in a child process ("torch"). auto takes torch where it has a GPU, or where
// a timed step of the run's own model shows it faster on the CPU, and says why either way.
import type { BackendChoice } from '../backends/select';
import type { NetworkConfig } from '../model/architecture';
import type { StepShape } from './speed';
import { TorchEngine, TorchEngineError, TorchLaunch, TorchUnavailableError } from './torch-engine';

export const ENGINE_CHOICES = ['auto', 'wasm', 'torch'] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

/** The engine asked for cannot run here; the message says why and what to do. The command line exits with 2. */
export class EngineUnavailableError extends Error {}

export interface EngineSelection {
  name: 'wasm' | 'torch';
  /** One line for the trainer's first lines: what runs, and why. */
  description: string;
  /** Lines worth saying besides: which interpreter was passed over, a slow BLAS. */
  notes: string[];
  /** The torch engine, started and waiting for its setup. */
  torch?: TorchEngine;
}

export interface EngineContext {
  /** The --backend asked for: naming one asks for the tfjs engine. */
  backend: BackendChoice;
  launch: TorchLaunch;
  /** The run's model and batch, timed on both engines by auto on a CPU. */
  probe: StepShape & { config: NetworkConfig };
  /** The tfjs engine's training chars per second for the probe. */
  wasmSpeed: () => Promise<number>;
}

export async function selectEngine(choice: EngineChoice, context: EngineContext): Promise<EngineSelection> {
  const wasm = (why: string): EngineSelection => ({ name: 'wasm', description: `wasm (${why})`, notes: [] });
  const several = (context.launch.processes ?? 1) > 1 || context.launch.nodes !== undefined;
  if (choice === 'wasm') return wasm('as asked');
  if (choice === 'auto' && context.backend !== 'auto' && !several)
    return wasm(`--backend ${context.backend} asks for this process's tfjs engine`);

  let torch: TorchEngine;
  try {
    torch = await TorchEngine.start(context.launch);
  } catch (error) {
    const explicit = choice === 'torch' || several;
    if (!(error instanceof TorchUnavailableError || error instanceof TorchEngineError)) throw error;
    if (explicit) throw new EngineUnavailableError(error.message);
    return wasm(`auto: ${error.message}`);
  }
  const { config, ...shape } = context.probe;
  const { batch } = shape;
  const world = torch.info.worldSize;
  if (batch % world !== 0) {
    await torch.close();
    throw new EngineUnavailableError(
      `batch ${batch} does not split evenly across ${world} processes: give --batch a multiple of ${world}`,
    );
  }
  const notes = [torch.info.interpreterNote, torch.info.blasWarning].filter((n): n is string => !!n);
  const torchSelection = (why: string): EngineSelection => ({
    name: 'torch',
    description: `${torch.describe()} (${why})`,
    notes,
    torch,
  });
  if (choice === 'torch') return torchSelection('as asked');
  if (several) return torchSelection(`${world} processes asked for`);
  if (torch.info.device !== 'cpu') return torchSelection(`auto: a ${torch.info.device.replace(/:\d+$/, '')} device`);

  // On a CPU the faster engine depends on the BLAS, the cores and the model: both are timed.
  let torchSpeed: number;
  try {
    torchSpeed = (await torch.time(config, shape)).fastest;
  } catch (error) {
    await torch.close();
    if (error instanceof TorchEngineError) return wasm(`auto: ${error.message}`);
    throw error;
  }
  const wasmSpeed = await context.wasmSpeed();
  const speeds = `a ${config.layers}×${config.hidden} training step at batch ${batch}: ${formatSpeed(torchSpeed)} chars/s in torch, ${formatSpeed(wasmSpeed)} in wasm`;
  if (torchSpeed > wasmSpeed) return torchSelection(`auto: ${speeds}`);
  await torch.close();
  return wasm(`auto: ${speeds}`);
}

function formatSpeed(charsPerSecond: number): string {
  return Math.round(charsPerSecond).toLocaleString('en-US');
}
