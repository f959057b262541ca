"""Config validation (schema, defaults, errors naming the key) and the rerun digests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nfp_steps.config import (
    ConfigError,
    code_digest,
    config_slice,
    digest,
    load_config,
    load_schema,
    module_files,
)
from nfp_steps.stage_specs import STAGES

REPO = Path(__file__).resolve().parents[1]


def test_repo_config_is_valid_and_unchanged_by_defaults():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg = load_config(REPO / "config.yaml")
    assert cfg == raw  # config.yaml spells out every key with its default value


def test_every_schema_key_has_description_type_and_default():
    def walk(schema, path):
        for key, sub in schema.get("properties", {}).items():
            where = f"{path}.{key}" if path else key
            for field in ("description", "type", "default"):
                assert field in sub, f"{where} has no {field}"
            if sub.get("type") == "object":
                assert sub.get("additionalProperties") is not None, f"{where} allows anything"
                walk(sub, where)

    schema = load_schema()
    assert schema["additionalProperties"] is False
    walk(schema, "")


def test_defaults_filled_in():
    cfg = load_config({"ranking": {"top": 3}})
    assert cfg["ranking"]["top"] == 3
    assert cfg["ranking"]["min_prev_tok"] == 0.1
    assert cfg["bounds"]["layernorm"]["mode"] == "local"
    assert cfg["models"] == {"nfp-toy": "models/nfp-toy"}


def test_empty_section_means_defaults():
    assert load_config({"verify": None})["verify"] == {"top": 10}


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        ({"ranking": {"top": -1}}, "config.yaml: ranking.top: -1 is less than the minimum of 1"),
        ({"ranking": {"topp": 3}}, "config.yaml: ranking.topp: unknown key"),
        ({"rankings": {}}, "config.yaml: rankings: unknown key"),
        ({"bounds": {"heads": {"softmax": "x"}}}, "bounds.heads.softmax: 'x' is not one of"),
        ({"prompt": {"seq_len": "many"}}, "prompt.seq_len: 'many' is not of type 'integer'"),
        ({"prompt": {"seq_len": 2.5}}, "prompt.seq_len: 2.5 is not of type 'integer'"),
        ({"prompt": {"tokens": [1, -2]}}, "prompt.tokens[1]: -2 is less than the minimum of 0"),
        ({"ranking": {"min_prev_tok": 1.5}}, "ranking.min_prev_tok: 1.5 is greater than"),
        ({"ranking": {"threshold": float("nan")}}, "ranking.threshold: nan is not a finite number"),
        ({"bounds": {"layers": {"adaptive": {"target_slack": 0}}}},
         "bounds.layers.adaptive.target_slack: 0.0 is less than or equal to the minimum of 0"),
        ({"models": {}}, "models: {} should be non-empty"),
        ({"models": {"a/b": "x"}}, "models: 'a/b' is not a valid name"),
        ({"induction": {"correct": 3}}, "give both token ids or neither"),
        ({"prompt": {"kind": "tokens"}}, "prompt.tokens: kind is 'tokens' but the token list is"),
    ],
)
def test_bad_values_name_the_key(cfg, expected):
    with pytest.raises(ConfigError) as info:
        load_config(cfg, name="config.yaml")
    assert expected in str(info.value)


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError) as info:
        load_config({"ranking": {"top": 0, "diag_top": -1}}, name="c.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith("c.yaml: ranking.") for line in lines)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("ranking:\n  top: [1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+, column \d+: invalid YAML"):
        load_config(bad)
    wrong = tmp_path / "list.yaml"
    wrong.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="is not of type 'object'"):
        load_config(wrong)


def test_strings_for_non_string_keys_are_parsed():
    # what `snakemake --config 'ranking={top: 5}'` and PyYAML's `1e-5` deliver
    cfg = load_config({"ranking": {"top": "5", "threshold": "1e-3"},
                       "bounds": {"layers": {"adaptive": {"min_rel_improve": "1e-5"}}},
                       "induction": {"correct": "null", "incorrect": "null"}})
    assert cfg["ranking"]["top"] == 5
    assert cfg["ranking"]["threshold"] == 1e-3
    assert cfg["bounds"]["layers"]["adaptive"]["min_rel_improve"] == 1e-5
    assert cfg["induction"]["correct"] is None
    with pytest.raises(ConfigError, match="ranking.top: '5x' is not of type 'integer'"):
        load_config({"ranking": {"top": "5x"}})


def test_int_for_float_key_gives_the_same_digest():
    a = load_config({"ranking": {"threshold": 0}})
    b = load_config({"ranking": {"threshold": 0.0}})
    assert isinstance(a["ranking"]["threshold"], float)
    assert digest(a) == digest(b)


def test_schema_override_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NFP_SCHEMA", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="config schema not found .*NFP_SCHEMA"):
        load_config({})


def test_digest_canonical_and_sensitive():
    base = {"a": 1, "b": [0.1, None, True, "x"], "c": {"d": 2.0}}
    assert digest(base) == digest({"c": {"d": 2.0}, "b": [0.1, None, True, "x"], "a": 1})
    variants = [
        {**base, "a": 1.0},  # int vs float
        {**base, "a": True},  # int vs bool
        {**base, "a": "1"},  # int vs str
        {**base, "a": None},
        {**base, "c": {"d": 2.0000000000000004}},  # one ulp
        {**base, "c": {"d": -0.0 + 2.0, "e": 0}},
        {**base, "b": [0.1, None, True]},
        {**base, "b": [0.1, None, True, "x", ""]},
        {"a": 1, "b": [0.1, None, True, "x"]},
    ]
    digests = {digest(v) for v in variants}
    assert len(digests) == len(variants)
    assert digest(base) not in digests
    assert digest(0.0) != digest(-0.0)
    assert digest(["ab", "c"]) != digest(["a", "bc"])
    with pytest.raises(TypeError):
        digest({1: 2})
    with pytest.raises(TypeError):
        digest({"a": object()})


def test_config_slice_picks_only_listed_keys():
    cfg = load_config({"models": {"gpt2.small": "x", "other": "y"}})
    assert config_slice(cfg, ["models.{model}", "bounds.layernorm"], "gpt2.small") == {
        "models": {"gpt2.small": "x"},
        "bounds": {"layernorm": {"mode": "local"}},
    }
    with pytest.raises(ConfigError, match="models.absent"):
        config_slice(cfg, ["models.{model}"], "absent")


def test_every_stage_slice_exists_in_the_default_config():
    cfg = load_config(REPO / "config.yaml")
    for stage in STAGES.values():
        # every key a stage names exists (raises otherwise); a stage may depend on none
        assert config_slice(cfg, stage.config_keys, "nfp-toy") or not stage.config_keys


def test_stage_slices_differ_only_where_config_changed():
    cfg = load_config({})
    edited = load_config({"ranking": {"top": 7}})
    changed = {
        name for name, s in STAGES.items()
        if digest(config_slice(cfg, s.config_keys, "nfp-toy"))
        != digest(config_slice(edited, s.config_keys, "nfp-toy"))
    }
    assert changed == {"ranking"}


def test_code_digest(tmp_path):
    assert module_files("config") == [Path(__import__("nfp_steps.config").config.__file__)]
    d1 = code_digest(["config", "stage_specs"])
    assert d1 == code_digest(["stage_specs", "config", "config"])  # order and duplicates
    assert d1 != code_digest(["config"])
    with pytest.raises(FileNotFoundError, match="nfp_steps module 'no_such_module' not found"):
        code_digest(["config", "no_such_module"])


def test_code_digest_follows_source_bytes(tmp_path, monkeypatch):
    import nfp_steps.config as config_mod

    (tmp_path / "io").mkdir()
    (tmp_path / "io" / "__init__.py").write_text("")
    (tmp_path / "io" / "hf.py").write_text("X = 1\n")
    (tmp_path / "bounds.py").write_text("Y = 1\n")
    monkeypatch.setattr(config_mod, "PACKAGE_DIR", tmp_path)
    before = code_digest(["bounds", "io"])
    assert before == code_digest(["io", "bounds"])
    (tmp_path / "io" / "hf.py").write_text("X = 2\n")  # a file inside a package
    after = code_digest(["bounds", "io"])
    assert after != before
    assert code_digest(["io/hf"]) != code_digest(["bounds"])
    (tmp_path / "bounds.py").write_bytes(b"Y = 1\r\n")  # bytes, not text: line endings count
    assert code_digest(["bounds", "io"]) != after


@pytest.mark.parametrize("raw, message", [
    ({"induction": {"correct": 4, "incorrect": 4}}, "are the same token (4)"),
    ({"prompt": {"kind": "periodic", "period": 100, "seq_len": 64}},
     "prompt.period: 100 is longer than prompt.seq_len 64"),
])
def test_cross_key_rules(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config({"models": {"m": "x"}, **raw})


# Numeric keys whose every finite value is meaningful (non-finite values are always refused).
UNBOUNDED = {"ranking.threshold"}  # an Effect threshold: Effects can be negative


def test_every_numeric_key_has_a_documented_range_and_every_string_its_values():
    def walk(schema, path):
        for key, sub in schema.get("properties", {}).items():
            where = f"{path}.{key}" if path else key
            types = {sub["type"]} if isinstance(sub["type"], str) else set(sub["type"])
            if types & {"integer", "number"} and where not in UNBOUNDED:
                assert {"minimum", "exclusiveMinimum"} & set(sub), f"{where} has no lower bound"
            if "string" in types and where != "models":
                assert "enum" in sub or "pattern" in sub, f"{where}: allowed values undocumented"
            if sub["type"] == "array":
                assert {"minimum", "enum"} & set(sub["items"]), f"{where}: items unbounded"
            if sub["type"] == "object":
                walk(sub, where)

    walk(load_schema(), "")


@pytest.mark.parametrize("text, message", [
    ("prompt: {seq_len: 8\n", "invalid YAML"),
    ("prompt:\n\tseq_len: 8\n", "invalid YAML"),
    ("- 1\n- 2\n", "top level must be a mapping"),
])
def test_cli_config_that_is_not_yaml_is_one_line_error(tmp_path, capsys, text, message):
    """A malformed --config file is a one-line error naming the file, not an internal error."""
    from nfp_steps.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["rope", "--seqLen", "4"]) == 0  # (rope reads no config: a control)
    capsys.readouterr()
    assert main(["induction", "models/nfp-toy", "--config", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and str(bad) in err and "internal error" not in err
    assert len(err.splitlines()) == 1


def test_commands_read_the_config_in_the_working_directory(tmp_path, monkeypatch):
    from nfp_steps.commands.common import REPO_CONFIG, default_config

    monkeypatch.chdir(tmp_path)
    assert default_config() == REPO_CONFIG  # none here: the repository's
    (tmp_path / "config.yaml").write_text("prompt: {seed: 7}\n")
    assert default_config().resolve() == (tmp_path / "config.yaml").resolve()
