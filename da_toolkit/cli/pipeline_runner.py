"""The teacher -> pseudo-label -> student -> evaluation pipeline of one recipe.

A pipeline recipe (e.g. ``recipes/quickstart.yaml``) is a YAML mapping::

    output_dir: runs/quickstart       # every stage writes below it
    seed_everything: 0                # default seed of the fit stages
    stages:                           # run in this order
      teacher:       {kind: fit, config: {model: ..., data: ..., trainer: ...}}
      pseudo_labels: {kind: pseudo_label, teacher: teacher, config: {data: ..., trainer: ...}}
                                      # optional `format: shards`: write tar shards (docs/scale.md);
                                      # the student then streams them (ShardStudentDataModule)
      student:       {kind: fit, pseudo_labels: pseudo_labels, config: {...}}
                                      # optional `encoder_from: teacher`: initialise the encoder
                                      # from that stage's final checkpoint; `init_from: teacher`:
                                      # the whole model (encoder + decoder)
      student_no_feature_alignment:   # a variant: the config of `base` with dotted overrides
        {kind: fit, base: student, overrides: {model.init_args.feature_loss: null}}
    evaluation:
      input_size: 518                 # shorter side fed to the models (official preprocessing)
      models: [teacher, student]      # fit stages, or {name: MODEL}; MODEL = a model description
                                      # (preset name, {preset, weights}, class_path form) or a
                                      # weights file that records its model
      sets: {name: {source: {class_path: ..., init_args: ...}, metrics: {alignment: ..., ...}}}

Models move between stages as descriptions: each stage's model is rebuilt from the previous
stage's checkpoint (``final.ckpt`` records its model under ``da_toolkit_model``), so a
ConvNeXt, timm or plugin encoder flows through pseudo-labelling and evaluation like a preset.
Before the first stage runs, every stage's config (after ``base`` + ``overrides``) is parsed and
checked exactly as its command would (unknown keys, types, crop sizes), and the evaluation
models and sets are checked. Overrides of the recipe itself are dotted keys
(:func:`apply_overrides`), e.g. ``stages.teacher.config.trainer.max_steps=10``; ``stages.*``
addresses every stage.

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
    """Set ``cfg["a"]["b"]["c"] = value`` for ``key="a.b.c"`` (creating mappings on the way).

    A part that is a number indexes an existing list (``data.init_args.labeled.0.init_args.length``).
    """
    parts = key.split(".")
    node: Any = cfg
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_list_index(node, part, key)]
            continue
        if not isinstance(node.get(part), (dict, list)):
            node[part] = {}
        node = node[part]
    if isinstance(node, list):
        node[_list_index(node, parts[-1], key)] = copy.deepcopy(value)
    else:
        node[parts[-1]] = copy.deepcopy(value)


def _list_index(node: list[Any], part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise PipelineConfigError(f"override {key}: {part!r} is not an index of a list of {len(node)} item(s)")
    return int(part)


def get_dotted(cfg: dict[str, Any], key: str, default: Any = None) -> Any:
    """The value at dotted ``key`` (``model.init_args.x``) of ``cfg``, or ``default``."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def apply_overrides(recipe: dict[str, Any], overrides: dict[str, Any], source: str = "<recipe>") -> dict[str, Any]:
    """A copy of ``recipe`` with dotted ``key: value`` overrides set.

    ``stages.*.REST`` sets ``REST`` in every stage (``stages.*.config.trainer.accelerator``). For a
    stage built from a ``base``, ``stages.NAME.config.KEY`` becomes one of its ``overrides``
    (``KEY``), so it applies on top of the inherited config.
    """
    out = copy.deepcopy(recipe)
    stages = out.get("stages") or {}
    for key, value in overrides.items():
        parts = key.split(".")
        if parts[0] == "stages" and len(parts) >= 3:
            names = list(stages) if parts[1] == "*" else [parts[1]]
            for name in names:
                if name not in stages:
                    raise PipelineConfigError(f"{source}: override {key}: unknown stage {name!r}")
                stage = stages[name]
                rest = parts[2:]
                if rest[0] == "config" and len(rest) > 1 and "base" in stage:
                    stage.setdefault("overrides", {})[".".join(rest[1:])] = copy.deepcopy(value)
                elif parts[1] == "*" and rest[0] == "config" and "config" not in stage:
                    continue
                else:
                    set_dotted(stage, ".".join(rest), value)
        else:
            set_dotted(out, key, value)
    return out


