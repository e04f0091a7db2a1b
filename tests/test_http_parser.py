"""Request-head parsing: valid requests, one case per rejection rule, limits, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupserver.http.body import ChunkedDecoder
from groupserver.http.parser import DEFAULT_LIMITS, HttpError, Limits, RequestHead, parse_head


def parse(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> RequestHead:
    result = parse_head(raw, limits)
    assert result is not None, "head unexpectedly incomplete"
    head, consumed = result
    assert consumed == len(raw)
    return head


def status_of(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> int:
    with pytest.raises(HttpError) as info:
        parse_head(raw, limits)
    return info.value.status


# --- valid requests -------------------------------------------------------------------------


def test_get_with_query_fills_every_field():
    head = parse(
        b"GET /shop/items?page=2&sort=name HTTP/1.1\r\n"
        b"Host: example.com:8080\r\n"
        b"User-Agent: test/1.0\r\n"
        b"Accept:   */*  \r\n"
        b"\r\n"
    )
    assert head.method == "GET"
    assert head.target == "/shop/items?page=2&sort=name"
    assert head.path == "/shop/items"
    assert head.query == "page=2&sort=name"
    assert head.version == "HTTP/1.1"
    assert head.headers == [
        ("Host", "example.com:8080"),
        ("User-Agent", "test/1.0"),
        ("Accept", "*/*"),
    ]
    assert head.host == "example.com:8080"
    assert head.content_length is None
    assert head.chunked is False
    assert head.keep_alive is True
    assert head.expect_continue is False


def test_post_with_content_length_leaves_body_unconsumed():
    raw = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    head, consumed = parse_head(raw)
    assert head.method == "POST"
    assert head.content_length == 5
    assert raw[consumed:] == b"hello"


def test_chunked_post():
    head = parse(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head.chunked is True
    assert head.content_length is None


def test_transfer_encoding_name_and_value_are_case_insensitive():
    head = parse(b"POST / HTTP/1.1\r\nHost: a\r\ntRaNsFeR-eNcOdInG: Chunked\r\n\r\n")
    assert head.chunked is True


def test_absolute_form_takes_path_and_host_from_target():
    head = parse(b"GET http://example.org:81/a%20b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert head.target == "http://example.org:81/a%20b?x=1"
    assert head.path == "/a b"
    assert head.query == "x=1"
    assert head.host == "example.org:81"


@pytest.mark.parametrize(
    ("target", "path", "query", "host"),
    [
        (b"https://h/", "/", "", "h"),
        (b"HTTP://h", "/", "", "h"),
        (b"http://h?q=1", "/", "q=1", "h"),
        (b"http://[::1]:8000/x", "/x", "", "[::1]:8000"),
    ],
)
def test_absolute_form_variants(target, path, query, host):
    head = parse(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (head.path, head.query, head.host) == (path, query, host)


def test_options_asterisk():
    head = parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head.method == "OPTIONS"
    assert head.target == "*"
    assert head.path == "*"
    assert head.query == ""


def test_http10_defaults_to_close():
    head = parse(b"GET / HTTP/1.0\r\n\r\n")
    assert head.version == "HTTP/1.0"
    assert head.keep_alive is False
    assert head.host is None


def test_http10_keep_alive_token():
    head = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    assert head.keep_alive is True


def test_http11_connection_close_among_other_tokens():
    head = parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n")
    assert head.keep_alive is False


def test_connection_tokens_across_repeated_headers():
    head = parse(b"GET / HTTP/1.0\r\nConnection: foo\r\nconnection: bar ,keep-alive\r\n\r\n")
    assert head.keep_alive is True


def test_connection_keep_alive_substring_is_not_the_token():
    head = parse(b"GET / HTTP/1.0\r\nConnection: not-keep-alive\r\n\r\n")
    assert head.keep_alive is False


@pytest.mark.parametrize("leading", [b"\r\n", b"\r\n\r\n"])
def test_leading_empty_lines_are_skipped(leading):
    raw = leading + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    head, consumed = parse_head(raw)
    assert head.path == "/"
    assert consumed == len(raw)


def test_expect_100_continue_is_case_insensitive():
    head = parse(b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n")
    assert head.expect_continue is True


def test_expect_ignored_on_http10():
    head = parse(b"PUT /f HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert head.expect_continue is False


def test_path_is_percent_decoded_to_latin1():
    head = parse(b"GET /caf%C3%A9/%2F%7e?q=%20 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head.path == "/caf\xc3\xa9//~"
    assert head.query == "q=%20"
    assert head.target == "/caf%C3%A9/%2F%7e?q=%20"


def test_query_keeps_everything_after_first_question_mark():
    head = parse(b"GET /p?a=1?b=/c HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head.path == "/p"
    assert head.query == "a=1?b=/c"


def test_identical_repeated_content_length_is_accepted():
    head = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n")
    assert head.content_length == 7


def test_content_length_leading_zeros():
    assert parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n").content_length == 7


def test_empty_header_value_and_obs_text_and_tab():
    head = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Latin: caf\xe9\r\nX-Tab: a\tb\t\r\n\r\n"
    )
    assert head.headers[1:] == [("X-Empty", ""), ("X-Latin", "caf\xe9"), ("X-Tab", "a\tb")]


def test_empty_host_is_allowed():
    assert parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").host == ""


def test_lowercase_header_names_are_recognised():
    head = parse(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\n")
    assert (head.host, head.content_length) == ("a", 2)


def test_bytearray_input():
    result = parse_head(bytearray(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\nrest"))
    assert result is not None
    assert result[0].path == "/x"
    assert result[1] == len(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")


def test_every_strict_prefix_is_incomplete():
    raw = b"\r\nPOST /a?b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
    for i in range(len(raw)):
        assert parse_head(raw[:i]) is None, i
    assert parse_head(raw) is not None


def test_http_error_reason_is_constant_and_safe():
    with pytest.raises(HttpError) as info:
        parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-Evil\x01: <script>\r\n\r\n")
    assert info.value.status == 400
    assert "script" not in info.value.reason
    assert str(info.value).startswith("400 ")


# --- rejections: one case per rule ------------------------------------------------------------

H = b"Host: a\r\n"

REJECTIONS = [
    # bare CR / bare LF / NUL anywhere in the head
    ("bare_lf_request_line", b"GET / HTTP/1.1\n" + H + b"\r\n", 400),
    ("bare_lf_header", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    ("bare_lf_terminator", b"GET / HTTP/1.1\r\nHost: a\n\r\n\r\n", 400),
    ("bare_cr_header", b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    ("bare_cr_end_of_line", b"GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400),
    ("nul_in_value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    ("nul_in_target", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400),
    # control characters in names or values
    ("ctl_in_name", b"GET / HTTP/1.1\r\n" + H + b"X\x01Y: z\r\n\r\n", 400),
    ("ctl_in_value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x1bb\r\n\r\n", 400),
    ("del_in_value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n", 400),
    ("space_in_name", b"GET / HTTP/1.1\r\n" + H + b"X Y: z\r\n\r\n", 400),
    ("empty_name", b"GET / HTTP/1.1\r\n" + H + b": z\r\n\r\n", 400),
    ("no_colon", b"GET / HTTP/1.1\r\n" + H + b"Xyz\r\n\r\n", 400),
    ("non_ascii_name", b"GET / HTTP/1.1\r\n" + H + b"X\xe9: z\r\n\r\n", 400),
    # whitespace between name and colon
    ("space_before_colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("tab_before_colon", b"GET / HTTP/1.1\r\n" + H + b"Content-Length\t: 0\r\n\r\n", 400),
    # obs-fold
    ("obs_fold_space", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 400),
    ("obs_fold_tab", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n\tb\r\n\r\n", 400),
    ("leading_space_first_header", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    # method token
    ("method_bad_char", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method_non_ascii", b"G\xc9T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method_empty", b" / HTTP/1.1\r\n" + H + b"\r\n", 400),
    # request-target form
    ("target_relative", b"GET foo HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_authority_form", b"CONNECT example.com:443 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_other_scheme", b"GET ftp://h/x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_absolute_userinfo", b"GET http://u@h/x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_absolute_empty_host", b"GET http:///x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("asterisk_not_options", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    # characters in the target
    ("target_fragment", b"GET /a#frag HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_non_ascii", b"GET /caf\xe9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_tab", b"GET /a\tb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_ctl", b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_bad_percent", b"GET /a%zz HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_truncated_percent", b"GET /a%4 HTTP/1.1\r\n" + H + b"\r\n", 400),
    # request line shape
    ("double_space", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space_in_target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("trailing_space", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400),
    ("leading_space", b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("tab_separator", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("missing_version", b"GET /\r\n" + H + b"\r\n", 400),
    ("http09", b"GET\r\n\r\n", 400),
    ("third_leading_empty_line", b"\r\n\r\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    # version
    ("version_malformed_x", b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400),
    ("version_garbage", b"GET / FOO\r\n" + H + b"\r\n", 400),
    ("version_lowercase", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    ("version_two_digits", b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400),
    ("version_2", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("version_1_2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    ("version_0_9", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505),
    # Host
    ("duplicate_host", b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    ("missing_host_http11", b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
    ("missing_host_absolute_form", b"GET http://h/ HTTP/1.1\r\n\r\n", 400),
    ("host_with_path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ("host_with_userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    ("host_with_space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("host_two_colons", b"GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n", 400),
    ("host_port_not_digits", b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", 400),
    ("host_ipv6_unclosed", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    ("host_ipv6_unbracketed", b"GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", 400),
    ("host_bracket_inside", b"GET / HTTP/1.1\r\nHost: a[1]\r\n\r\n", 400),
    # an IP-literal holds an IPv6 address (or IPvFuture): these were accepted
    ("host_ip_literal_not_hex", b"GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n", 400),
    ("host_ip_literal_a_name", b"GET / HTTP/1.1\r\nHost: [api.example.com]\r\n\r\n", 400),
    ("host_ip_literal_ipv4", b"GET / HTTP/1.1\r\nHost: [192.0.2.1]\r\n\r\n", 400),
    ("host_ip_literal_ipv4_port", b"GET / HTTP/1.1\r\nHost: [192.0.2.1]:80\r\n\r\n", 400),
    ("target_ip_literal_ipv4", b"GET http://[192.0.2.1]/x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_ip_literal_a_name", b"GET http://[example.com]/x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_absolute_ipv6_unclosed", b"GET http://[::1/x HTTP/1.1\r\n" + H + b"\r\n", 400),
    # Content-Length
    ("cl_and_te", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 400),
    ("te_and_cl", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Content-Length: 3\r\n\r\n", 400),
    ("cl_conflicting", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
     b"Content-Length: 4\r\n\r\n", 400),
    ("cl_comma_list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 4\r\n\r\n", 400),
    ("cl_comma_list_identical", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3,3\r\n\r\n", 400),
    ("cl_plus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\n", 400),
    ("cl_minus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -3\r\n\r\n", 400),
    ("cl_inner_space", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\n", 400),
    ("cl_hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x10\r\n\r\n", 400),
    ("cl_underscore", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1_0\r\n\r\n", 400),
    ("cl_empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n", 400),
    ("cl_unicode_digit", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \xb2\r\n\r\n", 400),
    ("cl_too_long", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1234567890123456789\r\n\r\n",
     400),
    # Transfer-Encoding
    ("te_http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("te_final_not_chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    ("te_chunked_then_gzip", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("te_chunked_twice", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    ("te_chunked_twice_headers", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 400),
    ("te_empty", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n\r\n", 400),
    ("te_empty_element", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: ,chunked\r\n\r\n", 400),
    ("te_parameter", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
    ("te_unknown_before_chunked", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: foo, chunked\r\n\r\n", 501),
    ("te_gzip_before_chunked", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ("te_identity_before_chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 501),
    ("te_chunked_prefix", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "status"),
    [(raw, status) for _, raw, status in REJECTIONS],
    ids=[r[0] for r in REJECTIONS],
)
def test_malformed_head_is_rejected(raw, status):
    assert status_of(raw) == status


# --- limits ---------------------------------------------------------------------------------

SMALL = Limits(max_request_line=40, max_header_count=3, max_head_size=120)


def test_request_line_too_long_before_crlf_is_414():
    assert status_of(b"GET /" + b"a" * 40, SMALL) == 414


def test_request_line_too_long_complete_is_414():
    assert status_of(b"GET /" + b"a" * 40 + b" HTTP/1.1\r\nHost: a\r\n\r\n", SMALL) == 414


def test_request_line_at_limit_waiting_for_lf_is_incomplete():
    line = b"GET /" + b"a" * 26 + b" HTTP/1.1"
    assert len(line) == SMALL.max_request_line
    assert parse_head(line + b"\r", SMALL) is None
    assert parse(line + b"\r\nHost: a\r\n\r\n", SMALL).path == "/" + "a" * 26


def test_head_too_large_while_incomplete_is_431():
    assert status_of(b"GET / HTTP/1.1\r\nX: " + b"a" * 120, SMALL) == 431


def test_head_too_large_complete_is_431():
    assert status_of(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 100 + b"\r\n\r\n", SMALL) == 431


def test_too_many_headers_is_431():
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    assert status_of(raw, SMALL) == 431
    assert status_of(raw[:-2], SMALL) == 431  # already known while incomplete


def test_header_count_at_limit_is_accepted():
    assert len(parse(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", SMALL).headers) == 3


def test_default_limits():
    assert (
        DEFAULT_LIMITS.max_request_line,
        DEFAULT_LIMITS.max_header_count,
        DEFAULT_LIMITS.max_head_size,
    ) == (8190, 100, 65536)


@pytest.mark.parametrize(
    "partial",
    [b"GET / HTTP/1.1\nHost", b"GET / HTTP/1.1\r\nHo\x00", b"GET /\rx", b"\r\n\nGET"],
    ids=["bare_lf", "nul", "bare_cr", "lf_after_empty_line"],
)
def test_bad_bytes_rejected_before_head_is_complete(partial):
    assert status_of(partial) == 400


# --- property tests -------------------------------------------------------------------------

tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'",
                 min_size=1, max_size=12)  # fmt: skip
path_segments = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@%",
                        max_size=12).map(lambda s: s.replace("%", "%25"))  # fmt: skip
field_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                              blacklist_characters="\x7f"), max_size=30).map(
    lambda s: s.strip(" \t"))  # fmt: skip


@st.composite
def requests(draw):
    """A valid request as (raw bytes, expected fields, body payload)."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "X-CUSTOM"]))
    segments = draw(st.lists(path_segments, max_size=4))
    path = "/" + "/".join(segments)
    query = draw(st.one_of(st.none(), st.text(alphabet="abc=&/?%20", max_size=10)))
    query = None if query is None else query.replace("%", "%25")
    target = path + ("" if query is None else "?" + query)
    http11 = draw(st.booleans())
    headers = [(draw(tokens), draw(field_values)) for _ in range(draw(st.integers(0, 5)))]
    headers = [
        (n, v)
        for n, v in headers
        if n.lower() not in ("host", "content-length", "transfer-encoding", "connection", "expect")
    ]
    if http11:
        headers.insert(draw(st.integers(0, len(headers))), ("Host", "example.com"))
    body = draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["none", "length", "chunked"] if http11 else ["none", "length"]))
    wire_body = b""
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
        wire_body = body
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        cut = draw(st.integers(0, len(body)))
        for piece in (body[:cut], body[cut:]):
            if piece:
                wire_body += b"%x\r\n" % len(piece) + piece + b"\r\n"
        wire_body += b"0\r\n\r\n"
    else:
        body = b""
    version = "HTTP/1.1" if http11 else "HTTP/1.0"
    lines = [f"{method} {target} {version}"] + [f"{n}: {v}" for n, v in headers]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + wire_body
    expected = (method, target, path.replace("%25", "%"), query or "", version, headers)
    return raw, expected, body


