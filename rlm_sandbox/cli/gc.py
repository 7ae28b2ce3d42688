"""``rlm-sandbox gc``: remove what dead processes left behind."""

from __future__ import annotations

import typer

from ..errors import RLMSandboxError
from .common import fail


def gc(images: bool = typer.Option(False, "--images", help="Also remove images built for older kernels.")) -> None:
    """Remove sandbox containers whose owner process is gone (and, with --images, stale images)."""
    from ..sandbox.image import prune_stale_images
    from ..sandbox.reaper import reap_orphans

    try:
        removed = reap_orphans()
        typer.echo(f"removed {len(removed)} orphaned sandbox container(s)")
        if images:
            pruned = prune_stale_images()
            typer.echo(f"removed {len(pruned)} stale image(s)" + "".join(f"\n  {tag}" for tag in pruned))
    except RLMSandboxError as exc:
        raise fail(str(exc)) from None
