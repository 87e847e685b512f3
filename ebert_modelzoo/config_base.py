"""Strict pydantic base for every config section, and errors that name the full YAML key path."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Type, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

C = TypeVar("C", bound="StrictConfig")


class StrictConfig(BaseModel):
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


class ParamsError(ValueError):
    """A params file or section is invalid; the message is one line naming the file and key."""


def _join_path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        else:
            path = f"{path}.{item}" if path else str(item)
    return path


def describe_validation_error(err: ValidationError, prefix: str = "", tags: Collection[str] = ()) -> str:
    """Turn a pydantic error into one line per problem, each starting with the dotted key path.

    Union/discriminator noise (pydantic's tagged-union loc entries such as ``function-after[...]``,
    and the union member ``tags`` a caller names) is dropped so the path is the one a user sees
    in the YAML.
    """
    lines = []
    for problem in err.errors():
        loc = tuple(
            part for part in problem["loc"] if not (isinstance(part, str) and ("[" in part or part in tags))
        )
        path = _join_path(prefix, loc) or "<root>"
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
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
    (union member ``tags`` left out of it)."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        where = f"{source}: " if source else ""
        raise ParamsError(where + describe_validation_error(err, prefix, tags)) from None


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
