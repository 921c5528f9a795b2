"""The keepalive settings go through core's shared number parser: same checks, same one-line errors."""

from __future__ import annotations

import pytest

from reproman.config import reset_config
from reproman.errors import ConfigError
from reproman_backend_ssh.alive import DEFAULT_COUNT, DEFAULT_INTERVAL, settings


def test_keepalive_settings_from_ssh_config_then_reproman_config(monkeypatch: pytest.MonkeyPatch) -> None:
    reset_config()
    assert settings() == (DEFAULT_INTERVAL, DEFAULT_COUNT)
    monkeypatch.setenv("REPROMAN_SSH_SERVER_ALIVE_INTERVAL", "0")
    reset_config()
    assert settings() == (0.0, DEFAULT_COUNT)  # 0 turns the check off
    assert settings({"serveraliveinterval": "5", "serveralivecountmax": "2"}) == (5.0, 2)
    reset_config()


@pytest.mark.parametrize("ssh_config, variable, said", [
    ({"serveraliveinterval": "often"}, None, "ServerAliveInterval must be a finite number, zero or more; got 'often'"),
    ({}, ("REPROMAN_SSH_SERVER_ALIVE_COUNT_MAX", "inf"),
     "[ssh] server_alive_count_max must be a finite number, zero or more; got 'inf'"),
    ({}, ("REPROMAN_SSH_SERVER_ALIVE_INTERVAL", "-2"),
     "[ssh] server_alive_interval must be a finite number, zero or more; got '-2'"),
    ({}, ("REPROMAN_SSH_SERVER_ALIVE_INTERVAL", "1e300"), "[ssh] server_alive_interval must be at most 86,400; got '1e300'"),
    ({"serveraliveinterval": "9" * 400}, None, "ServerAliveInterval must be a finite number, zero or more; got '99999999999999999999'... (400 characters)"),
])
def test_a_keepalive_setting_that_is_no_number_is_one_line(monkeypatch: pytest.MonkeyPatch, ssh_config: dict[str, str],
                                                           variable: tuple[str, str] | None, said: str) -> None:
    if variable:
        monkeypatch.setenv(*variable)
    reset_config()
    with pytest.raises(ConfigError) as raised:
        settings(ssh_config)
    assert str(raised.value) == said
    reset_config()
