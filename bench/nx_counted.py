"""nx-27017 with MongoDB's operation counters, for bench/pipeline.py.

nx-27017 answers ``serverStatus`` without ``opcounters``. This runs the same server (same
arguments as the ``nx-27017`` command) with every request it receives counted the way
MongoDB counts them, and adds the counts to its ``serverStatus`` answer under MongoDB's own
names, so the bench reads them the same way from either server:

- ``opcounters``: ``insert`` per document inserted, ``update`` and ``delete`` per statement
  (a bulk write of 256 replacements is 256 updates), ``query`` per ``find``, ``getmore`` per
  ``getMore``, ``command`` per any other command (``aggregate``, ``count``, ``ping``, ...);
- ``metrics.commands.<name>.total``: requests (round trips) per command name;

and, nx-27017's own (MongoDB has no such field), ``nxSeconds``: per command name and
collection, the requests and the seconds the server spent handling them (timed inside the
lock that serializes its requests), which says which of them cost it most. Counting is a
few dictionary updates per request, in the server's own handler thread.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

KIND_OF = {
    "insert": "insert",
    "update": "update",
    "delete": "delete",
    "find": "query",
    "getMore": "getmore",
}
STATEMENTS_OF = {"insert": "documents", "update": "updates", "delete": "deletes"}


def command_name(body: dict[str, Any]) -> str:
    """The command's name: the first key of its body that is not a ``$`` field."""
    return next((key for key in body if not key.startswith("$")), "?")


def statements(name: str, body: dict[str, Any], sequences: Iterable[list[Any]] = ()) -> int:
    """How many operations MongoDB's ``opcounters`` count for one request: its documents,
    updates or deletes (inline or as document sequences), otherwise one."""
    field = STATEMENTS_OF.get(name)
    if field is None:
        return 1
    inline = body.get(field)
    return (len(inline) if isinstance(inline, list) else 0) + sum(len(s) for s in sequences)


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.seconds: dict[str, list[float]] = {}  # "<command> <collection>": [requests, s]

    def record(self, msg: dict[str, Any]) -> str:
        """Counts the request; returns its "<command> <collection>" for ``timed``."""
        body: dict[str, Any] = {}
        sequences: list[list[Any]] = []
        for section_type, doc in msg.get("sections", ()):
            if section_type == "body" and isinstance(doc, dict):
                body = doc
            elif section_type == "payload_docs" and isinstance(doc, list):
                sequences.append(doc)
            elif section_type == "payload" and isinstance(doc, dict):
                sequences += [v for v in doc.values() if isinstance(v, list)]
        name = command_name(body)
        with self.lock:
            self.requests[name] += 1
            self.ops[KIND_OF.get(name, "command")] += statements(name, body, sequences)
        target = body.get(name)
        return f"{name} {target}" if isinstance(target, str) else name

    def timed(self, what: str, seconds: float) -> None:
        with self.lock:
            spent = self.seconds.setdefault(what, [0, 0.0])
            spent[0] += 1
            spent[1] += seconds

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {
                "opcounters": {
                    kind: self.ops[kind]
                    for kind in ("insert", "query", "update", "delete", "getmore", "command")
                },
                "metrics": {
                    "commands": {n: {"total": c, "failed": 0} for n, c in self.requests.items()}
                },
                "nxSeconds": {w: {"n": n, "s": s} for w, (n, s) in self.seconds.items()},
            }


def install(counters: Counters) -> None:
    from nx_27017 import handler
    from nx_27017.handler import NeoSQLiteHandler

    def counted(method: Callable[..., Any]) -> Callable[..., Any]:
        def handle(self: Any, msg: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            what = counters.record(msg)
            began = time.perf_counter()
            try:
                return method(self, msg, *args, **kwargs)
            finally:
                counters.timed(what, time.perf_counter() - began)

        return handle

    for name in ("handle_command", "handle_insert"):
        method = getattr(NeoSQLiteHandler, name)
        # Timed inside the server's lock (its wrapper serializes the requests on a database),
        # so that the seconds are the request's own work, not its wait for the others.
        inner = getattr(method, "__wrapped__", None)
        serialize = getattr(handler, "_serialize", None)
        if inner is not None and serialize is not None:
            setattr(NeoSQLiteHandler, name, serialize(counted(inner)))
        else:
            setattr(NeoSQLiteHandler, name, counted(method))
    server_status = NeoSQLiteHandler._handle_server_status

    def with_counters(self: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        request_id, status = server_status(self, *args, **kwargs)
        return request_id, status | counters.status()

    NeoSQLiteHandler._handle_server_status = with_counters


def main() -> int:
    install(Counters())
    from nx_27017.nx_27017 import main as serve

    return int(serve() or 0)


if __name__ == "__main__":
    sys.exit(main())
