"""Config loading: YAML files, overrides and validation errors that name the field."""

import pytest

from kit.config import CONFIG_DIR, KitConfig, load_config


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_load(path):
    assert isinstance(load_config(str(path)), KitConfig)


def test_config_by_name_and_override():
    cfg = load_config("cpu-smol", num_samples=3, temperature=None)
    assert cfg.num_samples == 3
    assert cfg.temperature == load_config("cpu-smol").temperature


def test_unknown_field_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("num_sample: 4\n")
    with pytest.raises(ValueError, match="num_sample"):
        load_config(str(path))


def test_missing_config_lists_known_names():
    with pytest.raises(FileNotFoundError, match="cpu-smol"):
        load_config("no-such-config")


@pytest.mark.parametrize("fields, name", [
    ({"profile": "aimo9"}, "profile"), ({"mode": "fast"}, "mode"), ({"num_samples": 0}, "num_samples"),
    ({"early_stop": ["7/3"]}, "early-stop"), ({"prompt_template": "no placeholder"}, "prompt_template"),
])
def test_bad_values_are_refused_by_name(fields, name):
    with pytest.raises(ValueError, match=name):
        KitConfig(**fields)


def test_early_stop_accepts_a_comma_separated_flag():
    assert KitConfig(early_stop="4/4,last:4/5").early_stop == ["4/4", "last:4/5"]
