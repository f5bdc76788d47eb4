"""One-line errors for run configs refused by jsonargparse or by a constructor (issue 14.4).

jsonargparse reports a wrong value three levels deep as a nested union message (every subtype it
tried, ``Expected a <class 'NoneType'>``, the whole config printed twice); a value a constructor
refuses (``crop_size: 0``, a negative ``trim``) came out as a 100-line traceback. Here both become
a :class:`ConfigValueError`: the recipe file, the full dotted key, what was expected and what came,
at most one short hint line. The parsers of the commands are built with ``exit_on_error=False``
(jsonargparse then raises its ``ArgumentError`` instead of printing usage and exiting), and
:class:`~da_toolkit.cli.lightning_cli.DepthLightningCLI` converts at its two steps:

* :func:`from_parser_message` - the parser's message (the key path it gives, with list indices
  found in the config);
* :func:`from_constructor` - the exception a constructor raised while the classes are
  instantiated: the class is the one whose ``__init__`` frame the exception passed through, the
  key is where the config names that class (the argument too, when the message names exactly
  one of the class's arguments).

:func:`source_of` names the file (or command-line argument) that set a key. Set
``DA_TOOLKIT_DEBUG=1`` to get the original exception with its traceback instead.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigValueError", "RecipeError", "contract_error", "debug_mode", "from_constructor", "from_parser_message", "register_origin",
           "source_of", "weights_file_error"]

DEBUG_ENV = "DA_TOOLKIT_DEBUG"

#: emitted (expanded) config file -> the file the user named (filled by ``preprocess_args``)
_ORIGINS: dict[str, str] = {}


class RecipeError(ValueError):
    """A run config whose values do not fit together (the message names the field)."""


class ConfigValueError(RecipeError):
    """A config value refused by the parser or a constructor.

    Attributes:
        key: the full dotted key (``data.init_args.labeled[0].init_args.length``).
        detail: what was expected and what came.
        hint: an optional second line (close matches).
        source: the file or argument that set the key (``""``: unknown).
    """

    def __init__(self, key: str, detail: str, hint: str = "", source: str = "") -> None:
        self.key, self.detail, self.hint, self.source = key, detail, hint, source
        super().__init__(self._text())

    def _text(self) -> str:
        head = f"{self.key}: {self.detail}" if self.key else self.detail
        if self.source:
            head = f"{self.source}: {head}"
        return head + (f"\n  hint: {self.hint}" if self.hint else "")

    def __str__(self) -> str:
        return self._text()

    def located(self, source: str = "", prefix: str = "") -> ConfigValueError:
        """A copy naming ``source`` and with ``prefix`` (e.g. ``stages.teacher.config``) before the key."""
        key = ".".join(p for p in (prefix, self.key) if p)
        return ConfigValueError(key, self.detail, self.hint, source)


def plain(obj: Any) -> Any:
    """Turn jsonargparse Namespaces into dicts (recursively); other values unchanged."""
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj



def debug_mode() -> bool:
    """True when ``DA_TOOLKIT_DEBUG`` asks for original exceptions and tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def register_origin(emitted: str, original: str) -> None:
    """Remember that the config file ``emitted`` was written for the user's file ``original``."""
    _ORIGINS[str(emitted)] = str(original)


# ---------------------------------------------------------------- where a key was set
def _config_args(args: Sequence[str]) -> Iterator[tuple[str, str | None, Any]]:
    """``(label, key, value)`` per config source of an argument list, in order: a ``--config``
    file gives ``(file, None, loaded mapping)``, ``--a.b=v`` gives ``("--a.b", "a.b", v)``."""
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        key, eq, value = arg.partition("=")
        if not key.startswith("-"):
            i += 1
            continue
        if not eq and i + 1 < len(items) and not items[i + 1].startswith("--"):
            value = items[i + 1]
            i += 1
        i += 1
        if key in ("--config", "-c"):
            try:
                data = yaml.safe_load(Path(value).read_text())
            except (OSError, yaml.YAMLError):
                data = None
            yield _ORIGINS.get(value, value), None, data if isinstance(data, Mapping) else {}
        elif key.startswith("--"):
            try:
                loaded = yaml.safe_load(value)
            except yaml.YAMLError:
                loaded = value
            yield key, key[2:], loaded


