"""Authentication: keys first, then whatever the server asks a person for.

paramiko's own sequence (``SSHClient._auth``) prompts for a second factor on
the process's stdin and cannot ask for a key passphrase or a password
through anything but its arguments. This module replaces it (through
paramiko's ``auth_strategy`` hook) with the order OpenSSH users expect:

1. public keys: the ``key_filename`` parameter, ssh_config's IdentityFile
   entries, the agent's keys, then the default ``~/.ssh/id_*`` files
   (``IdentitiesOnly yes`` drops the agent and keeps only named files);
   an encrypted key's passphrase is asked for;
2. keyboard-interactive (PAM, one-time codes, two-factor prompts), each
   question asked as the server words it;
3. a password.

Questions go to an :data:`Ask` function: on the terminal of a direct
session, or relayed by a persistent-connection host to the terminal of the
command that needs the connection. Passphrases and passwords are kept in
memory (:class:`Secrets`) so a dropped connection can be reopened without
asking again; one-time answers to keyboard-interactive questions are not.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import paramiko

from reproman.plugins import ConfigError, ask_on_terminal

log = logging.getLogger("reproman.backend_ssh.auth")

#: Asks a person one question (``prompt``, whether the answer may be echoed) and returns the answer.
Ask = Callable[[str, bool], str]
#: Gives the :data:`Ask` for the call being served, or None when nobody can be asked.
Asker = Callable[[], "Ask | None"]

DEFAULT_KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")


class AuthFailed(paramiko.AuthenticationException):
    """No method worked; the message says what was tried, for the one-line error."""

    #: A person was asked, and the server refused what they typed (a wrong password or code).
    refused_answers: bool = False


class NothingToAsk(paramiko.AuthenticationException):
    """The server wants an answer from a person and there is no terminal to ask on."""


@attrs.define
class Secrets:
    """Passphrases and a password typed once, kept in memory for reconnecting; never written."""

    passphrases: dict[str, str] = attrs.Factory(dict)
    password: str | None = None


def terminal_asker(interactive: bool | None) -> Asker:
    """Ask on this process's terminal: always when ``interactive``, never when False, else if stdin is one."""

    def asker() -> Ask | None:
        if interactive is False:
            return None
        if interactive is None:
            try:
                if not sys.stdin or not sys.stdin.isatty():
                    return None
            except (OSError, ValueError):
                return None
        return ask_on_terminal

    return asker


