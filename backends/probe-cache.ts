// Whether the server times the GPU against the CPU at all, and what it found last time: a model too small for a GPU
// to win at batch 1 is served by the CPU without opening an adapter (on a dual-GPU laptop that would wake the discrete
// GPU), and a measured winner is remembered per model shape and machine, so the next start does not probe again.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, homedir, hostname } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { NetworkConfig, parameterShapes } from '../model/architecture';
import { APP_NAME } from '../model/paths';
import type { SelectOptions } from './select';

/**
 * Below this many parameters the CPU wins a completion step: measured, a 2×256 model (0.9 M) steps in 0.5 ms on wasm
 * against 2–4 ms on WebGPU, whose dispatch and read-back cost more than the arithmetic; at 3×1024 (21 M) the GPU wins.
 */
export const CPU_WINS_BELOW_PARAMETERS = 4_000_000;

export function parameterCount(config: NetworkConfig): number {
  return parameterShapes(config).reduce((sum, [, shape]) => sum + shape.reduce((a, b) => a * b, 1), 0);
}

/** Why the GPU need not be probed for this model, or undefined when only a measurement can tell. */
export function cpuWinsRule(config: NetworkConfig): string | undefined {
  const count = parameterCount(config);
  if (count >= CPU_WINS_BELOW_PARAMETERS) return undefined;
  const millions = (n: number) => `${+(n / 1e6).toFixed(1)} M`;
  return `the model has ${millions(count)} parameters, below the ${millions(CPU_WINS_BELOW_PARAMETERS)} under which the CPU wins a completion step`;
}

export interface ProbeResult {
  winner: 'gpu' | 'cpu';
  /** The measurement, as the log line said it. */
  timings: string;
}

/**
 * What identifies the machine for the probe without opening a GPU: host, CPU, and on Linux the GPUs' PCI ids and
 * their drivers' versions read from sysfs, so a new driver or card probes again.
 */
export function machineFingerprint(): string {
  const parts = [hostname(), process.platform, process.arch, cpus()[0]?.model ?? '', String(cpus().length)];
  if (process.platform === 'linux') {
    const read = (path: string) => {
      try {
        return readFileSync(path, 'utf8').trim();
      } catch {
        return '';
      }
    };
    let cards: string[] = [];
    try {
      cards = readdirSync('/sys/class/drm').filter((name) => /^card\d+$/.test(name));
    } catch {
      // No DRM: no GPU to tell apart.
    }
    for (const card of cards.sort())
      parts.push(`${read(`/sys/class/drm/${card}/device/vendor`)}:${read(`/sys/class/drm/${card}/device/device`)}`);
    for (const driver of ['nvidia', 'amdgpu', 'i915', 'xe']) parts.push(read(`/sys/module/${driver}/version`));
  }
  return parts.join('|');
}

/** The cache key: the model's shape and beam width (all the probe depends on) and the machine. */
export function probeKey(config: NetworkConfig, beamWidth: number, machine = machineFingerprint()): string {
  const shape = `${config.vocabSize}/${config.embed}/${config.hidden}/${config.layers}/${beamWidth}`;
  return createHash('sha256').update(`${shape}|${machine}`).digest('hex').slice(0, 24);
}

/** The per-user cache directory, by each platform's convention. */
export function userCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'win32') return join(env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), APP_NAME);
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Caches', APP_NAME);
  const base = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, APP_NAME);
}

/** Probe results in one small JSON file; an unreadable file is an empty cache, and a failed write only costs a probe. */
export class ProbeCache {
  constructor(readonly file = join(userCacheDir(), 'backend-probe.json')) {}

  get(key: string): ProbeResult | undefined {
    const entry = this.read()[key];
    return entry && (entry.winner === 'gpu' || entry.winner === 'cpu') && typeof entry.timings === 'string'
      ? entry
      : undefined;
  }

  set(key: string, result: ProbeResult): void {
    try {
      const entries = { ...this.read(), [key]: result };
      mkdirSync(dirname(this.file), { recursive: true });
      // Written aside and renamed, so two servers starting together never read half a file.
      const temporary = `${this.file}.${process.pid}.tmp`;
      writeFileSync(temporary, JSON.stringify(entries, null, 1));
      renameSync(temporary, this.file);
    } catch {
      // Not cached: the next start measures again.
    }
  }

  private read(): Record<string, ProbeResult> {
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8'));
      return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : {};
    } catch {
      return {};
    }
  }
}

/** How auto selection treats the GPU when serving this model: skipped by the rule, the cached winner, or measured. */
export function servingOptions(config: NetworkConfig, beamWidth: number, cache = new ProbeCache()): SelectOptions {
  const skipGpu = cpuWinsRule(config);
  if (skipGpu) return { skipGpu };
  const key = probeKey(config, beamWidth);
  const cached = cache.get(key);
  return {
    skipGpu:
      cached?.winner === 'cpu' ? `the CPU measured faster for this model here (cached: ${cached.timings})` : undefined,
    gpuMeasuredFaster: cached?.winner === 'gpu' ? cached.timings : undefined,
    measured: (result) => cache.set(key, result),
  };
}
