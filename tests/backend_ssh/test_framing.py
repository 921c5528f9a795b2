"""The framing parser on its own: no ssh, just bytes cut into every possible chunking."""

from __future__ import annotations

import random
import subprocess

import pytest

from reproman_backend_ssh.framing import STDERR, STDOUT, FrameParser, FramingError, command_line, printf_literal

BEGIN = b"__RM_B_0123456789abcdef01234567"
END = b"__RM_E_0123456789abcdef01234567"


def _streams(body_out: bytes, body_err: bytes, code: int, stray: bytes = b"") -> tuple[bytes, bytes]:
    """What the shell writes for one command, with ``stray`` output before the begin markers."""
    return (stray + BEGIN + body_out + END + b" %d\n" % code, stray + BEGIN + body_err + END + b"\n")


def _parse(out: bytes, err: bytes, cuts: list[int] | None = None, seed: int = 0) -> tuple[bytes, bytes, int | None, FrameParser]:
    got: dict[int, bytearray] = {STDOUT: bytearray(), STDERR: bytearray()}
    parser = FrameParser(BEGIN, END, lambda stream, data: got[stream].extend(data))
    rng = random.Random(seed)
    pieces: list[tuple[int, bytes]] = []
    for stream, data in ((STDOUT, out), (STDERR, err)):
        i = 0
        while i < len(data):
            size = rng.choice(cuts or [1, 2, 3, 7, 31, 64, 4096])
            pieces.append((stream, data[i:i + size]))
            i += size
    # Interleave the two streams the way a channel may deliver them, each in order.
    queues = {STDOUT: [p for p in pieces if p[0] == STDOUT], STDERR: [p for p in pieces if p[0] == STDERR]}
    while queues[STDOUT] or queues[STDERR]:
        stream = rng.choice([s for s in queues if queues[s]])
        parser.feed(*queues[stream].pop(0))
    return bytes(got[STDOUT]), bytes(got[STDERR]), parser.returncode, parser


@pytest.mark.parametrize("seed", range(20))
def test_bodies_are_exact_whatever_the_chunking(seed: int) -> None:
    body_out = bytes(range(256)) + b"__RM_E_" + b"__RM_E_0123" + END[:-1] + b"x" + BEGIN + b"\n"
    body_err = b"\xff\xfe\x00" + END[:10]
    out, err, code, parser = _parse(*_streams(body_out, body_err, 42, stray=b"late output " + BEGIN[:5]), seed=seed)
    assert (out, err, code, parser.done) == (body_out, body_err, 42, True)


def test_empty_bodies_and_status_zero() -> None:
    out, err, code, parser = _parse(*_streams(b"", b"", 0))
    assert (out, err, code, parser.done) == (b"", b"", 0, True)


def test_not_done_until_both_streams_and_the_status_line_arrived() -> None:
    parser = FrameParser(BEGIN, END, lambda stream, data: None)
    parser.feed(STDOUT, BEGIN + b"x" + END + b" 3")
    assert not parser.done and parser.returncode is None
    parser.feed(STDOUT, b"\n")
    assert parser.returncode == 3 and not parser.done
    parser.feed(STDERR, BEGIN + END + b"\n")
    assert parser.done


def test_output_streams_as_it_arrives_holding_back_only_a_possible_marker() -> None:
    """A body byte is handed on as soon as it cannot be the start of the end marker."""
    got: list[bytes] = []
    parser = FrameParser(BEGIN, END, lambda stream, data: got.append(data))
    parser.feed(STDOUT, BEGIN + b"hello ")
    assert got == [b"hello "]
    parser.feed(STDOUT, b"world__RM_E_0123")
    assert got == [b"hello ", b"world"]  # "__RM_E_0123" might be the marker: held
    parser.feed(STDOUT, b"zzz")
    assert b"".join(got) == b"hello world__RM_E_0123zzz"


def test_stray_output_before_the_begin_marker_is_dropped() -> None:
    out, err, code, _ = _parse(b"bg job says hi\n" + BEGIN + b"mine" + END + b" 0\n",
                               b"bg err\n" + BEGIN + END + b"\n", cuts=[3])
    assert (out, err, code) == (b"mine", b"", 0)


def test_a_garbled_status_line_is_an_error_not_a_wrong_exit_code() -> None:
    parser = FrameParser(BEGIN, END, lambda stream, data: None)
    with pytest.raises(FramingError):
        parser.feed(STDOUT, BEGIN + END + b" 1x\n")
    parser = FrameParser(BEGIN, END, lambda stream, data: None)
    with pytest.raises(FramingError):
        parser.feed(STDOUT, BEGIN + END + b" " + b"9" * 40)


def test_large_body_is_linear() -> None:
    """Feeding 20 MB in 32 KiB pieces must not rescan what was already passed on."""
    import time

    body = b"o" * (20 * 1024 * 1024)
    start = time.perf_counter()
    out, _err, code, _ = _parse(*_streams(body, b"", 0), cuts=[32768])
    assert out == body and code == 0
    assert time.perf_counter() - start < 10


def test_command_line_runs_under_a_real_sh() -> None:
    """The generated line, fed to /bin/sh as the remote shell gets it, frames the command's bytes."""
    stdin = bytes(range(256)) + b"'\"\\%s\n"
    line = command_line("cat; printf 'e\\377' >&2; exit 5", BEGIN, END, stdin_literal=stdin)
    proc = subprocess.run(["/bin/sh"], input=line, capture_output=True, check=True)
    out, err, code, _ = _parse(proc.stdout, proc.stderr)
    assert (out, err, code) == (stdin, b"e\xff", 5)


def test_printf_literal_round_trips_every_byte() -> None:
    data = bytes(range(256)) * 2
    proc = subprocess.run(["/bin/sh", "-c", f"printf {printf_literal(data)}"], capture_output=True, check=True)
    assert proc.stdout == data
