#!/usr/bin/env python3
# make_corpus.py: writes the malformed-request corpus in this directory, one
# NAME.req file per case (raw bytes as a client would send them). The .req
# files are committed so the test (tests/test_reliability_http.c) needs no
# Python; run this again after editing a case. Every case must get a 4xx
# status (505 for a version the server does not speak) or a close, within
# the header or idle timeout, and never take the worker down. Sizes assume
# the test's limits: --max-body-bytes 65536 and the default header (16 KiB)
# and URI (8 KiB) limits.
import os

out = os.path.dirname(os.path.abspath(__file__))
H = b"Host: t\r\n"
def req(line, headers=b"", body=b""):
    return line + b"\r\n" + headers + b"\r\n" + body
C = {}
# --- request line ---
C["line-lowercase-method"] = req(b"get / HTTP/1.1", H)
C["line-unknown-method"] = req(b"FROB / HTTP/1.1", H)
C["line-method-too-long"] = req(b"G" * 5000 + b" / HTTP/1.1", H)
C["line-no-version"] = b"GET /\r\n\r\n"
C["line-no-target"] = req(b"GET HTTP/1.1", H)
C["line-only-method"] = b"GET\r\n\r\n"
C["line-version-garbage"] = req(b"GET / HTTP/1.x", H)
C["line-version-lowercase"] = req(b"GET / http/1.1", H)
C["line-version-no-minor"] = req(b"GET / HTTP/1", H)
C["line-version-three-digits"] = req(b"GET / HTTP/1.11", H)
C["line-version-leading-zero"] = req(b"GET / HTTP/01.1", H)
C["line-double-space"] = req(b"GET  / HTTP/1.1", H)
C["line-tab-separators"] = req(b"GET\t/\tHTTP/1.1", H)
C["line-leading-space"] = req(b" GET / HTTP/1.1", H)
C["line-trailing-garbage"] = req(b"GET / HTTP/1.1 extra", H)
C["line-space-in-target"] = req(b"GET /a b HTTP/1.1", H)
C["line-ctl-in-target"] = req(b"GET /a\x01b HTTP/1.1", H)
C["line-del-in-target"] = req(b"GET /a\x7fb HTTP/1.1", H)
C["line-nul-in-method"] = req(b"G\x00ET / HTTP/1.1", H)
C["line-nul-in-target"] = req(b"GET /\x00 HTTP/1.1", H)
C["line-nul-in-version"] = req(b"GET / HTTP/1.\x001", H)
C["line-bad-absolute-uri"] = req(b"GET http://[::1 HTTP/1.1", H)
C["line-target-no-slash"] = req(b"GET abc HTTP/1.1", H)
C["line-cr-only-endings"] = b"GET / HTTP/1.1\rHost: t\r\r"
C["line-bare-lf"] = b"GET / HTTP/1.1\nHost: t\n\n"
C["line-bare-lf-request-line"] = b"GET / HTTP/1.1\nHost: t\r\n\r\n"
C["line-empty-lines-only"] = b"\r\n" * 8
C["line-http09-style"] = b"GET /\n"
C["line-http2-preface"] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
C["line-tls-client-hello"] = bytes.fromhex("160301007a0100007603035f1b5e" + "00" * 32 + "000c00130014c02bc02f00ff0100004100000010000e00000b6578616d706c652e636f6d")
C["line-binary-garbage"] = bytes((i * 73 + 11) % 256 for i in range(512))
C["uri-overlong-9k"] = req(b"GET /" + b"a" * 9000 + b" HTTP/1.1", H)
C["uri-overlong-100k"] = req(b"GET /" + b"a" * 100000 + b" HTTP/1.1", H)
C["uri-overlong-query"] = req(b"GET /?" + b"q=1&" * 4000 + b" HTTP/1.1", H)
C["uri-nonascii-utf8"] = req("GET /\u00e4\u00f6\u00fc HTTP/1.1".encode("utf-8"), H)
C["uri-nonascii-latin1"] = req(b"GET /\xe4\xf6\xfc HTTP/1.1", H)
C["uri-nonascii-high-bytes"] = req(b"GET /" + bytes(range(0x80, 0x100)) + b" HTTP/1.1", H)
C["method-nonascii"] = req("G\u00c9T / HTTP/1.1".encode("utf-8"), H)
# --- header fields ---
C["hdr-missing-host-http11"] = req(b"GET / HTTP/1.1")
C["hdr-duplicate-host"] = req(b"GET / HTTP/1.1", b"Host: a\r\nHost: b\r\n")
C["hdr-obs-fold"] = req(b"GET / HTTP/1.1", H + b"X-Folded: a\r\n b\r\n")
C["hdr-obs-fold-tab"] = req(b"GET / HTTP/1.1", H + b"X-Folded: a\r\n\tb\r\n")
C["hdr-fold-first-line"] = req(b"GET / HTTP/1.1", b" Host: t\r\n" + H)
C["hdr-no-colon"] = req(b"GET / HTTP/1.1", H + b"NoColonHere\r\n")
C["hdr-space-before-colon"] = req(b"GET / HTTP/1.1", b"Host : t\r\n")
C["hdr-tab-before-colon"] = req(b"GET / HTTP/1.1", H + b"X-A\t: b\r\n")
C["hdr-empty-name"] = req(b"GET / HTTP/1.1", H + b": value\r\n")
C["hdr-name-nonascii"] = req(b"GET / HTTP/1.1", H + "X-\u00e4: v".encode("utf-8") + b"\r\n")
C["hdr-name-nul"] = req(b"GET / HTTP/1.1", H + b"X-\x00A: v\r\n")
C["hdr-name-ctl"] = req(b"GET / HTTP/1.1", H + b"X-\x01A: v\r\n")
C["hdr-value-nul"] = req(b"GET / HTTP/1.1", H + b"X-A: a\x00b\r\n")
C["hdr-value-ctl"] = req(b"GET / HTTP/1.1", H + b"X-A: a\x01b\r\n")
C["hdr-value-bare-cr"] = req(b"GET / HTTP/1.1", H + b"X-A: a\rb\r\n")
C["hdr-value-bare-lf"] = req(b"GET / HTTP/1.1", H + b"X-A: a\nb\r\n")
C["hdr-huge-value"] = req(b"GET / HTTP/1.1", H + b"X-Big: " + b"v" * 20000 + b"\r\n")
C["hdr-huge-name"] = req(b"GET / HTTP/1.1", H + b"X" * 20000 + b": v\r\n")
C["hdr-many-fields"] = req(b"GET / HTTP/1.1", H + b"".join(b"X-%d: v\r\n" % i for i in range(3000)))
C["hdr-100k-of-fields"] = req(b"GET / HTTP/1.1", H + b"X-Pad: " + b"p" * 1000 + b"\r\n" * 1 + (b"X-Pad: " + b"p" * 1000 + b"\r\n") * 100)
C["hdr-no-end"] = b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n"
# --- framing: Content-Length / Transfer-Encoding ---
C["cl-negative"] = req(b"POST / HTTP/1.1", H + b"Content-Length: -1\r\n")
C["cl-not-a-number"] = req(b"POST / HTTP/1.1", H + b"Content-Length: abc\r\n")
C["cl-plus-sign"] = req(b"POST / HTTP/1.1", H + b"Content-Length: +5\r\n", b"hello")
C["cl-overflow"] = req(b"POST / HTTP/1.1", H + b"Content-Length: 99999999999999999999999999\r\n")
C["cl-hex"] = req(b"POST / HTTP/1.1", H + b"Content-Length: 0x5\r\n", b"hello")
C["cl-list"] = req(b"POST / HTTP/1.1", H + b"Content-Length: 5, 5\r\n", b"hello")
C["cl-duplicate-different"] = req(b"POST / HTTP/1.1", H + b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!")
C["cl-duplicate-same"] = req(b"POST / HTTP/1.1", H + b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello")
C["cl-space-inside"] = req(b"POST / HTTP/1.1", H + b"Content-Length: 1 0\r\n", b"0123456789")
C["cl-too-large"] = req(b"POST / HTTP/1.1", H + b"Content-Length: 1000000000000\r\n", b"x" * 100)
C["cl-and-te"] = req(b"POST / HTTP/1.1", H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")
C["te-and-cl"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n")
C["te-chunked-twice"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")
C["te-chunked-not-last"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n")
C["te-space-before-colon"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n")
C["te-obs-fold"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n")
C["te-vertical-tab"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding:\x0bchunked\r\n", b"0\r\n\r\n")
C["chunk-size-not-hex"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n")
C["chunk-size-overflow"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"fffffffffffffffffffff\r\nx\r\n0\r\n\r\n")
C["chunk-size-negative"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n")
C["chunk-size-empty"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"\r\nhello\r\n0\r\n\r\n")
C["chunk-missing-crlf"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX0\r\n\r\n")
C["chunk-data-too-long"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"3\r\nhello\r\n0\r\n\r\n")
C["chunk-huge-extension"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"5;" + b"e" * 100000 + b"\r\nhello\r\n0\r\n\r\n")
C["chunk-body-too-large"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"".join(b"1000\r\n" + b"b" * 0x1000 + b"\r\n" for _ in range(24)) + b"0\r\n\r\n")
C["chunk-nul-in-size"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"5\x00\r\nhello\r\n0\r\n\r\n")
C["chunk-bare-lf"] = req(b"POST / HTTP/1.1", H + b"Transfer-Encoding: chunked\r\n", b"5\nhello\n0\n\n")
for k, v in C.items():
    open(os.path.join(out, k + ".req"), "wb").write(v)
print("%d cases in %s" % (len(C), out))
