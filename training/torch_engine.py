"""The PyTorch training engine behind `npm run train -- --engine torch`.

The TypeScript trainer keeps the pipeline: corpus, vocabulary, budget, validation, the mixture's
gate and the model files. This program runs only the LSTM's training loop, with cuDNN on a GPU and
OpenBLAS on a CPU, and with DistributedDataParallel across GPUs, processes or machines. On a CPU
that multiplies bfloat16 natively (avx512_bf16, AMX) one process steps in bfloat16 through oneDNN,
with Adam on float32 weights; CHAR_COMPLETE_TORCH_PRECISION=float32 or bfloat16 overrides that.

    serve   the trainer's child: commands as JSON lines on stdin, answers as JSON lines on stdout
    launch  starts one machine's processes for DistributedDataParallel, each running serve, with
            the ranks in torchrun's environment variables (torchrun itself works too where it runs)
    bench   times this engine's training step and PyTorch's own loop, interleaved, on random ids

Several machines: the trainer runs on node 0 (`npm run train -- NOTES --engine torch --gpus 8
--nnodes 2 --master HOST:PORT`), and every other node runs

    python3 torch_engine.py launch --device cuda --nproc 8 --nnodes 2 --node-rank 1 --master HOST:PORT

Weights cross over in the model files' layout (model/architecture.ts): float32, little-endian, in
parameterShapes order, input-major matrices (x·W), one bias per layer and the gates in the order
[input, forget, output, cell]. PyTorch keeps W transposed, two biases and [input, forget, cell,
output]; to_torch and from_torch convert, and the second bias stays zero and frozen so that the
two models are the same function with the same gradients. Adam is written out as in
training/optimizer.ts, so its moments are interchangeable with the TypeScript engine's too.

The serve protocol, one JSON object per line. The trainer sends:

    {"cmd": "time", "config": {...}, "batch": B, "seq": T, "dropout": p, "weightDrop": w, "steps": n, "plain": bool}
    {"cmd": "setup", "config": {...}, "batch": B, "seq": T, "dropout": p, "weightDrop": w, "seed": s,
     "adam": {...}, "averageShare": a, "ids": FILE, "length": n, "weights": FILE,
     "optimizer": {"path": FILE, "step": n, "trained": bool} or null}
                                         the optimizer file: m, v, then (if trained) the weights Adam steps
    {"cmd": "train", "first": g, "lrs": [...]}   a step per learning rate
    {"cmd": "score", "ids": FILE, "length": L, "batch": B, "seq": T, "path": FILE}
    {"cmd": "checkpoint", "path": FILE}  the averaged weights, Adam's m and v, then the weights Adam
                                         steps, in the files' layout
    {"cmd": "load", "path": FILE}        weights in the files' layout, for the average and Adam both
    {"cmd": "logprobs", "ids": FILE, "batch": B, "steps": T, "path": FILE}
    {"cmd": "exit"}

and reads {"event": ...} lines back: ready, timed, setup, trained, scored, checkpoint, loaded,
logprobs, or error; trained carries a note for the trainer to print when ThreadGovernor changed the CPU's threads.
End of input means the trainer is gone: the engine exits after its step. With several
processes only global rank 0 reads commands and writes answers; it hands every command to the
other ranks, and the training streams are split across ranks.
"""
import argparse
import contextlib
import copy
import datetime
import json
import math
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

INSTALL_HINT = (
    "install PyTorch for this interpreter (Debian or Ubuntu: apt-get install python3-torch "
    "libopenblas0-pthread; elsewhere: pip install torch), or name another interpreter with "
    "CHAR_COMPLETE_PYTHON"
)

try:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
except ImportError as error:
    # The trainer reads this line to say how to install torch, and auto falls back to wasm.
    print(json.dumps({"event": "unavailable", "message": str(error), "python": sys.executable,
                      "hint": INSTALL_HINT}), flush=True)
    sys.exit(3)

# How long the engine may take to leave once the trainer's end of the pipe has closed.
EXIT_GRACE_SECONDS = 10

# Adam's settings when timing: training/optimizer.ts's defaults.
ADAM = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "clipNorm": 5.0}

# nn.LSTM's own layers on a CPU too, as a GPU steps them, rather than LstmLayerOnCpu: for comparing the two.
NN_LSTM_ON_CPU = os.environ.get("CHAR_COMPLETE_TORCH_LSTM") == "nn"

# Our gate blocks [input, forget, output, cell] taken in PyTorch's order [input, forget, cell, output].
# Swapping the last two blocks is its own inverse, so the same indices convert both ways.
GATE_ORDER = [0, 1, 3, 2]


# ---- the model --------------------------------------------------------------------------------
def parameter_shapes(config):
    """Names and shapes in file order, as parameterShapes in model/architecture.ts."""
    V, E, H, L = config["vocabSize"], config["embed"], config["hidden"], config["layers"]
    shapes = [("embedding", [V, E])]
    for layer in range(L):
        shapes += [(f"lstm{layer}/wx", [E if layer == 0 else H, 4 * H]), (f"lstm{layer}/wh", [H, 4 * H]),
                   (f"lstm{layer}/b", [4 * H])]
    return shapes + [("output/w", [H, V]), ("output/b", [V])]