def _parts(key: str) -> list[str]:
    """``a.b[0].c`` -> ``["a", "b", "0", "c"]``."""
    return [p for p in re.split(r"[.\[\]]+", key) if p]


def _depth_in(data: Any, parts: list[str]) -> int:
    """How many leading ``parts`` exist as a path in ``data``."""
    depth = 0
    for part in parts:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            break
        depth += 1
    return depth


def _get(data: Any, parts: list[str]) -> Any:
    for part in parts:
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def source_of(key: str, args: Sequence[str]) -> str:
    """The config file (or ``--key`` argument) that set ``key``: the one that gives the longest
    leading part of its path, the later one on a tie (later sources win); ``""`` when none does."""
    parts = _parts(key)
    best, best_depth = "", 0
    for label, arg_key, data in _config_args(args):
        if arg_key is None:
            depth = _depth_in(data, parts)
        else:
            arg_parts = _parts(arg_key)
            common = len(arg_parts) if parts[: len(arg_parts)] == arg_parts else 0
            depth = common or (len(parts) if arg_parts[: len(parts)] == parts else 0)
        if depth and depth >= best_depth:
            best, best_depth = label, depth
    if not best:
        configs = [label for label, arg_key, _ in _config_args(args) if arg_key is None]
        best = configs[-1] if len(configs) == 1 else ""
    return best


def _value_at(args: Sequence[str], parts: list[str]) -> Any:
    """The value at ``parts`` in the last config source that has it (``None``: none has)."""
    found: Any = None
    for _, arg_key, data in _config_args(args):
        if arg_key is None:
            if _depth_in(data, parts) == len(parts):
                found = _get(data, parts)
        elif _parts(arg_key) == parts:
            found = data
    return found


# ---------------------------------------------------------------- parser messages
_STRUCTURE = ("Does not validate", "Subtypes:", "Errors:", "- Expected a <class 'NoneType'>", "Given value type")
_EXPECTED = re.compile(r"Expected a (.+?)\. Got value: (.*)$")


def _type_name(text: str) -> str:
    """``<class 'int'>`` -> ``int``; ``typing.Literal['a', 'b']`` -> ``one of 'a', 'b'``."""
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", text)
    if literal:
        return f"one of {literal.group(1)}"
    return re.sub(r"<class '(?:builtins\.)?([^']+)'>", r"\1", text).replace("typing.", "")


def _got(text: str) -> str:
    text = text.strip()
    return text if text[:1] in "[{(" or re.fullmatch(r"-?[\d.e+-]+|None|True|False", text) else repr(text)


def _detail(line: str) -> str:
    """A jsonargparse detail line in the toolkit's words (``expected int, got 'sixteen'``)."""
    found = _EXPECTED.search(line)
    if found:
        return f"expected {_type_name(found.group(1))}, got {_got(found.group(2))}"
    return line.lstrip("- ").strip()


