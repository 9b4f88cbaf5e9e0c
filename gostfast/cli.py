"""Command line, in GOST's grammar: ``gostfast -L URL... -F URL... | -C FILE``.

``gostfast check -C FILE`` (or ``check -L ... -F ...``) validates and prints the
resolved services and chains without opening a socket; ``-O yaml|json``
validates and prints the configuration in GOST's own schema, as ``gost -O``. Exit codes: 0 ok,
1 a service could not start, 2 bad command line or configuration.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

import gostfast

# Start-up cost: ``gostfast -V`` needs only click; configuration, the service
# layer (asyncio, ssl) and PyYAML's dumper are imported by the commands that use
# them, so nothing here is imported at module level beyond click.
if TYPE_CHECKING:
    from gostfast.config.model import Config, LogConfig
    from gostfast.service import Plan

EXIT_START = 1
EXIT_CONFIG = 2
ENV_METRICS = "GOST_METRICS"  # GOST's: the metrics address
OUTPUT_FORMATS = ("yaml", "json")  # gost_output.FORMATS (a test keeps them equal)


def setup_logging(cfg: LogConfig | None, debug: bool) -> None:
    """Logging per ``log:``, GOST_LOGGER_LEVEL and -D (exit 2 on a bad level)."""
    from gostfast import logsetup
    from gostfast.config.errors import ConfigError

    try:
        logsetup.configure(cfg, debug)
    except ConfigError as exc:
        _fail(exc, EXIT_CONFIG)


def load_config(
    config_files: tuple[str, ...],
    services: tuple[str, ...],
    hops: tuple[str, ...],
    api: str | None = None,
    documents: list[Any] | None = None,
    metrics: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """-C files and -L/-F URLs -> one Config (GOST merges them the same way).

    ``api`` is ``-api=ADDR`` (else GOST's ``GOST_API`` sets the address); ``documents``,
    when given, gets each part for the web API's document: a ``-C`` source's mapping
    as written, the ``-L``/``-F`` part as its Config. As GOST's parser, GOST_METRICS
    sets the metrics address and ``metrics`` (``-metrics``) the whole block.
    """
    import logging
    import os

    from gostfast import registry
    from gostfast.config import sources
    from gostfast.config import url as urlcfg
    from gostfast.config import yaml as yamlcfg
    from gostfast.config.errors import ConfigError
    from gostfast.config.model import Config, MetricsConfig

    if hops and not services:
        raise ConfigError("-F", "-F needs at least one -L service to use the chain")
    env_api = os.environ.get("GOST_API", "").strip()
    if not config_files and not services and api is None and not env_api:
        default = sources.find_default()
        if default is None:
            raise ConfigError(
                "",
                "nothing to run: give -L URL (and -F URL) or -C config.yaml "
                "(no gost.yaml, gost.yml or gost.json in /etc/gost, ~/.gost or here)",
            )
        logging.getLogger("gostfast").info("config: %s", default)
        config_files = (default,)
    cfg = Config()
    for path in config_files:
        data = sources.load_data(path)
        part = yamlcfg.from_dict(data)
        if documents is not None:
            documents.append(data)
        cfg.api = part.api or cfg.api
        cfg.services += part.services
        cfg.chains += part.chains
        cfg.tls = part.tls or cfg.tls
        cfg.log = part.log or cfg.log
        cfg.metrics = part.metrics or cfg.metrics
        if part.workers is not None:
            cfg.workers, cfg.workers_text = part.workers, part.workers_text
    if services or hops:
        if hops and not services:
            raise ConfigError("-F", "-F needs at least one -L service to use the chain")
        part = urlcfg.from_urls(list(services), list(hops), registry.names())
        if part.chains and cfg.chain("chain-0") is not None:
            raise ConfigError("-F", "chain name 'chain-0' is taken by the config file")
        cfg.services += part.services
        cfg.chains += part.chains
        if documents is not None:  # in GOST's schema only if the API asks for it
            documents.append(part)
    if env_api:  # as GOST: the variable sets the address, the flag replaces it all
        from gostfast.config.model import ApiConfig

        cfg.api = cfg.api or ApiConfig(addr=env_api)
        cfg.api.addr = env_api
    if api is not None:
        from gostfast.config.api_flag import parse_api_flag

        cfg.api = parse_api_flag(api)
    env = (os.environ if environ is None else environ).get(ENV_METRICS, "")
    if env:
        cfg.metrics = dataclasses.replace(cfg.metrics or MetricsConfig(addr=""), addr=env)
    if metrics:
        cfg.metrics = urlcfg.parse_metrics_flag(metrics)
    return cfg


def _fail(exc: Exception, code: int) -> None:
    click.echo(f"gostfast: error: {exc}", err=True)
    sys.exit(code)


def _plan(config_files, services, hops, api=None, documents=None, metrics=None) -> Plan:
    """Load and plan; a ConfigError exits 2."""
    from gostfast.config.errors import ConfigError
    from gostfast.service import plan

    try:
        return plan(load_config(config_files, services, hops, api, documents, metrics))
    except ConfigError as exc:
        _fail(exc, EXIT_CONFIG)
        raise  # unreachable


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        from gostfast.config import values

        return values.format_duration(value) if value else 0
    return value


def describe(p: Plan) -> dict[str, Any]:
    """The resolved model as plain data (what ``check`` prints)."""
    from gostfast.config import gost_output

    def opts(part) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in part.options.items() if v is not None}

    def loader(part) -> dict[str, Any]:
        """A named list's loader, its Redis password masked and its URL's userinfo cut."""
        ld = part.loader
        if ld is None:
            return {}
        out: dict[str, Any] = {"reload": _jsonable(ld.reload)}
        if ld.file:
            out["file"] = ld.file
        if ld.redis is not None:
            out["redis"] = {**dataclasses.asdict(ld.redis), "password": "***"}
            if not ld.redis.password:
                del out["redis"]["password"]
        if ld.http is not None:
            from gostfast.loaders.sources import redact_url

            out["http"] = {"url": redact_url(ld.http.url), "timeout": _jsonable(ld.http.timeout)}
        return {"loader": out}

    def matchers(rules) -> list[dict[str, Any]]:
        fields = ("whitelist", "network")  # bypasses have a network, admissions not
        out = []
        for b in rules:
            entry = {"name": b.name, "matchers": list(b.matchers)}
            entry.update({f: getattr(b, f) for f in fields if hasattr(b, f)})
            out.append({**entry, **loader(b)})
        return out

    bypass = matchers

    def hosts(h) -> dict[str, Any]:
        return {"name": h.name, "mappings": [list(m) for m in h.mappings], **loader(h)}

    def tls(t) -> dict[str, Any] | None:
        if t is None:
            return None
        d = {k: v for k, v in dataclasses.asdict(t).items() if v not in ("", 0.0, False)}
        return d or None

    out: dict[str, Any] = {"services": [], "chains": []}
    for sp in p.services:
        s = sp.config
        entry: dict[str, Any] = {
            "name": s.name,
            "addr": s.addr,
            "listener": {"type": s.listener.type, "options": opts(sp.listener)},
            "handler": {"type": s.handler.type, "options": opts(sp.handler)},
        }
        if s.listener.tls:
            entry["listener"]["tls"] = tls(s.listener.tls)
        if s.handler.chain:
            entry["handler"]["chain"] = s.handler.chain
        if s.handler.retries:
            entry["handler"]["retries"] = s.handler.retries
        if s.handler.auth_required:
            entry["handler"]["authRequired"] = True
        if s.bypass:
            entry["bypass"] = bypass(s.bypass)
        if s.hosts:
            entry["hosts"] = hosts(s.hosts)
        for key in ("climiter", "rlimiter", "limiter"):
            if (lim := getattr(s, key)) is not None:
                entry[key] = {"name": lim.name, "limits": list(lim.limits), **loader(lim)}
        if s.limiter is not None and sp.limiter_scope:
            entry["limiter"]["scope"] = sp.limiter_scope
        if s.admission:
            entry["admission"] = matchers(s.admission)
        if s.handler.auths:
            entry["handler"]["auth"] = [
                {"username": a.username, "password": "***"} for a in s.handler.auths
            ]
        if any(a.loader is not None for a in s.handler.authers):
            entry["handler"]["authers"] = [{"name": a.name, **loader(a)} for a in s.handler.authers]
        if s.forwarder:
            sel = s.forwarder.selector
            entry["forwarder"] = {
                "nodes": [
                    {"name": n.name, "addr": n.addr, **gost_output.labels_metadata(n.labels)}
                    for n in s.forwarder.nodes
                ],
                "selector": dataclasses.asdict(sel)
                if sel
                else {"strategy": "round", "max_fails": 1, "fail_timeout": 10.0},
            }
            entry["forwarder"]["selector"]["fail_timeout"] = _jsonable(
                entry["forwarder"]["selector"]["fail_timeout"]
            )
        out["services"].append(entry)
    for name, cp in p.chains.items():
        hops = []
        for hop_cfg, nodes in zip(cp.config.hops, cp.hops, strict=True):
            hop: dict[str, Any] = {"name": hop_cfg.name, "nodes": []}
            if hop_cfg.bypass:
                hop["bypass"] = bypass(hop_cfg.bypass)
            if hop_cfg.hosts:
                hop["hosts"] = hosts(hop_cfg.hosts)
            for n in nodes:
                node: dict[str, Any] = {
                    "name": n.config.name,
                    "addr": n.config.addr,
                    "connector": {"type": n.config.connector.type, "options": opts(n.connector)},
                    "dialer": {"type": n.config.dialer.type, "options": opts(n.dialer)},
                }
                if n.config.connector.auth:
                    node["connector"]["auth"] = {
                        "username": n.config.connector.auth.username,
                        "password": "***",
                    }
                if n.config.dialer.tls:
                    node["dialer"]["tls"] = tls(n.config.dialer.tls)
                node.update(gost_output.labels_metadata(n.labels))
                if n.config.bypass:
                    node["bypass"] = bypass(n.config.bypass)
                if n.config.hosts:
                    node["hosts"] = hosts(n.config.hosts)
                hop["nodes"].append(node)
            hops.append(hop)
        out["chains"].append({"name": name, "hops": hops})
    if not out["chains"]:
        del out["chains"]
    if p.config.log is not None:
        out["log"] = dataclasses.asdict(p.config.log)
    if (api := p.config.api) is not None:
        out["api"] = {"addr": api.addr, "pathPrefix": api.path_prefix, "accesslog": api.accesslog}
        if api.auths or api.auther:
            out["api"]["auth"] = [{"username": a.username, "password": "***"} for a in api.auths]
    if (m := p.config.metrics) is not None:
        out["metrics"] = {"addr": m.addr, "path": m.path}
        if m.auths or m.auth_required:
            out["metrics"]["auth"] = [{"username": a.username, "password": "***"} for a in m.auths]
    return out


_URL_OPTS = [
    click.option(
        "-L",
        "services",
        multiple=True,
        metavar="URL",
        help="service: [handler+]listener://[user:pass@][host]:port[/targets][?k=v]",
    ),
    click.option(
        "-F",
        "hops",
        multiple=True,
        metavar="URL",
        help="chain node (one hop per -F): [connector+]dialer://[user:pass@]host:port[?k=v]",
    ),
    click.option(
        "-C",
        "config_files",
        multiple=True,
        metavar="FILE",
        help="GOST YAML/JSON config: a file, an http(s) URL, - for stdin, or the JSON "
        "itself ('{...}'); default gost.yaml in /etc/gost, ~/.gost or here",
    ),
    click.option(
        "--api",
        "api",
        metavar="ADDR",
        help="GOST's web API: [user:pass@][host]:port[?pathPrefix=/p&accesslog=true] "
        "(as gost -api; GOST_API sets the address too)",
    ),
    click.option(
        "-metrics",
        "--metrics",
        "metrics",
        metavar="[USER:PASS@]ADDR[?path=P]",
        help="serve GOST's Prometheus metrics on ADDR (as gost -metrics; GOST_METRICS too)",
    ),
]


def _url_options(f):
    for o in reversed(_URL_OPTS):
        f = o(f)
    return f


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@_url_options
@click.option("-D", "debug", is_flag=True, help="debug logging")
@click.option("-V", "version", is_flag=True, help="print the version and exit")
@click.option(
    "-O",
    "output",
    type=click.Choice(OUTPUT_FORMATS),
    help="print the configuration in GOST's schema (yaml or json) and exit, as gost -O",
)
@click.option(
    "--grace",
    type=float,
    default=5.0,
    show_default=True,
    help="seconds to let tunnels drain on stop",
)
@click.option(
    "--workers",
    "workers",
    callback=lambda ctx, param, value: _workers_option(value),
    metavar="N|auto",
    help="worker processes, each running every service (auto = usable CPUs); "
    "default the config's workers:, else 1 (one process, no supervisor)",
)
@click.option(
    "-R",
    "reload_period",
    callback=lambda ctx, param, value: _duration_option(value, "-R"),
    metavar="DURATION",
    help="reload the -C files every DURATION (as gost -R; SIGHUP reloads at once)",
)
@click.pass_context
def cli(
    ctx,
    services,
    hops,
    config_files,
    debug,
    version,
    output,
    grace,
    workers,
    reload_period,
    api,
    metrics,
):
    """gostfast: a GOST-compatible websocket tunnel (ws, wss, mws, mwss)."""
    if version:
        impl = "compiled" if gostfast.compiled else "pure-python"
        click.echo(
            f"gostfast {gostfast.__version__} ({impl} codecs, python {sys.version.split()[0]})"
        )
        return
    if ctx.invoked_subcommand is not None:
        return
    setup_logging(None, debug)  # config loading may warn: honour GOST_LOGGER_LEVEL already
    documents: list[Any] = []
    p = _plan(config_files, services, hops, api, documents, metrics)
    if workers is not None:  # the command line wins over the config's workers:
        p.config.workers, p.config.workers_text = workers
    if output:  # validated above: what is printed is a config gostfast runs
        from gostfast.config import gost_output
        from gostfast.service import known_metadata_keys

        click.echo(gost_output.render(p.config, output, known_metadata_keys), nl=False)
        return
    count = worker_count(p)
    # ``auto`` asks for the supervisor (reloads on SIGHUP) even where it counts one
    # CPU: a unit's ExecReload must not end a gateway on a one-core machine
    if count > 1 or reload_period or p.config.workers_text.lower() == "auto":
        if p.config.api is not None and reload_period:
            _fail(_api_with_reload_period(), EXIT_CONFIG)
        _supervise(
            p,
            count,
            grace,
            reload_period,
            debug,
            (config_files, services, hops, workers, metrics),
            documents,
        )
        return
    setup_logging(p.config.log, debug)
    import uvloop

    from gostfast.config.errors import ConfigError
    from gostfast.malloc_tuning import tune_malloc
    from gostfast.service import StartError  # the API's ApiStartError too

    tune_malloc()
    try:
        metrics_socks = _bind_metrics(p)
        uvloop.run(_run(p, grace, documents, metrics_socks))
    except StartError as exc:
        _fail(exc, EXIT_START)
    except ConfigError as exc:  # refused by a component as it was built
        _fail(exc, EXIT_CONFIG)
    except KeyboardInterrupt:
        pass


async def _run(p: Plan, grace: float, documents: list[Any], metrics_socks) -> None:
    """One process: the services, and GOST's web API beside them when ``api`` is set."""
    if p.config.api is not None:
        from gostfast.api.run import run_with_api

        await run_with_api(p, grace, documents, metrics_socks)
        return
    from gostfast.service import Orchestrator

    await Orchestrator(p, grace=grace, metrics_sockets=metrics_socks).run()


def _bind_metrics(p: Plan) -> list | None:
    """The metrics address's sockets, bound before any service (exit 1 naming it)."""
    if p.config.metrics is None:
        return None
    from gostfast.metrics.server import MetricsBindError, bind
    from gostfast.service import StartError

    try:
        return bind(p.config.metrics.addr)
    except MetricsBindError as exc:
        raise StartError(str(exc)) from None


def _api_with_reload_period():
    from gostfast.config.errors import ConfigError

    return ConfigError(
        "-R",
        "not with the web API (api): each period would read the files again and drop "
        "the changes made through the API",
    )


def _supervise(p, count, grace, reload_period, debug, sources, documents):
    """--workers N > 1 or auto (or -R): the supervisor runs the workers and reloads
    (supervisor.py); with ``api``, the API runs in a process of its own (api/supervised.py)."""
    from gostfast import logsetup
    from gostfast.config.errors import ConfigError
    from gostfast.malloc_tuning import tune_malloc
    from gostfast.service import plan
    from gostfast.supervisor import Supervisor

    config_files, services, hops, workers, metrics = sources

    def reload_plan() -> Plan:
        fresh = plan(load_config(config_files, services, hops, metrics=metrics))
        if workers is not None:
            fresh.config.workers, fresh.config.workers_text = workers
        return fresh

    try:
        logsetup.configure(p.config.log, debug, pid=True)
    except ConfigError as exc:
        _fail(exc, EXIT_CONFIG)
    api = None
    if p.config.api is not None:
        from gostfast.api.run import controller_and_plan
        from gostfast.api.server import ApiStartError, bind_api
        from gostfast.api.supervised import ApiProcess

        try:
            controller, p = controller_and_plan(p, documents)
            api = ApiProcess(bind_api(p.config.api.addr), controller, debug)
        except ConfigError as exc:
            _fail(exc, EXIT_CONFIG)
        except ApiStartError as exc:
            _fail(exc, EXIT_START)
    tune_malloc()
    source = ", ".join(config_files) or "the -L/-F command line"
    sup = Supervisor(p, count, grace, reload_plan, reload_period, debug, source, api=api)
    sys.exit(sup.run())


@cli.command()
@_url_options
@click.option(
    "--workers",
    "workers",
    callback=lambda ctx, param, value: _workers_option(value),
    metavar="N|auto",
    help="the worker count to check and print (as the run would use it)",
)
def check(services, hops, config_files, api, metrics, workers):
    """Validate the configuration and print the resolved services and chains."""
    setup_logging(None, False)
    p = _plan(config_files, services, hops, api, metrics=metrics)
    if workers is not None:
        p.config.workers, p.config.workers_text = workers
    import yaml

    out = describe(p)
    out["workers"] = worker_count(p)
    click.echo(yaml.safe_dump(out, sort_keys=False, default_flow_style=False), nl=False)


def worker_count(p: Plan) -> int:
    """The workers a run of this plan starts: --workers, else the config's workers:, else 1."""
    from gostfast.workers import DEFAULT_WORKERS

    return p.config.workers if p.config.workers is not None else DEFAULT_WORKERS


def _workers_option(value: str | None) -> tuple[int, str] | None:
    """--workers N|auto -> (count, as written); a bad value is a usage error (exit 2)."""
    if value is None:
        return None
    from gostfast.workers import parse_workers

    try:
        return parse_workers(value), value.strip()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--workers") from None


def _duration_option(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    from gostfast.config import values

    try:
        seconds = values.parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None
    if seconds < 0:
        raise click.BadParameter(f"a negative period {value!r}", param_hint=flag)
    return seconds or None


def _normalise_argv(argv: list[str]) -> list[str]:
    """Accept Go-flag spellings GOST users type: ``-L=url`` and ``--L url``."""
    out = []
    for arg in argv:
        if arg.startswith(("-api=", "--api=")):  # Go's flag form of -api
            out += ["--api", arg.split("=", 1)[1]]
            continue
        if arg in ("-api",):
            out.append("--api")
            continue
        for flag in ("-L", "-F", "-C", "-O"):
            if arg.startswith(flag + "="):
                out += [flag, arg[3:]]
                break
            if arg.startswith("-" + flag + "="):
                out += [flag, arg[4:]]
                break
        else:
            out.append(arg[1:] if arg in ("--L", "--F", "--C", "--D", "--V", "--O") else arg)
    return out


def main(argv: list[str] | None = None) -> None:
    args = _normalise_argv(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="gostfast", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        sys.exit(EXIT_CONFIG)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
