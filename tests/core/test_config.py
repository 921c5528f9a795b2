"""Config files and REPROMAN_<SECTION>_<KEY> variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from reproman.config import Config
from reproman.errors import ConfigError
from reproman.testing.cli import run_cli


def test_env_keys_with_underscores(tmp_path: Path) -> None:
    config = Config(environ={"REPROMAN_GENERAL_INVENTORY_FILE": "/x/y", "REPROMAN_SSH_CONNECT_TIMEOUT": "3"})
    assert config.get("general", "inventory_file") == "/x/y"
    assert config.get("ssh", "connect_timeout") == "3"


def test_env_overrides_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "extra.cfg"
    cfg.write_text("[general]\ndefault_resource = fromfile\nother_key = 1\n")
    config = Config([cfg], environ={"REPROMAN_GENERAL_DEFAULT_RESOURCE": "fromenv"})
    assert config.get("general", "default_resource") == "fromenv"
    assert config.get("general", "other_key") == "1"


def test_user_config_file_is_read(isolated_user: Path) -> None:
    user_cfg = isolated_user / ".config" / "reproman" / "reproman.cfg"
    user_cfg.parent.mkdir(parents=True)
    user_cfg.write_text("[section]\nkey = value\n")
    assert Config(environ={}).get("section", "key") == "value"


def test_malformed_config_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("[general]\nok = 1\nnot a key value line\n")
    with pytest.raises(ConfigError, match="bad.cfg"):
        Config([cfg], environ={})
    result = run_cli(["-c", str(cfg), "ls"])
    assert result.returncode == 1 and "bad.cfg" in result.stderr and "Traceback" not in result.stderr


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    result = run_cli(["--config", str(tmp_path / "absent.cfg"), "ls"])
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_default_resource_from_config(tmp_path: Path) -> None:
    created = run_cli(["create", "mine", "-t", "shell"])
    assert created.returncode == 0, created.stderr
    cfg = tmp_path / "c.cfg"
    cfg.write_text("[general]\ndefault_resource = nonexistent\n")
    result = run_cli(["-c", str(cfg), "execute", "true"])
    assert result.returncode == 1 and "no resource 'nonexistent'" in result.stderr
    cfg.write_text("[general]\ndefault_resource = mine\n")
    assert run_cli(["-c", str(cfg), "execute", "true"]).returncode == 0
