"""A PyTorch reference trainer with the same data pipeline as `npm run train`, for recipe A/B tests.

Reads the corpus as training/corpus.ts does (sorted walk, hidden names and node_modules/dist skipped,
BOM and CR stripped, files joined with a blank line), splits it the same way (one file: its last
10%; several: whole files held out in FNV-1a order of their paths), builds the same vocabulary
(U+FFFD at id 0, then the 511 most frequent code points in code-point order), cuts the same
side-by-side streams as training/batches.ts (state carried between batches, reset at each epoch)
and scores validation the same way (32 streams, mean of per-batch means). It prints one JSON line
per evaluation: validation nats/char at the given characters seen.

The "plain" recipe is the default: Adam 2e-3, no dropout, clip 5, constant learning rate,
PyTorch's default initialisation. Flags switch on the pieces of our trainer's recipe one by one.

Not part of the product. On Debian (python3-torch with libopenblas0-pthread), one torch thread:

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/peer-pytorch-train.py /work/notes-md \
        --chars 1000000 --eval-at 250000,500000,1000000
"""
import argparse
import json
import math
import os
import sys
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("paths", nargs="+")
parser.add_argument("--layers", type=int, default=2)
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--embed", type=int, default=64)
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--seq", type=int, default=64)
parser.add_argument("--lr", type=float, default=2e-3)
parser.add_argument("--dropout", type=float, default=0.0, help="on every layer's output, as our trainer applies it")
parser.add_argument("--clip", type=float, default=5.0)
parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
parser.add_argument("--lr-floor", type=float, default=0.05, help="cosine ends at this fraction of lr")
parser.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
parser.add_argument("--init", choices=["torch", "ours"], default="torch",
                    help="ours: forget-gate bias 1, other biases 0, uniform(1/sqrt(fan_in)) weights, uniform(-1,1) embedding")
budget = parser.add_mutually_exclusive_group(required=True)
budget.add_argument("--chars", type=int, help="training characters to see")
budget.add_argument("--minutes", type=float, help="train this long, then score validation once")
parser.add_argument("--eval-at", default="", help="comma-separated characters-seen at which to score validation")
parser.add_argument("--max-vocab", type=int, default=512)
parser.add_argument("--validation-fraction", type=float, default=0.1)
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

# ---- corpus, as training/corpus.ts -------------------------------------------------------------
MAX_FILE_BYTES = 5 * 1024 * 1024
SKIPPED_DIRS = {"node_modules", "dist"}


def js_sort_key(name):
    # JavaScript compares strings by UTF-16 code units.
    return name.encode("utf-16-be")


def read_text(path, size):
    if size > MAX_FILE_BYTES:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) > MAX_FILE_BYTES or b"\0" in data[:8192]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text or None


def load_corpus(paths):
    docs, seen = [], set()

    def consider(path, size):
        key = os.path.abspath(path)
        if key in seen:
            return
        seen.add(key)
        text = read_text(path, size)
        if text is not None:
            docs.append((path, text))

    def walk(d):
        try:
            entries = sorted(os.scandir(d), key=lambda e: js_sort_key(e.name))
        except OSError:
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            full = os.path.join(d, e.name)
            if e.is_symlink():
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                if os.path.isfile(full):
                    consider(full, st.st_size)
            elif e.is_dir():
                if e.name not in SKIPPED_DIRS:
                    walk(full)
            elif e.is_file():
                consider(full, os.lstat(full).st_size)

    for given in paths:
        given = os.path.abspath(given)  # scripts/train.ts resolves every PATH
        if os.path.isdir(given):
            walk(given)
        elif os.path.isfile(given):
            consider(given, os.stat(given).st_size)
        else:
            sys.exit(f"no such file or directory: {given}")
    return docs


def fnv1a(s):
    h = 0x811C9DC5
    units = s.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h ^= units[i] | (units[i + 1] << 8)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def tail_split(text, fraction):
    n = len(text)
    cut = math.floor(n * (1 - fraction))
    if n >= 2:
        cut = min(max(cut, 1), n - 1)
    return text[:cut], text[cut:]


