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
    """Behaviour shared by shell, ssh, docker and ec2 sessions.

    The full contract is this class plus :class:`ByteExactContract` and
    :class:`LandingContract`; :class:`FullSessionContract` combines them.
    """

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


class ByteExactContract:
    """Commands carry bytes end to end: binary, non-UTF-8, NUL, large, streamed, with stdin."""

    def test_non_utf8_and_nul_bytes_are_exact(self, session: Session) -> None:
        result = session.execute_command(["printf", "a\\377b\\000c\\n"])
        assert result.stdout_bytes == b"a\xffb\x00c\n"
        # The text view is lossless: encoding it back gives the same bytes.
        assert result.stdout.encode("utf-8", "surrogateescape") == b"a\xffb\x00c\n"
        err = session.execute_command("printf '\\377\\376' >&2")
        assert err.stderr_bytes == b"\xff\xfe" and err.stdout_bytes == b""

    def test_binary_through_stdin_and_stdout(self, session: Session) -> None:
        payload = bytes(range(256)) * 800 + os.urandom(4096)
        result = session.execute_command("cat", stdin=payload)
        assert result.returncode == 0
        assert len(result.stdout_bytes) == len(payload) and result.stdout_bytes == payload

    def test_50_megabytes_on_each_stream(self, session: Session) -> None:
        size = 50 * 1024 * 1024
        result = session.execute_command(
            f"head -c {size} /dev/zero | tr '\\0' o & head -c {size} /dev/zero | tr '\\0' e >&2; wait"
        )
        assert result.returncode == 0
        assert len(result.stdout_bytes) == size and len(result.stderr_bytes) == size
        assert result.stdout_bytes.count(b"o") == size and result.stderr_bytes.count(b"e") == size

    def test_output_streams_to_a_callback(self, session: Session) -> None:
        chunks: list[tuple[int, bytes]] = []
        result = session.execute_command(
            "i=0; while [ $i -lt 2000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; printf '\\377'",
            on_output=lambda stream, data: chunks.append((stream, data)),
        )
        assert result.returncode == 0
        assert result.stdout_bytes == b"" and result.stderr_bytes == b""
        out = b"".join(d for s, d in chunks if s == 1)
        err = b"".join(d for s, d in chunks if s == 2)
        assert out == b"".join(b"out%d\n" % i for i in range(2000)) + b"\xff"
        assert err == b"".join(b"err%d\n" % i for i in range(2000))

    def test_interrupt_stops_the_whole_process_group(self, session: Session) -> None:
        """Ctrl-C while a command runs: the command and its children are gone from the resource."""
        import signal
        import threading
        import time

        tag = str(4000 + int.from_bytes(os.urandom(2), "big") % 5000)
        command = f"sleep {tag}1 & sleep {tag}2 & sleep {tag}3; wait"
        started = threading.Event()
        main = threading.get_ident()

        def interrupt() -> None:
            started.wait(30)
            time.sleep(1.0)
            signal.pthread_kill(main, signal.SIGINT)

        thread = threading.Thread(target=interrupt, daemon=True)
        thread.start()
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            started.set()
            session.execute_interruptible(command)
        thread.join()
        assert time.monotonic() - began < 30
        # The pattern does not match itself: "[1]" is not the literal digit.
        pattern = f"sleep.{tag[:-1]}[{tag[-1]}]"
        probe = f"for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null | grep -q '{pattern}' && echo $f; done; true"
        deadline = time.monotonic() + 10
        left = session.execute_command(probe).stdout.split()
        while left and time.monotonic() < deadline:
            time.sleep(0.3)
            left = session.execute_command(probe).stdout.split()
        assert left == [], f"processes left on the resource: {left}"
        # The session is still usable afterwards.
        assert session.execute_command("echo alive").stdout == "alive\n"


