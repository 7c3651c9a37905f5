"""State shared by replicas: placement, stats, affinity, limits. In-process by default, Redis when configured."""

from coe.state.factory import open_store
from coe.state.store import InMemoryStore, StateStore

__all__ = ["InMemoryStore", "StateStore", "open_store"]
