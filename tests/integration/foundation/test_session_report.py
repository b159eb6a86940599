"""The local session copies the published report folder next to the run's logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe.local.services import Services
from modelpipe.local.session import SessionSettings, _report_copy

from tests.fixtures.s3 import S3Endpoint

pytestmark = pytest.mark.integration


def test_report_folder_is_copied_beside_the_run_and_nothing_else(
    s3_server: S3Endpoint, tmp_path: Path
) -> None:
    objects = {
        "tiny/reports/run-1/report.html": b"<html>report</html>",
        "tiny/reports/run-1/images/0.png": b"png bytes",
        "tiny/reports/run-2/report.html": b"<html>other run</html>",
    }
    client = s3_server.client()
    for key, body in objects.items():
        client.put_object(Bucket=s3_server.bucket, Key=key, Body=body)
    settings = SessionSettings(repo_dir=tmp_path, state_dir=tmp_path / "state", environ={}, venv_bin=tmp_path)
    services = Services(s3_env=s3_server.env, registry_url="http://127.0.0.1:1", pids=[])

    path = _report_copy(
        settings, services, f"s3://{s3_server.bucket}/tiny/reports/run-1/report.html", "local-1"
    )

    copy = tmp_path / "state" / "reports" / "local-1"
    assert Path(path) == copy / "report.html"
    assert Path(path).read_bytes() == b"<html>report</html>"
    assert (copy / "images" / "0.png").read_bytes() == b"png bytes"
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == [
        "images/0.png",
        "report.html",
    ]


def test_a_report_not_on_s3_is_not_copied(tmp_path: Path) -> None:
    settings = SessionSettings(repo_dir=tmp_path, state_dir=tmp_path / "state", environ={}, venv_bin=tmp_path)
    services = Services(s3_env={}, registry_url="http://127.0.0.1:1", pids=[])
    assert _report_copy(settings, services, "-", "local-1") == "-"
