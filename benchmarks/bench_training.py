"""Training-step benchmark: one ``StudentTask`` step of the full recipe through Lightning vs the bare
minimum of the same work in plain PyTorch, side by side in one process (issue 15.1).

The Lightning side is a real ``Trainer.fit`` of :class:`da_toolkit.tasks.StudentTask` with the
recipe's components (``recipes/student.yaml``): labeled + pseudo-labeled batches 1:2 from a
:class:`da_toolkit.data.StudentDataModule` (random crop, flip, collate; the samples are rendered
synthetic scenes held in memory, so file decoding is *not* included - see
``bench_pseudo_label.py`` for decode throughput), strong photometric perturbation, CutMix,
the CutMix-aware affine-invariant loss with 10 % trimming, feature alignment to the frozen
encoder, AdamW step; the task's own callbacks (``TrainingHealthCheck``) stay on.

The bare minimum (``bare``) does the unavoidable work on the same, already collated batch: the
two student forwards (labeled, unlabeled) + backward, the frozen-encoder forward, an AdamW step;
its loss is a plain L1 + feature MSE (no trimming, no CutMix, no perturbation, no data loading).

Between them, measured on the same batches, each *interleaved step by step* with the Lightning
steps (run between two steps, outside the timed spans, so every row sees the same machine load;
medians over ``--steps`` x ``--reps`` steps):

* ``data``: fetching one collated batch from the data module's train loader;
* ``perturb``: the strong photometric perturbation + CutMix of the unlabeled images;
* ``losses``: the task's loss terms (``labeled_loss``, ``unlabeled_loss``, ``feature_loss``)
  forward + backward on fixed predictions, minus the bare loss's;
* ``task``: ``compute_loss`` + backward + AdamW step without Lightning (same batch);
* ``lightning_share``: Lightning's share = Lightning step - data - task;
* ``lightning_fixed``: Lightning's own fixed cost per step: ``Trainer.fit`` of an empty
  LightningModule whose ``training_step`` is the bare step (pre-collated batches from a list)
  minus the bare steps interleaved with that fit (every fit runs the same interleaved parts;
  the other rows are timed in the main fit, ``lightning``);
* ``recipe_trainer``: the Lightning step with the recipe's trainer bookkeeping on (progress bar,
  a CSV logger every ``log_every_n_steps=50``, ``ModelCheckpoint(every_n_train_steps=5000)``,
  ``LearningRateMonitor(logging_interval="step")``), against the minimal trainer of ``lightning``
  (no logger, progress bar, checkpointing or model summary).

The first ``--warmup`` steps of every fit are not timed (default 11: past the 10 steps the
task's ``TrainingHealthCheck`` watches, so the figures are the steady state of a long run).

Overhead ratio = Lightning step / bare step - 1, in CPU seconds of this process (medians and
best steps; less sensitive to the machine's other load than wall seconds, also printed).
Settings: ``tiny`` (tiny preset, crop 56, 2+4 images)
and ``vits`` (Depth Anything V2-Small, crop ``--vits-crop`` 196 on CPU, 1+2 images).

Run: ``python benchmarks/bench_training.py --settings tiny vits [--warmup 11] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_timing import load_average, timed  # noqa: E402

#: benchmark settings: model preset, crop, labeled batch (the unlabeled one is 2x), steps
SETTINGS: dict[str, dict[str, Any]] = {
    "tiny": {"preset": "tiny", "crop": 56, "batch": 2, "sample_size": (70, 84)},
    "vits": {"preset": "depth-anything-v2-vits", "crop": 196, "batch": 1, "sample_size": (210, 252)},
}


class CachedSamples(Dataset):
    """Samples of a source rendered once and served from memory (copies of the numpy arrays)."""

    def __init__(self, source: Dataset, n: int) -> None:
        self.samples = [source[i] for i in range(n)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        return {k: (v.copy() if hasattr(v, "copy") else v) for k, v in s.items()}


def make_data(setting: dict[str, Any], n: int, seed: int = 0) -> Any:
    """A :class:`StudentDataModule` with labeled and pseudo-labeled in-memory synthetic samples
    (the synthetic depth stands in for pseudo-labels: the same tensors flow)."""
    from da_toolkit.data.sources.synthetic import SyntheticScenes
    from da_toolkit.data.student_datamodule import StudentDataModule

    labeled = CachedSamples(SyntheticScenes(length=n, size=setting["sample_size"], seed=seed), n)
    pseudo = CachedSamples(SyntheticScenes(length=2 * n, size=setting["sample_size"], seed=seed + 1), 2 * n)
    return StudentDataModule(labeled=[labeled], pseudo_labeled=[pseudo], crop_size=setting["crop"],
                             batch_size=setting["batch"], unlabeled_ratio=2, num_workers=0, seed=seed)


def make_task(setting: dict[str, Any]) -> Any:
    """The student of ``recipes/student.yaml`` (random weights) at the setting's model size."""
    from da_toolkit.losses import FeatureAlignmentLoss
    from da_toolkit.losses.affine_invariant import AffineInvariantLoss
    from da_toolkit.losses.cutmix import CutMixAffineInvariantLoss
    from da_toolkit.models.description import build_model
    from da_toolkit.perturb import CutMix, StrongPhotometric
    from da_toolkit.tasks import OptimConfig, StudentTask

    torch.manual_seed(0)
    return StudentTask(
        model=build_model(setting["preset"]),
        labeled_loss=AffineInvariantLoss(trim=0.0),
        unlabeled_loss=CutMixAffineInvariantLoss(trim=0.1),
        perturbation=StrongPhotometric(),
        cutmix=CutMix(p=0.5),
        feature_loss=FeatureAlignmentLoss(margin=0.85),
        optim=OptimConfig(optimizer="adamw", encoder_lr=5e-6, decoder_lr_mult=10.0, weight_decay=0.01,
                          schedule="linear"),
        log_images_every_n_steps=0,
    )