def _accepted(class_path: str) -> list[str]:
    """The argument names of a class, following ``**kwargs`` to the bases (as jsonargparse does)."""
    from da_toolkit.cli.model_forms import _import_class

    cls = _import_class(class_path)
    names: list[str] = []
    for klass in cls.__mro__ if isinstance(cls, type) else ():
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            break
        names += [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f"did you mean {', '.join(close)}?" if close else ""


def _with_indices(segments: list[tuple[str, str]], args: Sequence[str], last: str | None,
                  got: str | None = None) -> list[str]:
    """The key path of a message with list indices put in.

    jsonargparse names the list (``labeled``) but not the element: the index is that of the
    element of the list in the config that is of the class the message names and has the rest of
    the path (``last``: the refused option, which is in the config too) and, when several have,
    the refused value ``got`` there; ``?`` when that still leaves several.
    ``segments`` are ``(part, class_path)``, the class path given for ``init_args`` parts.
    """
    out: list[str] = []
    for n, (part, class_path) in enumerate(segments):
        if part == "init_args" and out and "?" not in out:
            value = _value_at(args, out)
            if isinstance(value, list):
                rest = [p for p, _ in segments[n:]] + ([last] if last else [])
                items = [i for i, item in enumerate(value) if isinstance(item, Mapping)]
                same = [i for i in items if value[i].get("class_path") == class_path] or items
                hits = [i for i in same if _depth_in(value[i], rest) == len(rest)] or same
                if len(hits) > 1 and got is not None:
                    hits = [i for i in hits if _depth_in(value[i], rest) == len(rest)
                            and str(_get(value[i], rest)) == got] or hits
                out.append(str(hits[0]) if len(hits) == 1 else "?")
        out.append(part)
    return out


def _join(parts: list[str]) -> str:
    text = ""
    for part in parts:
        if part.isdigit() or part == "?":
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def from_parser_message(message: str, args: Sequence[str] = (), options: Sequence[str] = (),
                        command: str = "da-toolkit") -> ConfigValueError:
    """The one-line error for a jsonargparse error message.

    Args:
        message: the text of jsonargparse's ``ArgumentError``.
        args: the parsed argument list (``--config`` files are read to find list indices and
            the file that set the key).
        options: the command's own option keys (``trainer.max_steps``...), for close matches.
        command: the command, in "not an option of ..." messages.
    """
    keys: list[str] = []
    segments: list[tuple[str, str]] = []
    owner_path = ""
    detail, hint, unknown, got = "", "", None, None
    top = re.match(r"Subcommand '[^']+' does not accept option '([^']+)'|Unrecognized arguments: (\S+)", message)
    if top:
        name = (top.group(1) or top.group(2)).lstrip("-")
        known = sorted({o.split(".")[0] for o in options})
        head = name.split(".")[0]
        if head in known:  # trainer.max_stepz
            keys = [name]
            detail = f"not an option of {head}"
            hint = _did_you_mean(name, [o for o in options if o.startswith(head + ".")])
        else:
            keys = [head]
            detail = f"not an option of `{command}`"
            hint = _did_you_mean(head, known)
        return ConfigValueError(_join(_parts(keys[0])), detail, hint, source_of(keys[0], args))
    for line in message.splitlines():
        s = line.strip()
        if s.startswith("Given value"):
            break
        key = re.match(r'Parser key "([^"]+)":', s)
        if key:
            segments += [(p, "") for p in _parts(key.group(1))]
            continue
        cls = re.match(r"-?\s*Problem with given class_path '([^']+)':", s)
        if cls:
            owner_path = cls.group(1)
            segments.append(("init_args", owner_path))
            continue
        option = re.match(r"Option '([^']+)' is not accepted", s)
        if option:
            unknown = option.group(1)
            detail = f"not an argument of {owner_path.rsplit('.', 1)[-1] or 'the class'}"
            hint = _did_you_mean(unknown, _accepted(owner_path)) if owner_path else ""
            break
        required = re.match(r'Key "([^"]+)" is required', s)
        if required:
            segments += [(p, "") for p in _parts(required.group(1))]
            detail = "required, not given"
            break
        if s and not s.startswith(_STRUCTURE):
            detail = _detail(s)
            found = _EXPECTED.search(s)
            got = found.group(2).strip() if found else None
            break
    parts = _with_indices(segments, args, unknown, got)
    if unknown is not None:
        parts.append(unknown)
    while parts and parts[-1] == "init_args":
        parts.pop()
    if not detail:
        lines = [ln.strip() for ln in message.splitlines() if ln.strip() and not ln.strip().startswith("Given value")]
        detail = _detail(lines[-1]) if lines else "invalid config"
    key = _join(parts)
    return ConfigValueError(key, detail, hint, source_of(key, args) if key else "")


# ---------------------------------------------------------------- constructors
def _class_nodes(config: Any, prefix: str = "") -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """``(dotted key, class_path, init_args)`` of every ``class_path`` node of a config."""
    if isinstance(config, Mapping):
        if isinstance(config.get("class_path"), str):
            init = config.get("init_args")
            yield prefix, config["class_path"], init if isinstance(init, Mapping) else {}
        for key, value in config.items():
            yield from _class_nodes(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            yield from _class_nodes(value, f"{prefix}[{i}]")


def _exceptions(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _init_frames(exc: BaseException) -> Iterator[tuple[type, dict[str, Any]]]:
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and "self" in frame.f_locals:
            yield type(frame.f_locals["self"]), dict(frame.f_locals)
        tb = tb.tb_next


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _named_argument(init: Mapping[str, Any], detail: str) -> list[str]:
    """The argument(s) of ``init`` a constructor's message is about: the one whose text value it
    quotes (``weights not found: FILL_ME/x.pth``), else those it names together with their value
    (``trim must be in [0, 1), got -0.5``)."""
    quoted = [k for k, v in init.items() if isinstance(v, str) and len(v) >= 3 and v in detail]
    if len(quoted) == 1:
        return quoted
    return [k for k, v in init.items() if _scalar(v) and re.search(rf"(?<!\w){re.escape(k)}(?!\w)", detail)
            and str(v) in detail]


def from_constructor(exc: BaseException, config: Any, groups: Mapping[str, type] | None = None,
                     args: Sequence[str] = (),
                     kinds: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)) -> ConfigValueError | None:
    """The one-line error for an exception a constructor raised while a config was instantiated.

    Args:
        exc: what instantiation raised (jsonargparse wraps the constructor's exception).
        config: the parsed config (Namespace or dict) that was being instantiated.
        groups: top-level keys built without a ``class_path`` (``{"trainer": Trainer}``).
        args: the parsed argument list (to name the file that set the key).
        kinds: the exception types a constructor refuses a value with (others keep their traceback).

    Returns ``None`` when no exception of ``kinds`` in the chain passed through the ``__init__``
    of a class the config names (a bug elsewhere keeps its traceback).
    """
    from da_toolkit.cli.model_forms import _import_class

    config = plain(config)
    nodes: list[tuple[str, type, Mapping[str, Any]]] = []
    for key, path, init in _class_nodes(config):
        cls = _import_class(path)
        if cls is not None:
            nodes.append((key, cls, init))
    for key, cls in (groups or {}).items():
        if isinstance(config, Mapping) and isinstance(config.get(key), Mapping):
            nodes.append((key, cls, config[key]))
    for cause in _exceptions(exc):
        if not isinstance(cause, kinds):
            continue
        for cls, local in _init_frames(cause):
            hits = [(key, init) for key, node_cls, init in nodes if node_cls is cls]
            if not hits:
                continue
            def agreement(hit: tuple[str, Mapping[str, Any]], local: dict[str, Any] = local) -> int:
                return sum(1 for k, v in hit[1].items() if _scalar(v) and k in local and local[k] == v)
            key, init = max(hits, key=agreement)
            text = str(cause).strip().splitlines()
            detail = text[0] if text else type(cause).__name__
            if not isinstance(cause, (ValueError, TypeError)):
                detail = f"{type(cause).__name__}: {detail}"
            named = _named_argument(init, detail)
            if len(named) == 1:
                key = f"{key}.{named[0]}" if key in (groups or {}) else f"{key}.init_args.{named[0]}"
            return ConfigValueError(key, detail, "", source_of(key, args))
    return None


# ---------------------------------------------------------------- errors with their own report
def contract_error(exc: BaseException) -> BaseException | None:
    """The encoder/loss contract error behind ``exc`` (jsonargparse wraps errors raised by a
    constructor in a union-type message), or ``None``; its message is one line naming the key."""
    from da_toolkit.losses.contract import LossContractError
    from da_toolkit.models.contract import EncoderContractError

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (EncoderContractError, LossContractError)):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def weights_file_error(exc: BaseException) -> BaseException | None:
    """The missing or unloadable weights file behind ``exc`` (a model built with ``weights: FILL_ME``,
    a file of another architecture), or ``None``; jsonargparse wraps it in a union-type message."""
    from da_toolkit.models.weights.errors import WeightsError

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (FileNotFoundError, WeightsError)) and cause is not exc:
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None
