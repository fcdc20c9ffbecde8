"""Fixtures shared by the encoder tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_blas_thread():
    """Pin BLAS to one thread: on a busy 2-core box multi-threaded small sgemms stall for seconds."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def fast(one_blas_thread):
    """The float32 e5 engine, loaded once per test module, with BLAS on one thread."""
    from models.e5_fast import FastE5

    return FastE5()
