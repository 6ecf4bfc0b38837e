"""A ``selectors`` selector for tapir sockets (which have no kernel descriptor to poll).

``select`` asks each registered tapir socket whether it is readable, waiting on them in short
turns; writability is reported at once (a tapir send queues, or waits inside ``send``).
``socketserver`` and anything built on ``selectors.DefaultSelector`` use it under
``tapir.patch``.
"""

import selectors
import time


def _tapir_socket(fileobj):
    import tapir

    if isinstance(fileobj, tapir.socket):
        return fileobj
    fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
    s = tapir._lookup_fileno(fd)
    if s is None:
        raise ValueError("%r is not a tapir socket: TapirSelector waits on tapir sockets only"
                         % (fileobj,))
    return s


class TapirSelector(selectors.BaseSelector):
    def __init__(self):
        self._keys = {}

    def register(self, fileobj, events, data=None):
        if not events or events & ~(selectors.EVENT_READ | selectors.EVENT_WRITE):
            raise ValueError("Invalid events: %r" % (events,))
        sock = _tapir_socket(fileobj)
        if sock._fileno in self._keys:
            raise KeyError("%r is already registered" % (fileobj,))
        key = selectors.SelectorKey(fileobj, sock._fileno, events, data)
        self._keys[sock._fileno] = (key, sock)
        return key

    def unregister(self, fileobj):
        sock = _tapir_socket(fileobj)
        try:
            return self._keys.pop(sock._fileno)[0]
        except KeyError:
            raise KeyError("%r is not registered" % (fileobj,)) from None

    def select(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        while True:
            ready = []
            entries = list(self._keys.values())
            # One socket waits a short turn; the others are only looked at.
            turn = 0.0 if len(entries) != 1 else 0.05
            if deadline is not None:
                turn = min(turn, max(deadline - time.monotonic(), 0))
            for key, sock in entries:
                ev = 0
                if key.events & selectors.EVENT_WRITE:
                    ev |= selectors.EVENT_WRITE
                if key.events & selectors.EVENT_READ and sock.readable(turn if not ev else 0):
                    ev |= selectors.EVENT_READ
                if ev:
                    ready.append((key, ev & key.events))
            if ready or (deadline is not None and time.monotonic() >= deadline):
                return ready
            if len(entries) != 1:
                time.sleep(0.005)
            if not entries:
                time.sleep(min(0.05, max(deadline - time.monotonic(), 0)) if deadline else 0.05)

    def close(self):
        self._keys.clear()

    def get_map(self):
        return {fd: key for fd, (key, _) in self._keys.items()}
