"""``rlm-sandbox image``: build or inspect the sandbox image."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import RLMSandboxError
from .common import fail

image_app = typer.Typer(no_args_is_help=True, help="Build or inspect the sandbox image.")


@image_app.command("build")
def image_build(
    base: Optional[str] = typer.Option(None, "--base", metavar="IMAGE",
                                       help="Base image with python3 >= 3.11 (default: official slim, "
                                            "else one built from Debian packages)."),
) -> None:
    """Build the sandbox image for this kernel version (no registry needed)."""
    from ..sandbox.image import ensure_image

    try:
        typer.echo(ensure_image(base=base))
    except RLMSandboxError as exc:
        raise fail(str(exc)) from None


@image_app.command("show")
def image_show() -> None:
    """Print the image tag this kernel version uses."""
    from ..sandbox.image import default_image_tag

    typer.echo(default_image_tag())
