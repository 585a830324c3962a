"""``rigwatch fleet``: run the fleet server, manage machines, keys and users.

Commands::

    rigwatch fleet serve CONFIG [--host H] [--port P]
    rigwatch fleet machines add --config CONFIG ID --name NAME [--type T] [--site S]
                                [--lat DEG --lon DEG] [--tag key=value ...]
    rigwatch fleet machines list --config CONFIG
    rigwatch fleet machines rotate-key --config CONFIG ID
    rigwatch fleet machines revoke --config CONFIG ID
    rigwatch fleet users add --config CONFIG NAME --role admin   (password asked, or from
                                                                  RIGWATCH_FLEET_PASSWORD)

A new key is printed once: it is stored only as its SHA-256. Every change is written to the
audit as ``cli:<os user>``.
"""

from __future__ import annotations

import getpass
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rigwatch.errors import RigwatchError
from rigwatch.fleet.config import FleetConfig, load_fleet_config
from rigwatch.fleet.schemas import MachineIn, Role, UserIn

if TYPE_CHECKING:
    from rigwatch.fleet.store import FleetStore

app = typer.Typer(no_args_is_help=True, help="The fleet server: machines report in, live map.")
machines_app = typer.Typer(no_args_is_help=True, help="Register machines and manage their keys.")
users_app = typer.Typer(no_args_is_help=True, help="People using the dashboard and the API.")
app.add_typer(machines_app, name="machines")
app.add_typer(users_app, name="users")

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="RIGWATCH_FLEET_CONFIG", help="The fleet config (TOML)."),
]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


def _config(path: Path) -> FleetConfig:
    """The config; the folder of its SQLite database is created when missing."""
    try:
        config = load_fleet_config(path)
    except RigwatchError as exc:
        raise _fail(exc) from None
    url = config.database.url
    if "://" not in url:  # a SQLite file (made absolute by the loader)
        try:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _fail(exc) from None
    return config


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    return typer.Exit(code=2)


def _store(config: FleetConfig) -> FleetStore:
    # imported here: `rigwatch --help` should not load SQLAlchemy, Alembic and argon2
    import time

    from rigwatch.fleet.db import create_fleet_engine, migrate
    from rigwatch.fleet.security import password_hasher
    from rigwatch.fleet.store import FleetStore

    engine = create_fleet_engine(
        config.database.url,
        synchronous=config.database.synchronous,
        schema=config.database.schema_name,
    )
    migrate(engine)
    hasher = password_hasher(config.auth.argon2_time_cost, config.auth.argon2_memory_kib)
    return FleetStore(engine, time.time_ns, hasher)


@app.command()
def serve(
    config: Annotated[Path, typer.Argument(help="The fleet config (TOML).")],
    host: Annotated[str | None, typer.Option(help="Listen address (default: config).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: config).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes on one shared socket (several need [live] redis_url; the "
            "kernel, not the machine id, picks a connection's worker: see docs/fleet.md, "
            "Several workers, for one process per port behind a load balancer).",
        ),
    ] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log every request (uvicorn's access log; at thousands of machines this is "
            "a line per status message)."
        ),
    ] = False,
) -> None:
    """Run the fleet server (uvicorn).

    Several processes (sharing the database, live updates through Redis) each evaluate the
    messages they receive: run one per port behind a load balancer hashing the machine id, so
    each machine's rules see all its messages (docs/fleet.md, Several workers).
    """
    import uvicorn

    from rigwatch.fleet.app import CONFIG_ENV, create_fleet_app, tune_gc_for_serving

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = _config(config)
    if workers > 1:
        if cfg.live.redis_url is None:
            raise _fail(ValueError("--workers > 1 needs [live] redis_url (live updates)"))
        if cfg.mqtt.enabled:
            raise _fail(ValueError("--workers > 1 with [mqtt] enabled: run MQTT ingest in one"))
        os.environ[CONFIG_ENV] = str(config.resolve())
        uvicorn.run(
            "rigwatch.fleet.app:app_from_environment",
            factory=True,
            workers=workers,
            host=host or cfg.server.host,
            port=port or cfg.server.port,
            log_level=log_level,
            ws_max_size=1 << 16,
            proxy_headers=False,
            access_log=access_log,
        )
        return
    fleet_app = create_fleet_app(cfg)
    tune_gc_for_serving()
    uvicorn.run(
        fleet_app,
        host=host or cfg.server.host,
        port=port or cfg.server.port,
        log_level=log_level,
        ws_max_size=1 << 16,
        # no client address is used (limits are per key): X-Forwarded-* need not be read
        proxy_headers=False,
        access_log=access_log,
    )


