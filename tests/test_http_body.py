"""Chunked body decoding: framing rules, limits, and any-split equivalence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupserver.http.body import ChunkedDecoder
from groupserver.http.parser import HttpError


def decode_all(wire: bytes, max_body: int | None = None) -> tuple[bytes, ChunkedDecoder]:
    decoder = ChunkedDecoder(max_body)
    payload = decoder.feed(wire)
    return payload, decoder


def status_of(wire: bytes, max_body: int | None = None) -> int:
    with pytest.raises(HttpError) as info:
        ChunkedDecoder(max_body).feed(wire)
    return info.value.status


def encode(pieces: list[bytes], trailers: bytes = b"", ext: bytes = b"") -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces if p)
    return out + b"0\r\n" + trailers + b"\r\n"


# --- valid bodies ---------------------------------------------------------------------------


def test_simple_body():
    payload, decoder = decode_all(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert payload == b"hello world"
    assert decoder.done
    assert decoder.unused == b""


def test_empty_body():
    payload, decoder = decode_all(b"0\r\n\r\n")
    assert payload == b""
    assert decoder.done


def test_bytes_after_the_body_are_unused():
    payload, decoder = decode_all(b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
    assert payload == b"abc"
    assert decoder.unused == b"GET / HTTP/1.1\r\n"
    assert decoder.feed(b"more") == b""
    assert decoder.unused == b"GET / HTTP/1.1\r\nmore"


def test_hex_sizes_upper_and_lower_case_and_leading_zeros():
    payload, _ = decode_all(b"A\r\n0123456789\r\n0000b\r\n0123456789a\r\n000\r\n\r\n")
    assert payload == b"0123456789" + b"0123456789a"


def test_chunk_extensions_are_ignored():
    wire = b'3;name\r\nabc\r\n2 ; a=b ;c="q \\" ;x"\r\nde\r\n0;last=1\r\n\r\n'
    payload, decoder = decode_all(wire)
    assert payload == b"abcde"
    assert decoder.done


def test_trailers_are_consumed():
    payload, decoder = decode_all(b"1\r\nx\r\n0\r\nX-Checksum: abc\r\nX-Other:\tv \r\n\r\nNEXT")
    assert payload == b"x"
    assert decoder.done
    assert decoder.unused == b"NEXT"


def test_payload_may_contain_crlf_and_nul():
    data = b"\r\n\x00\r\n0\r\n\r\n"
    payload, decoder = decode_all(encode([data]))
    assert payload == data
    assert decoder.done


def test_sixteen_hex_digits_accepted_as_size():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"0000000000000004\r\nabcd\r\n0\r\n\r\n") == b"abcd"
    assert decoder.done


def test_body_at_max_is_accepted():
    payload, decoder = decode_all(encode([b"abc", b"de"]), max_body=5)
    assert payload == b"abcde"
    assert decoder.done


def test_payload_streams_before_chunk_is_complete():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"a\r\n0123") == b"0123"
    assert decoder.feed(b"456789") == b"456789"
    assert decoder.feed(b"\r") == b""
    assert decoder.feed(b"\n0\r\n\r") == b""
    assert not decoder.done
    assert decoder.feed(b"\n") == b""
    assert decoder.done


def test_accepts_bytearray_and_memoryview():
    decoder = ChunkedDecoder()
    assert decoder.feed(bytearray(b"2\r\nab")) == b"ab"
    assert decoder.feed(memoryview(b"\r\n0\r\n\r\n")) == b""
    assert decoder.done


# --- rejections -----------------------------------------------------------------------------

REJECTIONS = [
    ("size_sign_plus", b"+5\r\nhello\r\n0\r\n\r\n", 400),
    ("size_sign_minus", b"-5\r\nhello\r\n0\r\n\r\n", 400),
    ("size_0x_prefix", b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("size_leading_space", b" 5\r\nhello\r\n0\r\n\r\n", 400),
    ("size_leading_tab", b"\t5\r\nhello\r\n0\r\n\r\n", 400),
    ("size_trailing_space", b"5 \r\nhello\r\n0\r\n\r\n", 400),
    ("size_non_hex", b"5g\r\nhello\r\n0\r\n\r\n", 400),
    ("size_underscore", b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n", 400),
    ("size_empty", b"\r\nhello\r\n0\r\n\r\n", 400),
    ("size_overflow_17_digits", b"10000000000000000\r\n", 400),
    ("size_overflow_leading_zeros", b"00000000000000005\r\nhello\r\n0\r\n\r\n", 400),
    ("size_bare_lf", b"5\nhello\r\n0\r\n\r\n", 400),
    ("size_bare_cr", b"5\rhello\r\n0\r\n\r\n", 400),
    ("ext_bare_lf", b"5;a\nb\r\nhello\r\n0\r\n\r\n", 400),
    ("ext_nul", b"5;a\x00\r\nhello\r\n0\r\n\r\n", 400),
    ("ext_no_name", b"5;\r\nhello\r\n0\r\n\r\n", 400),
    ("ext_bad_value", b"5;a=b c\r\nhello\r\n0\r\n\r\n", 400),
    ("ext_unterminated_quote", b'5;a="b\r\nhello\r\n0\r\n\r\n', 400),
    ("ext_ctl_in_quote", b'5;a="\x01"\r\nhello\r\n0\r\n\r\n', 400),
    ("data_too_long", b"5\r\nhello!\r\n0\r\n\r\n", 400),
    ("data_then_bare_lf", b"5\r\nhello\n0\r\n\r\n", 400),
    ("data_then_cr_only", b"5\r\nhello\r0\r\n\r\n", 400),
    ("data_then_nothing_but_size", b"5\r\nhello0\r\n\r\n", 400),
    ("last_chunk_bare_lf", b"0\n\r\n", 400),
    ("final_crlf_bare_lf", b"0\r\n\n", 400),
    ("trailer_bare_lf", b"0\r\nX: y\n\r\n", 400),
    ("trailer_no_colon", b"0\r\nnot a header\r\n\r\n", 400),
    ("trailer_space_before_colon", b"0\r\nX : y\r\n\r\n", 400),
    ("trailer_obs_fold", b"0\r\nX: y\r\n z\r\n\r\n", 400),
    ("trailer_ctl", b"0\r\nX: a\x01b\r\n\r\n", 400),
    ("trailer_nul", b"0\r\nX: a\x00b\r\n\r\n", 400),
]


@pytest.mark.parametrize(
    ("wire", "status"), [(w, s) for _, w, s in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_malformed_chunked_body_is_rejected(wire, status):
    assert status_of(wire) == status


def test_too_many_trailers_is_rejected():
    decoder = ChunkedDecoder()
    decoder.feed(b"0\r\n" + b"X: y\r\n" * 100 + b"\r\n")
    assert decoder.done
    assert status_of(b"0\r\n" + b"X: y\r\n" * 101 + b"\r\n") == 400


def test_trailer_section_size_is_bounded():
    line = b"X: " + b"a" * 8000 + b"\r\n"
    assert status_of(b"0\r\n" + line * 9 + b"\r\n") == 400


def test_long_size_line_without_crlf_is_rejected_while_buffering():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"5;a=" + b"b" * 1000) == b""
    with pytest.raises(HttpError) as info:
        decoder.feed(b"b" * 100)
    assert info.value.status == 400


def test_long_trailer_line_without_crlf_is_rejected_while_buffering():
    decoder = ChunkedDecoder()
    with pytest.raises(HttpError) as info:
        decoder.feed(b"0\r\nX: " + b"a" * 9000)
    assert info.value.status == 400


def test_bare_lf_is_rejected_without_waiting_for_crlf():
    with pytest.raises(HttpError):
        ChunkedDecoder().feed(b"5\n")


def test_max_body_exceeded_is_413():
    assert status_of(encode([b"abc", b"def"]), max_body=5) == 413


def test_max_body_is_checked_as_soon_as_a_chunk_is_announced():
    decoder = ChunkedDecoder(max_body=10)
    assert decoder.feed(b"8\r\n12345678\r\n") == b"12345678"
    with pytest.raises(HttpError) as info:
        decoder.feed(b"3\r\n")
    assert info.value.status == 413


def test_huge_chunk_size_is_413_not_buffered():
    assert status_of(b"ffffffffffffffff\r\n", max_body=1 << 20) == 413


def test_decoder_stays_failed_after_an_error():
    decoder = ChunkedDecoder()
    with pytest.raises(HttpError):
        decoder.feed(b"zz\r\n")
    with pytest.raises(HttpError):
        decoder.feed(b"0\r\n\r\n")
    assert not decoder.done


# --- any split gives the same result --------------------------------------------------------

WIRE = (
    b"4;ext=1\r\nWiki\r\n"
    b"5\r\npedia\r\n"
    b'e ; name="quoted\\"value"\r\n in\r\n\r\nchunks.\r\n'
    b"0\r\nX-Trailer: value\r\n\r\n"
    b"NEXT REQUEST"
)
PAYLOAD = b"Wikipedia in\r\n\r\nchunks."


def test_every_two_way_split_gives_the_same_payload():
    for i in range(len(WIRE) + 1):
        decoder = ChunkedDecoder()
        payload = decoder.feed(WIRE[:i]) + decoder.feed(WIRE[i:])
        assert payload == PAYLOAD, i
        assert decoder.done, i
        assert decoder.unused == b"NEXT REQUEST", i


def test_byte_by_byte_gives_the_same_payload():
    decoder = ChunkedDecoder()
    payload = b"".join(decoder.feed(WIRE[i : i + 1]) for i in range(len(WIRE)))
    assert payload == PAYLOAD
    assert decoder.unused == b"NEXT REQUEST"


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.binary(max_size=50), max_size=6),
    trailers=st.lists(st.sampled_from([b"X-A: 1", b"Digest: sha=abc", b"Empty:"]), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=10),
    rest=st.binary(max_size=20),
)
def test_any_split_gives_the_same_payload(pieces, trailers, cuts, rest):
    wire = encode(pieces, b"".join(t + b"\r\n" for t in trailers)) + rest
    points = sorted({c % (len(wire) + 1) for c in cuts})
    decoder = ChunkedDecoder(max_body=sum(map(len, pieces)))
    payload = b"".join(
        decoder.feed(wire[a:b]) for a, b in zip([0] + points, points + [len(wire)], strict=True)
    )
    assert payload == b"".join(pieces)
    assert decoder.done
    assert decoder.unused == rest


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=5))
def test_random_bytes_only_raise_http_error(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    decoder = ChunkedDecoder(max_body=1000)
    try:
        for a, b in zip([0] + points, points + [len(data)], strict=True):
            decoder.feed(data[a:b])
    except HttpError as exc:
        assert exc.status in (400, 413)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=4),
    where=st.integers(0, 10_000),
    junk=st.binary(min_size=1, max_size=3),
)
def test_mutated_valid_bodies_only_raise_http_error(pieces, where, junk):
    wire = encode(pieces)
    i = where % (len(wire) + 1)
    for mutated in (wire[:i] + junk + wire[i:], wire[:i] + junk + wire[i + len(junk) :]):
        try:
            ChunkedDecoder(max_body=100).feed(mutated)
        except HttpError as exc:
            assert exc.status in (400, 413)
