"""``callbuffer worker --ray HOST:PORT``: add this machine's cores to a Ray cluster as speech workers.

It is Ray's own ``ray start`` joining the cluster, with the ``callbuffer_speech`` resource set to the
cores given, so that front-ends (``callbuffer serve --ray``) place one Whisper worker per core here, and
``callbuffer_judge`` set to 1, for one classification worker (the sentence encoder) per machine. It
runs until stopped (Ctrl-C, SIGTERM), which takes the node out of the cluster; the turns its workers had
in hand go to the others. Operations teams that run Ray already can use ``ray start`` themselves with
those resources.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from types import FrameType

import click

from server.cluster.actors import worker_resources


def worker_command(address: str, cores: int) -> list[str]:
    """The ``ray start`` command line that joins `address` with `cores` speech cores, in the foreground."""
    ray = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    return [
        ray,
        "start",
        f"--address={address}",
        f"--num-cpus={cores}",
        f"--resources={json.dumps(worker_resources(cores))}",
        "--block",
    ]


@click.command()
@click.option("--ray", "address", required=True, help="The cluster's head, HOST:PORT (Ray's GCS port, 6379).")
@click.option(
    "--cores",
    type=click.IntRange(1, 1024),
    default=None,
    help="Cores this machine gives to speech workers, one Whisper each (default: all it has).",
)
def worker(address: str, cores: int | None) -> None:
    """Join a Ray cluster as speech workers for `callbuffer serve --ray` front-ends."""
    cores = cores or len(os.sched_getaffinity(0))
    command = worker_command(address, cores)
    if not os.path.exists(command[0]):
        raise click.ClickException("Ray is not installed here: pip install 'callbuffer[cluster]'")
    if problem := _unreachable(address):
        raise click.ClickException(f"no Ray head answers at {address}: {problem}")
    click.echo(f"callbuffer: joining the Ray cluster at {address} with {cores} speech cores", err=True)
    code = _run_forwarding_signals(command)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise click.ClickException(f"ray start ended with exit code {code} (is the head at {address} up?)")


def _run_forwarding_signals(command: list[str]) -> int:
    """Run `command` until it ends; SIGTERM or Ctrl-C here stops it too (``ray start --block`` then takes
    its node out of the cluster), instead of leaving it running without us."""
    child = subprocess.Popen(command)

    def stop(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing listens at HOST:PORT (``ray start`` would retry for minutes), or None when it does."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except ValueError:
        return "expected HOST:PORT"
    except OSError as exc:
        return str(exc)
