"""The Kaggle competitions the kit serves, one entry each.

An entry names the kit config holding its hardware defaults (tensor parallel size, dtype,
quantization, memory fraction, max model length: ``kit/configs/<config>.yaml``), the answer
rule, the time limits and how Kaggle talks to the notebook. Adding the next competition is
adding an entry to ``COMPETITIONS`` and a config file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kit.kaggle.offline import competition_mounts


@dataclass(frozen=True)
class Competition:
    name: str = field(metadata={"help": "Short name used on the command line and in notebooks."})
    kaggle_slug: str = field(metadata={"help": "The competition's id on Kaggle (competition_sources; data_dirs: where its data is mounted)."})
    config: str = field(metadata={"help": "Kit config (kit/configs) with the hardware defaults."})
    answer_profile: str = field(metadata={"help": "Answer rule (kit.answers.PROFILES)."})
    num_problems: int = field(metadata={"help": "Problems in one scored run (what the time bank divides)."})
    time_limit_s: float = field(metadata={"help": "Notebook run-time limit for the whole run."})
    api: str = field(metadata={"help": "'aimo1' (aimo.make_env / iter_test / predict) or 'kaggle_evaluation' (an inference server)."})
    server_module: str = field(default="", metadata={"help": "kaggle_evaluation module with the inference server class."})
    server_class: str = field(default="", metadata={"help": "Inference server class, built with the function named predict."})
    response_timeout_s: float | None = field(default=None, metadata={"help": "Gateway's limit on every call but the first (None: no per-call limit)."})
    ids_overwritten: bool = field(default=False, metadata={"help": "Kaggle's gateway writes the ids it sent into the submission (AIMO-3's newer kaggle_evaluation core) instead of checking the returned ones (AIMO-2's)."})
    startup_limit_s: float = field(default=900.0, metadata={"help": "The server must start serving within this long of the notebook's start."})
    safety_margin_s: float = field(default=900.0, metadata={"help": "Time held back from the bank for start-up, the final write and clock slack."})
    machine_shape: str = field(default="", metadata={"help": "kernel-metadata.json machine_shape (the accelerator)."})
    hardware: str = field(default="", metadata={"help": "The accelerator, in words."})
    notes: str = field(default="", metadata={"help": "What else a competitor must know."})

    @property
    def data_dirs(self) -> tuple[str, str]:
        """Where Kaggle mounts the competition's data (test.csv, and kaggle_evaluation/ or aimo/
        beside it): (2026 layout, older layout), tried in that order (kit.kaggle.offline)."""
        return competition_mounts(self.kaggle_slug)

    @property
    def test_csvs(self) -> tuple[str, str]:
        """The competition's public test file in each of ``data_dirs``."""
        new, old = self.data_dirs
        return f"{new}/test.csv", f"{old}/test.csv"


COMPETITIONS: dict[str, Competition] = {
    c.name: c
    for c in (
        Competition(
            name="aimo1",
            kaggle_slug="ai-mathematical-olympiad-prize",
            config="aimo1-t4x2",
            answer_profile="aimo1",
            num_problems=50,
            time_limit_s=9 * 3600,
            api="aimo1",
            machine_shape="NvidiaTeslaT4",
            hardware="P100 or 2x T4 (no bf16 on T4: fp16 and GPTQ weights)",
            notes="Answers are integers taken mod 1000.",
        ),
        Competition(
            name="aimo2",
            kaggle_slug="ai-mathematical-olympiad-progress-prize-2",
            config="aimo2-l4x4",
            answer_profile="aimo2",
            num_problems=50,
            time_limit_s=5 * 3600,
            api="kaggle_evaluation",
            server_module="kaggle_evaluation.aimo_2_inference_server",
            server_class="AIMO2InferenceServer",
            response_timeout_s=30 * 60,
            machine_shape="NvidiaL4",
            hardware="4x L4 (24 GB each)",
            notes="50 public + 50 private problems; integer answers 0-999.",
        ),
        Competition(
            name="aimo3",
            kaggle_slug="ai-mathematical-olympiad-progress-prize-3",
            config="aimo3-h100",
            answer_profile="aimo3",
            num_problems=110,
            time_limit_s=5 * 3600,
            api="kaggle_evaluation",
            server_module="kaggle_evaluation.aimo_3_inference_server",
            server_class="AIMO3InferenceServer",
            response_timeout_s=9 * 3600,
            ids_overwritten=True,
            machine_shape="NvidiaH100",
            hardware="H100 (80 GB)",
            notes="Integer answers 0-99999, no modulo; the private set runs twice in a fixed order, "
            "scored 1 / 0.5 / 0 per problem.",
        ),
    )
}


def get_competition(name: str) -> Competition:
    try:
        return COMPETITIONS[name]
    except KeyError:
        raise ValueError(f"competition {name!r} is not one of {sorted(COMPETITIONS)}") from None
