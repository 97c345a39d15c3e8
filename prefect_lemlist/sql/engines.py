"""Where the rows go to (or come from): a SQLAlchemy URL or a saved `SqlAlchemyConnector` block.

`resolve_engine` turns a target into a connected `sqlalchemy.Engine`, checking on the way that
the dialect's driver is installed and that the database answers, so a wrong target fails at the
start of a run with one clear sentence (`DatabaseTargetError`) rather than after the enrichment.
`describe_target` renders a target for logs and summaries. Neither ever shows a password: URLs
are rendered with `render_as_string(hide_password=True)`, and a database's own error text has the
password masked before it is quoted.

prefect-sqlalchemy (the `sql` extra) is imported only when a block is used, so URLs work without
it.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

import sqlalchemy
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from prefect_lemlist.api.exceptions import DatabaseTargetError

if TYPE_CHECKING:
    from prefect.blocks.core import Block

SUPPORTED_DIALECTS = ("sqlite", "postgresql", "duckdb")
"""The databases `upsert_rows` can merge into (those with `INSERT ... ON CONFLICT DO UPDATE`)."""

_EXTRAS = {
    "postgresql": "pip install 'prefect-lemlist[postgres]'",
    "duckdb": "pip install 'prefect-lemlist[duckdb]'",
}
_SQL_EXTRA = "pip install 'prefect-lemlist[sql]'"
_SAVE_BLOCK = (
    "save one with SqlAlchemyConnector(connection_info=URL).save(NAME), or pass a SQLAlchemy "
    "URL such as sqlite:///results.db"
)


def first_line(error: BaseException, url: URL | None = None) -> str:
    """The first line of an error's text (a DBAPI error's own when SQLAlchemy wraps one).

    Args:
        error: the exception (SQLAlchemy's `DBAPIError` is unwrapped to the driver's error).
        url: when given, its password is masked in the text.

    Returns:
        One line without SQLAlchemy's `[SQL: ...]` and background-link decorations.
    """
    inner = getattr(error, "orig", None) or error
    text = str(inner).strip() or type(inner).__name__
    line = text.splitlines()[0].strip()
    return mask_password(line, url)


def mask_password(text: str, url: URL | None) -> str:
    """`text` with the URL's password (and its URL-quoted form) replaced by `***`.

    Args:
        text: any message that may quote the URL.
        url: the URL whose password must not be shown, or None.

    Returns:
        The text, safe to log.
    """
    password = url.password if url is not None else None
    if not password:
        return text
    secret = str(password)
    for value in sorted(
        {secret, quote(secret, safe=""), quote_plus(secret)}, key=len, reverse=True
    ):
        text = text.replace(value, "***")
    return text


def _parse_url(target: str) -> URL:
    try:
        return make_url(target)
    except (ArgumentError, ValueError) as exc:
        scheme = target.split("://", 1)[0]
        raise DatabaseTargetError(
            f"{scheme}://... is not a valid SQLAlchemy URL",
            hint="write it as dialect+driver://user:password@host:port/database",
        ) from exc


def _prefer_installed_driver(url: URL) -> URL:
    """`postgresql://` means psycopg2 to SQLAlchemy; use psycopg 3 when only it is installed."""
    if url.drivername != "postgresql" or importlib.util.find_spec("psycopg2") is not None:
        return url
    if importlib.util.find_spec("psycopg") is None:
        return url
    return url.set(drivername="postgresql+psycopg")


def _create_engine(url: URL) -> Engine:
    shown = url.render_as_string(hide_password=True)
    backend = url.get_backend_name()
    try:
        return sqlalchemy.create_engine(url)
    except NoSuchModuleError as exc:
        raise DatabaseTargetError(
            f"{url.drivername}:// is not a SQLAlchemy dialect that is installed ({shown})",
            hint=_EXTRAS.get(backend, f"supported databases: {', '.join(SUPPORTED_DIALECTS)}"),
        ) from exc
    except ImportError as exc:
        module = getattr(exc, "name", None) or first_line(exc, url)
        raise DatabaseTargetError(
            f"{url.drivername} needs {module}, which is not installed ({shown})",
            hint=_EXTRAS.get(backend, f"install {module}"),
        ) from exc
    except (ArgumentError, SQLAlchemyError, TypeError, ValueError) as exc:
        raise DatabaseTargetError(
            f"cannot create an engine for {shown}: {first_line(exc, url)}"
        ) from exc


def check_connection(engine: Engine, shown: str) -> Engine:
    """Open and close one connection, so an unreachable database fails here, clearly.

    Args:
        engine: the engine to try.
        shown: how to name the target in the message (no password).

    Returns:
        The same engine.

    Raises:
        DatabaseTargetError: the database refused or could not be reached (the driver's one-line
            reason is quoted, its password masked).
    """
    try:
        with engine.connect():
            pass
    except (SQLAlchemyError, OSError) as exc:
        engine.dispose()
        raise DatabaseTargetError(
            f"cannot connect to {shown}: {first_line(exc, engine.url)}",
            hint="check the host, port, database name and credentials, and that it is running",
        ) from exc
    return engine


def _engine_from_url(target: str) -> Engine:
    url = _prefer_installed_driver(_parse_url(target))
    engine = _create_engine(url)
    return check_connection(engine, url.render_as_string(hide_password=True))


def _load_block(name: str) -> Block:
    try:
        from prefect_sqlalchemy import SqlAlchemyConnector
    except ImportError as exc:
        raise DatabaseTargetError(
            f"the database target {name!r} names a block, and prefect-sqlalchemy is not installed",
            hint=_SQL_EXTRA,
        ) from exc
    try:
        block: Block = SqlAlchemyConnector.load(name, _sync=True)
    except ValueError as exc:  # Prefect: "Unable to find block document named ..."
        raise DatabaseTargetError(
            f"there is no SqlAlchemyConnector block named {name!r}", hint=_SAVE_BLOCK
        ) from exc
    except Exception as exc:  # the Prefect API unreachable, a block that does not validate
        raise DatabaseTargetError(
            f"cannot load the SqlAlchemyConnector block {name!r}: {first_line(exc)}"
        ) from exc
    return block


def _engine_from_block(block: Any, shown: str) -> Engine:
    get_engine = getattr(block, "get_engine", None)
    if get_engine is None:
        raise DatabaseTargetError(
            f"{shown} is a {type(block).__name__}, not a SqlAlchemyConnector block",
            hint=_SAVE_BLOCK,
        )
    try:
        engine = get_engine()
    except ImportError as exc:
        raise DatabaseTargetError(
            f"{shown} needs {getattr(exc, 'name', None) or exc}, which is not installed",
            hint="install the driver its URL names (e.g. pip install 'prefect-lemlist[postgres]')",
        ) from exc
    except (SQLAlchemyError, ValueError, TypeError) as exc:
        raise DatabaseTargetError(
            f"cannot create an engine from {shown}: {first_line(exc)}"
        ) from exc
    if not isinstance(engine, Engine):
        raise DatabaseTargetError(f"{shown} did not give a synchronous SQLAlchemy engine")
    return check_connection(engine, f"{shown} ({engine.url.render_as_string(hide_password=True)})")


def resolve_engine(target: str | Block) -> Engine:
    """A connected SQLAlchemy engine for a database target.

    Args:
        target: a SQLAlchemy URL (any string containing `://`: `sqlite:///results.db`,
            `postgresql+psycopg://user:pw@host:5432/db`, `duckdb:///results.duckdb`; a bare
            `postgresql://` uses psycopg 3 when psycopg2 is not installed), the name of a saved
            prefect-sqlalchemy `SqlAlchemyConnector` block, or such a block itself.

    Returns:
        The engine (the caller disposes of it). One connection was opened and closed to check
        that the database answers.

    Raises:
        DatabaseTargetError: an invalid URL, an unknown dialect or a missing driver (with the
            extra to install as `hint`), a block that does not exist or prefect-sqlalchemy not
            installed, or a database that cannot be reached. No message contains a password.

    Example:
        ```python
        from prefect_lemlist.sql import resolve_engine, upsert_rows, ColumnSpec

        engine = resolve_engine("sqlite:///results.db")
        upsert_rows(engine, "enriched", rows, columns=[ColumnSpec("lead_id")], key=["lead_id"],
                    protected=["status"])
        ```
    """
    if isinstance(target, str):
        if "://" in target:
            return _engine_from_url(target)
        return _engine_from_block(_load_block(target), f"block {target}")
    return _engine_from_block(target, describe_target(target))


def describe_target(target: str | Block) -> str:
    """A target as logs and summaries show it: the URL without its password, or `block NAME`.

    Args:
        target: what `resolve_engine` accepts.

    Returns:
        e.g. `postgresql+psycopg://enricher:***@db:5432/crm`, `block crm-db`, or
        `SqlAlchemyConnector block` for a block that was never saved.

    Example:
        ```python
        describe_target("postgresql+psycopg://u:s3cr3t@db/crm")  # 'postgresql+psycopg://u:***@db/crm'
        ```
    """
    if isinstance(target, str):
        if "://" not in target:
            return f"block {target}"
        try:
            return make_url(target).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):
            return f"{target.split('://', 1)[0]}://... (not a valid SQLAlchemy URL)"
    name = getattr(target, "_block_document_name", None)
    return f"block {name}" if name else f"{type(target).__name__} block"
