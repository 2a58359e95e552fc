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


def test_engine_args_carry_the_scale_out_and_timing_settings():
    from kit.engine import engine_args

    cfg = KitConfig(data_parallel_size=1, load_format="dummy", tensor_parallel_size=1, max_num_seqs=64)
    args = engine_args(cfg, "/models/some-7b")
    assert (args.data_parallel_size, args.load_format, args.max_num_seqs) == (1, "dummy", 64)
    assert args.enable_prefix_caching and args.model == "/models/some-7b"


def test_data_parallel_size_below_one_is_refused():
    with pytest.raises(ValueError, match="data_parallel_size"):
        KitConfig(data_parallel_size=0)


def test_the_8gpu_sampling_config_is_data_parallel_without_early_stop():
    cfg = load_config("sampling-8gpu")
    assert (cfg.data_parallel_size, cfg.tensor_parallel_size, cfg.early_stop) == (8, 1, [])


def test_tensor_parallel_size_zero_takes_every_visible_gpu():
    import torch

    from kit.engine import engine_args

    assert engine_args(KitConfig(tensor_parallel_size=0), "m").tensor_parallel_size == max(1, torch.cuda.device_count())
    assert load_config("aimo2-l4x4").tensor_parallel_size == 0
