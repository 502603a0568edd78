"""Jobs end to end: a real manager dispatching through a real proxy to real engines running
the worker component (tests/integration/engine/guests/worker)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest

from runtime.api import wruntime_pb2 as pb
from tests.infra.process import wait_until
from tests.integration.jobs.conftest import JobCluster

pytestmark = pytest.mark.slow


def test_success_stores_the_result(job_cluster: Callable[..., JobCluster]) -> None:
    cluster = job_cluster()
    job_id = cluster.submit("echo", {"hello": "world"})
    status = cluster.wait_done(job_id)
    assert status.status == pb.JOB_STATE_COMPLETE, status.error_message
    assert json.loads(status.result) == {"hello": "world"}
    assert status.attempt == 1, status.error_message
    assert cluster.runs() == [(job_id, "echo", 1)]
