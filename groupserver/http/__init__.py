"""Sans-I/O HTTP/1.1: request-head parsing, body framing and response-head checks (no sockets)."""
