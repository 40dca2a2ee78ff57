"""`bench site --serve`: a built site on 127.0.0.1, for a quick look (the site needs no server; this is only
a convenience). Standard library only; never listens beyond the loopback interface."""
from __future__ import annotations

import functools
import http.server
from pathlib import Path

from bench.core.errors import BenchError

HOST = "127.0.0.1"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # one line per request would bury the URL the command printed
        pass


def serve(site: Path, port: int, say=print) -> None:
    """Serve `site` until interrupted. Port 0 picks a free one; the printed URL names the port in use."""
    handler = functools.partial(_Quiet, directory=str(site))
    try:
        server = http.server.ThreadingHTTPServer((HOST, port), handler)
    except OSError as e:
        raise BenchError(f"--port {port}: cannot listen on {HOST}:{port} ({e.strerror}); pick another port, "
                         f"or --port 0 for any free one") from None
    with server:
        say(f"serving {site} at http://{HOST}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            say("stopped")
