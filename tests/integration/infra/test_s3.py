"""The S3 fixture: objects round-trip through a real moto server over HTTP."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.infra.s3 import S3Server


def test_put_get_list_delete(s3_server: S3Server) -> None:
    s3 = s3_server.client()
    body = b"\x00wasm-bytes\xff" * 1000
    s3.put_object(Bucket=s3_server.bucket, Key="modules/echo/1.0.0.wasm", Body=body)
    assert (
        s3.get_object(Bucket=s3_server.bucket, Key="modules/echo/1.0.0.wasm")["Body"].read() == body
    )
    listed = s3.list_objects_v2(Bucket=s3_server.bucket, Prefix="modules/")
    assert [o["Key"] for o in listed["Contents"]] == ["modules/echo/1.0.0.wasm"]
    s3.delete_object(Bucket=s3_server.bucket, Key="modules/echo/1.0.0.wasm")
    assert s3.list_objects_v2(Bucket=s3_server.bucket, Prefix="modules/")["KeyCount"] == 0


def test_missing_key_is_an_error(s3_server: S3Server) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="NoSuchKey"):
        s3_server.client().get_object(Bucket=s3_server.bucket, Key="absent")


def test_a_child_process_reaches_it_through_the_env(s3_server: S3Server) -> None:
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="from-parent", Body=b"hi")
    code = (
        "import boto3, sys; "
        f"print(boto3.client('s3').get_object(Bucket={s3_server.bucket!r}, "
        "Key='from-parent')['Body'].read().decode())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**s3_server.env(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hi"
