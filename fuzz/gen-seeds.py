#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/seeds/<target>/<name>, from known-answer bytes.

The bytes are those of the crate's known-answer tests (shared/vectors: the classic directory
session, the classic transfer, the libtirpc captures). Run it from anywhere; it rewrites
fuzz/seeds/ beside it. The smoke script copies these seeds into a scratch corpus, so libFuzzer
never writes into fuzz/seeds/.
"""

import shutil
import struct
from pathlib import Path

SEEDS = Path(__file__).resolve().parent / "seeds"

# The operations in OpCode::ALL order: directory_reply's first byte selects one (modulo 11).
OPS = ["REGISTER", "UNREGISTER", "CONNECT", "DISCONNECT", "PUBLISH", "DELETE",
       "LIST_USERS", "LIST_CONTENT", "GET_USER_INFO", "SEARCH", "PING"]
TS = b"24/11/2026 20:42:35"


def h(text):
    return bytes.fromhex("".join(text.split()))


def req(op, user=b"alice", tail=b"", ts=TS):
    return op.encode() + b"\0" + (ts + b"\0" if ts else b"") + user + b"\0" + tail


def u32(*values):
    return b"".join(struct.pack(">I", v) for v in values)


def xdr_string(s):
    return u32(len(s)) + s + b"\0" * (-len(s) % 4)


def mark(length, last=True):
    return u32(length | (0x80000000 if last else 0))


def framed(msg):
    return mark(len(msg)) + msg


# classic-directory-session.trace: (operation, request, reply), one per connection.
SESSION = [
    ("REGISTER", req("REGISTER"), b"\x00"),
    ("REGISTER", req("REGISTER"), b"\x01"),
    ("CONNECT", req("CONNECT", tail=b"40647\0"), b"\x00"),
    ("PUBLISH", req("PUBLISH", tail=b"/srv/music/song.mp3\0my favourite song\0"), b"\x00"),
    ("PUBLISH", req("PUBLISH", tail=b"/srv/music/song.mp3\0again\0"), b"\x03"),
    ("LIST_USERS", req("LIST_USERS"), h("003100616c696365003132372e302e302e3100343036343700")),
    ("LIST_CONTENT", req("LIST_CONTENT", tail=b"alice\0"),
     h("0031002f7372762f6d757369632f736f6e672e6d703300")),
    ("LIST_CONTENT", req("LIST_CONTENT", tail=b"nobody\0"), b"\x03"),
    ("DELETE", req("DELETE", tail=b"/srv/music/song.mp3\0"), b"\x00"),
    ("DELETE", req("DELETE", tail=b"/srv/music/song.mp3\0"), b"\x03"),
    ("DISCONNECT", req("DISCONNECT"), b"\x00"),
    ("UNREGISTER", req("UNREGISTER"), b"\x00"),
    ("UNREGISTER", req("UNREGISTER"), b"\x02"),
]

# libtirpc captures (shared/vectors/rpc), bare messages (record marks removed).
CALL_TCP = h("""d4c4f146 00000000 00000002 20000099 00000001 00000001 00000000 00000000
    00000000 00000000 00000005 616c6963 65000000 00000007 5055424c 49534800 00000013
    32342f31 312f3230 32362031 393a3430 3a313200 00000008 736f6e67 2e6d7033""")
REPLY_TCP = h("d4c4f146 00000001 00000000 00000000 00000000 00000000 00000000")
CALL_UDP = h("""6b0e4e89 00000000 00000002 20000099 00000001 00000001 00000000 00000000 00000000
    00000000 00000003 626f6200 00000007 434f4e4e 45435400 00000013 32342f31 312f3230
    32362031 393a3430 3a313300 00000000""")
REPLY_UDP = h("6b0e4e89 00000001 00000000 00000000 00000000 00000000 00000000")
CALL_AUTHSYS = h("""fa95002f 00000000 00000002 20000099 00000001 00000001 00000001 00000018
    6b05e8b4 00000002 766d0000 00000000 00000000 00000000 00000000 00000000 00000005
    616c6963 65000000 00000006 44454c45 54450000 00000013 32342f31 312f3230 32362031
    393a3430 3a313400 00000008 736f6e67 2e6d7033""")
GETADDR_CALL = h("""d4c4eff60000000000000002000186a0000000040000000300000000000000000000000000000000
    200000990000000100000003746370000000000f3132372e302e302e312e302e31313100000000086c69627469727063""")
GETADDR_REPLY = h("d4c4eff60000000100000000000000000000000000000000000000113132372e302e302e312e3232362e323239000000")
NULL_CALL = u32(7, 0, 2, 0x20000099, 1, 0, 0, 0, 0, 0)
# Replies to SET (bool true), GETPORT (port 58085), a denied AUTH_ERROR(BADCRED), a PROG_MISMATCH.
BOOL_REPLY = u32(9, 1, 0, 0, 0, 0, 1)
GETPORT_REPLY = u32(9, 1, 0, 0, 0, 0, 58085)
DENIED_REPLY = u32(9, 1, 1, 1, 1)
MISMATCH_REPLY = u32(9, 1, 0, 0, 0, 2, 1, 1)
MAPPING = u32(0x20000099, 1, 6, 0)
RPCB = GETADDR_CALL[40:]


def three_fragments(msg):
    parts = [(msg[:7], False), (msg[7:50], False), (msg[50:], True)]
    return b"".join(mark(len(p), last) + p for p, last in parts)


def seeds():
    out = {}
    req_seeds = {}
    for i, (op, request, _) in enumerate(SESSION):
        req_seeds[f"trace-{i + 1:02}-{op.lower()}"] = request
        # The older form, without DATETIME.
        old = request.replace(TS + b"\0", b"", 1)
        req_seeds[f"trace-{i + 1:02}-{op.lower()}-old"] = old
    req_seeds.update({
        "get-user-info": req("GET_USER_INFO", tail=b"carol\0"),
        "connect-leading-zeros": req("CONNECT", ts=None, tail=b"00080\0"),
        "connect-65535": req("CONNECT", tail=b"65535\0"),
        "unknown-date": req("REGISTER", user=b"bob", ts=b"00/00/0000 00:00:00"),
        "publish-empty-description": req("PUBLISH", ts=None, tail=b"/a b\0\0"),
        "longest-user": req("REGISTER", user=b"u" * 255),
        "two-requests": req("LIST_USERS") + req("REGISTER", user=b"bob", ts=None),
        "get-file": b"GET_FILE\0/a\0",
        # Extensions (PROTOCOL.md §6.2, §6.3): bad queries are valid requests.
        "search": req("SEARCH", tail=b"beat help\0"),
        "search-old": req("SEARCH", ts=None, tail=b"Beat \xc3\x89COLE 2\xc3\xa8me\0"),
        "search-bad-query": req("SEARCH", tail=b"a b c d e f g h i\0"),
        "search-not-utf8": req("SEARCH", ts=None, tail=b"beat \xff\0"),
        "ping": req("PING"),
        "ping-old": req("PING", ts=None),
    })
    out["directory_request"] = req_seeds
    out["directory_server_message"] = {
        "capabilities": b"CAPABILITIES\0",
        "capabilities-then-more": b"CAPABILITIES\0" + req("PING"),
        "capabilities-too-long": b"CAPABILITIESX\0",
        "search": req_seeds["search"],
        "ping-old": req_seeds["ping-old"],
        "connect": req_seeds["trace-03-connect"],
        "publish-old": req_seeds["trace-04-publish-old"],
    }

    rep = {}
    for i, (op, _, reply) in enumerate(SESSION):
        rep[f"trace-{i + 1:02}-{op.lower()}"] = bytes([OPS.index(op)]) + reply
    extra = [
        ("GET_USER_INFO", "ok-v4", b"\x00127.0.0.1\x0040647\x00"),
        ("GET_USER_INFO", "ok-v6", b"\x00::1\x000\x00"),
        ("GET_USER_INFO", "target-not-found", b"\x03"),
        ("LIST_USERS", "empty", b"\x000\x00"),
        ("LIST_USERS", "two", b"\x002\x00bob\x0010.0.0.2\x001\x00carol\x00127.0.0.1\x0045678\x00"),
        ("LIST_CONTENT", "two", b"\x002\x00/a b\x00/c\x00"),
        ("LIST_CONTENT", "empty", b"\x000\x00"),
        ("CONNECT", "already-connected", b"\x02"),
        ("SEARCH", "two", b"\x002\x00bob\x00/m/The_Beatles-Help.mp3\x00live\x00carol\x00/b.ogg\x00\x00"),
        ("SEARCH", "empty", b"\x000\x00"),
        ("SEARCH", "bad-query", b"\x03"),
        ("PING", "ok", b"\x00"),
        ("PING", "other", b"\x03"),
    ]
    for op, name, reply in extra:
        rep[f"{op.lower()}-{name}"] = bytes([OPS.index(op)]) + reply
    out["directory_reply"] = rep

    out["capabilities_reply"] = {
        "p2p-server": b"\x003\x00GET_USER_INFO\x00SEARCH\x00PING\x00",
        "none": b"\x000\x00",
        "unknown-name": b"\x002\x00PING\x00GET_FILE_FROM_V2\x00",
        "leading-zeros": b"\x00001\x00SEARCH\x00",
    }
    out["search_query"] = {
        "example": b"beat",
        "two-terms": b"Beat HELP",
        "non-ascii": "ÉCOLE straße STRAẞE москва 中文 ٣".encode(),
        "nine-terms": b"a b c d e f g h i",
        "long-term": b"x" * 65,
        "not-a-word": b"AC/DC",
        "not-utf8": b"beat \xff",
        "whitespace": "  beat\thelp\u3000mp3 ".encode(),
    }
    out["transfer_get_file"] = {
        "classic": h("4745545f46494c45002f7372762f646f63732f612e74787400"),
        "longest": b"GET_FILE\0" + b"/" * 255 + b"\0",
    }
    out["transfer_header"] = {
        "ok-with-body": h("003800616263006465660a"),
        "not-found": b"\x01",
        "other": b"\x02",
        "zero": b"\x000\x00",
        "max": b"\x0018446744073709551615\x00",
    }
    empty = b"blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    out["transfer_request"] = {
        "classic": h("4745545f46494c45002f7372762f646f63732f612e74787400"),
        "from": b"GET_FILE_FROM\0/srv/docs/a.txt\0100\0",
        "from-longest": b"GET_FILE_FROM\0" + b"/" * 255 + b"\0" + b"9" * 20 + b"\0",
    }
    out["transfer_from_header"] = {
        "ok-empty": b"\x000\x00" + empty + b"\x00",
        "ok-with-body": b"\x008\x00blake3:" + b"0f" * 32 + b"\x00abc\x00def\n",
        "not-found": b"\x01",
        "other": b"\x02",
        "offset-beyond": b"\x03",
        "classic-stream": b"\x005\x00hello world",
    }
    out["timestamp"] = {
        "trace": TS,
        "unknown": b"00/00/0000 00:00:00",
        "unreal": b"31/02/2026 25:61:00",
        "epoch-seconds": struct.pack(">q", 1_795_639_355) + b"/2026 20:42:35",
    }
    out["xdr_log_entry"] = {
        "tcp-alice-publish": CALL_TCP[40:],
        "udp-bob-connect": CALL_UDP[40:],
        "authsys-alice-delete": CALL_AUTHSYS[68:],
        "nonzero-padding": xdr_string(b"bob")[:-1] + b"X" + CALL_UDP[48:],
    }
    out["rpc_call"] = {
        "call-tcp": CALL_TCP,
        "call-udp": CALL_UDP,
        "call-authsys": CALL_AUTHSYS,
        "call-null": NULL_CALL,
        "getaddr-call": GETADDR_CALL,
        "reply-tcp": REPLY_TCP,
        "mismatch-reply": MISMATCH_REPLY,
        "denied-reply": DENIED_REPLY,
    }
    out["rpc_reply"] = {
        "reply-tcp": REPLY_TCP,
        "reply-udp": REPLY_UDP,
        "getaddr-reply": GETADDR_REPLY,
        "bool-reply": BOOL_REPLY,
        "getport-reply": GETPORT_REPLY,
        "denied-reply": DENIED_REPLY,
        "mismatch-reply": MISMATCH_REPLY,
    }
    out["rpc_dispatch"] = {
        "call-tcp": CALL_TCP,
        "call-udp": CALL_UDP,
        "call-authsys": CALL_AUTHSYS,
        "call-null": NULL_CALL,
        "procedure-2": CALL_UDP[:20] + u32(2) + CALL_UDP[24:],
        "version-2": CALL_UDP[:16] + u32(2) + CALL_UDP[20:],
        "rpcvers-3": CALL_UDP[:8] + u32(3) + CALL_UDP[12:],
        "reply": REPLY_UDP,
    }
    # record_reassembler: max record size, chunk-size count, chunk sizes, stream.
    out["record_reassembler"] = {
        "call-tcp-one-chunk": bytes([255, 0, 255]) + framed(CALL_TCP),
        "call-tcp-chunks-7": bytes([255, 0, 6]) + framed(CALL_TCP),
        "three-fragments-bytewise": bytes([255, 0, 0]) + three_fragments(CALL_TCP),
        "two-records": bytes([200, 2, 3, 50, 1]) + framed(CALL_UDP) + framed(REPLY_UDP),
        "too-large": bytes([64, 0, 9]) + framed(CALL_AUTHSYS),
        "empty-fragment": bytes([100, 0, 3]) + mark(2, False) + b"ab" + mark(0, False),
        "empty-last-fragment": bytes([100, 0, 3]) + mark(2, False) + b"ab" + mark(0),
        "getaddr": bytes([255, 1, 16, 4]) + framed(GETADDR_CALL) + framed(GETADDR_REPLY),
    }
    out["rpcbind"] = {
        "mapping": MAPPING,
        "rpcb-getaddr": RPCB,
        "rpcb-set": u32(0x20000099, 1) + xdr_string(b"tcp") + xdr_string(b"0.0.0.0.226.229")
        + xdr_string(b"0"),
    }
    out["uaddr"] = {
        "v4": b"127.0.0.1.0.111",
        "v4-reply": b"127.0.0.1.226.229",
        "v6": b"::1.226.229",
        "v4-mapped": b"::ffff:10.0.0.1.1.2",
        "v6-zeros": b"0::0.0.111",
        "leading-zeros": b"127.0.0.1.001.002",
    }
    # The arbitrary-driven targets take any bytes; known answers give them varied shapes.
    out["directory_request_to_bytes_and_back"] = {
        k: v for k, v in list(req_seeds.items())[:6]}
    out["directory_reply_to_bytes_and_back"] = {k: v for k, v in list(rep.items())[:6]}
    out["capabilities_to_bytes_and_back"] = {
        k: v for k, v in list(out["directory_server_message"].items())[:4]}
    out["rpc_message_to_bytes_and_back"] = {
        "call-tcp": CALL_TCP, "call-authsys": CALL_AUTHSYS, "reply-tcp": REPLY_TCP}
    out["log_entry_to_bytes_and_back"] = {
        "tcp-alice-publish": CALL_TCP[40:], "udp-bob-connect": CALL_UDP[40:]}
    return out


def main():
    if SEEDS.exists():
        shutil.rmtree(SEEDS)
    total = 0
    for target, files in seeds().items():
        folder = SEEDS / target
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
            total += 1
    print(f"wrote {total} seeds for {len(seeds())} targets into {SEEDS}")


if __name__ == "__main__":
    main()
