#!/usr/bin/env python3
"""A directory client that speaks the protocol the way the classic Python peer does.

One TCP connection per operation; every field is a NUL-terminated string sent
with its own send() (so a request arrives in several TCP segments, as with the
classic client); the reply is one result byte, then, for a successful listing
or lookup, more NUL-terminated strings. The DATETIME field after the OP can be
sent or omitted (older clients omit it): see PROTOCOL.md section 1.

Usage:
  classic_client.py --host H --port P [--no-datetime | --datetime V] scenario
      Runs a whole session against a fresh server and checks every result
      byte against PROTOCOL.md. Prints one line per request:
          STEP <n> <OP> <USER> -> <result> ok [refused]
      ("refused" marks a malformed request, which the server may leave out of
      its console), then "PASS <n> steps". Exits 1 at the first mismatch.
  classic_client.py --host H --port P [--no-datetime | --datetime V] op [--stall] OP USER [FIELD...]
      Sends one request and prints the result byte and the strings after it.
      With --stall it reads nothing (through a 4 KiB receive buffer) until the
      server gives up on the reply (a reset: POLLERR/POLLHUP) or 30 s pass,
      then reads as usual: a reply cut short must then fail with an error
      ("ERROR ... reset", exit 2), not end like a whole one.

Standard library only.
"""

import argparse
import select
import socket
import sys
import time

FIELD_MAX = 255
TIMEOUT = 10.0


class Mismatch(Exception):
    pass


class Client:
    def __init__(self, host, port, datetime_mode, stall=False):
        self.host = host
        self.port = port
        # None: omit the field; "": the local time now; else that exact value.
        self.datetime_mode = datetime_mode
        # Read nothing until the server gives up on the reply.
        self.stall = stall

    def datetime(self):
        if self.datetime_mode == "":
            return time.strftime("%d/%m/%Y %H:%M:%S")
        return self.datetime_mode

    def connect(self):
        if self.stall:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(TIMEOUT)
            sock.connect((self.host, self.port))
        else:
            sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def wait_for_reset(self, sock):
        # No event asked for: poll() wakes only for POLLERR/POLLHUP (a reset).
        poller = select.poll()
        poller.register(sock, 0)
        poller.poll(3 * TIMEOUT * 1000)

    def send_request(self, sock, op, user, fields):
        sock.sendall(op.encode() + b"\0")
        datetime = self.datetime()
        if datetime is not None:
            sock.sendall(datetime.encode() + b"\0")
        sock.sendall(user.encode() + b"\0")
        for field in fields:
            sock.sendall(field.encode() + b"\0")

    def call(self, op, user, *fields, strings=None):
        """Sends one request; returns (result, strings after it).

        result is None when the server closed the connection without a reply.
        strings(result, read_string) reads the strings that follow a result.
        """
        with self.connect() as sock:
            reader = sock.makefile("rb")
            try:
                self.send_request(sock, op, user, fields)
                if self.stall:
                    self.wait_for_reset(sock)
                first = reader.read(1)
            except (ConnectionResetError, BrokenPipeError):
                # A server that refuses a request may close before reading
                # all of it: the kernel then resets the connection.
                first = b""
            if not first:
                return None, []
            result = first[0]
            rest = strings(result, lambda: read_string(reader)) if strings else []
            extra = reader.read(1)
            if extra:
                raise Mismatch(
                    "%s: unexpected bytes after the reply: %r" % (op, extra + reader.read(64))
                )
            return result, rest


def read_string(reader):
    data = bytearray()
    while True:
        byte = reader.read(1)
        if not byte:
            raise Mismatch("connection closed inside a string (read %r)" % bytes(data))
        if byte == b"\0":
            return data.decode("utf-8", "replace")
        data += byte
        if len(data) > FIELD_MAX:
            raise Mismatch("string longer than %d bytes: %r..." % (FIELD_MAX, bytes(data[:32])))


def list_users_strings(result, read):
    if result != 0:
        return []
    count = int(read())
    return [(read(), read(), read()) for _ in range(count)]


def list_content_strings(result, read):
    if result != 0:
        return []
    count = int(read())
    return [read() for _ in range(count)]


def user_info_strings(result, read):
    if result != 0:
        return []
    return [read(), read()]


READERS = {
    "LIST_USERS": list_users_strings,
    "LIST_CONTENT": list_content_strings,
    "GET_USER_INFO": user_info_strings,
}