class CharLstm(torch.nn.Module):
    """Embedding, stacked LSTM and a linear output, with dropout after every layer as in model/network.ts, and in
    training the recurrent weights dropped (DropConnect) with probability weight_drop, one draw per step."""

    def __init__(self, config, dropout, weight_drop=0.0):
        super().__init__()
        self.dropout = dropout
        self.weight_drop = weight_drop
        self.embedding = torch.nn.Embedding(config["vocabSize"], config["embed"])
        # nn.LSTM's dropout follows every layer but the top one; forward adds the top one.
        self.lstm = torch.nn.LSTM(config["embed"], config["hidden"], config["layers"], batch_first=True,
                                  dropout=dropout if config["layers"] > 1 else 0.0)
        self.output = torch.nn.Linear(config["hidden"], config["vocabSize"])
        for layer in range(config["layers"]):
            bias = getattr(self.lstm, f"bias_hh_l{layer}")
            bias.requires_grad_(False)
            with torch.no_grad():
                bias.zero_()

    def forward(self, ids, state=None):
        x = self.embedding(ids)
        recurrent = self.recurrent_weights()
        if x.device.type == "cpu" and torch.is_grad_enabled() and not NN_LSTM_ON_CPU:
            x, state = self.lstm_on_cpu(x, state, recurrent)
        elif self.training and self.weight_drop > 0:
            x, state = self.lstm_with_recurrent(x, state, recurrent)
        else:
            x, state = self.lstm(x, state)
        return self.output(F.dropout(x, self.dropout, self.training)), state

    def recurrent_weights(self):
        """Each layer's recurrent weights as this step uses them, all drawn before any other of the step's masks."""
        weights = [getattr(self.lstm, f"weight_hh_l{layer}") for layer in range(self.lstm.num_layers)]
        if self.training and self.weight_drop > 0:
            weights = [F.dropout(w, self.weight_drop, True) for w in weights]
        return weights

    def lstm_with_recurrent(self, x, state, recurrent):
        """nn.LSTM (cuDNN on a GPU) stepping with these recurrent weights. It reads its weights from a list it keeps
        rather than from its attributes, so torch.func.functional_call would leave them as they were."""
        kept = self.lstm._flat_weights
        dropped = {f"weight_hh_l{layer}": w for layer, w in enumerate(recurrent)}
        self.lstm._flat_weights = [dropped.get(name, w) for name, w in zip(self.lstm._flat_weights_names, kept)]
        try:
            with warnings.catch_warnings():
                # cuDNN asks for its weights in one block, which the dropped ones are not; it copies them.
                warnings.filterwarnings("ignore", message="RNN module weights are not part")
                return self.lstm(x, state)
        finally:
            self.lstm._flat_weights = kept

    def lstm_on_cpu(self, x, state, recurrent):
        """nn.LSTM's function and dropout, with its weights, through LstmLayerOnCpu."""
        layers = self.lstm.num_layers
        x = x.transpose(0, 1).contiguous()
        if state is None:
            zeros = x.new_zeros(layers, x.shape[1], self.lstm.hidden_size)
            state = (zeros, zeros)
        last_h, last_c = [], []
        for layer in range(layers):
            x, h, c = LstmLayerOnCpu.apply(x, state[0][layer], state[1][layer],
                                           getattr(self.lstm, f"weight_ih_l{layer}"),
                                           recurrent[layer],
                                           getattr(self.lstm, f"bias_ih_l{layer}"))
            last_h.append(h)
            last_c.append(c)
            if layer < layers - 1:
                x = F.dropout(x, self.lstm.dropout, self.training)
        return x.transpose(0, 1), (torch.stack(last_h), torch.stack(last_c))

    def named_in_file_order(self, config):
        """Our parameter names with the PyTorch tensors that hold them."""
        found = []
        for name, _ in parameter_shapes(config):
            if name == "embedding":
                found.append((name, self.embedding.weight))
            elif name.startswith("output/"):
                found.append((name, self.output.weight if name == "output/w" else self.output.bias))
            else:
                layer, part = name[4:].split("/")
                torch_name = {"wx": "weight_ih_l", "wh": "weight_hh_l", "b": "bias_ih_l"}[part] + layer
                found.append((name, getattr(self.lstm, torch_name)))
        return found


class LstmLayerOnCpu(torch.autograd.Function):
    """One layer of nn.LSTM (gates in its order input, forget, cell, output; the second bias left out, being zero) over
    a time-major sequence, with the backward pass written out. On a CPU nn.LSTM's autograd adds each step's gradient of
    the recurrent weights into a weight-sized sum, a pass over the whole matrix per character of the sequence; here the
    steps keep only their gates' gradients, and each weight's gradient is one product over the whole sequence.
    docs/measurements.md has the A/B."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih):
        T, B, _ = x.shape
        H = w_hh.shape[1]
        gates = torch.addmm(b_ih, x.reshape(T * B, -1), w_ih.t()).view(T, B, 4 * H)
        hs, cs, tanh_cs = x.new_empty(T + 1, B, H), x.new_empty(T + 1, B, H), x.new_empty(T, B, H)
        hs[0], cs[0] = h0, c0
        w_hh_t = w_hh.t()
        for t in range(T):
            step = gates[t].addmm_(hs[t], w_hh_t)
            step[:, :2 * H].sigmoid_()
            step[:, 2 * H:3 * H].tanh_()
            step[:, 3 * H:].sigmoid_()
            c = torch.mul(step[:, H:2 * H], cs[t], out=cs[t + 1]).addcmul_(step[:, :H], step[:, 2 * H:3 * H])
            torch.mul(step[:, 3 * H:], torch.tanh(c, out=tanh_cs[t]), out=hs[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, gates, hs, cs, tanh_cs)
        return hs[1:], hs[T].clone(), cs[T].clone()

    @staticmethod
    def backward(ctx, dy, dh_last, dc_last):
        x, w_ih, w_hh, gates, hs, cs, tanh_cs = ctx.saved_tensors
        T, B, G = gates.shape
        H = G // 4
        i, f, g, o = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:3 * H], gates[..., 3 * H:]
        # Each gate's gradient is its step's dc (input, forget, cell) or dh (output) times a factor known from the
        # forward pass, computed here for all steps at once so that the loop over steps is short.
        factors = gates.new_empty(T, B, 4, H)
        torch.mul(g, i * (1 - i), out=factors[:, :, 0])
        torch.mul(cs[:-1], f * (1 - f), out=factors[:, :, 1])
        torch.mul(i, 1 - g * g, out=factors[:, :, 2])
        torch.mul(tanh_cs, o * (1 - o), out=factors[:, :, 3])
        into_c = o * (1 - tanh_cs * tanh_cs)
        dy = dy.contiguous()
        d_gates = gates.new_empty(T, B, 4, H)
        dh = dy[T - 1] + dh_last
        dc = dc_last.clone()
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                dh = torch.addmm(dy[t], d_gates[t + 1].view(B, G), w_hh)
            dc.addcmul_(dh, into_c[t])
            torch.mul(dc.unsqueeze(1), factors[t, :, :3], out=d_gates[t, :, :3])
            torch.mul(dh, factors[t, :, 3], out=d_gates[t, :, 3])
            dc.mul_(f[t])
        flat = d_gates.view(T * B, G)
        dx = (flat @ w_ih).view(T, B, -1)
        dh0 = flat[:B] @ w_hh
        return dx, dh0, dc, flat.t() @ x.reshape(T * B, -1), flat.t() @ hs[:-1].reshape(T * B, H), flat.sum(0)


def reorder_gates(x, hidden):
    return torch.cat([x[g * hidden:(g + 1) * hidden] for g in GATE_ORDER])


def to_torch(name, value, hidden):
    """A value in the files' layout (shaped) as the PyTorch parameter that holds it."""
    if name.startswith("lstm"):
        return reorder_gates(value.t() if value.dim() == 2 else value, hidden)
    return value.t() if name == "output/w" else value


