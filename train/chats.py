"""SFT training data: loading rows as chat messages, and tokenizing them with a loss mask.

Rows come from a local .jsonl file or a Hugging Face dataset id and become
``{"id", "problem", "messages"}``. Four row forms are accepted (checked in this order):

* ``prompt`` + ``completion``: TRL's conversational prompt-completion form, as ``train select``
  writes the kit's own sampled traces; taken as they are (prompt and trace were written by the
  kit in the format of the config it sampled with, so nothing is re-rendered or re-templated);
* ``messages``: a chat (NuminaMath-CoT/-TIR style); the last user message is the problem;
* ``problem`` + ``trace``: a tool-integrated-reasoning trace (train/data/tir_traces_sample.jsonl);
* ``problem`` + ``solution``: a worked solution (GSM8K, NuminaMath); GSM8K's ``<<a*b=c>>``
  calculator annotations are removed and, when the solution has no ``\\boxed{}`` but the row
  has an ``answer``, the solution ends with ``\\boxed{answer}``.

An assistant message containing a ```` ```python ```` block is a TIR solution: its user message is
``kit.tir.render_prompt(problem, template)`` (the inference prompt) and it is rendered by the
tool-call format the kit infers with (``training_format``: the kit config's ``tool_format`` and
``output_max_chars``; ``render_solution`` in kit/toolcalls/): fences keep the data's blocks and
truncate every ```` ```output ```` as the kit does, tagged writes each cell in its code tags and
each output as the kit's reply. Outputs are rendered by the function that writes the kit's replies
at inference, so the model trains on exactly the text the kit shows it. Other (CoT) rows keep the
bare problem as the user message unless a template is given. Rows are decontaminated against the
evaluation splits by default (train/decontaminate.py). Every row is checked while loading, so a
missing column fails with the file and line before any model is loaded.

``tokenize_with_mask`` applies the chat template and labels only the assistant's text and the
template's end-of-turn marker (``end_of_turn``: ChatML's ``<|im_end|>`` even where eos is
``<|endoftext|>``, as in Qwen2.5 base models); with ``mask_tool_outputs`` the tool outputs the kit
inserts are not labelled (the format's ``output_spans`` finds them). It never cuts a chat: whether
a long chat is chunked by packing or dropped is the trainer's decision (train/sft.py).

A row without an ``id`` column gets its position as id (``kit.problem_io.row_id``), as in the
evaluation splits and the kit, so a problem file's problems and its reference solutions match.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

from eval.splits import SPLITS, hub_rows, is_hub_id
from kit.config import KitConfig
from kit.problem_io import iter_rows, problem_text, row_id
from kit.tir import CODE_FENCE, DEFAULT_PROMPT_TEMPLATE, chat_messages
from kit.toolcalls import FencesFormat, TaggedFormat, make_format
from train import decontaminate as decon

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
GSM8K_SLICE = DATA_DIR / "gsm8k_train_slice.jsonl"
TIR_TRACES = DATA_DIR / "tir_traces_sample.jsonl"

IGNORE_INDEX = -100  # the label torch's cross-entropy skips
COT_TEMPLATE = "{problem}"  # NuminaMath-CoT trains on the bare problem

# GSM8K's calculator annotations always contain "=": "<<16-3-4=9>>".
_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>\n]*=[^<>\n]*>>")

TextFormat = FencesFormat | TaggedFormat  # the tool-call formats training renders


def _no_encoding(text: str) -> list[int]:
    raise RuntimeError("training renders tool outputs as text and never encodes a reply")


def training_format(cfg: KitConfig) -> TextFormat:
    """The tool-call format TIR solutions are rendered in for a model the kit will run with
    ``cfg``: its ``tool_format`` (fences or tagged) and ``output_max_chars``."""
    if cfg.tool_format.kind == "harmony":
        raise ValueError("tool_format.kind: harmony has no training rendering (gpt-oss is used as released); "
                         "train with fences or tagged")
    return make_format(cfg, _no_encoding)


def strip_calculator_annotations(solution: str) -> str:
    return _CALCULATOR_ANNOTATION.sub("", solution)


def cot_solution(solution: str, answer: str | None) -> str:
    """A worked solution without calculator annotations, ending with ``\\boxed{answer}`` when it
    has no boxed answer of its own (GSM8K's answer is a separate column)."""
    text = strip_calculator_annotations(solution).strip()
    if answer is not None and str(answer).strip() and "\\boxed" not in text:
        text += f"\nThe answer is $\\boxed{{{str(answer).strip()}}}$."
    return text


def is_tir(solution: str) -> bool:
    return CODE_FENCE in solution


def _check_text(value: object, where: str, column: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: column {column!r} is empty or not text")
    return value


def _problem_and_solution(row: dict, where: str) -> tuple[str, str, str | None]:
    """(problem, assistant text, answer-to-box) of one row, whatever its form."""
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ValueError(f"{where}: column 'messages' is not a list of {{role, content}} objects")
        users = [m for m in messages if m.get("role") == "user"]
        assistants = [m for m in messages if m.get("role") == "assistant"]
        if not users or not assistants:
            raise ValueError(f"{where}: column 'messages' needs a 'user' and an 'assistant' message "
                             f"(roles: {[m.get('role') for m in messages]})")
        problem = _check_text(users[-1].get("content"), where, "messages[user].content")
        return problem, _check_text(assistants[-1].get("content"), where, "messages[assistant].content"), None
    problem = problem_text(row, where)
    if "trace" in row:
        return problem, _check_text(row["trace"], where, "trace"), None
    if "solution" in row:
        return problem, _check_text(row["solution"], where, "solution"), row.get("answer")
    raise ValueError(f"{where}: no 'solution', 'trace' or 'messages' column (columns: {sorted(row)})")


def check_messages(value: object, where: str, column: str, roles: set[str]) -> list[dict]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(m, dict) and m.get("role") in roles and isinstance(m.get("content"), str)
                       for m in value)):
        raise ValueError(f"{where}: column {column!r} is not a non-empty list of {{role, content}} messages "
                         f"with roles in {sorted(roles)}")
    return value


