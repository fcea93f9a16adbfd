"""Framework overhead of ``recommender.core``: ``Model.fit`` against a plain torch loop.

The same MLP and CNN (same layer sizes, initial weights copied, same optimizer, batch size,
data and number of epochs) are trained once through ``Model.fit(verbose=0)`` and once through
a hand-written torch loop that does the same work per batch (index a shuffled batch, forward,
cross-entropy on logits, backward, Adam step, accumulate loss and accuracy on the device).
Runs alternate; the ratio compares each side's best epoch time (``timeit``'s advice: the
minimum is the least disturbed by other load), with the median ratio shown beside it.
Target ratio: <= 1.10.

    python benchmarks/core_overhead.py [--epochs 3] [--repeats 3] [--json out.json]

CPU by default; ``--device cuda`` (or ``auto``) times the GPU when there is one.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender.core import layers, models, optimizers  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_data(kind: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (n, 784) if kind == "mlp" else (n, 28, 28, 1)
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, size=n)
    return x, y


def build_core(kind: str, device: str) -> models.Sequential:
    if kind == "mlp":
        stack = [layers.Dense(256, activation="relu", input_shape=(784,)),
                 layers.Dense(10, activation="softmax")]
    else:
        stack = [layers.Conv2D(16, 3, activation="relu", input_shape=(28, 28, 1)),
                 layers.MaxPooling2D(2),
                 layers.Conv2D(32, 3, activation="relu"),
                 layers.MaxPooling2D(2),
                 layers.Flatten(),
                 layers.Dense(10, activation="softmax")]
    return models.Sequential(stack, device=device)


class PlainCNN(torch.nn.Module):
    """The CNN in idiomatic torch (NCHW), taking the same channels-last input as the core."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 3)
        self.conv2 = torch.nn.Conv2d(16, 32, 3)
        self.dense = torch.nn.Linear(32 * 5 * 5, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)  # (batch, h, w, c) -> (batch, c, h, w)
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        # Flatten in channels-last order so the copied Dense kernel lines up.
        return self.dense(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))


def build_plain(kind: str, core: models.Sequential) -> torch.nn.Module:
    """The same network in plain torch, starting from the core model's weights."""
    weights = [torch.as_tensor(w) for w in core.get_weights()]
    if kind == "mlp":
        net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                  torch.nn.Linear(256, 10))
        linears = [net[0], net[2]]
        with torch.no_grad():
            for linear, (kernel, bias) in zip(linears, zip(weights[::2], weights[1::2],
                                                            strict=True), strict=True):
                linear.weight.copy_(kernel.t())
                linear.bias.copy_(bias)
        return net
    net = PlainCNN()
    with torch.no_grad():
        # Keras conv kernel (kh, kw, in, out) -> torch (out, in, kh, kw).
        net.conv1.weight.copy_(weights[0].permute(3, 2, 0, 1))
        net.conv1.bias.copy_(weights[1])
        net.conv2.weight.copy_(weights[2].permute(3, 2, 0, 1))
        net.conv2.bias.copy_(weights[3])
        net.dense.weight.copy_(weights[4].t())
        net.dense.bias.copy_(weights[5])
    return net


def plain_epochs(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
                 batch_size: int) -> list[float]:
    """A lean hand-written loop; returns seconds per epoch."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    times = []
    n = x.shape[0]
    for _ in range(epochs):
        _sync(x.device)
        start = time.perf_counter()
        order = torch.randperm(n, device=x.device)
        loss_sum = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device)
        for begin in range(0, n, batch_size):
            index = order[begin:begin + batch_size]
            xb, yb = x[index], y[index]
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach() * xb.shape[0]
            correct += (logits.detach().argmax(-1) == yb).float().sum()
        _ = (loss_sum / n).item(), (correct / n).item()
        _sync(x.device)
        times.append(time.perf_counter() - start)
    return times


class _EpochTimer:
    """Records seconds per epoch of Model.fit through the callback hooks."""

    def __init__(self) -> None:
        from recommender.core.callbacks import Callback

        class Timer(Callback):
            def __init__(self, device: torch.device) -> None:
                super().__init__()
                self.device = device
                self.times: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                _sync(self.device)
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                _sync(self.device)
                self.times.append(time.perf_counter() - self._start)

        self.cls = Timer


def core_epochs(model: models.Sequential, x: np.ndarray, y: np.ndarray, epochs: int,
                batch_size: int) -> list[float]:
    timer = _EpochTimer().cls(model.device)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer])
    return timer.times


def run_case(kind: str, n: int, epochs: int, repeats: int, batch_size: int,
             device: str) -> dict[str, float]:
    x_np, y_np = make_data(kind, n)
    torch.manual_seed(0)
    core = build_core(kind, device)
    core.compile(optimizer=optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    net = build_plain(kind, core).to(core.device)
    x = torch.as_tensor(x_np, device=core.device)
    y = torch.as_tensor(y_np, device=core.device)
    # Warm-up: one epoch each (allocator, oneDNN primitive caches).
    core_epochs(core, x_np, y_np, 1, batch_size)
    plain_epochs(net, x, y, 1, batch_size)
    core_times: list[float] = []
    plain_times: list[float] = []
    for repeat in range(repeats):
        # Alternate which side goes first, so drift (thermal, other load) hits both alike.
        if repeat % 2 == 0:
            core_times += core_epochs(core, x_np, y_np, epochs, batch_size)
            plain_times += plain_epochs(net, x, y, epochs, batch_size)
        else:
            plain_times += plain_epochs(net, x, y, epochs, batch_size)
            core_times += core_epochs(core, x_np, y_np, epochs, batch_size)
    core_s, plain_s = min(core_times), min(plain_times)
    median_ratio = statistics.median(core_times) / statistics.median(plain_times)
    return {"model": kind, "samples": n, "batch_size": batch_size,
            "epochs": epochs * repeats, "core_s_per_epoch": core_s,
            "torch_s_per_epoch": plain_s, "ratio": core_s / plain_s,
            "median_ratio": median_ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--mlp-samples", type=int, default=8192)
    parser.add_argument("--cnn-samples", type=int, default=4096)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("No CUDA device visible: nothing to benchmark on the GPU.")
        return 0

    rows = [run_case("mlp", args.mlp_samples, args.epochs, args.repeats, args.batch_size,
                     args.device),
            run_case("cnn", args.cnn_samples, args.epochs, args.repeats, args.batch_size,
                     args.device)]
    machine = (f"{platform.processor() or platform.machine()}, "
               f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
               f"device {models.Sequential(device=args.device).device}")
    print(f"core overhead: Model.fit vs plain torch loop ({machine})")
    header = f"{'model':<6}{'samples':>9}{'batch':>7}{'epochs':>8}" \
             f"{'fit s/epoch':>14}{'torch s/epoch':>15}{'ratio':>8}{'median ratio':>14}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['model']:<6}{row['samples']:>9}{row['batch_size']:>7}{row['epochs']:>8}"
              f"{row['core_s_per_epoch']:>14.4f}{row['torch_s_per_epoch']:>15.4f}"
              f"{row['ratio']:>8.3f}{row['median_ratio']:>14.3f}")
    print("s/epoch: best epoch of each side; target: ratio <= 1.10")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