def _source_parser() -> Any:
    import jsonargparse
    from torch.utils.data import Dataset

    import da_toolkit.data.sources  # noqa: F401 - make the built-in sources resolvable

    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--source", type=Dataset)
    return parser


def parse_source(config: Any, where: str) -> Any:
    """Check a data source config ``{class_path, init_args}`` (registered names allowed); builds nothing."""
    from da_toolkit.cli.checks import parse_error_line
    from da_toolkit.cli.class_paths import UnknownClassPathError, resolve_config

    try:
        return _source_parser().parse_object({"source": resolve_config(config, where)})
    except UnknownClassPathError as exc:
        raise PipelineConfigError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - jsonargparse reports the bad key
        raise PipelineConfigError(f"{where}: {parse_error_line(str(exc))}") from None


def build_source(config: Any, where: str) -> Any:
    """A data source from ``{class_path, init_args}`` (registered names allowed), via jsonargparse."""
    return _source_parser().instantiate_classes(parse_source(config, where)).source


#: the field of a fit task that holds the trained model (every DepthTask)
MODEL_FIELD = "model"
SHARD_STUDENT_DATA = "da_toolkit.data.shards.datamodule.ShardStudentDataModule"


def _shard_student_data(cfg: dict[str, Any], where: str) -> None:
    """Make a student stage's data module stream pseudo-label shards: ``StudentDataModule`` (same
    arguments) becomes ``ShardStudentDataModule``; another data module is refused, naming it."""
    data = cfg.get("data")
    path = str(data.get("class_path", "")) if isinstance(data, dict) else ""
    if path.rsplit(".", 1)[-1] == "ShardStudentDataModule":
        return
    if path.rsplit(".", 1)[-1] != "StudentDataModule":
        raise PipelineConfigError(f"{where}.class_path: {path or None!r} cannot stream the pseudo-label shards of "
                                  "a `format: shards` stage; use StudentDataModule or ShardStudentDataModule")
    data["class_path"] = SHARD_STUDENT_DATA


