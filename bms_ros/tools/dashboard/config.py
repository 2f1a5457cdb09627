"""The profile's `dashboard:` section: where the web dashboard listens and who may act.

dashboard:
host: 127.0.0.1        # bind address; anything but loopback needs a token
port: 8642             # TCP port (0: any free port, printed at start)
token: ''              # required for reset and state requests when set
period_s: 0.5          # s between live updates (Server-Sent Events)
history_s: 600         # s of history in the charts (one sample per second)
events: 100            # trip events kept per pack (newest first)
"""
import ipaddress
from dataclasses import dataclass

from bms_ros.core.contract import DASHBOARD_PORT
from bms_ros.core.errors import ConfigError

FIELDS = ('host', 'port', 'token', 'period_s', 'history_s', 'events')
DEFAULT_PORT = DASHBOARD_PORT
MIN_TOKEN_CHARS = 8   # a shorter token is guessable in a few requests


def is_loopback(host):
    """True for an address of this machine only (127.0.0.0/8, ::1, 'localhost')."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a host name: it may resolve anywhere


@dataclass(frozen=True)
class DashboardConfig:
    """Validated `dashboard:` settings."""

    host: str = '127.0.0.1'
    port: int = DEFAULT_PORT
    token: str = ''
    period_s: float = 0.5
    history_s: float = 600.0
    events: int = 100

    @classmethod
    def from_section(cls, section, host=None, port=None):
        """From a core.config.Section; ``host``/``port`` (node parameters) override the file.
        A non-loopback host without a token is a ConfigError naming dashboard.token.
        """
        section.reject_unknown(FIELDS)
        host = host or section.string('host', cls.host)
        port = section.integer('port', cls.port, minimum=0, maximum=65535) if port is None \
            else port
        if not 0 <= port <= 65535:
            raise ConfigError('parameter', 'port', f'expected a port in 0..65535, got {port}')
        token = section.data.get('token', '')
        if token is None:
            token = ''
        if not isinstance(token, str):
            raise section.error('token', f'expected a string, got {token!r}')
        if token and (len(token) < MIN_TOKEN_CHARS or token.strip() != token):
            raise section.error('token', f'expected at least {MIN_TOKEN_CHARS} characters '
                                'without surrounding blanks')
        if not is_loopback(host) and not token:
            raise section.error('token', f'binding to {host} (not loopback) lets anyone on '
                                'that network reset trips and change the pack state: set a '
                                'token, or bind 127.0.0.1')
        return cls(host=host, port=port, token=token,
                   period_s=section.number('period_s', cls.period_s, minimum=0.05,
                                           maximum=10.0),
                   history_s=section.number('history_s', cls.history_s, minimum=10.0,
                                            maximum=86400.0),
                   events=section.integer('events', cls.events, minimum=1, maximum=10000))
