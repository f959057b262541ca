"""Load and validate ``config.yaml``; digests of config slices and of the package's code.

Light on purpose (json, hashlib, yaml, jsonschema only): the Snakefile imports it at parse time.
Validation follows ``workflow/schemas/config.schema.yaml`` (JSON Schema 2020-12 written as YAML):
absent keys get the schema's defaults, unknown keys and out-of-range values are errors naming
the key. Digests decide what Snakemake reruns, so they are canonical: sorted keys, floats exact
(``float.hex``), and ``1``, ``1.0``, ``True`` and ``"1"`` all distinct.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMA_ENV = "NFP_SCHEMA"
SCHEMA_NAME = "config.schema.yaml"

# A decimal float as PyYAML fails to recognise it (YAML 1.1 wants a dot: ``1e-5`` is a string).
_INT_TEXT = re.compile(r"^[-+]?\d+$")
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the key path."""


# ---- schema ---------------------------------------------------------------------------------
def schema_path() -> Path:
    """Where the config schema lives: ``$NFP_SCHEMA``, else ``<repo>/workflow/schemas``."""
    override = os.environ.get(SCHEMA_ENV)
    path = Path(override) if override else PACKAGE_DIR.parent / "workflow" / "schemas" / SCHEMA_NAME
    if not path.is_file():
        how = f"${SCHEMA_ENV}" if override else "the repository's workflow/schemas/"
        raise ConfigError(
            f"config schema not found at {path} (from {how}); run from a clone of the repository "
            f"(pip install -e .) or set {SCHEMA_ENV} to the path of {SCHEMA_NAME}"
        )
    return path


