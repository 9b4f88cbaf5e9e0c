"""The configuration model: what GOST's YAML and GOST's URLs both become.

Everything downstream of config/ sees only these dataclasses. Field names
follow GOST's YAML keys (lowerCamel there, snake_case here). Metadata maps
keep GOST's semantics: keys lower-cased, values as written (typed parsing
happens per component, see options.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Auth:
    username: str
    password: str = ""


@dataclass(frozen=True)
class AutherConfig:
    """One GOST auther (top-level ``authers:``): its users, and a loader for more."""

    name: str
    auths: tuple[Auth, ...] = ()
    loader: LoaderConfig | None = None


@dataclass
class TLSConfig:
    """TLS files and client options (GOST's ``tls:`` block on listeners, dialers, globally)."""

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    secure: bool = False
    server_name: str = ""
    # global default-certificate options (GOST's top-level tls:)
    validity: float = 0.0
    common_name: str = ""
    organization: str = ""


@dataclass
class SelectorConfig:
    """How a hop or forwarder picks one node (GOST's selector: round/rand/fifo)."""

    strategy: str = "round"
    max_fails: int = 1
    fail_timeout: float = 10.0


@dataclass(frozen=True)
class RedisLoaderConfig:
    """GOST's ``redis:`` loader of a named list (go-gost/x internal/loader/redis.go)."""

    addr: str
    db: int = 0
    username: str = ""
    password: str = ""
    key: str = "gost"  # GOST's default key
    type: str = ""  # "set", "list", "hash" or "string"; "": the part's own default


@dataclass(frozen=True)
class HTTPLoaderConfig:
    """GOST's ``http:`` loader: a GET of ``url`` whose 200 body is read as a file."""

    url: str
    timeout: float = 0.0  # seconds; 0 = GOST's "none" (bounded here, see loaders/sources.py)


@dataclass(frozen=True)
class LoaderConfig:
    """Where a named list's further entries come from, and how often they are read again
    (GOST's ``file``, ``redis``, ``http`` and ``reload`` keys): see gostfast/loaders/."""

    file: str = ""  # GOST's file.path
    redis: RedisLoaderConfig | None = None
    http: HTTPLoaderConfig | None = None
    reload: float = 0.0  # seconds; 0 = read once at start (GOST clamps > 0 to >= 1 s)


@dataclass(frozen=True)
class BypassConfig:
    """One GOST bypass (top-level ``bypasses:`` or a ``bypass=`` URL key): see chain/bypass.py."""

    name: str
    matchers: tuple[str, ...] = ()
    whitelist: bool = False  # GOST's whitelist (or its older name, reverse)
    network: str = ""  # "", "tcp" or "udp": the targets it judges
    loader: LoaderConfig | None = None  # more matchers, read (again) from outside


@dataclass(frozen=True)
class AdmissionConfig:
    """One GOST admission (top-level ``admissions:`` or ``admission=`` on -L): see admission.py."""

    name: str
    matchers: tuple[str, ...] = ()
    whitelist: bool = False  # GOST's whitelist (or its older name, reverse)
    loader: LoaderConfig | None = None  # more matchers, read (again) from outside


@dataclass(frozen=True)
class HostsConfig:
    """One GOST hosts table (top-level ``hosts:`` or ``hosts=`` on -L/-F): chain/hosts.py."""

    name: str
    mappings: tuple[tuple[str, str], ...] = ()  # (hostname, ip), aliases expanded
    loader: LoaderConfig | None = None  # more mappings, read (again) from outside


@dataclass(frozen=True)
class LimiterConfig:
    """One GOST connection, rate or traffic limiter (``climiters:``/``rlimiters:``/
    ``limiters:``): see limits.py and traffic.py."""

    name: str
    limits: tuple[str, ...] = ()  # GOST's lines: "$ 100", "$$ 10", "10.0.0.0/8 5", "$ 1MB 2MB"
    loader: LoaderConfig | None = None  # more lines, read (again) from outside


@dataclass(frozen=True)
class NodeLabels:
    """GOST's selector labels: what a node's own metadata tells its hop's selector."""

    backup: bool = False  # tried only once no other healthy node is left
    weight: int = 1  # share of picks under the rand strategy (<= 0 counts as 1)
    max_fails: int | None = None  # overrides the selector's maxFails when set
    fail_timeout: float | None = None  # overrides the selector's failTimeout when set


@dataclass
class ForwardNode:
    name: str
    addr: str
    labels: NodeLabels = field(default_factory=NodeLabels)


@dataclass
class ForwarderConfig:
    nodes: list[ForwardNode] = field(default_factory=list)
    selector: SelectorConfig | None = None


@dataclass
class HandlerConfig:
    type: str = "auto"
    chain: str = ""
    # the users this handler accepts: those of its authers, else its own auth
    auths: list[Auth] = field(default_factory=list)
    # the authers named (auther/authers): those with a loader add users as they load
    authers: list[AutherConfig] = field(default_factory=list)
    # an auther is named: clients must log in even when it has no users (GOST
    # refuses everyone then); without one, no users means no authentication
    auth_required: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    retries: int = 0  # GOST's handler retries: more dial attempts after a failed one


@dataclass
class ListenerConfig:
    type: str = "tcp"
    tls: TLSConfig | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServiceConfig:
    name: str
    addr: str
    handler: HandlerConfig = field(default_factory=HandlerConfig)
    listener: ListenerConfig = field(default_factory=ListenerConfig)
    forwarder: ForwarderConfig | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    bypass: list[BypassConfig] = field(default_factory=list)  # targets the handler refuses
    admission: list[AdmissionConfig] = field(default_factory=list)  # clients it accepts
    hosts: HostsConfig | None = None  # maps request targets before routing
    climiter: LimiterConfig | None = None  # TCP connections open at once
    rlimiter: LimiterConfig | None = None  # requests per second
    limiter: LimiterConfig | None = None  # GOST's traffic limiter: bytes per second in/out
    # where this service came from, for error messages: "services[0]" or "-L 'ws://:80'"
    origin: str = ""
    # metadata keys the CLI copied into several parts (warn only if no part knows them)
    shared_keys: frozenset[str] = frozenset()


@dataclass
class ConnectorConfig:
    type: str = "http"
    auth: Auth | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class DialerConfig:
    type: str = "tcp"
    tls: TLSConfig | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class NodeConfig:
    name: str
    addr: str
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    dialer: DialerConfig = field(default_factory=DialerConfig)
    metadata: dict[str, Any] = field(default_factory=dict)
    bypass: list[BypassConfig] = field(default_factory=list)  # targets this node is not used for
    hosts: HostsConfig | None = None  # maps this node's own host when it is dialled
    origin: str = ""
    shared_keys: frozenset[str] = frozenset()


@dataclass
class HopConfig:
    name: str
    nodes: list[NodeConfig] = field(default_factory=list)
    selector: SelectorConfig | None = None
    bypass: list[BypassConfig] = field(default_factory=list)  # targets the route ends before
    hosts: HostsConfig | None = None  # for its nodes without hosts of their own
    # defined under GOST's top-level hops: (chains name it; one object shared by them)
    top_level: bool = False


@dataclass
class ChainConfig:
    name: str
    hops: list[HopConfig] = field(default_factory=list)
    selector: SelectorConfig | None = None


@dataclass
class LogConfig:
    """GOST's top-level ``log:`` block (rotation is not supported).

    ``output``: "stderr" (default), "stdout", "none" (GOST also takes "null")
    or a file path that is appended to. ``format``: GOST's default is json;
    gostfast's default is text, the same with or without a ``log:`` block.
    """

    level: str = "info"
    format: str = "text"
    output: str = "stderr"


@dataclass
class ApiConfig:
    """GOST's top-level ``api:`` (or ``-api=ADDR``): the web API that edits the running
    config (gostfast/api/). ``auths`` are the users it accepts: its ``auth`` and the
    users of its ``auther``; none means no authentication, as GOST."""

    addr: str
    path_prefix: str = ""
    accesslog: bool = False
    auths: list[Auth] = field(default_factory=list)
    auther: str = ""  # the named auther, kept to write the config back as given


@dataclass
class MetricsConfig:
    """GOST's top-level ``metrics:`` (or ``-metrics=[user:pass@]ADDR[?path=P]``)."""

    addr: str
    path: str = "/metrics"
    # the users basic auth accepts: the named auther's, else auth's one user
    auths: list[Auth] = field(default_factory=list)
    auth_required: bool = False  # an auther is named (GOST refuses all when it has no users)


@dataclass
class Config:
    services: list[ServiceConfig] = field(default_factory=list)
    chains: list[ChainConfig] = field(default_factory=list)
    tls: TLSConfig | None = None
    log: LogConfig | None = None
    api: ApiConfig | None = None
    metrics: MetricsConfig | None = None
    #: gostfast's top-level ``workers:`` (GOST ignores it): None = not given (1, or --workers)
    workers: int | None = None
    #: what ``workers:`` said ("auto" or the number), for -O to write back as given
    workers_text: str = ""

    def chain(self, name: str) -> ChainConfig | None:
        return next((c for c in self.chains if c.name == name), None)
