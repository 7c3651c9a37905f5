"""What an expert costs per million tokens: the price the router weighs against quality.

The order of sources: the expert's own `cost_per_mtok` in coe.yaml; for a remote model, LiteLLM's
bundled price map (input price; LITELLM_LOCAL_MODEL_COST_MAP keeps it offline); for a local model,
its active parameters at LOCAL_USD_PER_MTOK_PER_BPARAM dollars per million tokens per billion
parameters, a rough hosted-inference rate that only needs to order local experts sensibly (an MoE
pays for its active experts, not its total size). None when nothing is known: then the router
treats every expert as costing the same and budget knobs have nothing to save.
"""

from __future__ import annotations

import os

from coe.config import ExpertConfig

LOCAL_USD_PER_MTOK_PER_BPARAM = 0.10


def litellm_price_per_mtok(model: str) -> float | None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        return None
    entry = litellm.model_cost.get(model) or litellm.model_cost.get(model.split("/", 1)[-1])
    price = (entry or {}).get("input_cost_per_token")
    return float(price) * 1e6 if price else None


def cost_per_mtok(expert: ExpertConfig, active_params: float | None = None) -> float | None:
    if expert.cost_per_mtok is not None:
        return expert.cost_per_mtok
    if expert.remote is not None:
        return litellm_price_per_mtok(expert.remote.model)
    if active_params:
        return active_params / 1e9 * LOCAL_USD_PER_MTOK_PER_BPARAM
    return None


def relative_costs(costs: dict[str, float | None]) -> dict[str, float]:
    """Each cost over the highest; all 1.0 when any is unknown (a partial price list would make the
    unpriced experts look free)."""
    known = [c for c in costs.values() if c is not None]
    if len(known) < len(costs) or not known or max(known) <= 0:
        return {e: 1.0 for e in costs}
    top = max(known)
    return {e: float(c) / top for e, c in costs.items()}
