"""The committed openapi.json is the one the code generates; /api/openapi.json serves it."""

import json
from pathlib import Path

from hookyard.cli import openapi_document

ROOT = Path(__file__).resolve().parents[1]


def test_committed_openapi_document_is_up_to_date():
    committed = (ROOT / "openapi.json").read_text()
    assert committed.strip() == openapi_document().strip(), "openapi.json is stale: run `make openapi`"


def test_the_server_serves_the_document_and_the_docs_page(app):
    client = app.test_client()
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/events" in spec["paths"] and spec["components"]["securitySchemes"]["bearerAuth"]
    assert client.get("/api/docs").status_code == 200


def test_every_operation_documents_its_errors_and_needs_a_token():
    spec = json.loads(openapi_document())
    assert spec["security"] == [{"bearerAuth": []}]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert op.get("summary"), f"{method.upper()} {path} has no summary"
            assert "default" in op["responses"], f"{method.upper()} {path} has no error response"