class Scenario:
    def __init__(self, client):
        self.client = client
        self.step = 0

    def expect(self, op, user, fields, result, strings=None, refused=False):
        """Sends OP USER FIELDS; checks the result byte (None: no reply at all)
        and, when given, the strings after it."""
        self.step += 1
        got, got_strings = self.client.call(op, user, *fields, strings=READERS.get(op))
        label = "STEP %d %s %s" % (self.step, op, user)
        if got != result:
            raise Mismatch(
                "%s %s: expected result %s, got %s" % (label, " ".join(fields), result, got)
            )
        if strings is not None and got_strings != strings:
            raise Mismatch("%s: expected %r, got %r" % (label, strings, got_strings))
        print("%s -> %s ok%s" % (label, got, " refused" if refused else ""), flush=True)

    def run(self):
        song = "/srv/music/song.mp3"
        other = "/srv/music/other.ogg"
        e = self.expect
        e("UNREGISTER", "alice", [], 1)
        e("REGISTER", "alice", [], 0)
        e("REGISTER", "alice", [], 1)
        e("REGISTER", "bob", [], 0)
        e("CONNECT", "alice", ["40647"], 0)
        e("CONNECT", "alice", ["40647"], 2)
        e("CONNECT", "bob", ["40648"], 0)
        e("PUBLISH", "alice", [song, "my favourite song"], 0)
        e("PUBLISH", "alice", [song, "again"], 3)
        e("PUBLISH", "alice", [other, "another one"], 0)
        # LIST_USERS lists the others, never the requester (the classic
        # server deviated here).
        e("LIST_USERS", "alice", [], 0, [("bob", "127.0.0.1", "40648")])
        e("LIST_USERS", "bob", [], 0, [("alice", "127.0.0.1", "40647")])
        e("LIST_CONTENT", "alice", ["alice"], 0, [song, other])
        e("LIST_CONTENT", "bob", ["alice"], 0, [song, other])
        e("LIST_CONTENT", "bob", ["bob"], 0, [])
        e("LIST_CONTENT", "alice", ["nobody"], 3)
        e("GET_USER_INFO", "alice", ["bob"], 0, ["127.0.0.1", "40648"])
        e("GET_USER_INFO", "alice", ["nobody"], 3)
        e("DELETE", "alice", [song], 0)
        e("DELETE", "alice", [song], 3)
        e("LIST_CONTENT", "alice", ["alice"], 0, [other])
        e("DISCONNECT", "alice", [], 0)
        e("DISCONNECT", "alice", [], 2)
        # Operations while disconnected.
        e("PUBLISH", "alice", ["/srv/music/new.mp3", "new"], 2)
        e("DELETE", "alice", [other], 2)
        e("LIST_USERS", "alice", [], 2)
        e("LIST_CONTENT", "alice", ["alice"], 2)
        e("GET_USER_INFO", "alice", ["bob"], 2)
        # A disconnected target is not reachable; DISCONNECT keeps publications.
        e("GET_USER_INFO", "bob", ["alice"], 3)
        e("LIST_USERS", "bob", [], 0, [])
        e("LIST_CONTENT", "bob", ["alice"], 0, [other])
        # A PORT outside 1..=65535 is "other error" and changes nothing.
        e("REGISTER", "carol", [], 0)
        e("CONNECT", "carol", ["0"], 3, refused=True)
        e("CONNECT", "carol", ["70000"], 3, refused=True)
        e("CONNECT", "carol", ["port"], 3, refused=True)
        e("LIST_USERS", "bob", [], 0, [])
        e("GET_USER_INFO", "bob", ["carol"], 3)
        # An unknown OP: the connection is closed without a reply.
        e("FROB", "bob", [], None, refused=True)
        # UNREGISTER removes the user and its publications.
        e("UNREGISTER", "alice", [], 0)
        e("UNREGISTER", "alice", [], 1)
        e("LIST_CONTENT", "bob", ["alice"], 3)
        e("CONNECT", "alice", ["40647"], 1)
        e("DISCONNECT", "alice", [], 1)
        e("PUBLISH", "alice", [song, "x"], 1)
        e("DELETE", "alice", [song], 1)
        e("LIST_USERS", "alice", [], 1)
        e("LIST_CONTENT", "alice", ["bob"], 1)
        e("GET_USER_INFO", "alice", ["bob"], 1)
        e("UNREGISTER", "carol", [], 0)
        e("DISCONNECT", "bob", [], 0)
        e("UNREGISTER", "bob", [], 0)
        print("PASS %d steps" % self.step, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-datetime", action="store_true", help="omit the DATETIME field")
    group.add_argument(
        "--datetime",
        metavar="VALUE",
        default="",
        help="send this DATETIME (default: the local time, DD/MM/YYYY HH:MM:SS)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("scenario", help="run the whole session and check every result")
    op = sub.add_parser("op", help="send one request and print the reply")
    op.add_argument(
        "--stall",
        action="store_true",
        help="read nothing until the server gives up on the reply (a reset), then read",
    )
    op.add_argument("op")
    op.add_argument("user")
    op.add_argument("fields", nargs="*")
    args = parser.parse_args()

    client = Client(
        args.host,
        args.port,
        None if args.no_datetime else args.datetime,
        stall=getattr(args, "stall", False),
    )
    try:
        if args.command == "scenario":
            Scenario(client).run()
        else:
            result, strings = client.call(
                args.op, args.user, *args.fields, strings=READERS.get(args.op)
            )
            print("result %s" % ("none (closed)" if result is None else result))
            for s in strings:
                print("\t%s" % (" ".join(s) if isinstance(s, tuple) else s))
    except Mismatch as e:
        print("MISMATCH %s" % e, flush=True)
        return 1
    except OSError as e:
        print("ERROR %s" % e, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
