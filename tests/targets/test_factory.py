"""Building targets from their configuration: an S3 credentials file others can read is
refused, like ssh refuses such a private key."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.lab.lab import Lab
from tests.support.cli_runner import invoke


def test_an_s3_credentials_file_others_can_read_is_refused(lab: Lab, tmp_path: Path) -> None:
    credentials = tmp_path / "s3-credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIA\naws_secret_access_key = s3\n")
    credentials.chmod(0o644)
    target = {
        "name": "bucket",
        "type": "s3",
        "bucket": "k3s-backups",
        "endpoint_url": "http://127.0.0.1:9",  # never reached: refused before
        "credentials_file": credentials,
    }
    config = lab.write_config(tmp_path / "config.toml", targets=[target])
    result = invoke(["--config", str(config), "list"], environ=lab.env())
    assert result.code == 1
    assert (
        f"bucket: credentials_file {credentials}: mode 0644 lets others read it; refusing to use"
        f" it: `chmod 600 {credentials}`"
    ) in result.stderr
    credentials.chmod(0o600)
    allowed = invoke(["--config", str(config), "list"], environ=lab.env())
    assert "credentials_file" not in allowed.stderr  # now it gets as far as the endpoint
