"""A worker guest for the job tests and bench/jobs.py: job handlers that succeed, fail a few
times, always fail or take their time; routes that submit jobs and read their status (the
guest side of wr_sdk.jobs). Every attempt logs `job-run <id> <type> <attempt>`, which the
tests count in the engine's log."""

import time

from wr_sdk import Job, JobError, Module, Request, jobs, log

app = Module()


def _ran(job: Job) -> None:
    log.info(f"job-run {job.id} {job.type} {job.attempt}")


@app.job("echo")
def echo(job: Job) -> bytes:
    _ran(job)
    return job.payload


@app.job("noop")
def noop(job: Job) -> None:
    return None


@app.job("flaky")
def flaky(job: Job) -> dict[str, int]:
    """Fails until attempt `succeed_on` of the payload."""
    _ran(job)
    succeed_on = int(job.json()["succeed_on"])
    if job.attempt < succeed_on:
        raise RuntimeError(f"flaky: attempt {job.attempt} fails")
    return {"attempt": job.attempt}


@app.job("fail")
def fail(job: Job) -> None:
    _ran(job)
    raise ValueError(f"always fails (attempt {job.attempt})")


@app.job("sleep")
def sleep(job: Job) -> str:
    """Sleeps `secs` of the payload on the attempts listed in `slow_on` (all when absent)."""
    _ran(job)
    spec = job.json()
    if job.attempt in spec.get("slow_on", [job.attempt]):
        time.sleep(float(spec["secs"]))
    return f"slept on attempt {job.attempt}"


@app.route("/noop")
def noop_request(request: Request) -> None:
    return None


@app.route("/submit")
def submit(request: Request) -> object:
    """Submit the job the JSON body describes (fields of jobs.submit); answer its id."""
    spec = request.json()
    try:
        job_id = jobs.submit(**spec)
    except JobError as exc:
        return {"error": str(exc), "status": exc.status}
    return {"job_id": job_id}


@app.route("/status")
def status(request: Request) -> object:
    try:
        found = jobs.status(request.text())
    except JobError as exc:
        return {"error": str(exc), "status": exc.status}
    return {
        "state": found.state,
        "result": found.result.decode("utf-8", "replace"),
        "error": found.error,
        "attempt": found.attempt,
    }
