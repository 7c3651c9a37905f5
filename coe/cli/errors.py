"""Turn the errors a user can fix into one readable line and a non-zero exit, not a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

from coe.errors import UserInputError

err_console = Console(stderr=True)


class UsageError(UserInputError):
    """Options that do not fit together; the message says what to pass instead."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from coe.config import ConfigError
    from coe.models.bundled import ModelPackageMissing
    from coe.errors import CoEError
    from coe.models.resolve import CheckpointError
    from coe.routing.artifact import RouterArtifactError
    from coe.cli.deploy_cmd import DeployError

    # UserInputError covers UsageError and the errors of plugins (router_training's unknown
    # embedder/classifier/scorer, bad data file, missing data package) without importing them.
    return (
        ConfigError, ModelPackageMissing, CheckpointError, RouterArtifactError, CoEError, UserInputError,
        DeployError,
    )


@contextlib.contextmanager
def fail_cleanly() -> Iterator[None]:
    try:
        yield
    except _user_errors() as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False)
        raise typer.Exit(code=2) from None
