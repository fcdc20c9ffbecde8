"""`callbuffer worker --ray`: a machine joins the cluster with speech cores, and leaves it when stopped."""

from __future__ import annotations

import os
import subprocess
import sys

from server.cli.worker import worker_command
from server.cluster.actors import join_cluster
from server.cluster.speech_pool import speech_slots
from tests.conftest import wait_for


def test_the_command_is_ray_start_with_the_speech_and_classification_resources():
    command = worker_command("head:6379", 3)
    assert command[1:] == [
        "start",
        "--address=head:6379",
        "--num-cpus=3",
        '--resources={"callbuffer_speech": 3, "callbuffer_judge": 1}',
        "--block",
    ]


def test_a_worker_joins_with_its_cores_and_leaves_when_stopped(speech_cluster, tmp_path):
    join_cluster(speech_cluster.address)
    before = speech_slots()
    env = {**os.environ, "CALLBUFFER_CACHE_DIR": str(tmp_path)}
    cli = [sys.executable, "-c", "from server.cli.main import main; main()"]
    worker = subprocess.Popen([*cli, "worker", "--ray", speech_cluster.address, "--cores", "1"], env=env)
    try:
        wait_for(lambda: speech_slots() == before + 1, 90, "the worker's core to join", every=0.5)
    finally:
        worker.terminate()
        worker.wait(60)
    wait_for(lambda: speech_slots() == before, 90, "the worker's core to leave", every=0.5)


def test_a_head_that_is_not_there_is_a_clean_error():
    """`callbuffer worker` against a port nothing listens on: a clear error at once, no Ray node left
    retrying in the background."""
    cli = [sys.executable, "-c", "from server.cli.main import main; main()"]
    done = subprocess.run(
        [*cli, "worker", "--ray", "127.0.0.1:9", "--cores", "1"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "no Ray head answers at 127.0.0.1:9" in done.stderr
    assert "joining" not in done.stderr  # ray start never ran