class StepTimer:
    """Lightning callback: wall and CPU seconds of every training step, from one
    ``on_train_batch_start`` to the next (so a step = the whole step + fetching the next batch).

    ``between(batch_idx)``, if given, runs at each ``on_train_batch_start`` *outside* the timed
    spans (after the previous step's end stamp, before this step's start stamp): plain-PyTorch
    measurements interleaved step by step with Lightning's, so both see the same machine load.
    """

    def __new__(cls, between: Callable[[int], None] | None = None) -> Any:
        import lightning.pytorch as pl

        class _Timer(pl.Callback):
            def __init__(self) -> None:
                self.starts: list[tuple[float, float]] = []
                self.ends: list[tuple[float, float]] = []

            def _end(self) -> None:
                if len(self.ends) < len(self.starts):
                    self.ends.append((time.perf_counter(), time.process_time()))

            def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
                self._end()
                if between is not None:
                    between(batch_idx)
                self.starts.append((time.perf_counter(), time.process_time()))

            def on_train_end(self, trainer: Any, pl_module: Any) -> None:
                self._end()

            @property
            def wall(self) -> list[float]:
                return [e[0] - s[0] for s, e in zip(self.starts, self.ends, strict=False)]

            @property
            def cpu(self) -> list[float]:
                return [e[1] - s[1] for s, e in zip(self.starts, self.ends, strict=False)]

        return _Timer()


def _trainer_kwargs(kind: str, workdir: str) -> dict[str, Any]:
    """Trainer arguments: ``minimal`` (no logger, progress bar, checkpointing, model summary) or
    ``recipe`` (the recipe's bookkeeping: progress bar, CSV logger, checkpoint and LR callbacks)."""
    if kind == "minimal":
        return {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                "enable_model_summary": False, "callbacks": []}
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    return {"logger": CSVLogger(workdir, name="csv"), "log_every_n_steps": 50, "enable_progress_bar": True,
            "enable_model_summary": True,
            "callbacks": [ModelCheckpoint(dirpath=workdir, every_n_train_steps=5000, save_last=True, save_top_k=-1),
                          LearningRateMonitor(logging_interval="step")]}


def lightning_steps(task: Any, data: Any, steps: int, warmup: int, workdir: str,
                    precision: str = "32", accelerator: str = "cpu", kind: str = "minimal",
                    between: Callable[[int], None] | None = None) -> tuple[list[float], list[float]]:
    """Per-step (wall, CPU) seconds of ``steps`` Lightning training steps after ``warmup`` ones
    (``kind``: the trainer's bookkeeping, see :func:`_trainer_kwargs`; the progress bar's output
    is discarded; ``between``: see :class:`StepTimer`)."""
    import contextlib
    import io

    import lightning.pytorch as pl

    timer = StepTimer(between)
    kw = _trainer_kwargs(kind, workdir)
    kw["callbacks"] = [*kw["callbacks"], timer]
    trainer = pl.Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=warmup + steps,
        limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=workdir, **kw,
    )
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        trainer.fit(task, datamodule=data) if not isinstance(data, list) else trainer.fit(task, _list_loader(data))
    return timer.wall[warmup:warmup + steps], timer.cpu[warmup:warmup + steps]


