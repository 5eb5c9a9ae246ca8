"""The HTTP server of every `/metrics` and probe endpoint EGS serves itself: the exporter's, the
controller's, and the local play's stand-ins for vLLM and a simulated fleet.

Their clients give up: Prometheus past its scrape timeout, the kubelet past a probe's, on a loaded node.
socketserver prints a traceback on stderr for each such hang-up; here it is routine, logged at debug
level under the module of the server's class, and anything else is a bug, logged there with its
traceback.
"""

from __future__ import annotations

import logging
import sys
from http.server import ThreadingHTTPServer
from typing import Any


class HttpServer(ThreadingHTTPServer):
    request_queue_size = 1024
    """The listen backlog (capped by net.core.somaxconn): socketserver's default of 5 drops the SYNs
    of a burst of clients, which then wait a second or more to retry."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        log = logging.getLogger(type(self).__module__)
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("client %s went away: %s", client_address, error)
        else:
            log.exception("serving %s failed", client_address)
