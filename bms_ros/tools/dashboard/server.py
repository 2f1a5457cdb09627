"""The dashboard's HTTP side: the page, the JSON API and Server-Sent Events; stdlib only.

    GET  /                               packs found (links to one page per namespace)
    GET  /pack/<page>                    the live page of one pack ('_' is the root namespace)
    GET  /api/packs                      [{namespace, page, state, soc, max_level}]
    GET  /api/config                     {token_required, period_s}
    GET  /api/pack/<page>                the pack's snapshot (bms_ros.tools.dashboard.state)
    GET  /api/pack/<page>/stream         the snapshot every period_s (text/event-stream)
    POST /api/pack/<page>/reset          {"reason": str, "confirm": true} -> ResetTrips answer
    POST /api/pack/<page>/request_state  {"state": "standby|drive|charge", "confirm": true}

A POST needs a JSON body with "confirm": true (the page asks first) and the header
X-BMS-Token: the profile's dashboard.token when one is set (401 otherwise; compared in constant
time). The header also keeps other web sites out: a browser sends a custom header cross-site
only after a CORS preflight, which this server never grants; a POST whose Origin is not this
server is refused (403) as well. The actions themselves go to ``actions`` (the ROS node):
``reset(namespace, requester, reason)`` and ``request_state(namespace, state, requester)``,
each returning a dict, or raising TimeoutError / LookupError (503).
"""
import hmac
import html
import json
import logging
import os
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .state import from_page_name

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'static')
STATIC_TYPES = {'.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
                '.html': 'text/html; charset=utf-8', '.svg': 'image/svg+xml'}
STATES = ('standby', 'drive', 'charge')
MAX_BODY = 4096           # bytes of a POST body
MAX_REASON = 200          # characters of a reset reason
_log = logging.getLogger('bms_ros.dashboard')