def run_connection(pieces: list[bytes]) -> list[tuple[RequestHead, bytes]]:
    """Drive parse_head and the body framers over pieces as a connection loop would."""
    results = []
    buf = bytearray()
    head = None
    decoder = None
    body = b""
    for piece in pieces:
        buf += piece
        while True:
            if head is None:
                parsed = parse_head(buf)
                if parsed is None:
                    break
                head, consumed = parsed
                del buf[:consumed]
                body = b""
                decoder = ChunkedDecoder() if head.chunked else None
            if decoder is not None:
                body += decoder.feed(bytes(buf))
                buf.clear()
                if not decoder.done:
                    break
                buf += decoder.unused
            else:
                need = (head.content_length or 0) - len(body)
                body += bytes(buf[:need])
                del buf[:need]
                if len(body) < (head.content_length or 0):
                    break
            results.append((head, body))
            head = None
    assert head is None and not buf
    return results


@settings(max_examples=150, deadline=None)
@given(
    reqs=st.lists(requests(), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_pipelined_requests_parse_the_same_at_any_split(reqs, cuts):
    stream = b"".join(raw for raw, _, _ in reqs)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0] + points, points + [len(stream)], strict=True)]
    whole = run_connection([stream])
    split = run_connection(pieces)
    assert split == whole
    assert len(whole) == len(reqs)
    for (head, body), (_, expected, payload) in zip(whole, reqs, strict=True):
        method, target, path, query, version, headers = expected
        assert (head.method, head.target, head.path, head.query, head.version) == (
            method,
            target,
            path,
            query,
            version,
        )
        assert head.headers == headers
        assert body == payload


