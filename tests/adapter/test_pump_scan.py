"""A literal banner is found in the bytes exactly where decoding every line would find it."""

from __future__ import annotations

import os
import re

from hypothesis import given
from hypothesis import strategies as st

from mirakuru.adapter.run.pump import (
    TAIL_LINE_BYTES,
    TAIL_LINES,
    BannerWatch,
    StreamPump,
    _last_lines,
)

pieces = st.sampled_from(
    [b"ready", b"re", b"ady", b"\n", b"\xe2", b"\x82", b"\xff", b"\xc3\xa9", b" "]
)
blocks = st.lists(pieces, max_size=40).map(lambda parts: b"".join(parts) + b"\n")
banners = st.sampled_from(["ready", "ady\u00e9", "e", "\u00e9 ready", "re ady"])


def _decoded(pattern: str, raw: bytes, offset: int) -> BannerWatch:
    watch = BannerWatch(re.compile(pattern))
    watch.scan(raw.decode("utf-8", "replace"), raw, offset)
    return watch


@given(banners, blocks, st.integers(min_value=0, max_value=1 << 30))
def test_literal_fast_path_agrees_with_decoding(pattern: str, raw: bytes, offset: int) -> None:
    """Same verdict, same line and same offset past the line as the decoding scan."""
    fast = BannerWatch(re.compile(pattern))
    fast.scan_block(raw, offset)
    slow = _decoded(pattern, raw, offset)
    assert (fast.seen, fast.line, fast.end_offset) == (slow.seen, slow.line, slow.end_offset)


@given(blocks)
def test_last_lines_agree_with_decoding(raw: bytes) -> None:
    """The tail decodes only the last lines, and they are the lines a full decode gives."""
    text = raw.decode("utf-8", "replace")
    assert _last_lines(raw) == text.rstrip("\n").rsplit("\n", TAIL_LINES)[-TAIL_LINES:]


@given(st.lists(st.sampled_from(["a", "\u00e9", "\u20ac", "\U0001f600"]), max_size=3000))
def test_long_lines_are_cut_at_a_character(characters: list[str]) -> None:
    """A line past the byte bound keeps its first whole characters and says how much was cut."""
    line = "".join(characters)
    raw = line.encode()
    (kept,) = _last_lines(raw + b"\n")
    if len(raw) <= TAIL_LINE_BYTES:
        assert kept == line
        return
    head, _, note = kept.partition(" [... ")
    assert line.startswith(head)
    assert len(head.encode()) > TAIL_LINE_BYTES - 4
    assert note == f"{len(raw) - len(head.encode())} more bytes cut]"


def test_regular_expressions_keep_the_decoding_scan() -> None:
    """A pattern with regex syntax or case folding is matched on the decoded text."""
    for pattern in (re.compile(r"up \d+"), re.compile("READY", re.IGNORECASE)):
        watch = BannerWatch(pattern)
        assert watch.scan_block(b"noise\nservice Ready up 3\n", 10)
        assert watch.end_offset == 10 + len(b"noise\nservice Ready up 3\n")


@given(banners, st.lists(blocks, min_size=1, max_size=6), st.data())
def test_blocks_in_place_agree_with_one_decoding(
    pattern: str, lines: list[bytes], data: st.DataObject
) -> None:
    """Fed in arbitrary blocks, the pump finds the banner and tail a single decode finds."""
    stream = b"".join(lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    read, write = os.pipe()
    try:
        pump = StreamPump("stdout", read, limit=None)
        pump.watches.append(BannerWatch(re.compile(pattern)))
        for begin, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            if end > begin:
                pump._scan(stream[begin:end])
    finally:
        os.close(read)
        os.close(write)
    whole = _decoded(pattern, stream, 0)
    watch = pump.watches[0]
    assert (watch.seen, watch.line, watch.end_offset) == (whole.seen, whole.line, whole.end_offset)
    if b"\n\n" in stream or stream.startswith(b"\n"):
        return  # empty lines at a block's end are dropped per block (as ever): no oracle
    text = stream.decode("utf-8", "replace")
    assert list(pump.tail) == text.rstrip("\n").rsplit("\n", TAIL_LINES)[-TAIL_LINES:]


def test_a_banner_is_reported_before_its_block_is_kept() -> None:
    """The waiter hears of a banner after a flood without waiting for the flood's block
    to be written to the spool (on a busy machine, a megabyte took milliseconds)."""
    read, write = os.pipe()
    flood = b"x" * 1023 + b"\n"
    block = flood * 50 + b"ready\n"  # less than any pipe holds: the write never blocks
    try:
        pump = StreamPump("stdout", read)
        pump.watches.append(BannerWatch(re.compile("ready")))
        kept_when_told: list[int] = []
        pump.on_match = lambda: kept_when_told.append(pump.spool.size)
        os.write(write, block)
        pump.drain()
        assert kept_when_told == [0]
        assert pump.spool.size == len(block)
        assert pump.watches[0].end_offset == len(block)
    finally:
        os.close(read)
        os.close(write)
        pump.spool.release()
