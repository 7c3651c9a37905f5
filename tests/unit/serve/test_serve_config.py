"""The Serve config `coe deploy config` writes carries `server.access_log` to every deployment of the app."""

from __future__ import annotations

import pytest
from ray.serve.schema import ServeDeploySchema

from coe.config import CoEConfig
from coe.serve.serve_config import build_serve_config

REMOTE_ONLY = {"experts": [{"id": "remote", "remote": {"model": "openai/gpt-4o-mini"}}]}


@pytest.mark.parametrize("access_log", [True, False])
def test_the_access_log_setting_reaches_the_application(access_log: bool) -> None:
    coe_yaml = {**REMOTE_ONLY, "server": {"access_log": access_log}}
    serve_config = build_serve_config(CoEConfig.model_validate(coe_yaml), coe_yaml)
    (app,) = ServeDeploySchema.model_validate(serve_config).applications  # Serve itself reads it so
    assert app.logging_config.enable_access_log is access_log