class Authenticator:
    """paramiko ``auth_strategy``: tries keys, then keyboard-interactive, then a password.

    ``explicit_keys`` are files the user named (a missing one is an error);
    ``config_keys`` come from ssh_config (missing ones are skipped, as
    OpenSSH does); ``identities_only`` is ssh_config's IdentitiesOnly.
    ``ask`` is fixed when the object is made, in the thread serving the
    call: paramiko calls keyboard-interactive handlers from its own thread.
    """

    def __init__(
        self,
        username: str,
        *,
        place: str = "",
        explicit_keys: Sequence[str] = (),
        config_keys: Sequence[str] = (),
        identities_only: bool = False,
        ask: Ask | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        self.username = username
        #: ``user@host[:port]``, named in every question: a script or a person working through
        #: several resources must know which one asks.
        self.place = place or username
        self.explicit_keys = [os.path.expanduser(k) for k in explicit_keys]
        self.config_keys = [os.path.expanduser(k) for k in config_keys]
        self.identities_only = identities_only
        self.ask = ask
        self.secrets = secrets if secrets is not None else Secrets()
        self.asked = False
        self._tried: list[str] = []

    # -- paramiko's auth_strategy protocol ---------------------------------------
    def authenticate(self, transport: paramiko.Transport) -> list[Any]:
        if not transport.is_active():
            # The handshake failed in paramiko's thread (e.g. no SSH banner); its error says why.
            raise transport.get_exception() or paramiko.SSHException("the connection closed during the handshake")
        allowed = self._allowed(transport)
        if allowed is None:
            return []
        if "publickey" in allowed:
            remaining = self._public_keys(transport)
            if remaining is not None:
                if not remaining:
                    return []
                allowed = set(remaining)  # a key was accepted, the server wants a second factor
        if "keyboard-interactive" in allowed and self.ask is not None:
            remaining = self._keyboard_interactive(transport)
            if remaining == []:
                return []
            if remaining:
                allowed = set(remaining)
        if "password" in allowed and self.ask is not None:
            if self._password(transport):
                return []
        if self.ask is None and allowed & {"keyboard-interactive", "password"}:
            raise NothingToAsk(self._summary(allowed, "and there is no terminal to ask for a password or code"))
        failed = AuthFailed(self._summary(allowed))
        failed.refused_answers = self.asked and any(m in self._tried for m in ("password", "keyboard-interactive"))
        raise failed

    # -- methods --------------------------------------------------------------------
    def _allowed(self, transport: paramiko.Transport) -> set[str] | None:
        """The methods the server accepts (None: it let us in without any)."""
        try:
            transport.auth_none(self.username)
        except paramiko.BadAuthenticationType as exc:
            return set(exc.allowed_types)
        except paramiko.AuthenticationException:
            return {"publickey", "keyboard-interactive", "password"}
        return None

    def _public_keys(self, transport: paramiko.Transport) -> list[str] | None:
        """Offer each key; the methods still required after one is accepted, or None if none was."""
        for label, key in self._keys():
            try:
                remaining = transport.auth_publickey(self.username, key)
            except paramiko.AuthenticationException:
                self._tried.append(label)
                continue
            log.debug("public key %s accepted%s", label, " (more is required)" if remaining else "")
            return list(remaining)
        return None

    def _keys(self) -> Iterator[tuple[str, paramiko.PKey]]:
        seen: set[str] = set()
        named = self.explicit_keys + [k for k in self.config_keys if os.path.isfile(k)]
        for path in named:
            if path in seen:
                continue
            seen.add(path)
            key = self._load(path, required=path in self.explicit_keys)
            if key is not None:
                yield path, key
        if not self.identities_only and os.environ.get("SSH_AUTH_SOCK"):
            agent = paramiko.Agent()
            try:
                for key in agent.get_keys():
                    yield f"agent key {key.get_name()}", key
            finally:
                agent.close()
        # IdentitiesOnly: the named files alone (OpenSSH falls back to the defaults when none is named).
        if not self.identities_only or not named:
            for name in DEFAULT_KEY_NAMES:
                path = os.path.expanduser(f"~/.ssh/{name}")
                if path not in seen and os.path.isfile(path):
                    seen.add(path)
                    key = self._load(path, required=False)
                    if key is not None:
                        yield path, key

    def _load(self, path: str, *, required: bool) -> paramiko.PKey | None:
        """The key in ``path``, asking for its passphrase once if it is encrypted."""
        passphrase = self.secrets.passphrases.get(path)
        for attempt in range(2):
            try:
                # cryptography, under paramiko, wants the passphrase as bytes.
                return paramiko.PKey.from_path(path, passphrase.encode() if passphrase is not None else None)
            except TypeError:  # encrypted, and no passphrase given (cryptography's signal)
                if self.ask is None or attempt:
                    if required:
                        raise ConfigError(
                            f"SSH key {path} is encrypted and there is no terminal to ask for its passphrase",
                            hint="Load it into ssh-agent (ssh-add), or run the command from a terminal.",
                        ) from None
                    log.debug("skipping encrypted key %s: nobody to ask for its passphrase", path)
                    return None
                passphrase = self._question(f"Passphrase for key {path}: ")
                self.secrets.passphrases[path] = passphrase
            except ValueError as exc:
                if passphrase is not None:
                    self.secrets.passphrases.pop(path, None)
                    raise ConfigError(f"cannot unlock SSH key {path}: wrong passphrase") from None
                if required:
                    raise ConfigError(f"cannot read SSH key {path}: {exc}") from None
                log.debug("skipping unreadable key %s: %s", path, exc)
                return None
            except (OSError, paramiko.SSHException) as exc:
                if required:
                    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                    raise ConfigError(f"cannot read SSH key {path}: {reason}") from None
                log.debug("skipping key %s: %s", path, exc)
                return None
        return None

    def _keyboard_interactive(self, transport: paramiko.Transport) -> list[str] | None:
        """Answer the server's questions; the methods still required, or None if it refused."""
        ask = self.ask
        assert ask is not None

        def handler(title: str, instructions: str, prompts: Sequence[tuple[str, bool]]) -> list[str]:
            if not prompts:
                return []
            self.asked = True
            preamble = "\n".join(part.strip() for part in (title, instructions) if part and part.strip())
            answers = []
            for i, (prompt, echo) in enumerate(prompts):
                text = (preamble + "\n" if preamble and i == 0 else "") + f"({self.place}) " + (prompt or "Response: ")
                answers.append(ask(text, bool(echo)))
            return answers

        try:
            return list(transport.auth_interactive(self.username, handler))
        except paramiko.AuthenticationException:
            self._tried.append("keyboard-interactive")
            return None

    def _password(self, transport: paramiko.Transport) -> bool:
        password = self.secrets.password
        if password is None:
            password = self._question(f"Password for {self.place}: ")
        try:
            remaining = transport.auth_password(self.username, password, fallback=False)
        except paramiko.AuthenticationException:
            self.secrets.password = None
            self._tried.append("password")
            return False
        self.secrets.password = password
        return not remaining

    def _question(self, prompt: str) -> str:
        assert self.ask is not None
        self.asked = True
        return self.ask(prompt, False)

    def _summary(self, allowed: set[str], why: str = "") -> str:
        tried = ", ".join(self._tried) if self._tried else "no key"
        methods = ", ".join(sorted(allowed)) or "none"
        return f"the server accepts {methods}; tried {tried}" + (f" {why}" if why else "")
