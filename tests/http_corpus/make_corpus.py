"""Write the raw-request corpus of the black-box HTTP suite (tests/test_http_blackbox.py).

    python tests/http_corpus/make_corpus.py

Each case becomes NAME.http (the exact bytes a client sends, CRLFs and all) and NAME.json next to
it in valid/ or invalid/. A valid case's JSON lists what corpus_app (tests/apps/corpus_app.py)
must see for each request in the file and whether the connection stays open afterwards:

    {"why": "...", "keep_alive": true,
     "requests": [{"method": "GET", "path_info": "/", "query": "", "protocol": "HTTP/1.1",
                   "content_length": null, "content_type": null, "body": "",
                   "http": {"HTTP_HOST": "corpus.test"}}]}

"http" is the complete set of HTTP_* environ keys, so a header that must not reach the app is
checked by its absence. An invalid case's JSON holds the status the server must answer (then
close) and why: {"status": 400, "why": "..."}.

The files are generated so that the bytes are exact; edit this script, not the files, and commit
both (test_http_blackbox.py checks that they agree).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = b"corpus.test"


def request(
    line: bytes, *headers: bytes, body: bytes = b"", host: bytes | None = HOST, end: bytes = b""
) -> bytes:
    """A request: line, Host (unless None), headers, blank line, body; CRLF line endings."""
    lines = [line]
    if host is not None:
        lines.append(b"Host: " + host)
    lines.extend(headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body + end


def post_chunked(body: bytes, *headers: bytes) -> bytes:
    """A chunked POST whose body bytes (framing included) are given as is."""
    return request(b"POST /upload HTTP/1.1", b"Transfer-Encoding: chunked", *headers, body=body)


def seen(
    method: str = "GET",
    path: str = "/",
    query: str = "",
    protocol: str = "HTTP/1.1",
    body: str = "",
    content_length: str | None = None,
    content_type: str | None = None,
    http: dict[str, str] | None = None,
) -> dict:
    """The environ subset corpus_app must report for one request."""
    return {
        "method": method,
        "path_info": path,
        "query": query,
        "protocol": protocol,
        "content_length": content_length,
        "content_type": content_type,
        "body": body,
        "http": {"HTTP_HOST": HOST.decode()} if http is None else http,
    }


def host_and(**extra: str) -> dict[str, str]:
    """HTTP_HOST plus the given HTTP_* keys."""
    return {"HTTP_HOST": HOST.decode(), **extra}


# name: (bytes, why, [expected environ per request], keep_alive)
VALID: dict[str, tuple[bytes, str, list[dict], bool]] = {
    "get_with_query": (
        request(b"GET /search?q=a+b&empty=&enc=%2F%26 HTTP/1.1"),
        "the query string reaches the app raw, not decoded",
        [seen(path="/search", query="q=a+b&empty=&enc=%2F%26")],
        True,
    ),
    "get_empty_query": (
        request(b"GET /p? HTTP/1.1"),
        "a lone '?' gives an empty QUERY_STRING",
        [seen(path="/p")],
        True,
    ),
    "percent_encoded_path": (
        request(b"GET /caf%C3%A9/a%20b/x%2Fy%7e HTTP/1.1"),
        "PATH_INFO is percent-decoded to bytes shown as latin-1 (PEP 3333)",
        [seen(path="/caf\u00c3\u00a9/a b/x/y~")],
        True,
    ),
    "post_content_length": (
        request(
            b"POST /form HTTP/1.1",
            b"Content-Type: application/x-www-form-urlencoded",
            b"Content-Length: 11",
            body=b"hello=world",
        ),
        "a Content-Length body; CONTENT_TYPE/CONTENT_LENGTH are not duplicated as HTTP_*",
        [
            seen(
                method="POST",
                path="/form",
                body="hello=world",
                content_length="11",
                content_type="application/x-www-form-urlencoded",
            )
        ],
        True,
    ),
    "post_content_length_zero": (
        request(b"POST /empty HTTP/1.1", b"Content-Length: 0"),
        "an empty Content-Length body",
        [seen(method="POST", path="/empty", content_length="0")],
        True,
    ),
    "content_length_repeated_identical": (
        request(b"POST /dup HTTP/1.1", b"Content-Length: 5", b"Content-Length: 5", body=b"abcde"),
        "repeated Content-Length headers with one identical value are accepted (RFC 9112 6.3)",
        [seen(method="POST", path="/dup", body="abcde", content_length="5")],
        True,
    ),
    "chunked_with_extensions_and_trailers": (
        post_chunked(
            b"5;name=value\r\nhello\r\n"
            b'6 ; quoted="a b;\\"c" ; flag\r\n world\r\n'
            b"00A\r\n0123456789\r\n"
            b"0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
        ),
        "chunk extensions are dropped, leading zeros and upper-case hex are fine, trailers are"
        " consumed but not merged into the environ",
        [
            seen(
                method="POST",
                path="/upload",
                body="hello world0123456789",
                http=host_and(HTTP_TRANSFER_ENCODING="chunked"),
            )
        ],
        True,
    ),
    "chunked_coding_name_is_case_insensitive": (
        request(
            b"POST /upload HTTP/1.1",
            b"Transfer-Encoding: Chunked",
            body=b"3\r\nabc\r\n0\r\n\r\n",
        ),
        "transfer-coding names are case-insensitive (RFC 9112 7)",
        [
            seen(
                method="POST",
                path="/upload",
                body="abc",
                http=host_and(HTTP_TRANSFER_ENCODING="Chunked"),
            )
        ],
        True,
    ),
    "absolute_form": (
        request(b"GET http://corpus.test/abs/path?x=1 HTTP/1.1"),
        "absolute-form targets are accepted; PATH_INFO and QUERY_STRING come from the target",
        [seen(path="/abs/path", query="x=1")],
        True,
    ),
    "absolute_form_authority_overrides_host": (
        request(b"GET http://corpus.test:8080/abs HTTP/1.1", host=b"other.test"),
        "RFC 9112 3.2.2: with an absolute-form target the server MUST ignore Host and use the"
        " target's authority (routing already does; the app must see the same host)",
        [seen(path="/abs", http={"HTTP_HOST": "corpus.test:8080"})],
        True,
    ),
    "options_asterisk": (
        request(b"OPTIONS * HTTP/1.1"),
        "asterisk-form with OPTIONS reaches the app with PATH_INFO '*'",
        [seen(method="OPTIONS", path="*")],
        True,
    ),
    "http10_without_keep_alive": (
        request(b"GET /ten HTTP/1.0", host=None),
        "HTTP/1.0 needs no Host and closes after the response by default",
        [seen(path="/ten", protocol="HTTP/1.0", http={})],
        False,
    ),
    "http10_with_keep_alive": (
        request(b"GET /ten HTTP/1.0", b"Connection: keep-alive", host=None),
        "HTTP/1.0 with Connection: keep-alive keeps the connection open",
        [seen(path="/ten", protocol="HTTP/1.0", http={"HTTP_CONNECTION": "keep-alive"})],
        True,
    ),
    "http10_post_content_length": (
        request(b"POST /ten HTTP/1.0", b"Content-Length: 3", host=None, body=b"abc"),
        "an HTTP/1.0 body framed by Content-Length",
        [
            seen(
                method="POST",
                path="/ten",
                protocol="HTTP/1.0",
                body="abc",
                content_length="3",
                http={},
            )
        ],
        False,
    ),
    "http11_connection_close": (
        request(b"GET /bye HTTP/1.1", b"Connection: close"),
        "Connection: close ends the connection after the response",
        [seen(path="/bye", http=host_and(HTTP_CONNECTION="close"))],
        False,
    ),
    "pipelined_pair": (
        request(b"GET /first?n=1 HTTP/1.1")
        + request(b"POST /second HTTP/1.1", b"Content-Length: 4", body=b"body"),
        "two pipelined requests in one write are answered in order, each with its own body",
        [
            seen(path="/first", query="n=1"),
            seen(method="POST", path="/second", body="body", content_length="4"),
        ],
        True,
    ),
    "pipelined_chunked_then_get": (
        post_chunked(b"4\r\nwiki\r\n0\r\n\r\n") + request(b"GET /after HTTP/1.1"),
        "the request after a chunked body starts right after its last CRLF",
        [
            seen(
                method="POST",
                path="/upload",
                body="wiki",
                http=host_and(HTTP_TRANSFER_ENCODING="chunked"),
            ),
            seen(path="/after"),
        ],
        True,
    ),
    "underscore_headers_dropped": (
        request(
            b"GET /ip HTTP/1.1",
            b"X_Forwarded_For: 6.6.6.6",
            b"X-Forwarded-For: 10.0.0.1",
            b"X_Only_Underscore: dropped",
        ),
        "a header name with '_' would collide with its '-' spelling in the environ (spoofing a"
        " proxy's header), so it is dropped",
        [seen(path="/ip", http=host_and(HTTP_X_FORWARDED_FOR="10.0.0.1"))],
        True,
    ),
    "leading_empty_lines": (
        b"\r\n\r\n" + request(b"GET /after-blank HTTP/1.1"),
        "up to two empty lines before the request line are ignored (RFC 9112 2.2)",
        [seen(path="/after-blank")],
        True,
    ),
    "repeated_header_joined": (
        request(b"GET /accept HTTP/1.1", b"Accept: text/html", b"Accept: text/plain"),
        "repeated fields are joined with a comma",
        [seen(path="/accept", http=host_and(HTTP_ACCEPT="text/html,text/plain"))],
        True,
    ),
    "header_value_ows_trimmed": (
        request(b"GET /ows HTTP/1.1", b"X-Pad: \t value  with  inner  spaces \t"),
        "optional whitespace around a field value is removed, inner whitespace kept",
        [seen(path="/ows", http=host_and(HTTP_X_PAD="value  with  inner  spaces"))],
        True,
    ),
    "header_value_obs_text": (
        request(b"GET /latin HTTP/1.1", b"X-Latin: caf\xe9"),
        "obs-text bytes (0x80-0xff) in a value are allowed and shown as latin-1",
        [seen(path="/latin", http=host_and(HTTP_X_LATIN="caf\u00e9"))],
        True,
    ),
    "extension_method": (
        request(b"PURGE /cache HTTP/1.1"),
        "any RFC 9110 token is a method, passed on as sent",
        [seen(method="PURGE", path="/cache")],
        True,
    ),
    "host_ipv6_literal_with_port": (
        request(b"GET /v6 HTTP/1.1", host=b"[::1]:8080"),
        "an IP-literal Host with a port",
        [seen(path="/v6", http={"HTTP_HOST": "[::1]:8080"})],
        True,
    ),
}


# name: (bytes, status, why)
INVALID: dict[str, tuple[bytes, int, str]] = {
    # -- body framing headers
    "content_length_and_transfer_encoding": (
        request(
            b"POST / HTTP/1.1",
            b"Content-Length: 5",
            b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        400,
        "Content-Length together with Transfer-Encoding (request smuggling)",
    ),
    "transfer_encoding_and_content_length": (
        request(
            b"POST / HTTP/1.1",
            b"Transfer-Encoding: chunked",
            b"Content-Length: 5",
            body=b"0\r\n\r\n",
        ),
        400,
        "Transfer-Encoding together with Content-Length, other order",
    ),
    "content_length_differing": (
        request(b"POST / HTTP/1.1", b"Content-Length: 5", b"Content-Length: 6", body=b"abcdef"),
        400,
        "two Content-Length headers that differ",
    ),
    "content_length_comma_list_differing": (
        request(b"POST / HTTP/1.1", b"Content-Length: 5, 6", body=b"abcdef"),
        400,
        "a Content-Length comma list with differing values",
    ),
    "content_length_comma_list_same": (
        request(b"POST / HTTP/1.1", b"Content-Length: 5, 5", body=b"abcde"),
        400,
        "a Content-Length comma list is refused even when the values agree",
    ),
    "content_length_plus_sign": (
        request(b"POST / HTTP/1.1", b"Content-Length: +5", body=b"abcde"),
        400,
        "Content-Length with a sign is not plain digits",
    ),
    "content_length_negative": (
        request(b"POST / HTTP/1.1", b"Content-Length: -1"),
        400,
        "negative Content-Length",
    ),
    "content_length_hex": (
        request(b"POST / HTTP/1.1", b"Content-Length: 0x5", body=b"abcde"),
        400,
        "Content-Length in hex",
    ),
    "content_length_decimal_point": (
        request(b"POST / HTTP/1.1", b"Content-Length: 5.0", body=b"abcde"),
        400,
        "Content-Length with a decimal point",
    ),
    "content_length_empty": (
        request(b"POST / HTTP/1.1", b"Content-Length: "),
        400,
        "empty Content-Length",
    ),
    "content_length_inner_space": (
        request(b"POST / HTTP/1.1", b"Content-Length: 1 2", body=b"abcdefghijkl"),
        400,
        "Content-Length with a space between digits",
    ),
    "content_length_overflow": (
        request(b"POST / HTTP/1.1", b"Content-Length: 18446744073709551617"),
        400,
        "Content-Length too long to be a number of bytes (integer overflow elsewhere)",
    ),
    "content_length_whitespace_before_colon": (
        request(b"POST / HTTP/1.1", b"Content-Length : 5", body=b"abcde"),
        400,
        "whitespace between Content-Length and its colon (smuggling via lenient proxies)",
    ),
    "transfer_encoding_not_final_chunked": (
        request(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"),
        400,
        "the final transfer coding is not chunked, so the body length is unknown",
    ),
    "transfer_encoding_gzip_only": (
        request(b"POST / HTTP/1.1", b"Transfer-Encoding: gzip", body=b"0\r\n\r\n"),
        400,
        "Transfer-Encoding without chunked",
    ),
    "transfer_encoding_identity": (
        request(b"POST / HTTP/1.1", b"Transfer-Encoding: identity", body=b"0\r\n\r\n"),
        400,
        "identity is not a transfer coding any more (RFC 7230 removed it)",
    ),
    "transfer_encoding_xchunked": (
        request(b"POST / HTTP/1.1", b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"),
        400,
        "a coding that merely contains 'chunked'",
    ),
    "transfer_encoding_chunked_twice": (
        request(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"),
        400,
        "chunked applied twice (RFC 9112 6.1: MUST NOT)",
    ),
    "transfer_encoding_empty_element": (
        request(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked,", body=b"0\r\n\r\n"),
        400,
        "an empty list element after chunked",
    ),
    "transfer_encoding_with_parameter": (
        request(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked;q=1", body=b"0\r\n\r\n"),
        400,
        "chunked takes no parameters",
    ),
    "transfer_encoding_vertical_tab": (
        request(b"POST / HTTP/1.1", b"Transfer-Encoding: \x0bchunked", body=b"0\r\n\r\n"),
        400,
        "a control character hiding the coding name",
    ),
    "transfer_encoding_unknown_coding_before_chunked": (
        request(b"POST / HTTP/1.1", b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
        501,
        "a coding the server does not implement, before chunked (501 Not Implemented)",
    ),
    "transfer_encoding_split_over_two_headers": (
        request(
            b"POST / HTTP/1.1",
            b"Transfer-Encoding: gzip",
            b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        501,
        "codings listed over two header lines are one list: gzip, chunked (501)",
    ),
    "transfer_encoding_on_http10": (
        request(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
        400,
        "Transfer-Encoding on HTTP/1.0 (RFC 9112 6.1: treat the framing as faulty)",
    ),
    # -- chunked bodies
    "chunk_size_plus_sign": (
        post_chunked(b"+5\r\nhello\r\n0\r\n\r\n"),
        400,
        "chunk size with a sign",
    ),
    "chunk_size_minus_sign": (
        post_chunked(b"-5\r\nhello\r\n0\r\n\r\n"),
        400,
        "negative chunk size",
    ),
    "chunk_size_0x_prefix": (
        post_chunked(b"0x5\r\nhello\r\n0\r\n\r\n"),
        400,
        "chunk size with a 0x prefix",
    ),
    "chunk_size_non_hex": (
        post_chunked(b"5g\r\nhello\r\n0\r\n\r\n"),
        400,
        "chunk size with a non-hex character",
    ),
    "chunk_size_leading_space": (
        post_chunked(b" 5\r\nhello\r\n0\r\n\r\n"),
        400,
        "whitespace before the chunk size",
    ),
    "chunk_size_empty": (
        post_chunked(b"\r\nhello\r\n0\r\n\r\n"),
        400,
        "an empty chunk-size line",
    ),
    "chunk_size_overflow": (
        post_chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
        400,
        "a chunk size wider than 64 bits (overflow: would wrap to 5 in C parsers)",
    ),
    "chunk_size_over_max_body": (
        post_chunked(b"FFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n"),
        413,
        "a 64-bit chunk size is refused as soon as it is announced (over max_body_size)",
    ),
    "chunk_data_longer_than_size": (
        post_chunked(b"5\r\nhelloXX\r\n0\r\n\r\n"),
        400,
        "chunk data longer than its size",
    ),
    "chunk_data_missing_crlf": (
        post_chunked(b"5\r\nhello0\r\n\r\n"),
        400,
        "no CRLF after the chunk data",
    ),
    "chunk_data_bare_lf": (
        post_chunked(b"5\r\nhello\n0\r\n\r\n"),
        400,
        "a bare LF after the chunk data",
    ),
    "chunk_size_bare_lf": (
        post_chunked(b"5\nhello\r\n0\r\n\r\n"),
        400,
        "a bare LF ending the chunk-size line",
    ),
    "chunk_extension_without_name": (
        post_chunked(b"5;\r\nhello\r\n0\r\n\r\n"),
        400,
        "a chunk extension with no name",
    ),
    "chunk_extension_unterminated_quote": (
        post_chunked(b'5;a="open\r\nhello\r\n0\r\n\r\n'),
        400,
        "a chunk extension with an unterminated quoted string",
    ),
    "chunk_trailer_whitespace_before_colon": (
        post_chunked(b"5\r\nhello\r\n0\r\nX-T : v\r\n\r\n"),
        400,
        "a trailer field with whitespace before its colon",
    ),
    "chunk_trailer_obs_fold": (
        post_chunked(b"5\r\nhello\r\n0\r\nX-T: v\r\n folded\r\n\r\n"),
        400,
        "a folded trailer field",
    ),
    # -- header syntax
    "header_whitespace_before_colon": (
        request(b"GET / HTTP/1.1", b"X-Foo : bar"),
        400,
        "whitespace between a field name and its colon (RFC 9112 5.1: MUST reject)",
    ),
    "header_tab_before_colon": (
        request(b"GET / HTTP/1.1", b"X-Foo\t: bar"),
        400,
        "a tab between a field name and its colon",
    ),
    "header_obs_fold": (
        request(b"GET / HTTP/1.1", b"X-Foo: bar", b" continued"),
        400,
        "obs-fold: a header line continued on the next line",
    ),
    "header_obs_fold_tab": (
        request(b"GET / HTTP/1.1", b"X-Foo: bar", b"\tcontinued"),
        400,
        "obs-fold with a tab",
    ),
    "header_first_line_starts_with_space": (
        b"GET / HTTP/1.1\r\n Host: corpus.test\r\n\r\n",
        400,
        "whitespace between the request line and the first field (RFC 9112 2.2)",
    ),
    "header_without_colon": (
        request(b"GET / HTTP/1.1", b"X-No-Colon"),
        400,
        "a header line without a colon",
    ),
    "header_empty_name": (
        request(b"GET / HTTP/1.1", b": value"),
        400,
        "a header line with an empty name",
    ),
    "header_name_non_token": (
        request(b"GET / HTTP/1.1", b"X-Foo@: bar"),
        400,
        "a header name with a character that is not a tchar",
    ),
    "header_name_control_char": (
        request(b"GET / HTTP/1.1", b"X-F\x01oo: bar"),
        400,
        "a control character in a header name",
    ),
    "header_name_non_ascii": (
        request(b"GET / HTTP/1.1", b"X-F\xe9e: bar"),
        400,
        "a non-ASCII byte in a header name",
    ),
    "header_value_control_char": (
        request(b"GET / HTTP/1.1", b"X-Foo: a\x1bb"),
        400,
        "an ESC control character in a header value",
    ),
    "header_value_del": (
        request(b"GET / HTTP/1.1", b"X-Foo: a\x7fb"),
        400,
        "DEL in a header value",
    ),
    "header_value_nul": (
        request(b"GET / HTTP/1.1", b"X-Foo: a\x00b"),
        400,
        "NUL in a header value",
    ),
    "header_name_nul": (
        request(b"GET / HTTP/1.1", b"X-F\x00oo: bar"),
        400,
        "NUL in a header name",
    ),
    "bare_cr_in_header_value": (
        request(b"GET / HTTP/1.1", b"X-Foo: a\rb"),
        400,
        "a bare CR inside a header value",
    ),
    "bare_cr_as_line_end": (
        b"GET / HTTP/1.1\r\nHost: corpus.test\rX-Foo: bar\r\n\r\n",
        400,
        "a bare CR used as a line ending (a second header hidden from CR-only parsers)",
    ),
    "bare_lf_line_endings": (
        b"GET / HTTP/1.1\nHost: corpus.test\n\n",
        400,
        "bare LF line endings throughout",
    ),
    "bare_lf_in_header_block": (
        b"GET / HTTP/1.1\r\nHost: corpus.test\nX-Foo: bar\r\n\r\n",
        400,
        "one header line ended by a bare LF",
    ),
    "bare_lf_after_request_line": (
        b"GET / HTTP/1.1\nHost: corpus.test\r\n\r\n",
        400,
        "the request line ended by a bare LF",
    ),
    "nul_in_request_line": (
        request(b"GET /a\x00b HTTP/1.1"),
        400,
        "NUL in the request target",
    ),
    "three_leading_empty_lines": (
        b"\r\n\r\n\r\n" + request(b"GET / HTTP/1.1"),
        400,
        "more than two empty lines before the request line",
    ),
    # -- Host
    "duplicate_host": (
        request(b"GET / HTTP/1.1", b"Host: corpus.test"),
        400,
        "two Host headers, even identical (RFC 9112 3.2: MUST 400)",
    ),
    "duplicate_host_different_case": (
        request(b"GET / HTTP/1.1", b"host: evil.test"),
        400,
        "a second Host spelled in lower case",
    ),
    "http11_without_host": (
        request(b"GET / HTTP/1.1", host=None),
        400,
        "HTTP/1.1 without Host (RFC 9112 3.2: MUST 400)",
    ),
    "host_with_space": (
        request(b"GET / HTTP/1.1", host=b"corpus.test evil.test"),
        400,
        "a Host value with a space",
    ),
    "host_with_userinfo": (
        request(b"GET / HTTP/1.1", host=b"user@corpus.test"),
        400,
        "a Host value with userinfo",
    ),
    "host_with_path": (
        request(b"GET / HTTP/1.1", host=b"corpus.test/evil"),
        400,
        "a Host value with a path",
    ),
    # -- request line: method
    "method_with_parenthesis": (
        request(b"GE(T / HTTP/1.1"),
        400,
        "a method with a delimiter that is not a tchar",
    ),
    "method_non_ascii": (
        request(b"G\xc9T / HTTP/1.1"),
        400,
        "a method with a non-ASCII byte",
    ),
    "method_empty": (
        request(b" / HTTP/1.1"),
        400,
        "an empty method (line starts with a space)",
    ),
    "method_control_char": (
        request(b"GE\x01T / HTTP/1.1"),
        400,
        "a control character in the method",
    ),
    # -- request line: target
    "target_relative": (
        request(b"GET index.html HTTP/1.1"),
        400,
        "a target that is neither origin-, absolute- nor asterisk-form",
    ),
    "target_authority_form": (
        request(b"CONNECT corpus.test:443 HTTP/1.1"),
        400,
        "authority-form (CONNECT): this is not a proxy",
    ),
    "target_other_scheme": (
        request(b"GET ftp://corpus.test/file HTTP/1.1"),
        400,
        "absolute-form with a scheme other than http/https",
    ),
    "target_absolute_with_userinfo": (
        request(b"GET http://user@corpus.test/ HTTP/1.1"),
        400,
        "absolute-form with userinfo",
    ),
    "target_absolute_empty_authority": (
        request(b"GET http:///path HTTP/1.1"),
        400,
        "absolute-form with an empty authority",
    ),
    "target_with_fragment": (
        request(b"GET /page#frag HTTP/1.1"),
        400,
        "a fragment in the target (clients never send one)",
    ),
    "target_non_ascii": (
        request(b"GET /caf\xc3\xa9 HTTP/1.1"),
        400,
        "raw non-ASCII bytes in the target",
    ),
    "target_invalid_percent_escape": (
        request(b"GET /a%zz HTTP/1.1"),
        400,
        "an invalid percent escape",
    ),
    "target_truncated_percent_escape": (
        request(b"GET /a%2 HTTP/1.1"),
        400,
        "a truncated percent escape",
    ),
    "asterisk_without_options": (
        request(b"GET * HTTP/1.1"),
        400,
        "asterisk-form with a method other than OPTIONS",
    ),
    "missing_target": (
        request(b"GET HTTP/1.1"),
        400,
        "no request target",
    ),
    "request_line_double_space": (
        request(b"GET  / HTTP/1.1"),
        400,
        "two spaces between method and target",
    ),
    "request_line_tab_separator": (
        request(b"GET\t/ HTTP/1.1"),
        400,
        "a tab instead of a space in the request line",
    ),
    "request_line_trailing_space": (
        request(b"GET / HTTP/1.1 "),
        400,
        "a space after the version",
    ),
    "request_line_extra_word": (
        request(b"GET / HTTP/1.1 extra"),
        400,
        "a fourth word in the request line",
    ),
    "request_line_too_long": (
        request(b"GET /" + b"a" * 8200 + b" HTTP/1.1"),
        414,
        "a request line over the default max_request_line (8190)",
    ),
    "too_many_headers": (
        request(b"GET / HTTP/1.1", *(b"X-H%d: v" % n for n in range(100))),
        431,
        "Host plus 100 more fields: over the default max_header_count (100)",
    ),
    # -- version
    "version_http20": (request(b"GET / HTTP/2.0"), 505, "HTTP/2.0 in an HTTP/1 request line"),
    "version_http12": (request(b"GET / HTTP/1.2"), 505, "HTTP/1.2 does not exist"),
    "version_http09": (request(b"GET / HTTP/0.9"), 505, "HTTP/0.9 is not served"),
    "version_http30": (request(b"GET / HTTP/3.0"), 505, "HTTP/3.0 in an HTTP/1 request line"),
    "version_lowercase": (request(b"GET / http/1.1"), 400, "the version name is case-sensitive"),
    "version_two_digit_minor": (request(b"GET / HTTP/1.10"), 400, "a two-digit minor version"),
    "version_no_minor": (request(b"GET / HTTP/1"), 400, "a version without minor"),
    "version_garbage": (request(b"GET / FOO/1.1"), 400, "a protocol that is not HTTP"),
    "version_missing": (
        b"GET /\r\n\r\n",
        400,
        "an HTTP/0.9-style request line without version",
    ),
}


def corpus() -> dict[str, bytes]:
    """Every corpus file by path relative to this directory, with its exact content."""
    files: dict[str, bytes] = {}
    for name, (data, why, requests, keep_alive) in VALID.items():
        side = {"why": why, "keep_alive": keep_alive, "requests": requests}
        files[f"valid/{name}.http"] = data
        files[f"valid/{name}.json"] = _json(side)
    for name, (data, status, why) in INVALID.items():
        files[f"invalid/{name}.http"] = data
        files[f"invalid/{name}.json"] = _json({"status": status, "why": why})
    return files


def _json(value: dict) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=True) + "\n").encode()


def main() -> int:
    """Write the corpus and remove files of cases that no longer exist."""
    files = corpus()
    for kind in ("valid", "invalid"):
        (HERE / kind).mkdir(exist_ok=True)
        for old in (HERE / kind).iterdir():
            if f"{kind}/{old.name}" not in files:
                old.unlink()
    for rel, data in files.items():
        (HERE / rel).write_bytes(data)
    print(f"wrote {len(VALID)} valid and {len(INVALID)} invalid cases", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
