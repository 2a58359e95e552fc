import dataclasses
"""``python -m train``: one parser with a subcommand per step (TRL's make_parser/main convention),
every recipe parsed by its step, kit settings read by the kit's own load_config."""

from pathlib import Path

import pytest
import yaml

from train.__main__ import STEPS, make_parser
from train.__main__ import main as train

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "train/recipes"


def test_every_step_is_a_subcommand_and_an_unknown_one_is_refused_naming_them(capsys):
    _, steps = make_parser()
    assert len(steps) == len(STEPS)
    assert {"sft", "sample", "select", "dpo", "kto", "quantize", "merge", "tiny-model",
            "measure-decontamination"} <= set(steps)
    with pytest.raises(SystemExit):
        train(["sfft", "--config", "x.yaml"])
    assert "invalid choice: 'sfft'" in capsys.readouterr().err


def _step(recipe: Path) -> str:
    """The step that reads a recipe: its name's first word (sft_cot_lora: sft, select_hard_pairs: select)."""
    return recipe.stem.split("_")[0]


# kit_tir.yaml is a kit config, read through sample.yaml's kit: mapping (tested below).
@pytest.mark.parametrize("recipe", sorted(p.relative_to(RECIPES).as_posix() for p in RECIPES.glob("*/*.yaml")
                                          if p.parent.name != "accelerate" and p.stem != "kit_tir"))
def test_every_recipe_parses_with_its_steps_subcommand(recipe):
    _, steps = make_parser()
    step_parser, _ = steps[_step(RECIPES / recipe)]
    # use_cpu: the GPU recipes ask for bf16, which the trainer configs refuse on a machine without one.
    extra = ["--use_cpu", "true"] if _step(RECIPES / recipe) in ("sft", "kto", "dpo") else []
    parsed = step_parser.parse_args_and_config(["--config", str(RECIPES / recipe), *extra])  # raises on an unknown key
    assert parsed and all(dataclasses.is_dataclass(section) for section in parsed if section is not None)


def test_the_tiny_model_step_runs_in_process(tmp_path, capsys):
    train(["tiny-model", "--out", str(tmp_path / "tiny")])
    assert (tmp_path / "tiny" / "config.json").is_file() and "tiny model written" in capsys.readouterr().out


def test_kit_settings_are_the_kits_own_fields_and_sections(tmp_path):
    from kit.config import load_config

    _, steps = make_parser()
    step_parser, _ = steps["sample"]
    recipe = yaml.safe_load((RECIPES / "smoke/sample.yaml").read_text())
    kit_file = load_config(recipe["kit"]["config"])
    (args,) = step_parser.parse_args_and_config(["--config", str(RECIPES / "smoke/sample.yaml")])
    cfg = args.sampling_config()
    assert (cfg.model, cfg.num_samples) == (recipe["kit"]["model"], recipe["kit"]["num_samples"])
    assert cfg.tool_format.code_trigger == kit_file.tool_format.code_trigger and cfg.executor == kit_file.executor  # the rest: the file's
    assert cfg.early_stop == []  # training data wants every sample, whatever the kit config says
    # A nested section goes to the kit as it is, merged over the file's.
    (args,) = step_parser.parse_args_and_config(["--config", str(RECIPES / "smoke/sample.yaml"), "--kit",
                                                 '{"config": "cpu-smol", "executor": {"memory_mb": 1024}}'])
    assert args.sampling_config().executor.memory_mb == 1024


@pytest.mark.parametrize("kit, message", [
    ('{"config": "cpu-smol", "num_sample": 2}', r"kit: .*num_sample"),
    ('[1, 2]', "kit: expected a mapping"),
])
def test_a_bad_kit_setting_fails_while_the_recipe_is_parsed(kit, message):
    _, steps = make_parser()
    step_parser, _ = steps["sample"]
    with pytest.raises(ValueError, match=message):
        step_parser.parse_args_and_config(["--config", str(RECIPES / "smoke/sample.yaml"), "--kit", kit])
