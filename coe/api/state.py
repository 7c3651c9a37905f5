"""What the HTTP layer needs to answer: the experts by id and what to say about them."""

from __future__ import annotations

from dataclasses import dataclass, field

from coe.config import ServerConfig
from coe.experts.base import ExpertBackend, ExpertInfo
from coe.routing.service import RoutingService


@dataclass
class ApiState:
    server: ServerConfig
    experts: dict[str, ExpertBackend] = field(default_factory=dict)
    infos: dict[str, ExpertInfo] = field(default_factory=dict)
    router: RoutingService | None = None