def split_corpus(docs, fraction):
    if len(docs) == 1:
        head, tail = tail_split(docs[0][1], fraction)
        return head, tail, f"last {fraction:.0%} of {docs[0][0]}"
    lengths = [len(t) for _, t in docs]
    total = sum(lengths)
    order = sorted(range(len(docs)), key=lambda i: (fnv1a(docs[i][0]), js_sort_key(docs[i][0]), i))
    target = fraction * total
    held_out, held = set(), 0
    for i in order:
        if held >= target or len(held_out) >= len(docs) - 1:
            break
        if held + lengths[i] > 0.5 * total:
            continue
        held_out.add(i)
        held += lengths[i]
    if total > 0 and held >= target:
        train = "\n\n".join(t for i, (_, t) in enumerate(docs) if i not in held_out)
        val = "\n\n".join(t for i, (_, t) in enumerate(docs) if i in held_out)
        return train, val, f"{len(held_out)} of {len(docs)} files held out ({held / total:.3g} of {total} chars)"
    heads, tails = [], []
    for _, t in docs:
        h, tl = tail_split(t, fraction)
        if h:
            heads.append(h)
        if tl:
            tails.append(tl)
    return "\n\n".join(heads), "\n\n".join(tails), f"last {fraction:.0%} of each of {len(docs)} files"


UNKNOWN = "\ufffd"


def build_vocab(text, max_size):
    counts = {}
    for c in text:
        if c != UNKNOWN:
            counts[c] = counts.get(c, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], ord(kv[0])))
    kept = sorted((c for c, _ in ranked[: max_size - 1]), key=ord)
    return [UNKNOWN] + kept


docs = load_corpus(args.paths)
train_text, val_text, how = split_corpus(docs, args.validation_fraction)
chars = build_vocab(train_text + val_text, args.max_vocab)
index = {c: i for i, c in enumerate(chars)}
V = len(chars)
train_ids = torch.tensor([index.get(c, 0) for c in train_text], dtype=torch.long)
val_ids = torch.tensor([index.get(c, 0) for c in val_text], dtype=torch.long)


# ---- batches, as training/batches.ts -----------------------------------------------------------
class StreamBatcher:
    def __init__(self, ids, batch, seq):
        self.batches_per_epoch = (len(ids) - 1) // (batch * seq)
        assert self.batches_per_epoch >= 1, "text too short"
        stream = self.batches_per_epoch * seq
        # [batch, stream + 1]: row b is ids[b*stream : (b+1)*stream + 1]
        self.rows = torch.stack([ids[b * stream: (b + 1) * stream + 1] for b in range(batch)])
        self.seq = seq

    def batch(self, k):
        s = k * self.seq
        return self.rows[:, s: s + self.seq], self.rows[:, s + 1: s + self.seq + 1]


