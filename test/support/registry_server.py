"""A private Apicurio Registry (Confluent API) for one test module: `with apicurio(factory) as server`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from swarm_bridge.brokers import free_port
from swarm_bridge.brokers.registry import SchemaRegistryServer


@contextlib.contextmanager
def apicurio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistryServer]:
    """Started on a free port in a temp run dir, stopped at the end."""
    registry = SchemaRegistryServer(run_dir=tmp_path_factory.mktemp("schema-registry"), port=free_port())
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="module", name="server")
def module_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistryServer]:
    """Fixture `server`: a private Apicurio Registry for the importing module, stopped at its end."""
    with apicurio(tmp_path_factory) as registry:
        yield registry


@pytest.fixture(name="client")
def registry_client(server: SchemaRegistryServer) -> Iterator[SchemaRegistryClient]:
    """Fixture `client`: confluent-kafka's own registry client on `server`, the independent reader's."""
    found = SchemaRegistryClient({"url": server.url})
    yield found
    found.close()
