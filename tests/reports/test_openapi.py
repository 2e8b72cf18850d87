"""OpenAPI: the schema validates without warnings, and the report endpoints document their errors."""

from django.core.management import call_command
from django.test import Client


def test_openapi_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "openapi.yaml"))


def test_report_endpoint_documents_formats_and_errors(openapi):
    operation = openapi["paths"]["/api/v1/sessions/{session_id}/report"]["get"]
    assert operation["operationId"] == "session_report"
    # 414 (URL over gunicorn's limit) and 503 (database unavailable) are documented on every operation.
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404", "409", "414", "429", "500", "503"}
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"application/json", "application/pdf"}
    report = content["application/json"]["schema"]["properties"]["report"]
    assert report["additionalProperties"] is False
    assert "signature" in report["required"]
    (param,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert param["schema"]["enum"] == ["json", "pdf"]


def test_swagger_ui_is_served_offline():
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower() and "https://" not in page
