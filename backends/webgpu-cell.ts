// The LSTM cell as WebGPU compute shaders. Built from tfjs ops, a timestep costs ~15 dispatches
// forward and ~25 backward, and on a GPU the dispatches, not the arithmetic, set the pace. Each
// program here writes one output and recomputes the few gate values it needs from the inputs,
// which is cheaper than a dispatch per intermediate.
import * as tf from '@tensorflow/tfjs';
import { getKernel, registerKernel, TensorInfo } from '@tensorflow/tfjs';
import type { WebGPUBackend, webgpu_util as WebGpuUtil } from '@tensorflow/tfjs-backend-webgpu';

type Util = typeof WebGpuUtil;

const HELPERS = `
fn cellSigmoid(x : f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
// exp of a large argument overflows to inf and inf/inf is NaN, so tanh is taken from e^(-2|x|).
fn cellTanh(x : f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
`;

/** Gate pre-activations for (b, j): Rec is h·Wh [B, 4H], Proj the input projection [T*B, 4H] read from row. */
const GATES = `
let H = uniforms.hidden;
let b = index / H;
let j = index - b * H;
let zr = b * 4 * H + j;
let xr = (uniforms.row + b) * 4 * H + j;
let gi = cellSigmoid(Rec[zr] + Proj[xr]);
let gf = cellSigmoid(Rec[zr + H] + Proj[xr + H]);
let gg = cellTanh(Rec[zr + 3 * H] + Proj[xr + 3 * H]);
let c = gf * CPrev[index] + gi * gg;
`;

/** Per-unit gradient terms for (b, j) from the saved activations (see cellBackward in kernels.ts). */
const GRADIENTS = `
let H = uniforms.hidden;
let b = index / H;
let j = index - b * H;
let a = b * 4 * H + j;
let gi = Acts[a];
let gf = Acts[a + H];
let go = Acts[a + 2 * H];
let gg = Acts[a + 3 * H];
let t = TanhC[index];
let dh = DH[(uniforms.row + b) * H + j] + DHNext[index];
let dc = dh * go * (1.0 - t * t) + DCNext[index];
`;

/**
 * A program lists only the inputs its shader reads: the shader compiler drops unread bindings from
 * the pipeline's layout, and binding them anyway fails validation.
 */
interface Program {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  size: boolean;
  uniforms: string;
  workgroupSize: [number, number, number];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  getUserCode(): string;
}

/** A flat program over outputShape; body computes `index`'s element, which it writes to result. */
function program(util: Util, key: string, variableNames: string[], outputShape: number[], body: string): Program {
  const workgroupSize: [number, number, number] = [64, 1, 1];
  const dispatchLayout = util.flatDispatchLayout(outputShape);
  return {
    variableNames,
    outputShape,
    shaderKey: `char_complete_lstm_${key}`,
    size: true,
    uniforms: 'row : i32, hidden : i32,',
    workgroupSize,
    dispatchLayout,
    dispatch: util.computeDispatch(dispatchLayout, outputShape, workgroupSize),
    getUserCode: () => `${HELPERS}\nfn main(index : i32) {\n  if (index < uniforms.size) {\n${body}\n  }\n}`,
  };
}

/** tfjs-backend-webgpu's MatMulProgramType.MatMulPackedProgram (not exported). */
const MATMUL_PACKED_PROGRAM = 3;

/**
 * Runs fn with every WebGPU matmul on tfjs's packed kernel. For a small output with a long inner
 * dimension tfjs otherwise picks its split-K kernel, whose results in the backward pass (inner
 * dimension 4H >= 2000 at a small batch) were wrong on an H100. Inference keeps tfjs's choice,
 * which is up to 3x faster at batch 1 and matched the CPU there.
 */
export function withExactMatMuls<T>(fn: () => T): T {
  if (tf.getBackend() !== 'webgpu') return fn();
  const saved = tf.env().get('WEBGPU_MATMUL_PROGRAM_TYPE');
  tf.env().set('WEBGPU_MATMUL_PROGRAM_TYPE', MATMUL_PACKED_PROGRAM);
  try {
    return fn();
  } finally {
    tf.env().set('WEBGPU_MATMUL_PROGRAM_TYPE', saved);
  }
}

