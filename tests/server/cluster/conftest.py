"""A real local Ray cluster on this machine (on its own address; nothing leaves it): a head with no speech
cores and two speech worker nodes of one core each (separate raylet and worker processes, as on separate
machines), for the cluster tests."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

from server.cluster.actors import worker_resources

ray = pytest.importorskip("ray", reason="the cluster tests need ray (pip install '.[test]')")


class SpeechCluster:
    """The cluster, its address, and its speech nodes (``add_speech_node``, ``kill_node``)."""

    def __init__(self, cache_dir) -> None:
        from ray.cluster_utils import Cluster

        self.cache_dir = cache_dir
        with self._worker_env():
            self.cluster = Cluster(
                initialize_head=True,
                head_node_args={"num_cpus": 0, "include_dashboard": False},
            )
        self.address = self.cluster.address
        self.nodes = [self.add_speech_node() for _ in range(2)]

    def add_speech_node(self):
        with self._worker_env():
            node = self.cluster.add_node(num_cpus=1, resources=worker_resources(1))
        self.cluster.wait_for_nodes()
        return node

    @contextmanager
    def _worker_env(self):
        """The nodes' processes inherit this process's environment: the session's model cache."""
        before = os.environ.get("CALLBUFFER_CACHE_DIR")
        os.environ["CALLBUFFER_CACHE_DIR"] = str(self.cache_dir)
        try:
            yield
        finally:
            if before is None:
                del os.environ["CALLBUFFER_CACHE_DIR"]
            else:
                os.environ["CALLBUFFER_CACHE_DIR"] = before

    def ensure_speech_nodes(self, count: int = 2) -> None:
        """Add speech nodes until the cluster has `count` (an earlier test may have killed one; a killed
        node leaves this list at once, while Ray takes a while to see it dead)."""
        while len(self.cluster.worker_nodes) < count:
            self.add_speech_node()

    def kill_node(self, node_id: str) -> None:
        """Kill the node (raylet and every worker process on it) whose id is `node_id`, at once."""
        node = next(n for n in self.cluster.worker_nodes if n.node_id == node_id)
        self.cluster.remove_node(node, allow_graceful=False)

    def shutdown(self) -> None:
        ray.shutdown()
        self.cluster.shutdown()


@pytest.fixture(scope="package")
def speech_cluster(cache_dir):
    cluster = SpeechCluster(cache_dir)
    yield cluster
    cluster.shutdown()