def _prompt_completion_example(row: dict, where: str, row_id: str) -> dict:
    """A ``prompt`` + ``completion`` row (the kit's own prompt and trace) as it is."""
    prompt = check_messages(row["prompt"], where, "prompt", {"system", "user"})
    completion = check_messages(row["completion"], where, "completion", {"assistant"})
    users = [m["content"] for m in prompt if m["role"] == "user"]
    if not users:
        raise ValueError(f"{where}: column 'prompt' has no 'user' message")
    return {"id": row_id, "problem": users[-1], "messages": [*prompt, *completion]}


def row_to_example(row: dict, where: str, row_id: str, template: str | None, system_prompt: str,
                   tool_format: TextFormat) -> dict:
    """One row as ``{"id", "problem", "messages"}`` (see the module docstring for the rules)."""
    if "prompt" in row and "completion" in row:
        return _prompt_completion_example(row, where, row_id)
    problem, solution, answer = _problem_and_solution(row, where)
    if is_tir(solution):
        solution = tool_format.render_solution(solution.strip())
        prompt_template = template or DEFAULT_PROMPT_TEMPLATE
    else:
        solution = cot_solution(solution, answer)
        prompt_template = template or COT_TEMPLATE
    messages = chat_messages(problem, prompt_template, system_prompt)
    messages.append({"role": "assistant", "content": solution})
    return {"id": row_id, "problem": problem, "messages": messages}


def _source_rows(source: str, split: str, limit: int | None) -> Iterator[tuple[str, dict]]:
    if Path(source).exists():
        return iter_rows(source)
    if is_hub_id(source):
        return hub_rows(source, split, limit)
    raise FileNotFoundError(f"training data {source!r}: no such file, and not a hub dataset id")


