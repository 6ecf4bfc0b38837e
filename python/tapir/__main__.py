"""``python -m tapir [node options]``: an interactive Python session that is a network node.

PyIP's ``python3 -i pyip.py``, reborn: the node options are the ``tapir`` command's
(``--netns NS --ip CIDR``, ``--dhcp``, ``--dns IP``, ...); ``node`` is bound, and ``ping``,
``traceroute``, ``resolve``, ``wget``, ``serve``, ``trace`` and ``socket`` work on it.
"""

import code
import sys

import tapir
from tapir import _tapir


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    bad = _tapir.check_args(argv)
    if bad is not None:
        status, text = bad
        (sys.stdout if status == 0 else sys.stderr).write(text)
        return status
    try:
        node = tapir.Node.from_args(argv)
    except (OSError, ValueError) as e:
        print("tapir: %s" % e, file=sys.stderr)
        return 1
    try:
        import readline  # noqa: F401  (line editing and history for input())
        import rlcompleter  # noqa: F401

        readline.parse_and_bind("tab: complete")
    except ImportError:
        pass

    def socket(type=tapir.SOCK_STREAM, proto=0):
        """A socket of the node: socket(), socket(SOCK_DGRAM), socket(SOCK_RAW, IPPROTO_ICMP)."""
        return node.socket(tapir.AF_INET, type, proto)

    scope = {
        "__name__": "__console__",
        "tapir": tapir,
        "node": node,
        "ping": node.ping,
        "traceroute": node.traceroute,
        "resolve": node.resolve,
        "wget": node.wget,
        "serve": node.serve,
        "trace": node.trace,
        "socket": socket,
        "patch": lambda: tapir.patch(node),
    }
    for name in ("AF_INET", "SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "IPPROTO_ICMP",
                 "IPPROTO_TCP", "IPPROTO_UDP", "SHUT_WR", "SHUT_RDWR"):
        scope[name] = getattr(tapir, name)
    banner = (
        "tapir @ %s (%d queue%s): Python %s\n"
        "node, ping(host), traceroute(host), resolve(name), wget(url, path), serve('echo'), "
        "trace(print, 'icmp'), socket(SOCK_STREAM) are here; Ctrl-D or exit() leaves."
        % (node.ip, node.queues, "" if node.queues == 1 else "s", sys.version.split()[0])
    )
    try:
        code.interact(banner=banner, local=scope, exitmsg="")
    except SystemExit:
        pass
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
