"""Schemathesis fuzz of the whole HTTP API from its OpenAPI schema, in process (ASGI).

Bounded and deterministic (15 examples per operation, derandomized, no example
database): every response must be non-5xx, have a documented content type and
match the documented schema.

The schema is loaded eagerly with ``from_dict(app.openapi())`` (the app's
lifespan, which loads the model, starts on the first fuzzed call, after the
``_data`` fixture has written the model and catalogue): schemathesis' lazy
``from_fixture`` loader fails under pytest 9 (``Function`` has no ``_nodeid``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from movierec.data.dataset import Dataset
from movierec.models.artifacts import save_model
from movierec.models.registry import create
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.settings import Settings
from movierec.storage.catalog import build_catalog
from movierec.storage.db import connect

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import Case  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402
from schemathesis.python import asgi  # noqa: E402

TMP = Path(tempfile.mkdtemp(prefix="movierec_fuzz_"))
APP = create_app(
    ServiceSettings(
        inference_process=False,
        settings=Settings(home=TMP),
        model_dir=TMP / "model",
        database_path=TMP / "db.sqlite3",
        write_rate=1e6,  # the fuzzer writes fast from one address; the limit has its own tests
        write_burst=1_000_000,
        address_write_rate=1e6,
        address_write_burst=1_000_000,
        session_create_rate=1e6,
        session_create_burst=1_000_000,
    )
)
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP

CHECKS = [
    st_checks.not_a_server_error,
    st_checks.response_schema_conformance,
    st_checks.content_type_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def _data(tiny: Dataset) -> Iterator[None]:
    save_model(create("pop").fit(tiny), TMP / "model")
    conn = connect(TMP / "db.sqlite3")
    build_catalog(tiny, conn)
    conn.close()
    yield
    asgi.shutdown_lifespans()  # closes the app's database connection
    shutil.rmtree(TMP, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Case) -> None:
    case.call_and_validate(checks=CHECKS)
