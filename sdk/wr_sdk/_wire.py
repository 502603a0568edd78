"""The runtime's wire facts a guest needs: a copy of runtime/wire.py values, not an import.

The SDK runs inside the component, where the runtime package does not exist (and would only
grow every instance's snapshot); tests/unit/test_wire.py fails when this copy drifts.
"""

HEALTH_PATH = "/__health"  # engines probe every module here; dispatch answers 200 by default
RESERVED_PATH_PREFIX = "/__"  # module paths the runtime owns
GUEST_IO_DIR = "/wr-io"  # where outbound bodies are handed over as files
INLINE_BODY_MAX = 16 * 1024  # outbound bodies up to this size go inline (list<u8>), not as files
INVALID_CALL_PREFIX = "invalid request: "  # the host refused to send a call as built
JOB_PATH_PREFIX = "/__job/"  # a job attempt: POST /__job/<job type>, the payload as its body
JOBS_HOST = "wr-jobs"  # the proxy's job gateway: http://wr-jobs/submit, /status/<job id>
JOB_ID_HEADER = "x-wr-job-id"  # on a job attempt: the job it runs
JOB_ATTEMPT_HEADER = "x-wr-job-attempt"  # on a job attempt: 1 for the first
