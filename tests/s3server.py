"""A real S3-compatible server for the tests: moto's server mode on 127.0.0.1, in
a process of its own, with authentication on (a wrong secret is refused as by
S3), its request log kept to count requests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from daskcluster import die_with_parent, free_port

#: Requests moto serves before it checks signatures: the set-up's IAM calls.
SETUP_REQUESTS = 3


class S3Server:
    """moto's server on 127.0.0.1 with one user allowed everything; always torn
    down, every wait bounded. ``env`` holds what a user's environment would."""

    def __init__(self, tmp: Path) -> None:
        import boto3

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "moto.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)},
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        self._wait()
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="batchproc")
        iam.put_user_policy(
            UserName="batchproc",
            PolicyName="all",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        )
        key = iam.create_access_key(UserName="batchproc")["AccessKey"]
        self.env = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def _wait(self, timeout: float = 30.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto's server ended: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("moto's server did not start within 30 s")

    def client(self):  # noqa: ANN201 - boto3's client
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def requests(self) -> list[tuple[str, str, int]]:
        """Every request served so far: (method, path, status), from the server's own log."""
        lines = self.log.read_text(errors="replace").splitlines()
        found = [re.search(r'"([A-Z]+) (\S+) HTTP/[\d.]+"\s+(\d+)', re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in lines]
        return [(m.group(1), m.group(2), int(m.group(3))) for m in found if m]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
