"""Reference outputs from a plain vLLM engine, with no CoE code in the generation path.

Run as a subprocess (vLLM's engine wants a `__main__` guard and its own process): reads a JSON job
on stdin, prints greedy outputs as JSON on stdout. Chat-format experts go through vLLM's own
`LLM.chat` (vLLM applies the tokenizer's chat template itself); completion-format experts get the
transcript text, the one piece of CoE the comparison must share by design.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    job = json.load(sys.stdin)
    os.environ.update(job["env"])
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from vllm import LLM, SamplingParams

    from coe.config import PromptFormat
    from coe.experts.prompts import render_completion, stop_strings

    fmt = PromptFormat(job["prompt_format"])
    llm = LLM(
        model=job["checkpoint"],
        dtype="bfloat16",
        enforce_eager=True,
        max_model_len=job["max_model_len"],
        max_num_seqs=16,
        seed=0,
    )
    params = SamplingParams(temperature=0.0, max_tokens=job["max_tokens"], stop=stop_strings(fmt, []) or None)
    texts = []
    for messages in job["conversations"]:
        if fmt is PromptFormat.chat:
            out = llm.chat(messages, params, use_tqdm=False)
        else:
            out = llm.generate(render_completion(messages), params, use_tqdm=False)
        text = out[0].outputs[0].text
        # CoE strips the space a base model writes after "A:" (see coe.experts.vllm_backend).
        texts.append(text.lstrip() if fmt is PromptFormat.completion else text)
    print("COE-JSON " + json.dumps(texts), flush=True)


if __name__ == "__main__":
    main()
