"""In-model mixture-of-experts: upcycling dense checkpoints into Mixtral-format MoEs, router
initialisation and training, and per-layer routing statistics."""
