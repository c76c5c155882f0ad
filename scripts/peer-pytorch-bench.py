"""The peer a GPU user would compare with: PyTorch's cuDNN LSTM, trained like our model.

Same shape as `npm run bench`: embedding 64 -> stacked LSTM -> linear over a 65-symbol vocabulary,
Adam with gradient clipping, cross-entropy at every position, state carried between batches.
Prints one JSON line. Not part of the product; run it where torch is installed:

    python3 scripts/peer-pytorch-bench.py --layers 3 --hidden 512 --batch 256 --seq 64

On a CPU, compare with `npm run bench` (2x256, batch 64, seq 64) using Debian's python3-torch with
libopenblas0-pthread (reference BLAS is many times slower), one torch thread and OpenBLAS on the cores:

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 scripts/peer-pytorch-bench.py --layers 2 --hidden 256 --batch 64
"""
import argparse
import json
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--layers", type=int, default=3)
parser.add_argument("--hidden", type=int, default=512)
parser.add_argument("--batch", type=int, default=256)
parser.add_argument("--seq", type=int, default=64)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--threads", type=int, default=1, help="torch's own threads; OpenBLAS has OPENBLAS_NUM_THREADS")
args = parser.parse_args()
torch.set_num_threads(args.threads)

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
vocab = 65


class CharLstm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, 64)
        self.lstm = torch.nn.LSTM(64, args.hidden, args.layers, batch_first=True, dropout=0.1)
        self.output = torch.nn.Linear(args.hidden, vocab)

    def forward(self, ids, state):
        hidden, state = self.lstm(self.embedding(ids), state)
        return self.output(hidden), state


model = CharLstm().to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
ids = torch.randint(1, vocab, (args.batch, args.seq + 1), device=device)
state = None
times = []
for step in range(args.steps + 3):
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    logits, state = model(ids[:, :-1], state)
    state = tuple(s.detach() for s in state)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    loss.item()
    if step >= 3:
        times.append(time.perf_counter() - started)
times.sort()
median = times[len(times) // 2]
print(json.dumps({
    "peer": f"pytorch {torch.__version__} {'cuDNN ' + str(torch.backends.cudnn.version()) if device.type == 'cuda' else 'cpu'}",
    "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
    "model": f"{args.layers}x{args.hidden}", "batch": args.batch, "seq": args.seq,
    "train_chars_per_s": round(args.batch * args.seq / median),
}))
