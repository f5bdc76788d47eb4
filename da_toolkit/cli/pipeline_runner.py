"""The teacher -> pseudo-label -> student -> evaluation pipeline of one recipe.

A pipeline recipe (e.g. ``recipes/quickstart.yaml``) is a YAML mapping::

    output_dir: runs/quickstart       # every stage writes below it
    seed_everything: 0                # default seed of the fit stages
    stages:                           # run in this order
      teacher:       {kind: fit, config: {model: ..., data: ..., trainer: ...}}
      pseudo_labels: {kind: pseudo_label, teacher: teacher, config: {data: ..., trainer: ...}}
      student:       {kind: fit, pseudo_labels: pseudo_labels, config: {...}}
                                      # optional `encoder_from: teacher`: initialise the encoder
                                      # from that stage's final checkpoint; `init_from: teacher`:
                                      # the whole model (encoder + decoder)
      student_no_feature_alignment:   # a variant: the config of `base` with dotted overrides
        {kind: fit, base: student, overrides: {model.init_args.feature_loss: null}}
    evaluation:
      input_size: 518                 # shorter side fed to the models (official preprocessing)
      models: [teacher, student]      # fit stages, or {name: {preset, model_overrides, weights}}
      sets: {name: {source: {class_path: ..., init_args: ...}, metrics: {alignment: ..., ...}}}

Stage outputs: a fit stage ``<output_dir>/<name>/`` (``checkpoints/last.ckpt``, ``final.ckpt``,
``done.json``); a pseudo-label stage the store ``<output_dir>/<name>/`` and
``<output_dir>/<name>.done.json``; evaluation ``<output_dir>/eval/<model>.json`` and
``<output_dir>/results.json``. A stage whose ``done`` file exists is skipped; an interrupted fit
stage resumes from ``last.ckpt``; an interrupted pseudo-label stage skips the finished items.
The stage configs actually run are written to ``<output_dir>/configs/<name>.yaml``.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

FINAL_CKPT = "final.ckpt"
#: stage keys that name another stage
STAGE_REFS = ("teacher", "pseudo_labels", "encoder_from", "init_from")
DONE = "done.json"


class PipelineConfigError(ValueError):
    """A pipeline recipe with a missing or wrong field (the message names it)."""


def _log(msg: str) -> None:
    print(f"[pipeline] {msg}", file=sys.stderr, flush=True)


def _atomic_json(path: Path, obj: Any) -> None:
    from da_toolkit.data.io import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, obj)


def set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set ``cfg["a"]["b"]["c"] = value`` for ``key="a.b.c"`` (creating mappings on the way)."""
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def get_dotted(cfg: dict[str, Any], key: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def build_source(config: Any, where: str) -> Any:
    """A data source from ``{class_path, init_args}`` (registered names allowed), via jsonargparse."""
    import jsonargparse
    from torch.utils.data import Dataset

    import da_toolkit.data.sources  # noqa: F401 - make the built-in sources resolvable
    from da_toolkit.cli.class_paths import resolve_config

    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--source", type=Dataset)
    try:
        cfg = parser.parse_object({"source": resolve_config(config, where)})
    except Exception as exc:  # noqa: BLE001 - jsonargparse reports the bad key
        raise PipelineConfigError(f"{where}: {exc}") from None
    return parser.instantiate_classes(cfg).source


class Pipeline:
    """Runs the stages of a pipeline recipe (see the module docstring)."""

    def __init__(self, recipe: dict[str, Any], source: str = "<recipe>", output_dir: str | None = None) -> None:
        if not isinstance(recipe, dict):
            raise PipelineConfigError(f"{source}: expected a mapping at the top level")
        self.source = source
        self.recipe = recipe
        out = output_dir or recipe.get("output_dir")
        if not out:
            raise PipelineConfigError(f"{source}: missing `output_dir`")
        self.output_dir = Path(out).resolve()
        stages = recipe.get("stages") or {}
        if not isinstance(stages, dict):
            raise PipelineConfigError(f"{source}: `stages` must be a mapping name -> stage")
        if not stages and not isinstance((recipe.get("evaluation") or {}).get("models"), dict):
            raise PipelineConfigError(
                f"{source}: no `stages`; an evaluation-only recipe needs evaluation.models as a mapping "
                "name -> {preset, weights}")
        self.stages: dict[str, dict[str, Any]] = {}
        for name, stage in stages.items():
            if not isinstance(stage, dict):
                raise PipelineConfigError(f"{source}: stages.{name} must be a mapping")
            kind = stage.get("kind")
            if kind not in STAGE_KINDS:
                raise PipelineConfigError(
                    f"{source}: stages.{name}.kind is {kind!r}; expected one of {sorted(STAGE_KINDS)}")
            self.stages[name] = stage
        self._resolved: dict[str, dict[str, Any]] = {}
        for name in self.stages:
            self._resolved[name] = self.stage_config(name)
        self.seed = recipe.get("seed_everything", 0)

    # ------------------------------------------------------------------ configs
    def stage_config(self, name: str) -> dict[str, Any]:
        """The stage's config with ``base`` + ``overrides`` applied and the pipeline's paths filled in."""
        if name in self._resolved:
            return self._resolved[name]
        stage = self.stages[name]
        where = f"{self.source}: stages.{name}"
        if "base" in stage:
            base = stage["base"]
            if base not in self.stages or base == name:
                raise PipelineConfigError(f"{where}.base: unknown stage {base!r}")
            cfg = copy.deepcopy(self.stages[base].get("config") or {})
            for ref in STAGE_REFS:
                if ref in self.stages[base] and ref not in stage:
                    stage = {**stage, ref: self.stages[base][ref]}
                    self.stages[name] = stage
        else:
            cfg = copy.deepcopy(stage.get("config"))
            if not isinstance(cfg, dict):
                raise PipelineConfigError(f"{where}.config: expected the stage's config mapping")
        for key, value in dict(stage.get("overrides") or {}).items():
            set_dotted(cfg, key, value)
        for ref in STAGE_REFS:
            if ref in stage and stage[ref] not in self.stages:
                raise PipelineConfigError(f"{where}.{ref}: unknown stage {stage[ref]!r}")
        return cfg

    def stage_dir(self, name: str) -> Path:
        return self.output_dir / name

    def final_checkpoint(self, name: str) -> Path:
        return self.stage_dir(name) / FINAL_CKPT

    def _write_config(self, name: str, cfg: dict[str, Any]) -> Path:
        path = self.output_dir / "configs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
        tmp.replace(path)
        return path

    # ------------------------------------------------------------------ stages
    def run_fit(self, name: str) -> str:
        from da_toolkit.cli.lightning_cli import run_lightning_cli

        root = self.stage_dir(name)
        if (root / DONE).exists() and self.final_checkpoint(name).exists():
            return "skipped (complete)"
        stage = self.stages[name]
        cfg = copy.deepcopy(self.stage_config(name))
        cfg.setdefault("seed_everything", self.seed)
        set_dotted(cfg, "trainer.default_root_dir", str(root))
        if "init_from" in stage:  # the whole model (encoder + decoder) from that stage's final checkpoint
            set_dotted(cfg, "model.init_args.weights", str(self.final_checkpoint(stage["init_from"])))
        if "encoder_from" in stage:  # e.g. no pretrained DINOv2 file exists offline
            set_dotted(cfg, "model.init_args.encoder_weights", str(self.final_checkpoint(stage["encoder_from"])))
        if "pseudo_labels" in stage:
            store = self.stage_dir(stage["pseudo_labels"])
            set_dotted(cfg, "data.init_args.pseudo_labeled",
                       [{"class_path": "da_toolkit.data.sources.pseudo.PseudoLabelSource",
                         "init_args": {"root": str(store)}}])
        path = self._write_config(name, cfg)
        args = ["fit", "--config", str(path)]
        resumed = (root / "checkpoints" / "last.ckpt").exists()
        if resumed:
            args += ["--ckpt_path", "last"]
        cli = run_lightning_cli(args)
        cli.trainer.save_checkpoint(str(self.final_checkpoint(name)))
        _atomic_json(root / DONE, {"checkpoint": str(self.final_checkpoint(name)),
                                   "global_step": int(cli.trainer.global_step)})
        return "resumed and finished" if resumed else "finished"

    def run_pseudo_label(self, name: str) -> str:
        from da_toolkit.cli.pseudo_label import run as run_pseudo_label

        done = self.output_dir / f"{name}.done.json"
        if done.exists():
            return "skipped (complete)"
        stage = self.stages[name]
        teacher = stage.get("teacher")
        if teacher is None:
            raise PipelineConfigError(f"{self.source}: stages.{name}.teacher: name the teacher's fit stage")
        cfg = copy.deepcopy(self.stage_config(name))
        tcfg = self.stage_config(teacher)
        for key in ("preset", "model_overrides"):
            value = get_dotted(tcfg, f"model.init_args.{key}")
            if value is not None and get_dotted(cfg, f"model.{key}") is None:
                set_dotted(cfg, f"model.{key}", value)
        set_dotted(cfg, "model.weights", str(self.final_checkpoint(teacher)))
        cfg.setdefault("seed_everything", self.seed)
        cfg["store"] = str(self.stage_dir(name))
        path = self._write_config(name, cfg)
        result = run_pseudo_label(["--config", str(path)])
        _atomic_json(done, {"store": result["store"], "written_this_run": result["written"]})
        return f"finished ({result['written']} item(s) written this run)"

    def evaluation_models(self) -> dict[str, dict[str, Any]]:
        """Model name -> ``{preset, model_overrides, weights}`` of every evaluated model."""
        ev = self.recipe.get("evaluation") or {}
        models = ev.get("models")
        if models is None:
            models = [n for n, s in self.stages.items() if s["kind"] == "fit"]
        if isinstance(models, list):
            out = {}
            for name in models:
                if name not in self.stages or self.stages[name]["kind"] != "fit":
                    raise PipelineConfigError(f"{self.source}: evaluation.models: {name!r} is not a fit stage")
                init = get_dotted(self.stage_config(name), "model.init_args", {}) or {}
                if not init.get("preset"):
                    raise PipelineConfigError(
                        f"{self.source}: evaluation of stage {name!r} needs model.init_args.preset in its config")
                out[name] = {"preset": init["preset"], "model_overrides": init.get("model_overrides") or {},
                             "weights": str(self.final_checkpoint(name))}
            return out
        if isinstance(models, dict):
            for name, spec in models.items():
                if not isinstance(spec, dict) or "preset" not in spec:
                    raise PipelineConfigError(f"{self.source}: evaluation.models.{name} needs `preset` (+ `weights`)")
            return {n: dict(s) for n, s in models.items()}
        raise PipelineConfigError(f"{self.source}: evaluation.models must be a list of stages or a mapping")

    def run_evaluation(self) -> dict[str, dict[str, dict[str, float]]]:
        """Evaluate every model on every set; per-model results are cached in ``eval/``."""
        from da_toolkit.metrics import DepthMetrics
        from da_toolkit.models.presets import load_model
        from da_toolkit.evaluation import evaluate_model

        ev = self.recipe.get("evaluation")
        if not isinstance(ev, dict) or not isinstance(ev.get("sets"), dict) or not ev["sets"]:
            raise PipelineConfigError(f"{self.source}: evaluation.sets must map set names to {{source, metrics}}")
        input_size = int(ev.get("input_size", 518))
        limit = ev.get("limit")
        results: dict[str, dict[str, dict[str, float]]] = {}
        datasets: dict[str, Any] = {}
        for model_name, spec in self.evaluation_models().items():
            cache = self.output_dir / "eval" / f"{model_name}.json"
            if cache.exists():
                cached = json.loads(cache.read_text())
                if set(cached) == set(ev["sets"]):
                    _log(f"evaluation of {model_name}: skipped (complete)")
                    results[model_name] = cached
                    continue
            weights = spec.get("weights")
            if weights and not Path(weights).exists():
                raise FileNotFoundError(f"evaluation.models.{model_name}: weights {weights} do not exist")
            model = load_model(spec["preset"], weights=weights, **dict(spec.get("model_overrides") or {}))
            per_set = {}
            for set_name, set_cfg in ev["sets"].items():
                where = f"{self.source}: evaluation.sets.{set_name}"
                if not isinstance(set_cfg, dict) or "source" not in set_cfg:
                    raise PipelineConfigError(f"{where}: needs `source` (class_path + init_args)")
                if set_name not in datasets:
                    datasets[set_name] = build_source(set_cfg["source"], where + ".source")
                metrics = DepthMetrics(**dict(set_cfg.get("metrics") or {}))
                _log(f"evaluating {model_name} on {set_name} ({len(datasets[set_name])} images)")
                per_set[set_name] = evaluate_model(model, datasets[set_name], metrics, input_size=input_size,
                                                   limit=limit, desc=f"{model_name}/{set_name}")
            _atomic_json(cache, per_set)
            results[model_name] = per_set
        return results

    def run(self) -> tuple[Path, dict[str, dict[str, dict[str, float]]]]:
        """Run every stage, then the evaluation; returns ``results.json``'s path and content."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for name, stage in self.stages.items():
            start = time.monotonic()
            _log(f"stage {name} ({stage['kind']}): starting")
            status = STAGE_KINDS[stage["kind"]](self, name)
            _log(f"stage {name}: {status} in {time.monotonic() - start:.1f}s")
        results = self.run_evaluation()
        path = self.output_dir / "results.json"
        _atomic_json(path, results)
        return path, results


#: stage kind -> runner
STAGE_KINDS: dict[str, Callable[[Pipeline, str], str]] = {
    "fit": Pipeline.run_fit,
    "pseudo_label": Pipeline.run_pseudo_label,
}


def load_pipeline(path: str, output_dir: str | None = None) -> Pipeline:
    """Read a pipeline recipe file (clear errors for missing files / bad YAML)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        recipe = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise PipelineConfigError(f"{path}: invalid YAML: {exc}") from None
    return Pipeline(recipe, source=str(path), output_dir=output_dir)
