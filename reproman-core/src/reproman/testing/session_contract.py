"""The contract every Session must pass, whatever the backend.

Use it by subclassing in the backend's tests and providing two fixtures::

    from reproman.testing.session_contract import SessionContract

    class TestMySession(SessionContract):
        @pytest.fixture
        def session(self):
            with MySession(...) as s:
                yield s

        @pytest.fixture
        def remote_tmp(self, session):
            path = session.execute_command("mktemp -d", check=True).stdout.strip()
            yield path
            session.remove(path, recursive=True)

``remote_tmp`` is an empty, writable directory on the resource.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest

from reproman.errors import CommandError, SessionError
from reproman.resources.session import Session

TRICKY_NAMES = ["with space", "quote'single", 'quote"double', "dollar$HOME", "semi;colon", "star*glob"]


class SessionContract:
    """Behaviour shared by shell, ssh, docker and ec2 sessions."""

    # -- commands --------------------------------------------------------------
    def test_list_command_arguments_are_literal(self, session: Session) -> None:
        args = ["a b", "$HOME", "'q'", '"d"', "`x`", "*", ""]
        result = session.execute_command(["printf", "%s\\n", *args])
        assert result.returncode == 0
        assert result.stdout.split("\n")[:-1] == args

    def test_string_command_is_shell_code(self, session: Session) -> None:
        result = session.execute_command("X=5; echo $((X + 1)) | cat")
        assert result.stdout == "6\n"

    def test_stdout_stderr_and_exit_code_kept_apart(self, session: Session) -> None:
        result = session.execute_command("echo out; echo err >&2; exit 7")
        assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 7)

    def test_check_raises_command_error_with_streams(self, session: Session) -> None:
        with pytest.raises(CommandError) as info:
            session.execute_command("echo nope >&2; exit 3", check=True)
        assert info.value.returncode == 3
        assert "nope" in info.value.stderr

    def test_env_is_per_call(self, session: Session) -> None:
        value = "a b $c 'd'"
        assert session.execute_command('printf %s "$RM_X"', env={"RM_X": value}).stdout == value
        assert session.execute_command('printf %s "${RM_X-unset}"').stdout == "unset"

    def test_cwd_is_per_call(self, session: Session, remote_tmp: str) -> None:
        target = posixpath.join(remote_tmp, "sub dir")
        session.mkdir(target)
        assert session.execute_command("pwd", cwd=target).stdout.strip() == target
        assert session.execute_command("pwd").stdout.strip() != target

    def test_missing_cwd_fails_without_running(self, session: Session, remote_tmp: str) -> None:
        marker = posixpath.join(remote_tmp, "ran")
        result = session.execute_command(["touch", marker], cwd=posixpath.join(remote_tmp, "absent"))
        assert result.returncode != 0
        assert not session.exists(marker)

    def test_command_not_found_is_127(self, session: Session) -> None:
        assert session.execute_command(["reproman-no-such-command-xyz"]).returncode == 127

    def test_stdin_is_passed(self, session: Session) -> None:
        assert session.execute_command("cat", stdin=b"fed in").stdout == "fed in"

    def test_many_commands_stay_in_sync(self, session: Session) -> None:
        for i in range(30):
            result = session.execute_command(f"echo {i}; echo e{i} >&2; exit {i % 4}")
            assert (result.stdout, result.stderr, result.returncode) == (f"{i}\n", f"e{i}\n", i % 4)

    def test_output_without_trailing_newline(self, session: Session) -> None:
        assert session.execute_command("printf abc").stdout == "abc"
        assert session.execute_command("printf err >&2").stderr == "err"

    def test_large_output(self, session: Session) -> None:
        result = session.execute_command("i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done")
        lines = result.stdout.splitlines()
        assert len(lines) == 20000 and lines[-1] == "line19999"

    # -- environment -----------------------------------------------------------
    def test_set_envvar_applies_to_later_commands(self, session: Session) -> None:
        session.set_envvar("RM_SESSION_VAR", "kept value")
        assert session.execute_command('printf %s "$RM_SESSION_VAR"').stdout == "kept value"
        assert session.get_envvars()["RM_SESSION_VAR"] == "kept value"
        assert session.query_envvars()["RM_SESSION_VAR"] == "kept value"

    def test_query_envvars_sees_path(self, session: Session) -> None:
        assert "PATH" in session.query_envvars()

    # -- files -----------------------------------------------------------------
    def test_exists_isdir_mkdir(self, session: Session, remote_tmp: str) -> None:
        nested = posixpath.join(remote_tmp, "a", "b c", "d")
        assert not session.exists(nested)
        with pytest.raises((CommandError, SessionError)):
            session.mkdir(nested)
        session.mkdir(nested, parents=True)
        session.mkdir(nested, parents=True)  # idempotent with parents
        assert session.exists(nested) and session.isdir(nested)
        session.put_text("x", posixpath.join(nested, "f"))
        assert session.exists(posixpath.join(nested, "f"))
        assert not session.isdir(posixpath.join(nested, "f"))

    def test_put_text_and_read(self, session: Session, remote_tmp: str) -> None:
        path = posixpath.join(remote_tmp, "new dir", "it's.txt")
        text = "line 1\n$HOME `x` 'q'\nünïcödé\n"
        session.put_text(text, path)
        assert session.read(path) == text

    def test_read_missing_raises(self, session: Session, remote_tmp: str) -> None:
        with pytest.raises((CommandError, SessionError)):
            session.read(posixpath.join(remote_tmp, "absent"))

    def test_chmod(self, session: Session, remote_tmp: str) -> None:
        path = posixpath.join(remote_tmp, "script")
        session.put_text("#!/bin/sh\necho hi\n", path)
        session.chmod(0o755, path)
        assert session.execute_command([path]).stdout == "hi\n"
        session.chmod(0o600, path)
        assert session.execute_command("stat -c %a " + _q(path)).stdout.strip() == "600"

    def test_chown_to_own_ids(self, session: Session, remote_tmp: str) -> None:
        path = posixpath.join(remote_tmp, "owned")
        session.put_text("x", path)
        uid = session.execute_command("id -u", check=True).stdout.strip()
        gid = session.execute_command("id -g", check=True).stdout.strip()
        session.chown(uid, path, group=gid)
        assert session.execute_command("stat -c %u:%g " + _q(path)).stdout.strip() == f"{uid}:{gid}"

    @pytest.mark.parametrize("name", TRICKY_NAMES)
    def test_put_get_file_roundtrip(self, session: Session, remote_tmp: str, tmp_path: Path, name: str) -> None:
        src = tmp_path / name
        src.write_bytes(b"\x00binary\xff" + name.encode())
        remote = posixpath.join(remote_tmp, "deep", name)
        session.put(str(src), remote)
        assert session.exists(remote)
        back = tmp_path / "back" / name
        session.get(remote, str(back))
        assert back.read_bytes() == src.read_bytes()

    def test_put_get_directory_tree(self, session: Session, remote_tmp: str, tmp_path: Path) -> None:
        tree = tmp_path / "tree"
        for rel in ["a.txt", "sub/b.txt", "sub/deeper/c d.txt", "empty/"]:
            target = tree / rel
            if rel.endswith("/"):
                target.mkdir(parents=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(rel)
        (tree / "run.sh").write_text("#!/bin/sh\n")
        (tree / "run.sh").chmod(0o755)
        remote = posixpath.join(remote_tmp, "tree copy")
        session.put(str(tree), remote)
        assert session.read(posixpath.join(remote, "sub", "deeper", "c d.txt")) == "sub/deeper/c d.txt"
        assert session.isdir(posixpath.join(remote, "empty"))
        back = tmp_path / "back"
        session.get(remote, str(back))
        assert sorted(str(p.relative_to(back)) for p in back.rglob("*")) == sorted(
            str(p.relative_to(tree)) for p in tree.rglob("*")
        )
        assert (back / "sub" / "b.txt").read_text() == "sub/b.txt"
        assert os.access(back / "run.sh", os.X_OK)

    def test_put_many_and_get_many(self, session: Session, remote_tmp: str, tmp_path: Path) -> None:
        files = []
        for i in range(25):
            f = tmp_path / f"in {i}.txt"
            f.write_text(str(i))
            files.append((str(f), posixpath.join(remote_tmp, "many", f"in {i}.txt")))
        session.put_many(files)
        assert session.read(posixpath.join(remote_tmp, "many", "in 24.txt")) == "24"
        back = [(remote, tmp_path / "got" / posixpath.basename(remote)) for _, remote in files]
        session.get_many(back)
        assert all(Path(local).read_text() == str(i) for i, (_, local) in enumerate(back))

    def test_get_missing_raises(self, session: Session, remote_tmp: str, tmp_path: Path) -> None:
        with pytest.raises(SessionError):
            session.get(posixpath.join(remote_tmp, "absent"), str(tmp_path / "x"))

    def test_put_missing_local_raises(self, session: Session, remote_tmp: str, tmp_path: Path) -> None:
        with pytest.raises(SessionError):
            session.put(str(tmp_path / "absent"), posixpath.join(remote_tmp, "x"))

    def test_remove(self, session: Session, remote_tmp: str) -> None:
        path = posixpath.join(remote_tmp, "gone", "f")
        session.put_text("x", path)
        session.remove(posixpath.join(remote_tmp, "gone"), recursive=True)
        assert not session.exists(posixpath.join(remote_tmp, "gone"))


def _q(path: str) -> str:
    import shlex

    return shlex.quote(path)