def load_schema() -> dict:
    """The config schema as a dict (checked to be a valid draft 2020-12 schema)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    path = schema_path()
    try:
        schema = yaml.safe_load(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
    except (yaml.YAMLError, SchemaError) as exc:
        raise ConfigError(f"{path}: invalid config schema: {exc}") from None
    return schema


# ---- loading --------------------------------------------------------------------------------
def load_config(source: str | os.PathLike | Mapping, name: str | None = None) -> dict:
    """Validate a config (a YAML/JSON file path or a dict) and return it with defaults filled in.

    ``name`` labels error messages (default: the file name, or ``"config"`` for a dict).
    Integers given for float-valued keys become floats, so the same value always has the same
    digest; strings given for keys that cannot be strings are parsed when they spell a valid
    value (``"5"``, ``"1e-5"``, ``"null"``: what ``--config`` overrides and PyYAML deliver).
    Raises :class:`ConfigError` listing every problem, one line each, naming the key path.
    """
    if isinstance(source, Mapping):
        data: Any = copy.deepcopy(dict(source))
        label = name or "config"
    else:
        path = Path(source)
        label = name or str(path)
        data = _read_yaml(path, label)
    schema = load_schema()
    data = _normalize(data, schema)
    problems = _validate(data, schema)
    if not problems:
        problems = _extra_checks(data)
    if problems:
        raise ConfigError("\n".join(f"{label}: {p}" for p in problems))
    return data


def read_config_file(path: Path) -> Any:
    """A config file's YAML content ({} when empty); ConfigError (one line, with the line and
    column) when it cannot be read or parsed."""
    return _read_yaml(Path(path), str(path))


def _read_yaml(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read config file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{label}: {where}invalid YAML: {problem}") from None
    return {} if data is None else data


def _types(schema: Mapping) -> set[str]:
    t = schema.get("type", ())
    return {t} if isinstance(t, str) else set(t)


def _normalize(value: Any, schema: Mapping) -> Any:
    """Fill in defaults for absent keys (recursively) and canonicalise float-valued keys."""
    types = _types(schema)
    if value is None and types == {"object"}:
        value = {}  # a YAML section whose keys are all commented out: use the defaults
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out = {}
        for key, sub in props.items():
            if key not in value and "default" in sub:
                out[key] = _normalize(copy.deepcopy(sub["default"]), sub)
        for key, item in value.items():
            sub = props.get(key)
            if sub is None and isinstance(schema.get("additionalProperties"), Mapping):
                sub = schema["additionalProperties"]
            out[key] = _normalize(item, sub) if sub is not None else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_normalize(item, schema["items"]) for item in value]
    if isinstance(value, str) and types and "string" not in types:
        value = _parse_scalar(value.strip(), types)
    if "number" in types and "integer" not in types:
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                return value
    return value


def _parse_scalar(text: str, types: set[str]) -> Any:
    """A string given for a non-string key, parsed if it spells a value of an allowed type.

    Snakemake's ``--config 'ranking={top: 5}'`` delivers nested values as strings, and PyYAML
    reads ``1e-5`` as a string; anything that does not parse stays a string (and fails
    validation with the key named).
    """
    if "null" in types and text in ("null", "Null", "NULL", "~", ""):
        return None
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    if "integer" in types and _INT_TEXT.match(text):
        return int(text)
    if "number" in types and (_INT_TEXT.match(text) or _FLOAT_TEXT.match(text)):
        return float(text)
    return text


def _key_path(parts: Iterable) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _validate(data: Any, schema: dict) -> list[str]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    problems = []
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for err in errors:
        where = _key_path(err.absolute_path)
        if err.validator == "additionalProperties" and err.validator_value is False:
            allowed = sorted(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(allowed), key=str):
                problems.append(
                    f"{_key_path([*err.absolute_path, key])}: unknown key "
                    f"(allowed here: {', '.join(allowed)})"
                )
            continue
        if "propertyNames" in err.relative_schema_path:
            problems.append(
                f"{where}: {err.instance!r} is not a valid name (letters, digits, '.', '_', '-'; "
                f"starting with a letter or digit)"
            )
            continue
        problems.append(f"{where}: {err.message}" if where else err.message)
    problems.extend(_non_finite(data, []))
    return problems


def _non_finite(value: Any, path: list) -> list[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{_key_path(path)}: {value} is not a finite number"]
    if isinstance(value, dict):
        return [m for k, v in value.items() for m in _non_finite(v, [*path, k])]
    if isinstance(value, list):
        return [m for i, v in enumerate(value) for m in _non_finite(v, [*path, i])]
    return []


def _extra_checks(cfg: dict) -> list[str]:
    """Cross-key rules that JSON Schema would report obscurely."""
    problems = []
    ind = cfg.get("induction", {})
    if (ind.get("correct") is None) != (ind.get("incorrect") is None):
        problems.append(
            "induction.correct and induction.incorrect: give both token ids or neither "
            f"(found correct={ind.get('correct')}, incorrect={ind.get('incorrect')})"
        )
    elif ind.get("correct") is not None and ind["correct"] == ind["incorrect"]:
        problems.append(f"induction.correct and induction.incorrect are the same token "
                        f"({ind['correct']}): the logit difference would be identically zero")
    prompt = cfg.get("prompt", {})
    if prompt.get("kind") == "tokens" and not prompt.get("tokens"):
        problems.append("prompt.tokens: kind is 'tokens' but the token list is empty")
    if (prompt.get("kind") == "periodic" and prompt.get("period") is not None
            and prompt.get("seq_len") is not None and prompt["period"] > prompt["seq_len"]):
        problems.append(f"prompt.period: {prompt['period']} is longer than prompt.seq_len "
                        f"{prompt['seq_len']} (the pattern must repeat)")
    return problems


# ---- slices and digests ---------------------------------------------------------------------
def config_slice(cfg: Mapping, keys: Iterable[str], model: str) -> dict:
    """The part of ``cfg`` that a stage depends on, as a nested dict of just those keys.

    ``keys`` are dotted paths; a ``{model}`` component stands for the model name (which may
    itself contain dots), e.g. ``"models.{model}"`` or ``"bounds.layernorm"``.
    """
    out: dict = {}
    for key in keys:
        parts = [p.replace("{model}", model) for p in key.split(".")]
        node: Any = cfg
        for i, part in enumerate(parts):
            if not isinstance(node, Mapping) or part not in node:
                missing = _key_path(parts[: i + 1])
                raise ConfigError(f"config has no key {missing!r} (needed: {key})")
            node = node[part]
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = copy.deepcopy(node)
    return out


def _canonical(obj: Any, out: list[str]) -> None:
    if obj is None:
        out.append("n;")
    elif isinstance(obj, bool):
        out.append("t;" if obj else "f;")
    elif isinstance(obj, int):
        out.append(f"i{obj};")
    elif isinstance(obj, float):
        out.append(f"d{obj.hex()};")
    elif isinstance(obj, str):
        out.append(f"s{len(obj)}:{obj}")
    elif isinstance(obj, list | tuple):
        out.append(f"l{len(obj)}[")
        for item in obj:
            _canonical(item, out)
        out.append("]")
    elif isinstance(obj, Mapping):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"digest: mapping keys must be strings, found {list(obj)!r}")
        out.append(f"m{len(obj)}{{")
        for key in sorted(obj):
            _canonical(key, out)
            _canonical(obj[key], out)
        out.append("}")
    else:
        raise TypeError(f"digest: cannot digest a value of type {type(obj).__name__}")


def digest(obj: Any) -> str:
    """Canonical sha256 (hex) of a JSON-like value: sorted keys, floats exact, types distinct."""
    parts: list[str] = []
    _canonical(obj, parts)
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


def module_files(module: str) -> list[Path]:
    """Source files of an ``nfp_steps`` module given as ``"io/hf"`` (a .py file or a package)."""
    base = PACKAGE_DIR / module
    file = base.with_suffix(".py")
    if file.is_file():
        return [file]
    if base.is_dir() and (base / "__init__.py").is_file():
        return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)
    raise FileNotFoundError(
        f"nfp_steps module {module!r} not found: neither {file} nor the package {base}/ exists "
        "(stage_specs.STAGES lists it)"
    )


def code_digest(modules: Iterable[str]) -> str:
    """sha256 (hex) over the source bytes of the listed ``nfp_steps`` modules (not imported)."""
    h = hashlib.sha256()
    for module in sorted(set(modules)):
        for path in module_files(module):
            rel = path.relative_to(PACKAGE_DIR).as_posix()
            h.update(f"{rel}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()