class DashboardServer:
    """The HTTP server of one dashboard; ``start()`` serves in a thread, ``stop()`` ends it."""

    def __init__(self, config, dashboard, actions):
        self.config, self.dashboard, self.actions = config, dashboard, actions
        self._stopping = threading.Event()
        handler = type('Handler', (_Handler,), {'server_ref': self})
        server_class = ThreadingHTTPServer
        if ':' in config.host:   # an IPv6 address
            server_class = type('Server6', (ThreadingHTTPServer,),
                                {'address_family': socket.AF_INET6})
        self.httpd = server_class((config.host, config.port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = None

    @property
    def url(self):
        """The dashboard's address (http://host:port/)."""
        host = self.config.host if ':' not in self.config.host else f'[{self.config.host}]'
        return f'http://{host}:{self.port}/'

    def start(self):
        """Serve HTTP in a daemon thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name='dashboard_http',
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving and close the socket."""
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(2.0)

    def authorised(self, token):
        """True if ``token`` (the X-BMS-Token header, None if absent) may act."""
        if token is None:
            return False
        return hmac.compare_digest(token.encode(), self.config.token.encode())


class _Handler(BaseHTTPRequestHandler):
    server_ref = None            # the DashboardServer (set per server by type())
    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):  # noqa: A002  (the stdlib's name)
        _log.debug('%s %s', self.address_string(), format % args)

    # ------------------------------------------------------------------ replies

    def _send(self, status, body, content_type='application/json; charset=utf-8'):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Cache-Control', 'no-store')
        self.send_header('X-Content-Type-Options', 'nosniff')
        self.send_header('Content-Security-Policy', "default-src 'self'")
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status, value):
        self._send(status, json.dumps(value, allow_nan=False))

    def _error(self, status, text):
        self._json(status, {'error': text})

    # ------------------------------------------------------------------ GET

    def do_GET(self):  # noqa: N802  (the stdlib's name)
        path = urlsplit(self.path).path
        server = self.server_ref
        parts = [p for p in path.split('/') if p]
        if path == '/':
            return self._send(HTTPStatus.OK, _index_html(server.dashboard.index()),
                              STATIC_TYPES['.html'])
        if len(parts) == 2 and parts[0] == 'pack':
            return self._static('pack.html')
        if len(parts) == 2 and parts[0] == 'static':
            return self._static(parts[1])
        if parts == ['api', 'packs']:
            return self._json(HTTPStatus.OK, server.dashboard.index())
        if parts == ['api', 'config']:
            return self._json(HTTPStatus.OK, {'token_required': bool(server.config.token),
                                              'period_s': server.config.period_s})
        if len(parts) in (3, 4) and parts[:2] == ['api', 'pack']:
            namespace = from_page_name(parts[2])
            if namespace not in server.dashboard.namespaces():
                return self._error(HTTPStatus.NOT_FOUND, f'no pack in namespace {namespace}')
            view = server.dashboard.pack(namespace)
            if len(parts) == 3:
                return self._json(HTTPStatus.OK, view.snapshot())
            if parts[3] == 'stream':
                return self._stream(view)
        return self._error(HTTPStatus.NOT_FOUND, f'not found: {path}')

    def _static(self, name):
        ext = os.path.splitext(name)[1]
        path = os.path.join(STATIC_DIR, name)
        if ext not in STATIC_TYPES or os.path.basename(name) != name or not os.path.isfile(path):
            return self._error(HTTPStatus.NOT_FOUND, f'not found: {name}')
        with open(path, 'rb') as stream:
            self._send(HTTPStatus.OK, stream.read(), STATIC_TYPES[ext])

    def _stream(self, view):
        """Server-Sent Events: one 'snapshot' event every period_s until the client goes."""
        server = self.server_ref
        self.send_response(HTTPStatus.OK)
        self.send_header('Content-Type', 'text/event-stream')
        self.send_header('Cache-Control', 'no-store')
        self.send_header('Connection', 'close')
        self.end_headers()
        self.close_connection = True
        try:
            while not server._stopping.is_set():
                data = json.dumps(view.snapshot(), allow_nan=False)
                self.wfile.write(f'event: snapshot\ndata: {data}\n\n'.encode())
                self.wfile.flush()
                server._stopping.wait(server.config.period_s)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass   # the page was closed

    # ------------------------------------------------------------------ POST

    def do_POST(self):  # noqa: N802
        server = self.server_ref
        parts = [p for p in urlsplit(self.path).path.split('/') if p]
        if len(parts) != 4 or parts[:2] != ['api', 'pack'] or \
                parts[3] not in ('reset', 'request_state'):
            return self._error(HTTPStatus.NOT_FOUND, 'not found')
        origin = self.headers.get('Origin')
        if origin is not None and origin != f'http://{self.headers.get("Host", "")}':
            return self._error(HTTPStatus.FORBIDDEN, f'cross-origin request from {origin}')
        if not server.authorised(self.headers.get('X-BMS-Token')):
            return self._error(HTTPStatus.UNAUTHORIZED,
                               'missing or wrong X-BMS-Token (the profile\'s dashboard.token)')
        body = self._body()
        if body is None:
            return None
        if body.get('confirm') is not True:
            return self._error(HTTPStatus.BAD_REQUEST, 'not confirmed ("confirm": true)')
        namespace = from_page_name(parts[2])
        if namespace not in server.dashboard.namespaces():
            return self._error(HTTPStatus.NOT_FOUND, f'no pack in namespace {namespace}')
        requester = f'dashboard ({self.client_address[0]})'
        try:
            if parts[3] == 'reset':
                reason = body.get('reason', 'dashboard')
                if not isinstance(reason, str) or len(reason) > MAX_REASON:
                    return self._error(HTTPStatus.BAD_REQUEST,
                                       f'"reason": a string of at most {MAX_REASON} characters')
                answer = server.actions.reset(namespace, requester, reason or 'dashboard')
            else:
                state = body.get('state')
                if state not in STATES:
                    return self._error(HTTPStatus.BAD_REQUEST,
                                       f'"state": one of {", ".join(STATES)}, got {state!r}')
                answer = server.actions.request_state(namespace, state, requester)
        except (TimeoutError, LookupError) as error:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(error))
        _log.info('%s %s on %s: %s', requester, parts[3], namespace, answer)
        return self._json(HTTPStatus.OK, answer)

    def _body(self):
        """The JSON object of the request, or None after an error reply."""
        if not self.headers.get('Content-Type', '').startswith('application/json'):
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, 'expected application/json')
            return None
        try:
            length = int(self.headers.get('Content-Length', '0'))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._error(HTTPStatus.BAD_REQUEST, f'body of 0..{MAX_BODY} bytes expected')
            return None
        try:
            body = json.loads(self.rfile.read(length) or b'{}')
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            self._error(HTTPStatus.BAD_REQUEST, 'expected a JSON object')
            return None
        return body


def _index_html(packs):
    """The index page: one link per pack (rendered here: no script needed)."""
    rows = ''.join(
        f'<li><a href="/pack/{html.escape(p["page"])}">{html.escape(p["namespace"])}</a> '
        f'<span class="badge state-{html.escape(str(p["state"]))}">{html.escape(str(p["state"]))}'
        f'</span> <span class="level-{html.escape(str(p["max_level"]))}">'
        f'{html.escape(str(p["max_level"]))}</span></li>' for p in packs)
    return ('<!doctype html><html><head><meta charset="utf-8"><title>bms_ros packs</title>'
            '<link rel="stylesheet" href="/static/dashboard.css"></head><body>'
            '<h1>bms_ros: packs</h1>'
            f'<ul id="packs">{rows or "<li>no pack found yet (waiting for pack_state topics)"}'
            f'</ul><p class="muted">{time.strftime("%Y-%m-%d %H:%M:%S")}</p></body></html>')
