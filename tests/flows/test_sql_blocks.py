"""`resolve_engine` with prefect-sqlalchemy's `SqlAlchemyConnector`: a block instance, a block
saved on the session's Prefect test server and loaded by name, and a name nobody saved."""

from __future__ import annotations

import socket
import uuid

import pytest
from _sql_cases import found, stored, upsert
from prefect_sqlalchemy import SqlAlchemyConnector

from prefect_lemlist.api.exceptions import DatabaseTargetError
from prefect_lemlist.sql import describe_target, resolve_engine


def test_a_block_instance(tmp_path):
    block = SqlAlchemyConnector(connection_info=f"sqlite:///{tmp_path}/results.db")
    engine = resolve_engine(block)
    assert upsert(engine, "enriched", [found("a")]).inserted == 1
    assert describe_target(block) == "SqlAlchemyConnector block"


def test_a_saved_block_loaded_by_name(tmp_path):
    name = f"results-db-{uuid.uuid4().hex[:8]}"
    SqlAlchemyConnector(connection_info=f"sqlite:///{tmp_path}/results.db").save(name)
    engine = resolve_engine(name)
    upsert(engine, "enriched", [found("a"), found("b")])
    assert len(stored(engine, "enriched")) == 2
    assert describe_target(name) == f"block {name}"
    loaded = SqlAlchemyConnector.load(name, _sync=True)
    assert describe_target(loaded) == f"block {name}"
    engine.dispose()


def test_an_unknown_block_name():
    with pytest.raises(DatabaseTargetError, match="no SqlAlchemyConnector block named 'nope'"):
        resolve_engine("nope")


def test_a_block_that_cannot_connect_hides_its_password():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://enricher:s3cr3t@127.0.0.1:{port}/crm"
    with pytest.raises(DatabaseTargetError) as caught:
        resolve_engine(SqlAlchemyConnector(connection_info=url))
    assert "cannot connect to SqlAlchemyConnector block" in str(caught.value)
    assert "s3cr3t" not in str(caught.value) and "***" in str(caught.value)