@machines_app.command("add")
def machines_add(
    config: ConfigOption,
    machine_id: Annotated[str, typer.Argument(help="The machine's id (letters, digits, _ -).")],
    name: Annotated[str, typer.Option(help="A human name.")],
    type_: Annotated[str, typer.Option("--type", help="Machine type.")] = "",
    site: Annotated[str, typer.Option(help="Site.")] = "",
    lat: Annotated[float | None, typer.Option(help="Latitude, degrees.")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude, degrees.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="key=value, repeatable.")] = None,
) -> None:
    """Register a machine and print its API key (shown once)."""
    tags: dict[str, str] = {}
    for item in tag or []:
        tag_key, sep, value = item.partition("=")
        if not sep:
            raise _fail(ValueError(f"--tag {item!r}: expected key=value"))
        tags[tag_key] = value
    try:
        machine = MachineIn(
            id=machine_id, name=name, type=type_, site=site, latitude=lat, longitude=lon, tags=tags
        )
        _, key = _store(_config(config)).add_machine(machine, _actor())
    except (ValidationError, RigwatchError) as exc:
        raise _fail(exc) from None
    console.print(f"machine {escape(machine_id)} registered; its API key (shown once):")
    typer.echo(key.api_key)


@machines_app.command("list")
def machines_list(config: ConfigOption) -> None:
    """List the machines."""
    table = Table("id", "name", "type", "site", "lat", "lon", "tags")
    for m in _store(_config(config)).list_machines():
        table.add_row(
            escape(m.id),
            escape(m.name),
            escape(m.type),
            escape(m.site),
            "" if m.latitude is None else f"{m.latitude:.5f}",
            "" if m.longitude is None else f"{m.longitude:.5f}",
            escape(", ".join(f"{k}={v}" for k, v in m.tags.items())),
        )
    console.print(table)


@machines_app.command("rotate-key")
def machines_rotate(
    config: ConfigOption, machine_id: Annotated[str, typer.Argument(help="The machine.")]
) -> None:
    """Revoke the machine's keys and print a new one (shown once)."""
    try:
        key = _store(_config(config)).rotate_key(machine_id, _actor())
    except RigwatchError as exc:
        raise _fail(exc) from None
    console.print(f"new API key of {escape(machine_id)} (shown once; the old ones are revoked):")
    typer.echo(key.api_key)


@machines_app.command("revoke")
def machines_revoke(
    config: ConfigOption, machine_id: Annotated[str, typer.Argument(help="The machine.")]
) -> None:
    """Revoke every key of the machine."""
    try:
        n = _store(_config(config)).revoke_keys(machine_id, _actor())
    except RigwatchError as exc:
        raise _fail(exc) from None
    console.print(f"{n} key(s) of {escape(machine_id)} revoked")


@users_app.command("add")
def users_add(
    config: ConfigOption,
    username: Annotated[str, typer.Argument(help="The user name.")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
) -> None:
    """Create a user; the password is asked (or read from RIGWATCH_FLEET_PASSWORD)."""
    password = os.environ.get("RIGWATCH_FLEET_PASSWORD") or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )
    try:
        user = UserIn(username=username, password=password, role=role)
        chosen: Role = user.role
        _store(_config(config)).add_user(user.username, user.password, chosen, _actor())
    except (ValidationError, RigwatchError) as exc:
        raise _fail(exc) from None
    console.print(f"user {escape(username)} ({chosen}) created")