batch = min(args.batch, (len(train_ids) - 1) // args.seq)
batcher = StreamBatcher(train_ids, batch, args.seq)
val_batch = min(32, (len(val_ids) - 1) // args.seq)
val_batcher = StreamBatcher(val_ids, val_batch, args.seq)


# ---- model ----------------------------------------------------------------------------------
class CharLstm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(V, args.embed)
        # One module per layer so dropout can follow every layer, the top one included, as
        # model/network.ts applies it (nn.LSTM's own dropout skips the top layer).
        self.lstm = torch.nn.ModuleList(
            torch.nn.LSTM(args.embed if l == 0 else args.hidden, args.hidden, batch_first=True) for l in range(args.layers))
        self.output = torch.nn.Linear(args.hidden, V)

    def forward(self, ids, state, dropout=0.0):
        x = self.embedding(ids)
        hs, cs = [], []
        for l, layer in enumerate(self.lstm):
            x, (h, c) = layer(x, (state[0][l:l + 1], state[1][l:l + 1]))
            hs.append(h)
            cs.append(c)
            if dropout > 0:
                x = torch.nn.functional.dropout(x, dropout, self.training)
        return self.output(x), (torch.cat(hs), torch.cat(cs))


model = CharLstm()
if args.init == "ours":
    with torch.no_grad():
        H = args.hidden
        torch.nn.init.uniform_(model.embedding.weight, -1, 1)
        for l in range(args.layers):
            fan_in = args.embed if l == 0 else H
            torch.nn.init.uniform_(model.lstm[l].weight_ih_l0, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
            torch.nn.init.uniform_(model.lstm[l].weight_hh_l0, -1 / math.sqrt(H), 1 / math.sqrt(H))
            b = model.lstm[l].bias_ih_l0
            b.zero_()
            b[H:2 * H] = 1  # PyTorch gate order is [input, forget, cell, output]
            model.lstm[l].bias_hh_l0.zero_()
        torch.nn.init.uniform_(model.output.weight, -1 / math.sqrt(H), 1 / math.sqrt(H))
        model.output.bias.zero_()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)


def zero_state(b):
    z = torch.zeros(args.layers, b, args.hidden)
    return (z, z.clone())


@torch.no_grad()
def validation_nats():
    model.eval()
    state = zero_state(val_batch)
    total = 0.0
    for k in range(val_batcher.batches_per_epoch):
        x, y = val_batcher.batch(k)
        logits, state = model(x, state)
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).item()
    model.train()
    return total / val_batcher.batches_per_epoch


def learning_rate(step, progress):
    warm = min(1.0, (step + 1) / args.warmup) if args.warmup > 0 else 1.0
    if args.schedule == "constant":
        return args.lr * warm
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return args.lr * warm * (args.lr_floor + (1 - args.lr_floor) * cos)


chars_per_step = batch * args.seq
# A time budget runs until the clock says stop; its schedule's progress is then the time spent.
steps = max(1, math.ceil(args.chars / chars_per_step)) if args.chars else 10**12
eval_at = sorted({int(float(x)) for x in args.eval_at.split(",") if x} | ({steps * chars_per_step} if args.chars else set()))
def blas_library():
    # Without OpenBLAS behind libblas.so.3, torch silently runs the reference BLAS, 20x slower.
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return sorted(libs)


print(json.dumps({
    "torch": torch.__version__, "blas": blas_library(), "threads": torch.get_num_threads(), "docs": len(docs), "split": how,
    "train_chars": len(train_ids), "validation_chars": len(val_ids), "vocab": V, "batch": batch,
    "batches_per_epoch": batcher.batches_per_epoch, "steps": steps, "args": vars(args),
}), flush=True)

state = zero_state(batch)
started = time.perf_counter()
train_seconds = 0.0
next_eval = 0
for step in range(steps):
    k = step % batcher.batches_per_epoch
    if k == 0 and step > 0:
        state = zero_state(batch)
    x, y = batcher.batch(k)
    t0 = time.perf_counter()
    progress = (time.perf_counter() - started) / (60 * args.minutes) if args.minutes else step / steps
    if progress >= 1:
        break
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, progress)
    logits, state = model(x, state, args.dropout)
    state = tuple(s.detach() for s in state)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    if args.clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
    optimizer.step()
    train_seconds += time.perf_counter() - t0
    seen = (step + 1) * chars_per_step
    while next_eval < len(eval_at) and seen >= eval_at[next_eval]:
        print(json.dumps({
            "chars": seen, "val_nats": round(validation_nats(), 4), "train_loss": round(loss.item(), 4),
            "chars_per_s": round(seen / train_seconds), "seconds": round(time.perf_counter() - started, 1),
        }), flush=True)
        next_eval += 1
if args.minutes:
    seen = step * chars_per_step
    print(json.dumps({
        "chars": seen, "val_nats": round(validation_nats(), 4), "train_loss": round(loss.item(), 4),
        "chars_per_s": round(seen / train_seconds), "seconds": round(time.perf_counter() - started, 1),
    }), flush=True)