def _list_loader(batches: list[dict[str, Any]]) -> Any:
    """A DataLoader serving pre-collated ``batches`` as they are."""
    from torch.utils.data import DataLoader

    return DataLoader(batches, batch_size=None, shuffle=False)


class BareModule:
    """An empty LightningModule whose ``training_step`` is :func:`bare_step`'s loss on the task's
    student and frozen encoder (Lightning does backward and the AdamW step): Lightning's own
    fixed per-step cost = its fit step - the bare step."""

    def __new__(cls, task: Any) -> Any:
        import lightning.pytorch as pl

        class _Bare(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.student = task.model
                self.frozen = [task.frozen_encoder]  # a list: not a submodule (stays frozen, in eval)

            def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
                return bare_loss(self.student, self.frozen[0], batch)

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return torch.optim.AdamW([p for p in self.student.parameters() if p.requires_grad], lr=5e-6,
                                         weight_decay=0.01)

        return _Bare()


def fetch_batches(data: Any, n: int) -> tuple[list[dict[str, Any]], list[tuple[float, float]]]:
    """``n`` collated batches from the data module's train loader and the time of each fetch."""
    data.setup("fit")
    loader = data.train_dataloader()
    it = iter(loader)
    batches, times = [], []
    for _ in range(n):
        box: list[Any] = []
        times.append(timed(lambda box=box: box.append(next(it))))
        batches.append(_as_dict(box[0]))
    return batches, times


def _as_dict(batch: Any) -> dict[str, Any]:
    """A CombinedLoader batch ``({"labeled": ..., "unlabeled": ...}, idx, dl_idx)`` or a dict."""
    if isinstance(batch, tuple):
        batch = batch[0]
    return dict(batch)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a (nested) batch to ``device``."""
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, dict):
            out[k] = to_device(v, device)
        elif isinstance(v, torch.Tensor):
            out[k] = v.to(device)
        else:
            out[k] = v
    return out


def trainable(task: Any) -> list[torch.nn.Parameter]:
    return [p for p in task.model.parameters() if p.requires_grad]


def bare_loss(model: Any, frozen_encoder: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The bare minimum's loss: student forwards (labeled, unlabeled) + frozen-encoder forward,
    a plain L1 + feature MSE."""
    from da_toolkit.models.preprocess import normalize

    lab, unl = batch["labeled"], batch["unlabeled"]
    pred_l = model(normalize(lab["image"]))
    pred_u, enc = model(normalize(unl["image"]), return_features=True)
    with torch.no_grad():
        frozen = frozen_encoder(normalize(unl["image"]))
    loss = (pred_l - lab["depth"]).abs().mean() + (pred_u - unl["depth"]).abs().mean()
    return loss + (enc.features[-1] - frozen.features[-1]).pow(2).mean()


def bare_step(task: Any, batch: dict[str, Any], opt: torch.optim.Optimizer) -> None:
    """The bare minimum: :func:`bare_loss`, backward, AdamW step."""
    bare_loss(task.model, task.frozen_encoder, batch).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def task_step(task: Any, batch: dict[str, Any], opt: torch.optim.Optimizer) -> None:
    """The task's own work without Lightning: ``compute_loss`` + backward + AdamW step."""
    loss, _, _ = task.compute_loss(batch)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def perturb_step(task: Any, batch: dict[str, Any]) -> None:
    """Strong perturbation + CutMix of the unlabeled images (what the task does before its forward)."""
    x = task.perturbation(batch["unlabeled"]["image"])
    task.cutmix(x)


def loss_parts(task: Any, batch: dict[str, Any]) -> tuple[Callable[[], None], Callable[[], None]]:
    """(task losses, bare losses) forward + backward on fixed predictions/features of ``batch``."""
    from da_toolkit.models.preprocess import normalize

    with torch.no_grad():
        pred_l = task.model(normalize(batch["labeled"]["image"]))
        pred_u, enc = task.model(normalize(batch["unlabeled"]["image"]), return_features=True)
        frozen = task.frozen_encoder(normalize(batch["unlabeled"]["image"]))
    lab, unl = batch["labeled"], batch["unlabeled"]
    target_l, valid_l = task.labeled_targets(lab)
    target_u, valid_u = unl["depth"].float(), unl["valid"]
    b = target_u.shape[0]
    mask = torch.rand_like(target_u) < 0.5
    pairing = torch.roll(torch.arange(b, device=target_u.device), 1)
    feat = enc.features[-1]

    def ours() -> None:
        pl_ = pred_l.detach().requires_grad_()
        pu = pred_u.detach().requires_grad_()
        f = feat.detach().requires_grad_()
        valid_mix = torch.where(mask, valid_u, valid_u[pairing])
        total = (task.labeled_loss(pl_, target_l, valid_l)
                 + task.unlabeled_loss(pu, target_u, target_u[pairing], mask, valid_mix)
                 + task.feature_loss([f], [frozen.features[-1]])) / 3
        total.backward()

    def bare() -> None:
        pl_ = pred_l.detach().requires_grad_()
        pu = pred_u.detach().requires_grad_()
        f = feat.detach().requires_grad_()
        total = (pl_ - lab["depth"]).abs().mean() + (pu - unl["depth"]).abs().mean()
        total = total + (f - frozen.features[-1]).pow(2).mean()
        total.backward()

    return ours, bare


def med(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def run_setting(name: str, steps: int, reps: int, crop: int | None = None, precision: str = "32",
                accelerator: str = "cpu", warmup: int = 11) -> dict[str, Any]:
    """Measure one setting; returns the figures (seconds per step, medians) and the ratios."""
    setting = dict(SETTINGS[name])
    if crop is not None:
        setting["crop"] = crop
        setting["sample_size"] = (crop + 14, crop + 56)
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    task = make_task(setting)
    data = make_data(setting, setting["batch"] * (warmup + steps + 2))  # one epoch holds every fit
    keys = ("lightning", "recipe_trainer", "lightning_bare_module", "bare", "task", "data", "perturb",
            "losses_task", "losses_bare", "bare_in_recipe_trainer", "bare_in_lightning_bare_module")
    walls: dict[str, list[float]] = {k: [] for k in keys}
    cpus: dict[str, list[float]] = {k: [] for k in walls}
    opt_bare = torch.optim.AdamW(trainable(task), lr=5e-6, weight_decay=0.01)
    opt_task = torch.optim.AdamW(trainable(task), lr=5e-6, weight_decay=0.01)

    def record(key: str, fn: Callable[[], Any]) -> None:
        w, c = timed(fn, sync)
        walls[key].append(w)
        cpus[key].append(c)

    with tempfile.TemporaryDirectory(prefix="bench_training_") as workdir:
        for _ in range(reps):
            task.to(device).train()
            batches, _ = fetch_batches(data, warmup + steps + 1)
            batches = [to_device(b, device) for b in batches]
            loader: dict[str, Any] = {}  # a fresh iterator of the train loader per fit

            def between(batch_idx: int, fit: str, batches: list[dict[str, Any]] = batches,
                        loader: Any = loader) -> None:
                """The plain-PyTorch parts, run between two Lightning steps (timed from ``warmup`` on)."""
                if batch_idx < warmup - 1:
                    return  # one untimed call of every part just before the timed steps is warm-up enough
                b = batches[batch_idx % len(batches)]
                ours, plain = loss_parts(task, b)
                jobs: list[tuple[str, Callable[[], Any]]] = [
                    ("bare", lambda: bare_step(task, b, opt_bare)), ("task", lambda: task_step(task, b, opt_task)),
                    ("data", lambda: next(loader["it"])), ("perturb", lambda: perturb_step(task, b)),
                    ("losses_task", ours), ("losses_bare", plain)]
                training = task.training
                for key, fn in jobs:
                    if batch_idx < warmup or (fit != "lightning" and key != "bare"):
                        fn()  # warm-up (optimiser state, kernel caches), or the same work untimed
                    else:
                        record(key if fit == "lightning" else f"bare_in_{fit}", fn)
                task.train(training)

            for key, module, source, kind in (("lightning", task, data, "minimal"),
                                              ("lightning_bare_module", BareModule(task), batches, "minimal"),
                                              ("recipe_trainer", task, data, "recipe")):
                loader["it"] = iter(data.train_dataloader())
                w, c = lightning_steps(module, source, steps, warmup=warmup, workdir=workdir, precision=precision,
                                       accelerator=accelerator, kind=kind,
                                       between=lambda i, key=key: between(i, key))
                walls[key] += w
                cpus[key] += c
    result: dict[str, Any] = {"setting": name, "preset": setting["preset"], "crop": setting["crop"],
                              "labeled_batch": setting["batch"], "unlabeled_batch": 2 * setting["batch"],
                              "steps": steps, "reps": reps, "warmup": warmup, "precision": precision,
                              "device": str(device)}
    for unit, table, stat in (("wall", walls, med), ("cpu", cpus, med), ("cpu_min", cpus, min)):
        m = {k: float(stat(v)) for k, v in table.items()}
        m["losses"] = m.pop("losses_task") - m.pop("losses_bare")
        m["lightning_share"] = m["lightning"] - m["data"] - m["task"]
        # each fit against the bare steps interleaved with it
        m["lightning_fixed"] = m["lightning_bare_module"] - m["bare_in_lightning_bare_module"]
        m["recipe_bookkeeping"] = m["recipe_trainer"] - m["lightning"]
        m["overhead_ratio"] = m["lightning"] / m["bare"] - 1.0
        m["recipe_overhead_ratio"] = m["recipe_trainer"] / m["bare_in_recipe_trainer"] - 1.0
        m["task_vs_bare"] = m["task"] / m["bare"] - 1.0
        result[unit] = m
    result["samples"] = {unit: {k: v for k, v in table.items()
                                if k in ("lightning", "bare", "recipe_trainer", "lightning_bare_module",
                                         "bare_in_recipe_trainer", "bare_in_lightning_bare_module")}
                         for unit, table in (("wall", walls), ("cpu", cpus))}
    return result


#: rows of the printed table: key of the figures, label
ROWS = (
    ("recipe_trainer", "Lightning fit step, recipe trainer (progress bar, logger, checkpoint/LR callbacks)"),
    ("lightning", "Lightning fit step, minimal trainer (all)"),
    ("lightning_bare_module", "Lightning fit of the bare step (empty LightningModule)"),
    ("bare", "bare minimum (plain PyTorch)"),
    ("task", "task step without Lightning"),
    ("data", "data loading (fetch one batch)"),
    ("perturb", "strong perturbation + CutMix"),
    ("losses", "task losses minus bare losses"),
    ("lightning_share", "Lightning's share (fit - data - task)"),
    ("lightning_fixed", "  of which Lightning's fixed cost (empty-module fit - bare)"),
    ("recipe_bookkeeping", "recipe trainer's bookkeeping (recipe - minimal)"),
)


def format_result(r: dict[str, Any]) -> str:
    lines = [(f"## {r['setting']} ({r['preset']}, crop {r['crop']}, {r['labeled_batch']} labeled + "
             f"{r['unlabeled_batch']} pseudo-labeled, {r['precision']}, {r['device']}; "
             f"{r['steps']} steps x {r['reps']} reps after {r['warmup']} warm-up steps)"),
             "| part | wall s/step | CPU s/step | % of bare (CPU) |", "| --- | --- | --- | --- |"]
    bare = r["cpu"]["bare"]
    for key, label in ROWS:
        lines.append(f"| {label} | {r['wall'][key]:.4f} | {r['cpu'][key]:.4f} | {100 * r['cpu'][key] / bare:.1f} % |")
    lines.append(f"overhead (Lightning step / bare - 1): {100 * r['cpu']['overhead_ratio']:.1f} % CPU (median), "
                 f"{100 * r['cpu_min']['overhead_ratio']:.1f} % CPU (best step), "
                 f"{100 * r['wall']['overhead_ratio']:.1f} % wall; goal <= 10 %: "
                 f"{'MET' if r['cpu']['overhead_ratio'] <= 0.10 else 'NOT met'}; with the recipe trainer "
                 f"{100 * r['cpu']['recipe_overhead_ratio']:.1f} % CPU")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", nargs="+", default=["tiny", "vits"], choices=list(SETTINGS))
    p.add_argument("--steps", type=int, default=5, help="timed steps per repetition (default 5)")
    p.add_argument("--reps", type=int, default=2, help="repetitions (Lightning fit, then the plain runs)")
    p.add_argument("--vits-crop", type=int, default=196, help="crop of the vits setting (default 196)")
    p.add_argument("--warmup", type=int, default=11,
                   help="untimed first steps of every fit (default 11: past the health check's 10 watched steps)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=str, default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cores {os.cpu_count()}, "
          f"load average before {load_average()}", flush=True)
    results = []
    for name in args.settings:
        r = run_setting(name, args.steps, args.reps, crop=args.vits_crop if name == "vits" else None,
                        warmup=args.warmup)
        results.append(r)
        print(format_result(r), flush=True)
    print(f"load average after {load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_average": load_average(), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