class Pipeline:
    """Runs the stages of a pipeline recipe (see the module docstring).

    Args:
        recipe: the loaded recipe.
        source: its name in error messages (the file).
        output_dir: replaces the recipe's ``output_dir``.
        overrides: dotted overrides of the recipe (:func:`apply_overrides`).
    """

    def __init__(self, recipe: dict[str, Any], source: str = "<recipe>", output_dir: str | None = None,
                 overrides: dict[str, Any] | None = None) -> None:
        if not isinstance(recipe, dict):
            raise PipelineConfigError(f"{source}: expected a mapping at the top level")
        self.source = source
        if overrides:
            recipe = apply_overrides(recipe, overrides, source)
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
                "name -> model (e.g. {preset: depth-anything-v2-vits, weights: FILE})")
        self.stages: dict[str, dict[str, Any]] = {}
        for name, stage in stages.items():
            if not isinstance(stage, dict):
                raise PipelineConfigError(f"{source}: stages.{name} must be a mapping")
            kind = stage.get("kind")
            if kind not in STAGE_KINDS:
                raise PipelineConfigError(
                    f"{source}: stages.{name}.kind is {kind!r}; expected one of {sorted(STAGE_KINDS)}")
            self.stages[name] = stage
        self._precheck()
        self._resolved: dict[str, dict[str, Any]] = {}
        for name in self.stages:
            self._resolved[name] = self.stage_config(name)
        self.seed = recipe.get("seed_everything", 0)

    # ------------------------------------------------------------------ configs
    def _precheck(self) -> None:
        """Misspelled registered names in any stage's config, found before anything (torch,
        Lightning) is imported (:func:`~da_toolkit.cli.class_paths.precheck_config`)."""
        from da_toolkit.cli.class_paths import UnknownClassPathError, precheck_config

        for name, stage in self.stages.items():
            try:
                precheck_config(stage.get("config") or {}, f"{self.source}: stages.{name}.config")
            except UnknownClassPathError as exc:
                raise PipelineConfigError(str(exc)) from None

    def _expand(self, cfg: dict[str, Any], name: str) -> dict[str, Any]:
        """Registered names resolved and model short forms expanded (the command's own rules)."""
        from da_toolkit.cli.lightning_cli import expand_config
        from da_toolkit.cli.model_forms import ModelFormError

        groups: dict[str, type] = {}
        if self.stages[name]["kind"] == "pseudo_label":
            from da_toolkit.tasks.pseudo_label import PseudoLabelTask

            groups["model"] = PseudoLabelTask
        try:
            return expand_config(cfg, f"{self.source}: stages.{name}.config", groups)
        except (ModelFormError, ValueError) as exc:
            raise PipelineConfigError(str(exc)) from None

    def stage_config(self, name: str) -> dict[str, Any]:
        """The stage's config with ``base`` + ``overrides`` applied and model short forms expanded."""
        if name in self._resolved:
            return self._resolved[name]
        stage = self.stages[name]
        where = f"{self.source}: stages.{name}"
        if "base" in stage:
            base = stage["base"]
            if base not in self.stages or base == name:
                raise PipelineConfigError(f"{where}.base: unknown stage {base!r}")
            cfg = copy.deepcopy(self.stage_config(base))
            for ref in STAGE_REFS:
                if ref in self.stages[base] and ref not in stage:
                    stage = {**stage, ref: self.stages[base][ref]}
                    self.stages[name] = stage
        else:
            cfg = copy.deepcopy(stage.get("config"))
            if not isinstance(cfg, dict):
                raise PipelineConfigError(f"{where}.config: expected the stage's config mapping")
            cfg = self._expand(cfg, name)
        overrides = stage.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise PipelineConfigError(f"{where}.overrides: expected a mapping of dotted keys to values")
        for key, value in overrides.items():
            set_dotted(cfg, key, value)
        if overrides:
            cfg = self._expand(cfg, name)
        for ref in STAGE_REFS:
            if ref in stage and stage[ref] not in self.stages:
                raise PipelineConfigError(f"{where}.{ref}: unknown stage {stage[ref]!r}")
        return cfg

    def stage_dir(self, name: str) -> Path:
        """The output folder of stage ``name``."""
        return self.output_dir / name

    def final_checkpoint(self, name: str) -> Path:
        """The final checkpoint file of stage ``name`` (the next stages rebuild models from it)."""
        return self.stage_dir(name) / FINAL_CKPT

    def _write_config(self, name: str, cfg: dict[str, Any]) -> Path:
        path = self.output_dir / "configs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
        tmp.replace(path)
        return path

    def _model_path(self, name: str) -> str:
        return f"model.init_args.{MODEL_FIELD}"

    def fit_config(self, name: str) -> dict[str, Any]:
        """The config ``da-toolkit fit`` runs for a fit stage: the pipeline's paths filled in."""
        stage = self.stages[name]
        where = f"{self.source}: stages.{name}"
        cfg = copy.deepcopy(self.stage_config(name))
        cfg.setdefault("seed_everything", self.seed)
        set_dotted(cfg, "trainer.default_root_dir", str(self.stage_dir(name)))
        # checkpoints stay in <stage>/checkpoints (resume looks there) also when a logger is on:
        # Lightning would otherwise put them below the logger's lightning_logs/version_N/
        for cb in get_dotted(cfg, "trainer.callbacks") or []:
            if isinstance(cb, dict) and str(cb.get("class_path", "")).rsplit(".", 1)[-1] == "ModelCheckpoint":
                args = cb.setdefault("init_args", {})
                if args.get("dirpath") is None:
                    args["dirpath"] = str(self.stage_dir(name) / "checkpoints")
        model = get_dotted(cfg, self._model_path(name))
        if ("init_from" in stage or "encoder_from" in stage) and not isinstance(model, dict):
            raise PipelineConfigError(f"{where}.config.{self._model_path(name)}: init_from/encoder_from need the "
                                      "stage's model (a DepthModel description)")
        if "init_from" in stage:  # the whole model (encoder + decoder) from that stage's final checkpoint
            set_dotted(cfg, f"{self._model_path(name)}.init_args.weights",
                       str(self.final_checkpoint(stage["init_from"])))
        if "encoder_from" in stage:  # e.g. no pretrained DINOv2 file exists offline
            set_dotted(cfg, f"{self._model_path(name)}.init_args.encoder_weights",
                       str(self.final_checkpoint(stage["encoder_from"])))
        if "pseudo_labels" in stage:
            store = self.stage_dir(stage["pseudo_labels"])
            source = {"class_path": "da_toolkit.data.sources.pseudo.PseudoLabelSource", "init_args": {"root": str(store)}}
            if self.pseudo_label_format(stage["pseudo_labels"]) == "shards":  # streamed by the shard data module
                _shard_student_data(cfg, f"{where}.config.data")
                source = {"class_path": "da_toolkit.data.shards.pseudo.PseudoLabelShards",
                          "init_args": {"root": str(store)}}
            set_dotted(cfg, "data.init_args.pseudo_labeled", [source])
        return cfg

    def pseudo_label_format(self, name: str) -> str:
        """Store format of pseudo-label stage ``name``: its ``format`` key (``files``, the default,
        or ``shards``), else ``format`` in its config."""
        fmt = self.stages[name].get("format", (self.stage_config(name) or {}).get("format", "files"))
        if fmt not in ("files", "shards"):
            raise PipelineConfigError(f"{self.source}: stages.{name}.format is {fmt!r}; expected 'files' or 'shards'")
        return str(fmt)

    def teacher_description(self, name: str, from_checkpoint: bool) -> dict[str, Any]:
        """The model of fit stage ``name`` as a description with its ``final.ckpt`` as weights:
        read from the checkpoint itself (``from_checkpoint``), else from the stage's config (to
        check the later stages before it ran)."""
        from da_toolkit.cli.model_forms import ModelFormError, description_of_file

        where = f"{self.source}: stages.{name}"
        ckpt = self.final_checkpoint(name)
        if from_checkpoint:
            try:
                return description_of_file(str(ckpt), f"{where} (final checkpoint)")
            except ModelFormError as exc:
                raise PipelineConfigError(str(exc)) from None
        model = get_dotted(self.stage_config(name), self._model_path(name))
        if not isinstance(model, dict):
            raise PipelineConfigError(f"{where}.config.{self._model_path(name)}: the stage needs a model")
        desc = copy.deepcopy(model)
        desc.setdefault("init_args", {}).update(weights=str(ckpt), encoder_weights=None)
        return desc

    def pseudo_label_config(self, name: str, from_checkpoint: bool = True) -> dict[str, Any]:
        """The config ``da-toolkit pseudo-label`` runs: the teacher stage's model and the store."""
        stage = self.stages[name]
        teacher = stage.get("teacher")
        if teacher is None:
            raise PipelineConfigError(f"{self.source}: stages.{name}.teacher: name the teacher's fit stage")
        if self.stages[teacher]["kind"] != "fit":
            raise PipelineConfigError(f"{self.source}: stages.{name}.teacher: {teacher!r} is not a fit stage")
        cfg = copy.deepcopy(self.stage_config(name))
        model = cfg.get("model") or {}
        if not isinstance(model, dict):
            raise PipelineConfigError(f"{self.source}: stages.{name}.config.model: expected a mapping")
        model["teacher"] = self.teacher_description(teacher, from_checkpoint)
        cfg["model"] = model
        cfg.setdefault("seed_everything", self.seed)
        cfg["store"] = str(self.stage_dir(name))
        cfg["format"] = self.pseudo_label_format(name)
        return cfg

    # ------------------------------------------------------------------ checks before running
    def validate(self) -> dict[str, Any]:
        """Parse and check every stage's config and the evaluation, building nothing.

        Returns the recipe as it will run: each stage's ``config`` replaced by its parsed config
        (defaults filled in, models in full). Raises :class:`PipelineConfigError` naming the
        stage and the field.
        """
        from da_toolkit.cli.checks import RecipeError
        from da_toolkit.cli.lightning_cli import parse_fit_config
        from da_toolkit.cli.pseudo_label import parse_pseudo_label_config

        out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in self.recipe.items() if k != "stages"}
        out["output_dir"] = str(self.output_dir)
        stages: dict[str, Any] = {}
        for name, stage in self.stages.items():
            where = f"{self.source}: stages.{name}.config"
            try:
                if stage["kind"] == "fit":
                    parsed = parse_fit_config(self.fit_config(name), where)
                else:
                    parsed = parse_pseudo_label_config(self.pseudo_label_config(name, from_checkpoint=False), where)
            except RecipeError as exc:
                raise PipelineConfigError(str(exc)) from None
            resolved = {k: v for k, v in stage.items() if k not in ("config", "overrides")}
            resolved["config"] = _plain(parsed)
            stages[name] = resolved
        out["stages"] = stages
        if self.recipe.get("evaluation") is not None:
            out["evaluation"] = self.validate_evaluation()
        return out

    def validate_evaluation(self) -> dict[str, Any]:
        """Check ``evaluation`` (models, sets); returns it with the models as descriptions."""
        ev = self.recipe.get("evaluation")
        where = f"{self.source}: evaluation"
        if not isinstance(ev, dict) or not isinstance(ev.get("sets"), dict) or not ev["sets"]:
            raise PipelineConfigError(f"{where}.sets must map set names to {{source, metrics}}")
        for set_name, set_cfg in ev["sets"].items():
            if not isinstance(set_cfg, dict) or "source" not in set_cfg:
                raise PipelineConfigError(f"{where}.sets.{set_name}: needs `source` (class_path + init_args)")
            parse_source(set_cfg["source"], f"{where}.sets.{set_name}.source")
            self._metrics(set_cfg, f"{where}.sets.{set_name}.metrics")
        out = copy.deepcopy(ev)
        out["models"] = self.evaluation_models(from_checkpoint=False)
        return out

    @staticmethod
    def _metrics(set_cfg: dict[str, Any], where: str) -> Any:
        from da_toolkit.metrics import DepthMetrics

        try:
            return DepthMetrics(**dict(set_cfg.get("metrics") or {}))
        except (TypeError, ValueError) as exc:
            raise PipelineConfigError(f"{where}: {exc}") from None

    # ------------------------------------------------------------------ stages
    def run_fit(self, name: str) -> str:
        """Run fit stage ``name`` (skipped when complete); returns its status line."""
        from da_toolkit.cli import lightning_cli
        from da_toolkit.cli.checks import ConfigValueError, RecipeError

        root = self.stage_dir(name)
        if (root / DONE).exists() and self.final_checkpoint(name).exists():
            return "skipped (complete)"
        path = self._write_config(name, self.fit_config(name))
        args = ["fit", "--config", str(path)]
        resumed = (root / "checkpoints" / "last.ckpt").exists()
        if resumed:
            args += ["--ckpt_path", "last"]
        try:
            cli = lightning_cli.run_lightning_cli(args, report=False)
        except ConfigValueError as exc:  # a value a constructor refused: name the stage, not configs/NAME.yaml
            raise PipelineConfigError(str(exc.located(self.source, f"stages.{name}.config"))) from None
        except RecipeError as exc:
            raise PipelineConfigError(f"{self.source}: stages.{name}: {exc}") from None
        cli.trainer.save_checkpoint(str(self.final_checkpoint(name)))
        _atomic_json(root / DONE, {"checkpoint": str(self.final_checkpoint(name)),
                                   "global_step": int(cli.trainer.global_step)})
        return "resumed and finished" if resumed else "finished"

    def run_pseudo_label(self, name: str) -> str:
        """Run pseudo-label stage ``name`` (skipped when complete); returns its status line."""
        from da_toolkit.cli.checks import ConfigValueError
        from da_toolkit.cli.pseudo_label import run as run_pseudo_label

        done = self.output_dir / f"{name}.done.json"
        if done.exists():
            return "skipped (complete)"
        path = self._write_config(name, self.pseudo_label_config(name, from_checkpoint=True))
        try:
            result = run_pseudo_label(["--config", str(path)])
        except ConfigValueError as exc:
            raise PipelineConfigError(str(exc.located(self.source, f"stages.{name}.config"))) from None
        _atomic_json(done, {"store": result["store"], "written_this_run": result["written"]})
        return f"finished ({result['written']} item(s) written this run)"

    def evaluation_models(self, from_checkpoint: bool = True) -> dict[str, dict[str, Any]]:
        """Model name -> canonical description (with its weights) of every evaluated model.

        A fit stage's model comes from its ``final.ckpt`` (``from_checkpoint``; else from its
        config, to check the recipe before running); other entries are model values in any form
        the CLI takes (preset name, ``{preset, weights}``, the class_path form, a weights file).
        """
        from da_toolkit.cli.model_forms import ModelFormError, expand_model_value

        ev = self.recipe.get("evaluation") or {}
        models = ev.get("models")
        if models is None:
            models = [n for n, s in self.stages.items() if s["kind"] == "fit"]
        from_list = isinstance(models, list)
        if from_list:
            models = {name: name for name in models}
        if not isinstance(models, dict):
            raise PipelineConfigError(f"{self.source}: evaluation.models must be a list of stages or a mapping")
        out: dict[str, dict[str, Any]] = {}
        for name, spec in models.items():
            if isinstance(spec, str) and (spec in self.stages or from_list):
                if spec not in self.stages or self.stages[spec]["kind"] != "fit":
                    raise PipelineConfigError(f"{self.source}: evaluation.models: {spec!r} is not a fit stage")
                out[name] = self.teacher_description(spec, from_checkpoint)
                continue
            try:
                out[name] = expand_model_value(spec, f"{self.source}: evaluation.models.{name}")
            except ModelFormError as exc:
                raise PipelineConfigError(str(exc)) from None
        return out

    def run_evaluation(self) -> dict[str, dict[str, dict[str, float]]]:
        """Evaluate every model on every set; per-model results are cached in ``eval/``."""
        from da_toolkit.evaluation import evaluate_model
        from da_toolkit.models.description import ModelDescriptionError, build_model

        ev = self.recipe.get("evaluation")
        if not isinstance(ev, dict) or not isinstance(ev.get("sets"), dict) or not ev["sets"]:
            raise PipelineConfigError(f"{self.source}: evaluation.sets must map set names to {{source, metrics}}")
        input_size = int(ev.get("input_size", 518))
        limit = ev.get("limit")
        results: dict[str, dict[str, dict[str, float]]] = {}
        datasets: dict[str, Any] = {}
        for model_name, desc in self.evaluation_models().items():
            cache = self.output_dir / "eval" / f"{model_name}.json"
            if cache.exists():
                cached = json.loads(cache.read_text())
                if set(cached) == set(ev["sets"]):
                    _log(f"evaluation of {model_name}: skipped (complete)")
                    results[model_name] = cached
                    continue
            weights = (desc.get("init_args") or {}).get("weights")
            if weights and not Path(weights).exists():
                raise FileNotFoundError(f"evaluation.models.{model_name}: weights {weights} do not exist")
            try:
                model = build_model(desc, f"evaluation.models.{model_name}")
            except ModelDescriptionError as exc:
                raise PipelineConfigError(f"{self.source}: {exc}") from None
            model.eval()
            per_set = {}
            for set_name, set_cfg in ev["sets"].items():
                where = f"{self.source}: evaluation.sets.{set_name}"
                if not isinstance(set_cfg, dict) or "source" not in set_cfg:
                    raise PipelineConfigError(f"{where}: needs `source` (class_path + init_args)")
                if set_name not in datasets:
                    datasets[set_name] = build_source(set_cfg["source"], where + ".source")
                metrics = self._metrics(set_cfg, where + ".metrics")
                _log(f"evaluating {model_name} on {set_name} ({len(datasets[set_name])} images)")
                per_set[set_name] = evaluate_model(model, datasets[set_name], metrics, input_size=input_size,
                                                   limit=limit, desc=f"{model_name}/{set_name}")
            _atomic_json(cache, per_set)
            results[model_name] = per_set
        return results

    def stage_clock(self, start: float) -> Any:
        """A :class:`~da_toolkit.cli.stage_progress.StageClock` of this recipe's stages (work
        counted from each stage's config as it will run)."""
        from da_toolkit.cli.stage_progress import StageClock, stage_work

        rows = []
        for name, stage in self.stages.items():
            kind = stage["kind"]
            cfg = self.fit_config(name) if kind == "fit" else self.stage_config(name)
            group = str((cfg.get("model") or {}).get("class_path", kind)) if kind == "fit" else kind
            rows.append((name, kind, group, stage_work(kind, cfg)))
        return StageClock(rows, start)

    def _record_stage(self, clock: Any, name: str, status: str, seconds: float) -> None:
        """Feed a finished stage to the clock: a fit stage that ran whole gives a rate; a
        pseudo-label stage's work is the items it wrote this run."""
        if self.stages[name]["kind"] == "fit":
            clock.finished(name, seconds, measured=status == "finished")
            return
        done = self.output_dir / f"{name}.done.json"
        written = int(json.loads(done.read_text()).get("written_this_run", 0)) if done.exists() else 0
        clock.finished(name, seconds, measured=written > 0 and not status.startswith("skipped"),
                       work=float(written) if written > 0 else None)

    def run(self, validate: bool = True) -> tuple[Path, dict[str, dict[str, dict[str, float]]]]:
        """Check every stage (:meth:`validate`, unless already done), run them, then the
        evaluation; returns ``results.json``'s path and content."""
        if validate:
            self.validate()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        clock = self.stage_clock(time.monotonic())
        for name, stage in self.stages.items():
            start = time.monotonic()
            _log(f"stage {name} ({stage['kind']}): starting [{clock.line(name, start)}]")
            status = STAGE_KINDS[stage["kind"]](self, name)
            end = time.monotonic()
            self._record_stage(clock, name, status, end - start)
            _log(f"stage {name}: {status} in {end - start:.1f}s [{clock.line(name, end)}]")
        results = self.run_evaluation()
        path = self.output_dir / "results.json"
        _atomic_json(path, results)
        return path, results


def _plain(obj: Any) -> Any:
    from da_toolkit.cli.checks import _plain as plain

    value = plain(obj)
    return json.loads(json.dumps(value, default=str))


#: stage kind -> runner
STAGE_KINDS: dict[str, Callable[[Pipeline, str], str]] = {
    "fit": Pipeline.run_fit,
    "pseudo_label": Pipeline.run_pseudo_label,
}


def load_pipeline(path: str, output_dir: str | None = None, overrides: dict[str, Any] | None = None) -> Pipeline:
    """Read a pipeline recipe file (clear errors for missing files / bad YAML)."""
    from da_toolkit.cli.config_files import load_config_file

    recipe = load_config_file(path, PipelineConfigError)
    return Pipeline(recipe, source=str(path), output_dir=output_dir, overrides=overrides)
