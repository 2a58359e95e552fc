"""Config loading: YAML files, overrides and validation errors that name the field."""

import pytest

from kit.config import (CONFIG_DIR, SECTIONS, ExecutorConfig, KitConfig, add_config_flags, config_overrides,
                        load_config)


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


def test_the_executor_section_comes_from_yaml_and_keeps_its_other_fields_under_an_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("num_samples: 2\nexecutor:\n  cell_timeout_s: 7\n  memory_mb: 1024\n")
    cfg = load_config(str(path), executor={"cell_timeout_s": 3, "max_processes": None})
    assert cfg.executor == ExecutorConfig(cell_timeout_s=3, memory_mb=1024)
    assert load_config(str(path)).executor == ExecutorConfig(cell_timeout_s=7, memory_mb=1024)


def test_a_whole_mapping_of_kit_settings_with_an_executor_section_loads():
    # As a training recipe's `kit:` mapping is passed: load_config(**recipe["kit"]).
    cfg = load_config(**{"num_samples": 2, "executor": {"max_concurrent_cells": 3}})
    assert (cfg.num_samples, cfg.executor.max_concurrent_cells, cfg.executor.cell_timeout_s) == (2, 3, 5.0)


def test_an_unknown_executor_field_is_named_with_where_it_was(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("executor:\n  cell_timeout: 4\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: executor: unknown ExecutorConfig field\(s\) \['cell_timeout'\]"):
        load_config(str(path))
    with pytest.raises(ValueError, match=r"config overrides: executor: unknown .*'memory'"):
        load_config(executor={"memory": 1})
    with pytest.raises(ValueError, match=r"config overrides: unknown KitConfig field\(s\) \['cell_timeout_s'\]"):
        load_config(cell_timeout_s=4)
    with pytest.raises(ValueError, match="executor: expected a mapping"):
        KitConfig(executor=5)


@pytest.mark.parametrize("fields, name", [
    ({"cell_timeout_s": 0}, "executor.cell_timeout_s"), ({"memory_mb": 0}, "executor.memory_mb"),
    ({"max_concurrent_cells": -1}, "executor.max_concurrent_cells"),
])
def test_bad_executor_values_are_refused_by_name(fields, name):
    with pytest.raises(ValueError, match=name):
        KitConfig(executor=fields)


def test_every_config_field_has_a_flag_that_reaches_it():
    import argparse
    import dataclasses

    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(["--num-samples", "3", "--no-enable-prefix-caching", "--executor.cell-timeout-s", "9",
                              "--executor.memory-mb", "512", "--executor.max-processes", "4",
                              "--executor.max-concurrent-cells", "2", "--executor.capture-chars", "100"])
    cfg = load_config("cpu-smol", **config_overrides(args))
    assert (cfg.num_samples, cfg.enable_prefix_caching) == (3, False)
    assert cfg.executor == ExecutorConfig(cell_timeout_s=9.0, memory_mb=512, max_processes=4,
                                          max_concurrent_cells=2, capture_chars=100)
    flags = {a.dest for a in parser._actions}
    expected = {f.name for f in dataclasses.fields(KitConfig) if f.name not in SECTIONS}
    expected |= {f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    assert expected <= flags


def test_unset_flags_leave_the_files_executor_settings():
    import argparse

    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    assert load_config("aimo3-h100", **config_overrides(parser.parse_args([]))) == load_config("aimo3-h100")
    assert load_config("aimo3-h100").executor == ExecutorConfig(cell_timeout_s=5, memory_mb=4096, max_concurrent_cells=8)


def test_the_answer_rule_and_early_stop_rules_come_from_the_config():
    cfg = KitConfig(profile="aimo2", early_stop=["4/4", "decided"])
    assert cfg.answer_profile().name == "aimo2"
    assert [str(r) for r in cfg.stop_rules()] == ["4/4", "decided"]


def test_the_aimo3_gpt_oss_config_holds_the_winners_settings():
    from kit.config import TimePolicyConfig

    cfg = load_config("aimo3-gptoss120b-h100")
    assert (cfg.tool_format.kind, cfg.tool_format.reasoning_effort, cfg.profile) == ("harmony", "high", "aimo3")
    assert (cfg.quantization, cfg.kv_cache_dtype, cfg.async_scheduling, cfg.enable_prefix_caching) == \
        ("mxfp4", "fp8", True, True)
    assert (cfg.max_num_seqs, cfg.max_model_len, cfg.warm_page_cache) == (256, 65536, True)
    assert (cfg.num_samples, cfg.temperature, cfg.min_p, cfg.logprobs, cfg.stop_at_first_answer) == \
        (8, 1.0, 0.02, 5, True)
    assert cfg.vote.method == "entropy" and cfg.executor.cell_timeout_s == 6
    assert cfg.time_policy == TimePolicyConfig(kind="clamp", reserve_s=300, min_s=300, max_s=900)
    assert "[0, 99999]" in cfg.system_prompt and "modulo 100000" in cfg.system_prompt
    assert cfg.max_new_tokens >= cfg.max_model_len // 2 and cfg.max_code_rounds >= 32  # not capped tightly


def test_the_aimo3_early_stop_fires_when_any_four_finished_samples_agree():
    rules = load_config("aimo3-gptoss120b-h100").stop_rules()

    def fires(answers, pending):
        return any(rule.fires(answers, pending) for rule in rules)

    assert fires(["7", "3", "7", "5", "7", "7"], pending=2)  # the first four disagree; four 7s among six
    assert not fires(["7", "3", "7", "5", "7"], pending=3)  # three agree: wait
    assert not fires(["7", "7", "7", "3", "3", "3", "5", "5"], pending=0)  # never four


def test_the_aimo2_openmath_nemotron_config_uses_its_tags_and_the_write_ups_limits():
    from kit.config import ToolFormatConfig

    cfg = load_config("aimo2-openmath-nemotron-l4x4")
    assert cfg.tool_format == ToolFormatConfig(kind="tagged")  # the defaults are OpenMath-Nemotron's tags
    assert (cfg.profile, cfg.tensor_parallel_size, cfg.num_samples) == ("aimo2", 0, 16)
    assert (cfg.max_code_rounds, cfg.executor.cell_timeout_s, cfg.output_max_chars) == (6, 2, 200)
    assert "up to 6 Python code calls" in cfg.prompt_template and cfg.temperature > 0  # vLLM at 0: N copies
    assert cfg.time_policy.kind == "bank" and cfg.early_stop == ["4/4"]


@pytest.mark.parametrize("section, values, message", [
    ("tool_format", {"kind": "xml"}, r"tool_format\.kind: 'xml'"),
    ("tool_format", {"kind": "tagged", "code_output_end": " "}, r"tool_format\.code_output_end: must not be empty"),
    ("tool_format", {"reasoning_effort": "max"}, r"tool_format\.reasoning_effort"),
    ("tool_format", {"code_trigger": "eos"}, r"tool_format\.code_trigger"),
    ("speculative", {"method": "eagle3"}, r"speculative\.model: eagle3 needs"),
    ("speculative", {"method": "medusa"}, r"speculative\.method"),
    ("time_policy", {"kind": "clamp", "min_s": 900, "max_s": 300}, r"time_policy: need 0 <= min_s <= max_s"),
    ("time_policy", {"kind": "fixed"}, r"time_policy\.kind"),
    ("vote", {"method": "combined", "confidence_weight": -1}, r"vote\.confidence_weight"),
])
def test_bad_section_values_are_refused_naming_the_field(section, values, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, logprobs=5, **{section: values})


def test_sampling_and_budget_fields_are_checked():
    with pytest.raises(ValueError, match="top_k must be >= 0 and min_p"):
        load_config(None, min_p=1.5)
    with pytest.raises(ValueError, match="max_candidate_tokens, logprobs and block_size"):
        load_config(None, max_candidate_tokens=-1)
    with pytest.raises(ValueError, match="block_size: must be >= 0"):
        load_config(None, block_size=-16)
    with pytest.raises(ValueError, match="unknown ToolFormatConfig field"):
        load_config(None, tool_format={"code_start": "x"})
