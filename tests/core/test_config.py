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


def test_config_number_is_one_check_with_one_line_errors() -> None:
    from reproman.config import config_number

    assert config_number(None, "[a] b", default=7) == 7 and config_number("  ", "[a] b", default=7) == 7
    assert config_number(" 2.5 ", "[a] b") == 2.5 and config_number("0", "[a] b") == 0
    assert config_number("3", "[a] b", minimum=1, whole=True) == 3
    for raw, kwargs, said in [
        ("soon", {"seconds": True}, "[a] b must be a finite number of seconds, zero or more; got 'soon'"),
        ("nan", {"seconds": True}, "[a] b must be a finite number of seconds, zero or more; got 'nan'"),
        ("inf", {}, "[a] b must be a finite number, zero or more; got 'inf'"),
        ("-1", {}, "[a] b must be a finite number, zero or more; got '-1'"),
        ("0", {"above": True, "seconds": True}, "[a] b must be a finite number of seconds, more than zero; got '0'"),
        ("2.5", {"minimum": 1, "whole": True}, "[a] b must be a whole number, at least 1; got '2.5'"),
        ("0", {"minimum": 1, "whole": True}, "[a] b must be a whole number, at least 1; got '0'"),
        ("", {}, "[a] b must be a finite number, zero or more; got ''"),  # no default: blank is no number
    ]:
        with pytest.raises(ConfigError) as raised:
            config_number(raw, "[a] b", **kwargs)  # type: ignore[arg-type]
        assert str(raised.value) == said


@pytest.mark.parametrize("variable, value, said", [
    ("REPROMAN_GENERAL_MAX_CONNECTIONS", "lots", "[general] max_connections must be a whole number, at least 1"),
    ("REPROMAN_SSH_IDLE_TIMEOUT", "nan", "[ssh] idle_timeout must be a finite number of seconds, more than zero"),
    ("REPROMAN_JOBS_RETRY_FOR", "-5", "[jobs] retry_for must be a finite number of seconds, zero or more"),
    ("REPROMAN_JOBS_MAX_POLL_INTERVAL", "0", "[jobs] max_poll_interval must be a finite number of seconds, "
                                             "more than zero"),
])
def test_each_configured_number_is_checked_by_the_shared_parser(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                                  value: str, said: str) -> None:
    from reproman.config import reset_config
    from reproman.jobs.follow import max_interval, retry_seconds
    from reproman.resources.parallel import connection_limit
    from reproman.resources.persistent import idle_seconds

    monkeypatch.setenv(variable, value)
    reset_config()
    reader = {"MAX_CONNECTIONS": connection_limit, "IDLE_TIMEOUT": lambda: idle_seconds("ssh"),
              "RETRY_FOR": retry_seconds, "MAX_POLL_INTERVAL": max_interval}
    with pytest.raises(ConfigError) as raised:
        next(f for k, f in reader.items() if variable.endswith(k))()
    assert str(raised.value).startswith(f"{said}; got {value!r}"), raised.value
    reset_config()