class LandingContract:
    """Fetching never destroys local files: merge, no type changes, conflicts refused up front."""

    #: Paths listed one by one in the transfer test; 3,000 names of this length already exceed the
    #: 128 KiB a single command-line argument may hold, so even a smaller count proves the point
    #: where creating files is slow.
    listed_paths = 10_000

    def test_get_merges_into_an_existing_directory(self, session: Session, remote_tmp: str, tmp_path: Path) -> None:
        remote = posixpath.join(remote_tmp, "res")
        session.execute_command(f"mkdir -p {_q(remote)}/sub && echo new > {_q(remote)}/a.txt "
                                f"&& echo deep > {_q(remote)}/sub/b.txt", check=True)
        local = tmp_path / "res"
        (local / "sub").mkdir(parents=True)
        (local / "keep.me").write_text("precious\n")
        (local / "sub" / "mine.txt").write_text("mine\n")
        (local / "a.txt").write_text("old\n")
        session.get(remote, str(local))
        assert (local / "keep.me").read_text() == "precious\n"
        assert (local / "sub" / "mine.txt").read_text() == "mine\n"
        assert (local / "a.txt").read_text() == "new\n"
        assert (local / "sub" / "b.txt").read_text() == "deep\n"

    def test_file_over_directory_is_refused_and_nothing_changes(
        self, session: Session, remote_tmp: str, tmp_path: Path
    ) -> None:
        from reproman.errors import OutputConflictError

        session.execute_command(f"cd {_q(remote_tmp)} && echo f > out.txt && mkdir -p d && echo x > d/x && "
                                "echo other > other.txt", check=True)
        (tmp_path / "out.txt").mkdir()
        (tmp_path / "out.txt" / "inside").write_text("keep\n")
        (tmp_path / "d").write_text("a file where a directory arrives\n")
        before = _snapshot(tmp_path)
        with pytest.raises(OutputConflictError) as info:
            session.get_many([
                (posixpath.join(remote_tmp, "other.txt"), tmp_path / "other.txt"),
                (posixpath.join(remote_tmp, "out.txt"), tmp_path / "out.txt"),
                (posixpath.join(remote_tmp, "d"), tmp_path / "d"),
            ])
        message = str(info.value)
        assert str(tmp_path / "out.txt") in message and str(tmp_path / "d") in message
        assert _snapshot(tmp_path) == before  # not even other.txt was written

    def test_symlinks_arrive_as_links(self, session: Session, remote_tmp: str, tmp_path: Path) -> None:
        session.execute_command(f"cd {_q(remote_tmp)} && mkdir t && echo x > t/real && ln -s real t/rel && "
                                "ln -s /etc/hostname t/abs", check=True)
        session.get(posixpath.join(remote_tmp, "t"), str(tmp_path / "t"))
        assert os.readlink(tmp_path / "t" / "rel") == "real"
        assert os.readlink(tmp_path / "t" / "abs") == "/etc/hostname"
        assert (tmp_path / "t" / "real").read_text() == "x\n"

    def test_non_utf8_file_names_round_trip(self, session: Session, remote_tmp: str, tmp_path: Path) -> None:
        name = b"caf\xe9 \xff.bin".decode("utf-8", "surrogateescape")
        local = tmp_path / "src"
        local.mkdir()
        (local / name).write_bytes(b"\x00\xff payload")
        session.put(str(local), posixpath.join(remote_tmp, "named"))
        session.get(posixpath.join(remote_tmp, "named"), str(tmp_path / "back"))
        assert os.listdir(os.fsencode(tmp_path / "back")) == [os.fsencode(name)]
        assert (tmp_path / "back" / name).read_bytes() == b"\x00\xff payload"

    def test_non_utf8_names_fetched_by_their_own_name(self, session: Session, remote_tmp: str,
                                                      tmp_path: Path) -> None:
        """A file or directory whose own name is not UTF-8 (a job's ``-o`` path), not only names inside one."""
        file_name = b"x\xff.txt".decode("utf-8", "surrogateescape")
        dir_name = b"d\xfe".decode("utf-8", "surrogateescape")
        session.execute_command(
            f"cd {_q(remote_tmp)} && printf 'a\\000\\377' > \"$(printf 'x\\377.txt')\" && "
            f"mkdir \"$(printf 'd\\376')\" && printf in > \"$(printf 'd\\376/in\\375')\"", check=True)
        back = tmp_path / "back"
        session.get(posixpath.join(remote_tmp, file_name), str(back / file_name))
        session.get_many([(posixpath.join(remote_tmp, dir_name), back / dir_name),
                          (posixpath.join(remote_tmp, file_name), back / "again")])
        assert sorted(os.listdir(os.fsencode(back))) == [b"again", b"d\xfe", b"x\xff.txt"]
        assert (back / file_name).read_bytes() == b"a\x00\xff" == (back / "again").read_bytes()
        assert os.listdir(os.fsencode(back / dir_name)) == [b"in\xfd"]

    def test_ten_thousand_listed_paths_each_way(self, session: Session, remote_tmp: str, tmp_path: Path) -> None:
        """Listed paths, not one tree: no argument-length limit anywhere, in one transfer each way."""
        count = self.listed_paths
        src = tmp_path / "up"
        src.mkdir()
        for i in range(count):
            (src / f"file-with-a-longish-name-{i:05d}.txt").write_text(f"{i}\n")
        base = posixpath.join(remote_tmp, "many")
        session.put_many([(src / f"file-with-a-longish-name-{i:05d}.txt",
                           posixpath.join(base, f"d{i % 10}", f"file-with-a-longish-name-{i:05d}.txt"))
                          for i in range(count)])
        listed = session.execute_command(f"find {_q(base)} -type f | wc -l").stdout.strip()
        assert listed == str(count)
        down = tmp_path / "down"
        session.get_many([(posixpath.join(base, f"d{i % 10}", f"file-with-a-longish-name-{i:05d}.txt"),
                           down / f"o{i}.txt") for i in range(count)])
        assert len(os.listdir(down)) == count
        assert (down / f"o{count - 1}.txt").read_text() == f"{count - 1}\n"

    def test_put_merges_remote_directories(self, session: Session, remote_tmp: str, tmp_path: Path) -> None:
        remote = posixpath.join(remote_tmp, "inputs")
        session.execute_command(f"mkdir -p {_q(remote)} && echo remote > {_q(remote)}/already.txt", check=True)
        local = tmp_path / "inputs"
        local.mkdir()
        (local / "new.txt").write_text("local\n")
        session.put(str(local), remote)
        assert session.read(posixpath.join(remote, "already.txt")) == "remote\n"
        assert session.read(posixpath.join(remote, "new.txt")) == "local\n"


def _snapshot(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every path under ``root`` with its kind and content, to show that nothing changed."""
    found: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root)] = ("dir", b"")
        for name in filenames:
            path = os.path.join(dirpath, name)
            kind = "link" if os.path.islink(path) else "file"
            data = os.readlink(path).encode() if kind == "link" else Path(path).read_bytes()
            found[os.path.relpath(path, root)] = (kind, data)
    return found


class FullSessionContract(SessionContract, ByteExactContract, LandingContract):
    """Everything a Session must do; subclass this in a backend's tests."""