def test_byte_by_byte_pipeline():
    stream = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;e=1\r\ndef\r\n0\r\n\r\n"
        b"\r\nGET /d HTTP/1.0\r\n\r\n"
    )
    result = run_connection([stream[i : i + 1] for i in range(len(stream))])
    assert [(h.path, b) for h, b in result] == [
        ("/a", b""),
        ("/b", b"abc"),
        ("/c", b"def"),
        ("/d", b""),
    ]
    assert result == run_connection([stream])


def _parse_or_error(data: bytes) -> None:
    try:
        result = parse_head(data)
    except HttpError as exc:
        assert exc.status in (400, 414, 431, 501, 505)
        return
    if result is not None:
        head, consumed = result
        assert 0 < consumed <= len(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_http_error(data):
    _parse_or_error(data)
    _parse_or_error(b"GET / HTTP/1.1\r\n" + data + b"\r\n\r\n")


@settings(max_examples=300, deadline=None)
@given(requests(), st.integers(0, 10_000), st.binary(min_size=1, max_size=3))
def test_mutated_valid_requests_only_raise_http_error(req, where, junk):
    raw = req[0]
    i = where % (len(raw) + 1)
    _parse_or_error(raw[:i] + junk + raw[i:])
    _parse_or_error(raw[:i] + junk + raw[i + len(junk) :])


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=2))
def test_control_bytes_in_header_value_are_rejected(junk):
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: a" + junk + b"b\r\n\r\n"
    allowed = all(b == 0x09 or 0x20 <= b <= 0x7E or b >= 0x80 for b in junk)
    if allowed:
        assert parse(raw).headers[1] == ("X", "a" + junk.decode("latin-1") + "b")
    else:
        assert status_of(raw) == 400