def from_torch(name, value, hidden):
    if name.startswith("lstm"):
        value = reorder_gates(value, hidden)
        return value.t() if value.dim() == 2 else value
    return value.t() if name == "output/w" else value


# ---- files: float32 and int32, little-endian, without numpy ----------------------------------
def read_tensor(path, dtype, offset=0, count=None):
    itemsize = torch.tensor([], dtype=dtype).element_size()
    with open(path, "rb") as f:
        f.seek(offset * itemsize)
        data = bytearray(f.read(-1 if count is None else count * itemsize))
    if count is not None and len(data) != count * itemsize:
        raise ValueError(f"{path} holds fewer than the {count} values expected")
    return torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)


def write_tensors(path, tensors):
    with open(path, "wb") as f:
        for t in tensors:
            flat = t.detach().to("cpu", torch.float32).contiguous().reshape(-1)
            buffer = bytearray(flat.numel() * 4)
            if flat.numel():
                torch.frombuffer(buffer, dtype=torch.float32).copy_(flat)
            f.write(buffer)


def read_weights(path, config, count=1):
    """`count` consecutive sets of tensors in the files' layout, shaped."""
    shapes = parameter_shapes(config)
    flat = read_tensor(path, torch.float32)
    sets, offset = [], 0
    for _ in range(count):
        values = {}
        for name, shape in shapes:
            n = math.prod(shape)
            values[name] = flat[offset:offset + n].reshape(shape)
            offset += n
        sets.append(values)
    if offset != flat.numel():
        raise ValueError(f"{path} holds {flat.numel()} floats, expected {offset} for {config}")
    return sets


# ---- where it runs ------------------------------------------------------------------------------
def blas_libraries():
    try:
        with open("/proc/self/maps") as maps:
            return sorted({line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line})
    except OSError:
        return []


def describe_blas():
    """The BLAS behind torch on Linux: Debian's torch uses whatever libblas.so.3 points at."""
    libraries = blas_libraries()
    names = " ".join(libraries).lower()
    if "openblas" in names:
        return "openblas", None
    if "mkl" in names:
        return "mkl", None
    if any(lib.endswith("/blas/libblas.so.3") for lib in libraries):
        return "reference", ("torch runs on the reference BLAS, many times slower than OpenBLAS: "
                             "apt-get install libopenblas0-pthread")
    return "bundled", None


