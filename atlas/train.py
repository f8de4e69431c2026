"""Train the zoo on the world: ``atlas train NAME`` reproduces a committed model.

The recipe is deliberately plain: SGD with Nesterov momentum and weight decay (which
keeps first-layer filters smooth), a short warm-up then cosine decay, random flips
and shifts. Training scenes are generated once, in parallel, and reused for every
epoch; held-out accuracy is measured on the world's separate test split. Everything
is seeded, and the log (one JSON object per line) is written beside the weights.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from atlas.data import world
from atlas.models import zoo
from atlas.files import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    arch: str  # a key of zoo.ARCHITECTURES
    task: str = "classes"  # a key of zoo.TASK_OUTPUTS: the scene's class, or the quarter turn applied to it
    seed: int = 0  # seeds the initialisation, the data order and the training scenes
    train_images: int = 40_000  # scenes generated once and reused each epoch
    test_images: int = 2_000  # held-out scenes (the world's test split)
    epochs: int = 4
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4  # smooth, Gabor-like first-layer filters need it
    warmup_steps: int = 200
    workers: int = 2  # processes generating scenes


def generate(seed: int, split: str, count: int, workers: int = 1,
             cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` scenes of a split as uint8 images (N, 64, 64, 3) and labels (N,).

    With ``cache``, the scenes are kept in ``cache/<split>-<seed>-<count>-v<version>.npz`` (they
    are a pure function of those three), so several models share one generation."""
    path = cache / f"{split}-{seed}-{count}-v{world.VERSION}.npz" if cache is not None else None
    if path is not None and path.exists():
        with np.load(path) as stored:
            return stored["images"], stored["labels"]
    chunk = 500
    jobs = [(seed, start, min(chunk, count - start), split) for start in range(0, count, chunk)]
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.starmap(world.make_batch, jobs)
    else:
        parts = [world.make_batch(*job) for job in jobs]
    images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        tmp.replace(path)
    return images, labels


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W), as the zoo models expect."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(zoo.WORLD_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(zoo.WORLD_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 4 pixels (reflect-padded)."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dy, dx = (int(v) for v in torch.randint(0, 9, (2,), generator=generator))
    return padded[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


def rotate_quarters(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) turned counter-clockwise by its ``turns`` quarter turns."""
    out = x.clone()
    for k in range(1, 4):
        chosen = turns == k
        if chosen.any():
            out[chosen] = torch.rot90(x[chosen], k, dims=(2, 3))
    return out


def task_batch(task: str, x: torch.Tensor, labels: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of a training task. ``rotation`` turns each scene by a random
    quarter turn (or, without a generator, by its position in the batch modulo 4, so
    evaluation is deterministic) and asks for the turn."""
    if task == "classes":
        return x, labels
    if task == "rotation":
        turns = (torch.randint(0, 4, (len(x),), generator=generator) if generator is not None
                 else torch.arange(len(x)) % 4)
        return rotate_quarters(x, turns), turns
    raise ValueError(f"unknown training task {task!r}; tasks: {', '.join(zoo.TASK_OUTPUTS)}")


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, task: str = "classes",
             batch: int = 256) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch):
        x, y = task_batch(task, to_input(images[start:start + batch]), torch.as_tensor(labels[start:start + batch]))
        correct += int((model(x).argmax(1) == y).sum())
    return correct / len(images)


def train(cfg: TrainConfig, report: Callable[[dict], None] = lambda record: None,
          cache: Path | None = None) -> tuple[torch.nn.Module, dict]:
    """Train one zoo model; ``report`` receives each log record as it is made."""
    torch.manual_seed(cfg.seed)
    model = zoo.ARCHITECTURES[cfg.arch](num_classes=zoo.TASK_OUTPUTS[cfg.task])
    start = time.perf_counter()
    train_x, train_y = generate(cfg.seed, "train", cfg.train_images, cfg.workers, cache)
    test_x, test_y = generate(0, "test", cfg.test_images, cfg.workers, cache)  # one test set for all
    report({"event": "data", "train": len(train_x), "test": len(test_x), "seconds": round(time.perf_counter() - start, 1)})

    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim == 1 else decay).append(p)  # no decay on biases and norms
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    steps_per_epoch = len(train_x) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / cfg.warmup_steps)
                                                 * 0.5 * (1 + math.cos(math.pi * s / total)))
    generator = torch.Generator().manual_seed(cfg.seed)
    images, labels = torch.from_numpy(train_x), torch.from_numpy(train_y)
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        running_loss, running_correct, seen = 0.0, 0, 0
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, y = task_batch(cfg.task, augment(to_input(images[idx]), generator), labels[idx], generator)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            running_loss += loss.item() * len(y)
            running_correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if step % 100 == 0:
                report({"event": "step", "step": step, "loss": round(running_loss / seen, 4),
                        "train_accuracy": round(running_correct / seen, 4), "lr": round(schedule.get_last_lr()[0], 5)})
                running_loss, running_correct, seen = 0.0, 0, 0
        accuracy = evaluate(model, test_x, test_y, cfg.task)
        report({"event": "epoch", "epoch": epoch + 1, "step": step, "test_accuracy": round(accuracy, 4),
                "seconds": round(time.perf_counter() - start, 1)})
    model.eval()
    summary = {"arch": cfg.arch, "task": cfg.task, "config": asdict(cfg), "test_accuracy": accuracy,
               "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__}
    return model, summary


def train_and_save(cfg: TrainConfig, out: Path, name: str | None = None, cache: Path | None = None) -> dict:
    """Train and write ``<name>.pt`` (the state dict) and ``<name>.log.jsonl`` into ``out``."""
    name = name or cfg.arch
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def report(record: dict) -> None:
        log.info("%s: %s", name, record)
        lines.append(json.dumps(record))
        write_atomic(out / f"{name}.log.jsonl", "\n".join(lines) + "\n")

    model, summary = train(cfg, report, cache)
    report({"event": "done", **summary})
    tmp = out / f".{name}.pt.tmp"
    torch.save(model.state_dict(), tmp)
    tmp.replace(out / f"{name}.pt")
    return summary
