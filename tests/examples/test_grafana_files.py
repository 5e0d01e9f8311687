"""The Grafana provisioning files and the collector configuration in examples/grafana parse, and
carry the settings that make Tempo's "Profiles for this span" work with spanprof's samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "examples" / "grafana"
PROFILE_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


@pytest.mark.parametrize("name", ["spanprof-serve", "grafana-pyroscope"])
def test_datasources(name):
    doc = yaml.safe_load((GRAFANA / name / "datasources.yaml").read_text())
    assert doc["apiVersion"] == 1
    by_type = {}
    for ds in doc["datasources"]:
        assert {"name", "uid", "type", "url", "access"} <= set(ds), ds
        by_type.setdefault(ds["type"], []).append(ds)
    (profiles,) = by_type["grafana-pyroscope-datasource"]
    (tempo,) = by_type["tempo"]
    link = tempo["jsonData"]["tracesToProfiles"]
    assert link["datasourceUid"] == profiles["uid"]
    assert link["profileTypeId"] == PROFILE_TYPE
    assert {"key": "service.name", "value": "service_name"} in link["tags"]
    assert link["customQuery"] is False  # the default query selects by span id
    assert profiles["url"].startswith("http")


def test_spanprof_serve_datasource_points_at_the_default_address():
    doc = yaml.safe_load((GRAFANA / "spanprof-serve" / "datasources.yaml").read_text())
    (profiles,) = [d for d in doc["datasources"] if d["type"] == "grafana-pyroscope-datasource"]
    assert profiles["url"] == "http://localhost:4040"


def test_collector_pipeline():
    doc = yaml.safe_load((GRAFANA / "otel-collector.yaml").read_text())
    traces = doc["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert "http" in doc["receivers"]["otlp"]["protocols"]
    for exporter in traces["exporters"]:
        assert exporter in doc["exporters"], exporter
    for processor in traces.get("processors", []):
        assert processor in doc["processors"], processor
    kinds = {e.split("/")[0] for e in traces["exporters"]}
    assert kinds <= {"otlp", "otlphttp"}