class Distributed:
    """Rank, world, the steps' precision and threads, and the groups commands travel on; one process unless started by
    launch (or torchrun)."""

    def __init__(self, device_choice, threads=0):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        kind = device_choice
        if kind == "auto":
            kind = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
        if kind == "cuda" and not torch.cuda.is_available():
            raise EngineError("no CUDA device is visible to torch (--gpus needs one)")
        if kind == "mps" and self.world > 1:
            raise EngineError("several processes cannot share Apple's MPS device; use one process")
        self.device = torch.device(f"cuda:{local_rank}" if kind == "cuda" else kind)
        if kind == "cuda":
            torch.cuda.set_device(self.device)
        self.precision, self.precision_reason = choose_precision(self.device, self.world)
        # torch's threads for float32 products, where they differ from the steps' (float32_work)
        self.float32_threads = configure_threads(threads, self.precision)
        self.governor = govern_threads(self.device, self.world, threads, self.precision)
        self.control = None
        if self.world > 1:
            # Commands travel on gloo, so that reading them never waits for a GPU.
            timeout = datetime.timedelta(hours=2)
            dist.init_process_group("nccl" if kind == "cuda" else "gloo", timeout=timeout)
            self.control = dist.new_group(backend="gloo", timeout=timeout) if kind == "cuda" else None

    def describe(self):
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return "Apple GPU (MPS)" if self.device.type == "mps" else "CPU"

    @property
    def precision_name(self):
        return str(self.precision).removeprefix("torch.")

    @contextlib.contextmanager
    def float32_work(self):
        """Float32 products (scoring the average) on the threads that suit them, then back."""
        before = torch.get_num_threads()
        if self.float32_threads:
            torch.set_num_threads(self.float32_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def broadcast(self, value):
        """Rank 0's value on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]


PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def choose_precision(device, world):
    """The precision of the training step's products, and why: bfloat16 where the CPU multiplies it natively."""
    asked = os.environ.get("CHAR_COMPLETE_TORCH_PRECISION")
    if asked:
        if asked not in PRECISIONS:
            raise EngineError(f"CHAR_COMPLETE_TORCH_PRECISION={asked}: use float32 or bfloat16")
        return PRECISIONS[asked], "CHAR_COMPLETE_TORCH_PRECISION"
    if device.type != "cpu":
        return torch.float32, "float32 on a GPU"
    if world > 1:
        return torch.float32, "float32 across processes"
    native = native_bfloat16()
    if not native:
        return torch.float32, "the CPU has no bfloat16 products"
    if not torch.backends.mkldnn.is_available():
        return torch.float32, "this torch has no oneDNN for bfloat16 products"
    return torch.bfloat16, f"the CPU multiplies bfloat16 natively: {native}"


def native_bfloat16():
    """The CPU's flag for bfloat16 dot products (Linux), or None."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return None
    return next((flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags), None)


def mps_available():
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


class EngineError(Exception):
    """A problem with the request or the machine, reported in one line rather than a traceback."""


# ---- training -----------------------------------------------------------------------------------
class Trainer:
    """One model, its Adam state and this rank's training streams."""

    def __init__(self, ranks, config, seq, dropout, adam, rows, average_share, weights=None, weight_drop=0.0):
        self.ranks, self.config, self.seq = ranks, config, seq
        self.hidden = config["hidden"]
        self.model = CharLstm(config, dropout, weight_drop).to(ranks.device)
        # In bfloat16 the steps run on a copy of the weights in that precision; Adam, its moments and the average stay
        # in float32, since a step of lr times a unit-sized update is below what bfloat16 resolves in most weights.
        self.compute = self.model
        if ranks.precision == torch.bfloat16:
            self.compute = copy.deepcopy(self.model).to(torch.bfloat16)
        self.named = self.model.named_in_file_order(config)
        self.compute_named = self.compute.named_in_file_order(config)
        if weights is not None:
            self.set_weights(weights, self.model)
        # The weights saved and scored: an average of the model's, as training/optimizer.ts's WeightAverage. A copy
        # rather than a new module, which would draw from the generator and change the run's dropout masks.
        self.averaged = copy.deepcopy(self.model).eval()
        self.averaged.requires_grad_(False)
        self.average_share = average_share
        self.net = self.compute
        if ranks.world > 1:
            # The constructor broadcasts rank 0's weights, so every rank starts from them.
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.compute, device_ids=[ranks.device.index] if ranks.device.type == "cuda" else None)
        self.average = [p for _, p in self.averaged.named_in_file_order(config)]
        self.beta1, self.beta2 = adam["beta1"], adam["beta2"]
        self.epsilon, self.clip_norm = adam["epsilon"], adam["clipNorm"]
        self.m = [torch.zeros_like(p) for _, p in self.named]
        self.v = [torch.zeros_like(p) for _, p in self.named]
        self.step = 0
        self.streams = rows.to(ranks.device)  # [this rank's streams, stream length + 1], int32
        self.batches_per_epoch = (rows.shape[1] - 1) // seq
        self.rows, self.rows_epoch = self.streams, 0
        self.state = None

    def set_weights(self, weights, model=None):
        """The weights Adam steps and their average both (or only `model`'s)."""
        with torch.no_grad():
            for target in [model] if model else [self.model, self.averaged]:
                for name, param in target.named_in_file_order(self.config):
                    param.copy_(to_torch(name, weights[name], self.hidden))
        self.copy_to_compute()

    @torch.no_grad()
    def copy_to_compute(self):
        """The weights the steps run on, rounded from the ones Adam steps where they differ in precision."""
        if self.compute is not self.model:
            for (_, target), (_, source) in zip(self.compute_named, self.named):
                target.copy_(source)

    def set_optimizer(self, state, step):
        """Adam's moments, and the weights it steps where they were saved apart from their average."""
        m, v = state[0], state[1]
        with torch.no_grad():
            for k, (name, _) in enumerate(self.named):
                self.m[k].copy_(to_torch(name, m[name], self.hidden))
                self.v[k].copy_(to_torch(name, v[name], self.hidden))
        if len(state) > 2:
            self.set_weights(state[2], self.model)
        self.step = step

    def sync_from_rank0(self):
        """Rank 0's weights and Adam state on every rank (DDP only broadcasts at construction)."""
        if self.ranks.world > 1:
            for tensor in [p for _, p in self.named] + self.average + self.m + self.v:
                dist.broadcast(tensor.data, src=0)

    def train_step(self, step, lr):
        k, epoch = step % self.batches_per_epoch, step // self.batches_per_epoch
        if k == 0:
            # A new epoch restarts every stream at its beginning, so the carried state no longer applies.
            self.state = None
        if epoch != self.rows_epoch:
            self.rows, self.rows_epoch = shifted_streams(self.streams, epoch), epoch
        window = self.rows[:, k * self.seq:(k + 1) * self.seq + 1].long()
        logits, state = self.net(window[:, :-1], self.state)
        self.state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        for _, p in self.compute_named:
            p.grad = None
        loss.backward()
        self.adam(lr)
        self.update_average()
        return loss.detach()

    @torch.no_grad()
    def adam(self, lr):
        """training/optimizer.ts: global-norm clipping, then Adam with bias correction in the step size."""
        grads = [p.grad.float() for _, p in self.compute_named]
        # The clipping factor stays a tensor, so a GPU never waits for the norm to be read back.
        norm = torch.sqrt(sum(torch.sum(g * g) for g in grads))
        clip = torch.clamp(self.clip_norm / torch.clamp(norm, min=1e-12), max=1.0)
        self.step += 1
        step_size = lr * math.sqrt(1 - self.beta2 ** self.step) / (1 - self.beta1 ** self.step)
        for (_, p), g, m, v in zip(self.named, grads, self.m, self.v):
            g = g * clip
            m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            p.addcdiv_(m, v.sqrt().add_(self.epsilon), value=-step_size)
        self.copy_to_compute()

    @torch.no_grad()
    def update_average(self):
        """training/schedule.ts's averageRate; lerp lands on the weights themselves at a rate of 1."""
        rate = 1 / (1 + self.average_share * self.step)
        for average, (_, p) in zip(self.average, self.named):
            average.lerp_(p, rate)

    def train(self, first, lrs, ending):
        """A step per learning rate from global step `first`; fewer once the trainer has gone."""
        started = time.perf_counter()
        losses = []
        for i, lr in enumerate(lrs):
            go = not ending.is_set()
            if self.ranks.world > 1:
                go = self.ranks.broadcast(go)
            if not go:
                break
            step_started = time.perf_counter()
            losses.append(self.train_step(first + i, lr))
            if self.ranks.governor:
                self.ranks.governor.took(time.perf_counter() - step_started)
        values = torch.stack(losses).tolist() if losses else []
        return values, time.perf_counter() - started

    @torch.no_grad()
    def score(self, ids, batch, seq):
        """Per target position 1..covered, its log-probability and the largest one, as scoreLstm does."""
        with self.ranks.float32_work():
            stream = (ids.numel() - 1) // (batch * seq) * seq
            rows = torch.stack([ids[s * stream:(s + 1) * stream + 1] for s in range(batch)]).to(self.ranks.device)
            target = torch.empty(batch, stream, device=self.ranks.device)
            best = torch.empty(batch, stream, device=self.ranks.device)
            window = seq * max(1, 256 // seq)
            state = None
            for start in range(0, stream, window):
                part = rows[:, start:start + window + 1].long()
                logits, state = self.averaged(part[:, :-1], state)
                log_probs = F.log_softmax(logits, dim=-1)
                end = start + part.shape[1] - 1
                target[:, start:end] = log_probs.gather(2, part[:, 1:].unsqueeze(2)).squeeze(2)
                best[:, start:end] = log_probs.max(dim=2).values
            # Position 0 has no target; the arrays are indexed by position, as LstmScores is.
            zero = torch.zeros(1)
            return stream * batch, [zero, target.reshape(-1), zero, best.reshape(-1)]

    @torch.no_grad()
    def log_probs(self, ids):
        with self.ranks.float32_work():
            logits, _ = self.averaged(ids.long().to(self.ranks.device))
            return F.log_softmax(logits, dim=-1)

    def checkpoint(self):
        """The average (the weights saved), Adam's moments, then the weights Adam steps."""
        values = []
        for tensors in (self.average, self.m, self.v, [p for _, p in self.named]):
            values += [from_torch(name, t, self.hidden) for (name, _), t in zip(self.named, tensors)]
        return values


def stream_rows(ids, batch, seq):
    """The side-by-side streams of training/batches.ts: [batch, stream length + 1]."""
    batches_per_epoch = (ids.numel() - 1) // (batch * seq)
    if batches_per_epoch < 1:
        raise EngineError(f"{ids.numel()} training ids are too few for batch {batch} and seq {seq}")
    stream = batches_per_epoch * seq
    return torch.stack([ids[s * stream:(s + 1) * stream + 1] for s in range(batch)])


def epoch_shift(epoch, stream):
    """training/batches.ts's epochShift: how far each stream is turned round in an epoch."""
    return 0 if epoch == 0 or stream < 2 else 1 + (epoch * 0x9E3779B1 % 2**32) % (stream - 1)


def shifted_streams(rows, epoch):
    """The streams turned round by epoch_shift, as training/batches.ts reads them: from the shift on, then from the
    second position."""
    shift = epoch_shift(epoch, rows.shape[1] - 1)
    return rows if shift == 0 else torch.cat([rows[:, shift:], rows[:, 1:shift + 1]], dim=1)


def share_streams(ranks, rows, shape):
    """Rank 0 holds every stream; each rank gets its own consecutive share of them."""
    if ranks.world == 1:
        return rows
    per_rank = shape[0] // ranks.world
    if ranks.rank == 0:
        for r in range(1, ranks.world):
            dist.send(rows[r * per_rank:(r + 1) * per_rank].contiguous(), dst=r, group=ranks.control)
        return rows[:per_rank]
    mine = torch.empty(per_rank, shape[1], dtype=torch.int32)
    dist.recv(mine, src=0, group=ranks.control)
    return mine


def check_batch(ranks, batch):
    if batch % ranks.world:
        raise EngineError(f"batch {batch} does not split evenly across {ranks.world} processes")
    return batch // ranks.world


def time_steps(ranks, config, batch, seq, dropout, steps=3, plain=False, weight_drop=0.0):
    """This engine's training step on random ids (or with plain, PyTorch's own loop), after a warm-up.

    Returns chars per second over the fastest and over the median of the timed steps. Where a ThreadGovernor chooses
    the CPU's threads, the engine's step is timed on each count it may choose and the fastest count is kept, so that a
    plan made while another process keeps the cores busy neither picks a model for a collapsed speed nor starts slow.
    """
    per_rank = check_batch(ranks, batch)
    torch.manual_seed(1)
    rows = torch.randint(1, config["vocabSize"], (per_rank, seq + 1), dtype=torch.int32)
    if plain:
        loop = PlainLoop(config, dropout, rows, ranks)
    else:
        # averaging costs the same at any share
        loop = Trainer(ranks, config, seq, dropout, ADAM, rows, 0, weight_drop=weight_drop)
    governor = None if plain else ranks.governor
    fastest_by_count, medians = {}, {}
    # The fewest threads first: where many are far slower, one step on them then shows it.
    for count in sorted(governor.counts) if governor else [None]:
        if count is not None:
            governor.apply(count)
        timed_step(loop)  # the first step on a count warms up
        fastest_median = min(medians.values(), default=math.inf)
        times = []
        for _ in range(steps):
            times.append(timed_step(loop))
            if times[0] > 2 * fastest_median:
                break  # far slower than a count timed already
        fastest_by_count[count], medians[count] = min(times), median(times)
    del loop
    if ranks.device.type == "cuda":
        torch.cuda.empty_cache()
    if governor:
        governor.settle(medians)
    fastest = min(medians, key=medians.get)
    return batch * seq / fastest_by_count[fastest], batch * seq / medians[fastest]


def timed_step(loop):
    started = time.perf_counter()
    loop.train_step(0, 1e-3).item()  # waits for a GPU to finish the step
    return time.perf_counter() - started


# ---- serve: the trainer's child -------------------------------------------------------------
def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


def read_commands(commands, ending):
    """Rank 0's stdin reader, so that the end of input is noticed while a command runs."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            command = json.loads(line)
        except ValueError:
            command = {"cmd": f"(not JSON: {line[:40]})"}
        commands.put(command)
    # The trainer has exited, or was killed: nothing waits for what this process would do. The
    # step under way ends, and every rank leaves with "exit"; a rank stuck waiting for another
    # does not hold the process for long. The files the trainer passed go with it, since a killed
    # trainer cannot remove them.
    files = os.environ.get("CHAR_COMPLETE_TORCH_FILES")
    if files:
        shutil.rmtree(files, ignore_errors=True)
    ending.set()
    commands.put({"cmd": "exit"})
    timer = threading.Timer(EXIT_GRACE_SECONDS, os._exit, args=(0,))
    timer.daemon = True
    timer.start()


def serve(args):
    # The trainer decides when to stop and tells this process on stdin; a Ctrl-C meant for the
    # trainer must not kill a step half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ranks = Distributed(args.device, args.threads)
    torch.manual_seed(args.seed + ranks.rank)
    commands, ending = queue.Queue(), threading.Event()
    if ranks.rank == 0:
        threading.Thread(target=read_commands, args=(commands, ending), daemon=True).start()
        blas, warning = describe_blas()
        emit("ready", torch=torch.__version__, python=sys.executable, device=str(ranks.device),
             device_name=ranks.describe(), world_size=ranks.world, blas=blas, blas_warning=warning,
             threads=torch.get_num_threads(), precision=ranks.precision_name,
             precision_reason=ranks.precision_reason)
    trainer = None
    while True:
        command = ranks.broadcast(commands.get() if ranks.rank == 0 else None)
        kind = command["cmd"]
        if kind == "exit":
            return
        if kind == "time":
            fastest_rate, median_rate = time_steps(ranks, command["config"], command["batch"], command["seq"],
                                                   command["dropout"], command.get("steps", 2),
                                                   command.get("plain", False), command.get("weightDrop", 0.0))
            if ranks.rank == 0:
                emit("timed", fastest=fastest_rate, median=median_rate)
        elif kind == "setup":
            trainer = setup(ranks, command)
            if ranks.rank == 0:
                emit("setup", batches_per_epoch=trainer.batches_per_epoch, step=trainer.step)
        elif trainer is None:
            raise EngineError(f'"{kind}" before "setup"')
        elif kind == "train":
            losses, seconds = trainer.train(command["first"], command["lrs"], ending)
            if ranks.rank == 0:
                note = ranks.governor.take_note() if ranks.governor else None
                emit("trained", losses=losses, seconds=seconds, **({"note": note} if note else {}))
        elif kind == "load":
            if ranks.rank == 0:
                trainer.set_weights(read_weights(command["path"], trainer.config)[0])
            trainer.sync_from_rank0()
            if ranks.rank == 0:
                emit("loaded")
        elif ranks.rank != 0:
            continue  # scoring and files are rank 0's alone
        elif kind == "score":
            ids = read_tensor(command["ids"], torch.int32, 0, command["length"])
            covered, arrays = trainer.score(ids, command["batch"], command["seq"])
            write_tensors(command["path"], arrays)
            emit("scored", covered=covered)
        elif kind == "checkpoint":
            write_tensors(command["path"], trainer.checkpoint())
            emit("checkpoint", step=trainer.step)
        elif kind == "logprobs":
            count = command["batch"] * command["steps"]
            ids = read_tensor(command["ids"], torch.int32, 0, count).reshape(command["batch"], command["steps"])
            write_tensors(command["path"], [trainer.log_probs(ids)])
            emit("logprobs")
        else:
            raise EngineError(f"unknown command {json.dumps(kind)}")


def setup(ranks, command):
    config, batch, seq = command["config"], command["batch"], command["seq"]
    check_batch(ranks, batch)
    torch.manual_seed(command["seed"] + ranks.rank)
    weights, rows, shape = None, None, None
    if ranks.rank == 0:
        rows = stream_rows(read_tensor(command["ids"], torch.int32, 0, command["length"]), batch, seq)
        shape = list(rows.shape)
        weights = read_weights(command["weights"], config)[0]
    shape = ranks.broadcast(shape)
    rows = share_streams(ranks, rows, shape)
    trainer = Trainer(ranks, config, seq, command["dropout"], command["adam"], rows, command["averageShare"], weights,
                      command.get("weightDrop", 0.0))
    saved = command.get("optimizer")
    if saved:
        if ranks.rank == 0:
            trainer.set_optimizer(read_weights(saved["path"], config, 3 if saved.get("trained") else 2), saved["step"])
        trainer.step = saved["step"]
        trainer.sync_from_rank0()
    return trainer


def configure_threads(threads, precision):
    """Sets torch's threads; returns how many its float32 products should run on where that differs, else None."""
    if threads:
        torch.set_num_threads(threads)
    elif "OMP_NUM_THREADS" in os.environ:
        return None  # the user's choice, which torch has taken already
    elif describe_blas()[0] == "openblas":
        # OpenBLAS runs float32's matmuls on its own threads (OPENBLAS_NUM_THREADS); torch's threads for the
        # elementwise ops would only compete with them for the same cores. bfloat16's run on torch's (oneDNN).
        if precision == torch.float32:
            torch.set_num_threads(1)
            return None
        torch.set_num_threads(cores_per_process())
        return 1
    else:
        torch.set_num_threads(cores_per_process())
    return None


def govern_threads(device, world, threads, precision):
    """A ThreadGovernor for one process on a CPU, unless the user chose its threads; else None."""
    pinned = threads or "OMP_NUM_THREADS" in os.environ or (
        "OPENBLAS_NUM_THREADS" in os.environ and os.environ.get("CHAR_COMPLETE_BLAS_THREADS") != "trainer")
    cores = cores_per_process()
    if device.type != "cpu" or world > 1 or pinned or cores == 1:
        return None
    on_openblas = describe_blas()[0] == "openblas"
    openblas = openblas_threads_setter() if on_openblas else None
    if on_openblas and openblas is None:
        return None  # the products would run on threads this process cannot reach
    if openblas is None:
        apply = torch.set_num_threads
    elif precision == torch.float32:
        apply = openblas  # configure_threads keeps torch on one thread; OpenBLAS runs the products
    else:
        def apply(count):
            torch.set_num_threads(count)  # the bfloat16 steps, through oneDNN
            openblas(count)  # scoring's float32 products, which wait on their threads alike
    return ThreadGovernor([cores, cores // 2, 1], apply)


def openblas_threads_setter():
    """OpenBLAS's openblas_set_num_threads in the copy torch loaded, or None."""
    import ctypes
    for path in blas_libraries():
        if "openblas" in path.lower():
            try:
                setter = ctypes.CDLL(path).openblas_set_num_threads
            except (OSError, AttributeError):
                continue
            setter.argtypes = [ctypes.c_int]
            return setter
    return None


def cores_per_process():
    """The machine's cores shared among its processes, not each process taking them all."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, (os.cpu_count() or 1) // local)


class ThreadGovernor:
    """The threads a CPU's steps run on, chosen by timing them while training goes on.

    All of the cores is fastest on an idle machine, but where another busy process shares them, threads that wait at
    each product for one another run many times slower than a single thread does: a thread that is descheduled holds
    the others up. So now and then, and at once when steps slow down, the governor times a step or two on the other
    counts and keeps whichever is fastest. The waits between such probes double while the count stays, and are long
    enough that the steps a probe spends on slower counts cost a small share of the time, so that a machine that stays
    as it is pays little for them.
    """

    FIRST_WAIT_SECONDS = 10.0
    LONGEST_WAIT_SECONDS = 320.0
    # The most of the training time that probing slower counts may take.
    PROBE_SHARE = 0.02
    # Steps this many times slower than the count's usual time mean the machine changed: probe now.
    SLOWDOWN = 1.5
    # Another count takes over only when this much faster, so that noise does not flip the count to and fro.
    MARGIN = 0.9
    RECENT = 5

    def __init__(self, counts, apply, now=time.perf_counter):
        self.counts = list(dict.fromkeys(counts))
        self.apply = apply
        self.now = now
        self.current = self.counts[0]
        self.recent = []
        self.usual = None
        # The latest step time seen on each count.
        self.seen = {}
        self.wait = self.FIRST_WAIT_SECONDS
        self.next_probe = now() + self.wait
        # While probing: the counts left to try and the times of the steps on the first of them.
        self.probing = None
        self.probe_times = []
        self.note = None

    def threads_for_step(self):
        """The count the next step runs on (set already)."""
        return self.probing[0] if self.probing else self.current

    def took(self, seconds):
        """The last step's time, on threads_for_step()'s count."""
        if self.probing:
            self.probe_times.append(seconds)
            return self.probed_one()
        self.recent = (self.recent + [seconds])[-self.RECENT:]
        if len(self.counts) == 1 or len(self.recent) < 3:
            return
        slowed = self.usual is not None and median(self.recent[-3:]) > self.SLOWDOWN * self.usual
        if slowed or self.now() >= self.next_probe:
            self.seen[self.current] = median(self.recent)
            self.probing = [count for count in self.counts if count != self.current]
            self.probe_times = []
            self.apply(self.probing[0])

    def probed_one(self):
        times, count = self.probe_times, self.probing[0]
        # A second step, since the first on a new count may set things up; unless the first was far slower already.
        if len(times) < 2 and times[0] < 2 * self.seen[self.current]:
            return
        self.seen[count] = min(times)
        self.probing.pop(0)
        self.probe_times = []
        if self.probing:
            self.apply(self.probing[0])
            return
        self.probing = None
        before = self.current
        fastest = min(self.counts, key=lambda c: self.seen[c])
        if fastest != before and self.seen[fastest] < self.MARGIN * self.seen[before]:
            self.note = self.describe_change(fastest, self.seen[fastest], before, self.seen[before])
            self.current, self.recent, self.usual = fastest, [], self.seen[fastest]
            self.wait = self.FIRST_WAIT_SECONDS
        else:
            self.usual = self.seen[before]
            self.wait = min(2 * self.wait, self.LONGEST_WAIT_SECONDS)
        self.apply(self.current)
        self.wait = max(self.wait, self.probe_cost() / self.PROBE_SHARE)
        self.next_probe = self.now() + self.wait

    def probe_cost(self):
        """The time the next probe would lose against steps on the current count, were the others as last seen."""
        here = self.seen[self.current]
        return sum((1 if self.seen[c] > 2 * here else 2) * max(0.0, self.seen[c] - here)
                   for c in self.counts if c != self.current and c in self.seen)

    def settle(self, seconds_by_count):
        """Starts from the count whose step was fastest when timed before training."""
        count = min(seconds_by_count, key=seconds_by_count.get)
        full = self.counts[0]
        # Timed before any step was trained, so the count to compare with is still the one training would start on.
        self.note = None if count == full else self.describe_change(
            count, seconds_by_count[count], full, seconds_by_count[full])
        self.current, self.recent, self.usual, self.probing = count, [], None, None
        self.seen = dict(seconds_by_count)
        self.apply(count)
        self.wait = max(self.FIRST_WAIT_SECONDS, self.probe_cost() / self.PROBE_SHARE)
        self.next_probe = self.now() + self.wait

    @staticmethod
    def describe_change(count, seconds, before, seconds_before):
        return (f"Torch now trains on {count} thread{'s' if count > 1 else ''}, not {before}: a step took "
                f"{seconds:.2f} s on {count} and {seconds_before:.2f} s on {before}"
                + (", as another busy process shares the cores" if count < before else ""))

    def take_note(self):
        """What changed since the last call, for the trainer to print; else None."""
        note, self.note = self.note, None
        return note


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


# ---- bench: this engine against PyTorch's own loop ------------------------------------------
class PlainLoop:
    """PyTorch's own way, the peer the engine is measured against: nn.LSTM with its dropout,
    torch.optim.Adam and clip_grad_norm_, on one batch of streams."""

    def __init__(self, config, dropout, rows, ranks):
        self.ranks = ranks
        device = ranks.device
        self.embedding = torch.nn.Embedding(config["vocabSize"], config["embed"]).to(device)
        self.lstm = torch.nn.LSTM(config["embed"], config["hidden"], config["layers"], batch_first=True,
                                  dropout=dropout).to(device)
        self.output = torch.nn.Linear(config["hidden"], config["vocabSize"]).to(device)
        self.parameters = [*self.embedding.parameters(), *self.lstm.parameters(), *self.output.parameters()]
        self.optimizer = torch.optim.Adam(self.parameters, lr=1e-3)
        self.ids = rows.long().to(device)
        self.state = None

    def train_step(self, _k, lr):
        # Float32's, on the threads that suit float32 whatever the engine's own steps take.
        with self.ranks.float32_work():
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            hidden, state = self.lstm(self.embedding(self.ids[:, :-1]), self.state)
            self.state = tuple(s.detach() for s in state)
            logits = self.output(hidden)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.ids[:, 1:].reshape(-1))
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.parameters, 5.0)
            self.optimizer.step()
            return loss.detach()


def bench(args):
    ranks = Distributed(args.device, args.threads)
    config = {"vocabSize": args.vocab, "embed": args.embed, "hidden": args.hidden, "layers": args.layers}
    torch.manual_seed(1)
    rows = torch.randint(1, args.vocab, (args.batch, args.seq + 1), dtype=torch.int32)
    loops = {"engine": Trainer(ranks, config, args.seq, args.dropout, ADAM, rows, 0, weight_drop=args.weight_drop),
             "plain": PlainLoop(config, args.dropout, rows, ranks)}
    times = {name: [] for name in loops}
    # Interleaved, so that a machine that is busier for a while slows both alike.
    for round_ in range(args.steps + 2):
        for name, loop in loops.items():
            seconds = timed_step(loop)
            if round_ >= 2:
                times[name].append(seconds)
    medians = {name: median(t) for name, t in times.items()}
    blas, warning = describe_blas()
    print(json.dumps({
        "torch": torch.__version__, "device": ranks.describe(), "blas": blas, "blas_warning": warning,
        "threads": torch.get_num_threads(), "precision": ranks.precision_name,
        "model": f"{args.layers}x{args.hidden}", "batch": args.batch,
        "seq": args.seq, "engine_chars_per_s": round(args.batch * args.seq / medians["engine"]),
        "plain_chars_per_s": round(args.batch * args.seq / medians["plain"]),
    }))


# ---- launch: the processes of one machine ----------------------------------------------------
def launch(args):
    """Starts this machine's ranks, as torchrun would, with static ranks: node 0 holds rank 0.

    Rank 0 shares this process's stdin and stdout, so it is the one the trainer talks to. When a
    rank fails the others are ended, and this process exits with its code.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.nnodes > 1:
        if not args.master or ":" not in args.master:
            raise EngineError("several machines need --master HOST:PORT, the address of node 0")
        host, port = args.master.rsplit(":", 1)
    else:
        host, port = "127.0.0.1", str(free_port())
    world = args.nnodes * args.nproc
    serve_args = ["--device", args.device, "--threads", str(args.threads), "--seed", str(args.seed)]
    children = []
    for local in range(args.nproc):
        rank = args.node_rank * args.nproc + local
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local),
                   LOCAL_WORLD_SIZE=str(args.nproc), MASTER_ADDR=host, MASTER_PORT=port)
        talks = rank == 0
        children.append(subprocess.Popen(
            [sys.executable, "-u", os.path.abspath(__file__), "serve", *serve_args], env=env,
            stdin=None if talks else subprocess.DEVNULL, stdout=None if talks else sys.stderr))
    while True:
        time.sleep(0.1)
        codes = [child.poll() for child in children]
        failed = [code for code in codes if code not in (None, 0)]
        if failed or all(code == 0 for code in codes):
            break
        if args.node_rank == 0 and codes[0] == 0:
            # Rank 0 has passed on "exit" to every rank: the others follow within moments.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(child.poll() is None for child in children):
                time.sleep(0.1)
            break
    for child in children:
        if child.poll() is None:
            child.kill()
    sys.exit(failed[0] if failed else 0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "bench", "launch"):
        sub = commands.add_parser(name)
        sub.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
        sub.add_argument("--threads", type=int, default=0, help="torch's threads (default: 1 on OpenBLAS)")
        sub.add_argument("--seed", type=int, default=1)
    bench_args = commands.choices["bench"]
    bench_args.add_argument("--layers", type=int, default=2)
    bench_args.add_argument("--hidden", type=int, default=256)
    bench_args.add_argument("--embed", type=int, default=64)
    bench_args.add_argument("--vocab", type=int, default=65)
    bench_args.add_argument("--batch", type=int, default=64)
    bench_args.add_argument("--seq", type=int, default=64)
    bench_args.add_argument("--dropout", type=float, default=0.1)
    bench_args.add_argument("--weight-drop", type=float, default=0.0)
    bench_args.add_argument("--steps", type=int, default=10)
    launch_args = commands.choices["launch"]
    launch_args.add_argument("--nproc", type=int, default=1, help="processes on this machine (one per GPU)")
    launch_args.add_argument("--nnodes", type=int, default=1, help="machines taking part")
    launch_args.add_argument("--node-rank", type=int, default=0, help="this machine's place; 0 runs the trainer")
    launch_args.add_argument("--master", help="HOST:PORT of node 0, for several machines")
    args = parser.parse_args()
    try:
        {"serve": serve, "bench": bench, "launch": launch}[args.command](args)
    except EngineError as error:
        report_error(str(error), 2)
    except Exception as error:  # noqa: BLE001 - the trainer gets one line; the traceback goes to stderr
        out_of_memory = "out of memory" in str(error).lower()
        import traceback
        traceback.print_exc()
        report_error(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", 1,
                     out_of_memory=out_of_memory)


def report_error(message, code, **fields):
    if int(os.environ.get("RANK", "0")) == 0:
        try:
            emit("error", message=message, **fields)
        except BrokenPipeError:
            pass
    sys.stderr.write(f"torch engine: {message}\n")
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