def load_messages(source: str | Path, split: str = "train", limit: int | None = None, *,
                  template: str | None = None, system_prompt: str = "",
                  tool_format: TextFormat | None = None, drop_incorrect: bool = True,
                  decontaminate: bool = True, decontaminate_against: tuple[str, ...] = tuple(SPLITS),
                  report_path: str | Path | None = None) -> list[dict]:
    """Training rows ``{"id", "problem", "messages"}`` from a local .jsonl/.csv/.parquet file or a
    hub dataset id (``split`` applies to hub datasets only).

    ``template`` is the user-message template (``{problem}`` is replaced); None: the kit's TIR
    prompt for TIR rows and the bare problem for CoT rows. ``tool_format`` renders the TIR rows
    (``training_format``; None: the kit's defaults, fences). ``drop_incorrect`` drops rows whose
    ``pred_correct`` column is false (model traces with a wrong final answer). With
    ``decontaminate``, rows overlapping the ``decontaminate_against`` evaluation splits are
    dropped and the report is logged (and written to ``report_path`` if given). ``limit`` caps
    the rows read, before filtering."""
    source = str(source)
    tool_format = training_format(KitConfig()) if tool_format is None else tool_format
    rows: list[dict] = []
    incorrect = 0
    for index, (where, row) in enumerate(_source_rows(source, split, limit)):
        if limit is not None and index >= limit:
            break
        example = row_to_example(row, where, row_id(row, index), template, system_prompt, tool_format)
        if drop_incorrect and row.get("pred_correct") is False:
            incorrect += 1
            continue
        rows.append(example)
    if incorrect:
        log.info("%s: dropped %d rows whose trace has a wrong answer (pred_correct false)", source, incorrect)
    if not decontaminate:
        return rows
    kept, report = decon.decontaminate(rows, decon.build_eval_ngrams(decontaminate_against))
    report["source"], report["eval_splits"] = source, sorted(decontaminate_against)
    if report_path is not None:
        decon.write_report(report, report_path)
    if report["dropped"]:
        log.warning("%s: decontamination dropped %d of %d rows (13-gram overlap with %s)", source,
                    report["dropped"], report["rows"],
                    sorted({s for r in report["dropped_rows"] for s in r["splits"]}))
    return kept


_PROBE = "\u2063probe\u2063"  # content no real message contains (U+2063 is invisible)


def end_of_turn(tokenizer) -> str:
    """The marker the chat template writes after an assistant message's content (whitespace after
    it excluded), read off a rendered one-turn chat: not ``eos_token``, which a base model's
    tokenizer may set to something else (Qwen2.5: eos ``<|endoftext|>``, turns end ``<|im_end|>``)."""
    messages = [{"role": "user", "content": "?"}, {"role": "assistant", "content": _PROBE}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    marker = text[text.index(_PROBE) + len(_PROBE):].rstrip()
    if not marker:
        raise ValueError("the chat template writes nothing after an assistant message, so the model could "
                         f"never learn to stop; end assistant turns with a marker (rendered: {text!r})")
    return marker


def _assistant_spans(tokenizer, messages: list[dict], text: str) -> list[tuple[int, int]]:
    """Character spans of the assistant contents in the rendered chat, each extended over the
    end-of-turn marker that follows it (the model must learn to stop)."""
    marker = end_of_turn(tokenizer)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        if not text.startswith(prefix):
            raise ValueError("the chat template renders earlier turns differently once later turns follow; "
                             "cannot locate the assistant turns")
        start = text.find(message["content"], len(prefix))
        if start < 0:
            raise ValueError(f"assistant message {i} does not appear verbatim in the rendered chat template")
        end = start + len(message["content"])
        if text.startswith(marker, end):
            end += len(marker)
        spans.append((start, end))
    return spans


def tokenize_with_mask(tokenizer, messages: list[dict], mask_tool_outputs: bool = True,
                       tool_format: TextFormat | None = None) -> dict:
    """``input_ids``, ``attention_mask`` and ``labels`` (lists) for one whole chat.

    Labels are ``IGNORE_INDEX`` except on the assistant contents and their end-of-turn marker;
    with ``mask_tool_outputs`` also on the tool outputs the kit writes, found by
    ``tool_format.output_spans`` (None: the kit's default format, fences, where the
    ```` ```output ```` fence stays labelled: it is the stop string the model must learn to write).
    A token is labelled when its first character is in a labelled span. Needs a fast tokenizer
    (offsets)."""
    if not tokenizer.is_fast:
        raise ValueError("tokenize_with_mask needs a fast tokenizer (character offsets)")
    tool_format = training_format(KitConfig()) if tool_format is None else tool_format
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    labelled = []
    for (start, end), message in zip(_assistant_spans(tokenizer, messages, text),
                                     (m for m in messages if m["role"] == "assistant")):
        cursor = start
        if mask_tool_outputs:
            for out_start, out_end in tool_format.output_spans(message["content"]):
                labelled.append((cursor, start + out_start))
                cursor = start + out_end
        labelled.append((cursor, end))
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoding["input_ids"])
    offsets = list(encoding["offset_mapping"])
    labels = [token if any(a <= first < b for a, b in labelled) else IGNORE_INDEX
              for token, (first, _last) in zip(input_ids, offsets)]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}