export function registerWebGpuCellKernels(util: Util): void {
  if (getKernel('LstmCellForward', 'webgpu')) return;
  const cellInputs = ['Rec', 'Proj', 'CPrev'];
  registerKernel({
    kernelName: 'LstmCellForward',
    backendName: 'webgpu',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { recurrent, inputProjection, cPrev } = inputs as Record<string, TensorInfo>;
      const { row, trace } = attrs as unknown as { row: number; trace: boolean };
      const [B, H] = cPrev.shape;
      const gpu = backend as unknown as WebGPUBackend;
      const uniforms = [
        { type: 'int32', data: [row] },
        { type: 'int32', data: [H] },
      ];
      const run = (key: string, shape: number[], body: string, names = cellInputs) =>
        gpu.runWebGPUProgram(
          program(util, key, names, shape, body) as never,
          [recurrent, inputProjection, cPrev].slice(0, names.length),
          'float32',
          uniforms,
        );
      const c = run('c', [B, H], `${GATES}\nresult[index] = c;`);
      const h = run(
        'h',
        [B, H],
        `${GATES}\nlet go = cellSigmoid(Rec[zr + 2 * H] + Proj[xr + 2 * H]);\nresult[index] = go * cellTanh(c);`,
      );
      if (!trace) return [c, h];
      const tanhC = run('tanh_c', [B, H], `${GATES}\nresult[index] = cellTanh(c);`);
      // acts [B, 4H] in gate order [i, f, o, g]: sigmoid for the first three, tanh for g.
      const acts = run(
        'acts',
        [B, 4 * H],
        `
let H = uniforms.hidden;
let b = index / (4 * H);
let k = index - b * 4 * H;
let z = Rec[index] + Proj[(uniforms.row + b) * 4 * H + k];
result[index] = select(cellSigmoid(z), cellTanh(z), k >= 3 * H);`,
        ['Rec', 'Proj'],
      );
      return [c, h, acts, tanhC];
    },
  });
  const gradientInputs = ['DH', 'DHNext', 'DCNext', 'Acts', 'CPrev', 'TanhC'];
  registerKernel({
    kernelName: 'LstmCellBackward',
    backendName: 'webgpu',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { dH, dhNext, dcNext, acts, cPrev, tanhC } = inputs as Record<string, TensorInfo>;
      const { row } = attrs as unknown as { row: number };
      const [B, H] = cPrev.shape;
      const gpu = backend as unknown as WebGPUBackend;
      const uniforms = [
        { type: 'int32', data: [row] },
        { type: 'int32', data: [H] },
      ];
      const dcPrevInputs = ['DH', 'DHNext', 'DCNext', 'Acts', 'TanhC'];
      // dZ is computed per (b, j) unit for all four gates, so it runs over [B, H] and writes 4 values.
      const dZ = gpu.makeTensorInfo([B, 4 * H], 'float32');
      gpu.runWebGPUProgram(
        program(
          util,
          'dz',
          gradientInputs,
          [B, H],
          `${GRADIENTS}
result[a] = dc * gg * gi * (1.0 - gi);
result[a + H] = dc * CPrev[index] * gf * (1.0 - gf);
result[a + 2 * H] = dh * t * go * (1.0 - go);
result[a + 3 * H] = dc * gi * (1.0 - gg * gg);`,
        ) as never,
        [dH, dhNext, dcNext, acts, cPrev, tanhC],
        'float32',
        uniforms,
        dZ,
      );
      const dcPrev = gpu.runWebGPUProgram(
        program(util, 'dc_prev', dcPrevInputs, [B, H], `${GRADIENTS}\nresult[index] = dc * gf;`) as never,
        [dH, dhNext, dcNext, acts, tanhC],
        'float32',
        uniforms,
      );
      return [dZ, dcPrev];
    },
  });
}
