"""Strict base classes of every config section, and errors that name the full YAML key path.

The sections derive from Cerebras Model Zoo's config classes when Model Zoo is installed
(ebert_modelzoo/cerebras/config_bases.py), from plain pydantic otherwise; the keys, types and
checks are the same either way."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Collection, Optional, Type, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from ebert_modelzoo.cerebras.config_bases import DataSectionBase, ModelSectionBase, SectionBase
from ebert_modelzoo.errors import ParamsError

C = TypeVar("C", bound="StrictConfig")


class StrictConfig(SectionBase):
    """Base for config sections: unknown keys are errors, values are type-checked and frozen.

    Field docstrings are the user documentation of each key.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_assignment=True,
        use_attribute_docstrings=True,
        protected_namespaces=(),
        allow_inf_nan=False,  # a NaN learning rate would train NaN weights without a word
    )


class ModelSection(StrictConfig, ModelSectionBase):
    """Base of a registered model's config (``trainer.init.model``; ``name`` selects the model):
    Model Zoo's ``ModelConfig`` when it is installed."""


class DataSection(StrictConfig, DataSectionBase):
    """Base of a registered data processor's config (a dataloader section; ``data_processor``
    selects the processor): Model Zoo's ``DataConfig`` when it is installed."""


def updated(section: C, **changes: Any) -> C:
    """A copy of ``section`` with ``changes``, validated again (sections are frozen)."""
    return type(section).model_validate({**section.model_dump(by_alias=True), **changes})


def _join_path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        else:
            path = f"{path}.{item}" if path else str(item)
    return path


def _key_names(cls: Any, seen: Optional[set[int]] = None) -> set[str]:
    """Every key name of ``cls`` and of the config sections nested in it (for "did you mean")."""
    seen = set() if seen is None else seen
    if id(cls) in seen:
        return set()
    seen.add(id(cls))
    names: set[str] = set()
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        for name, info in cls.model_fields.items():
            names.add(name)
            names |= _key_names(info.annotation, seen)
    for arg in get_args(cls):
        names |= _key_names(arg, seen)
    return names


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config sections an annotation holds (through Optional, Union, list, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _field_at(cls: Any, loc: tuple[Any, ...]) -> Optional[FieldInfo]:
    """The field a pydantic error location ends at (None when it ends at no field), walking
    nested sections; union members share the keys they have in common, so the first holding
    a key is the one."""
    annotation, info = cls, None
    for part in loc:
        if not isinstance(part, str):
            continue
        info = next((model.model_fields[name] for model in _models_in(annotation)
                     for name, field in model.model_fields.items() if part in (name, field.alias)), None)
        if info is not None:
            annotation = info.annotation
    return info if loc and isinstance(loc[-1], str) else None


_BOUNDS = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}
_OPERATORS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _bound_phrase(field: Optional[FieldInfo], kind: str, ctx: dict[str, Any]) -> str:
    """``>= 1``, ``in [0, 1)``: every bound the field declares (its error names only the one broken)."""
    bounds = {name: getattr(item, name) for item in (field.metadata if field else ())
              for name in _OPERATORS if getattr(item, name, None) is not None}
    low = [(name, bounds[name]) for name in ("gt", "ge") if name in bounds]
    high = [(name, bounds[name]) for name in ("lt", "le") if name in bounds]
    if low and high:
        (low_kind, low_value), (high_kind, high_value) = low[0], high[0]
        return (f"in {'[' if low_kind == 'ge' else '('}{low_value}, {high_value}"
                f"{']' if high_kind == 'le' else ')'}")
    name, value = (low or high or [(kind, ctx[kind])])[0]
    return f"{_OPERATORS[name]} {value}"


def _bound_message(problem: Any, cls: Any, prefix: str, loc: tuple[Any, ...]) -> Optional[str]:
    """A broken field constraint as ``<section path>: <key> must be <bound>, got <value>``, the
    words of a hand-written check (None for any other error)."""
    kind = _BOUNDS.get(problem["type"])
    if kind is None or not loc or not isinstance(loc[-1], str):
        return None
    value = problem["input"]
    if isinstance(problem["ctx"][kind], float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # a float key given an int is that float
    phrase = _bound_phrase(_field_at(cls, problem["loc"]), kind, problem["ctx"])
    return f"{_join_path(prefix, loc[:-1]) or '<root>'}: {loc[-1]} must be {phrase}, got {value}"


def _did_you_mean(key: Any, cls: Any) -> str:
    if cls is None or not isinstance(key, str):
        return ""
    close = difflib.get_close_matches(key, sorted(_key_names(cls)), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_validation_error(err: ValidationError, prefix: str = "", tags: Collection[str] = (),
                              cls: Any = None) -> str:
    """Turn a pydantic error into one line per problem, each starting with the dotted key path.

    Union/discriminator noise (pydantic's tagged-union loc entries such as ``function-after[...]``,
    and the union member ``tags`` a caller names) is dropped so the path is the one a user sees
    in the YAML. A broken field constraint (``Field(ge=1)``) reads as a hand-written check would:
    ``trainer.init.loop: max_steps must be >= 1, got 0``, naming every bound of the field
    (``cls``, the validated class, declares them).
    """
    lines = []
    for problem in err.errors():
        loc = tuple(
            part for part in problem["loc"] if not (isinstance(part, str) and ("[" in part or part in tags))
        )
        path = _join_path(prefix, loc) or "<root>"
        bound = _bound_message(problem, cls, prefix, loc)
        if bound is not None:
            lines.append(bound)
            continue
        if problem["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(loc[-1] if loc else None, cls)
        elif problem["type"] == "missing":
            message = "required key is missing"
        else:
            message = problem["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, "):]
            scalar = not isinstance(problem.get("input"), (dict, list))
            if problem["type"] not in ("value_error", "assertion_error") and "input" in problem and scalar:
                message += f" (got {problem['input']!r})"
        lines.append(f"{path}: {message}")
    return "; ".join(lines)


def parse_section(
    cls: Type[C], data: Any, prefix: str, source: str | Path | None = None, tags: Collection[str] = ()
) -> C:
    """Validate ``data`` as ``cls``; on failure raise ParamsError naming ``source`` and the key path
    (union member ``tags`` left out of it); an unknown key close to a known one gets a "did you mean"."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        where = f"{source}: " if source else ""
        raise ParamsError(where + describe_validation_error(err, prefix, tags, cls)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; missing files and syntax errors become ParamsError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
