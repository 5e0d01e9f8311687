"""configure(): pyroscope-io's keywords and defaults, clear errors for bad values, deprecated
keywords, reconfiguration, thread tags, and the environment read by `spanprof run`."""

from __future__ import annotations

import inspect
import threading
import time
import warnings

import pytest
from support import burn

import spanprof
from spanprof import _agent, _config

PYROSCOPE_IO_1X_DEFAULTS = {
    # keyword -> default in pyroscope-io 1.x's pyroscope.configure
    "application_name": None,
    "server_address": "http://localhost:4040",
    "basic_auth_username": "",
    "basic_auth_password": "",
    "enable_logging": False,
    "sample_rate": 100,
    "oncpu": True,
    "gil_only": True,
    "report_pid": False,
    "report_thread_id": False,
    "report_thread_name": False,
    "tags": None,
    "tenant_id": "",
    "http_headers": None,
    "upload_interval": 10,
}


def test_defaults_match_pyroscope_io():
    cfg = _config.build({})
    assert cfg.server_address == "http://localhost:4040"
    assert cfg.exporter == "pyroscope" and cfg.endpoint == "http://localhost:4040"
    assert cfg.sample_rate == 100 and cfg.upload_interval == 10
    assert cfg.gil_only is True and cfg.enable_logging is False
    assert (cfg.report_pid, cfg.report_thread_id, cfg.report_thread_name) == (False, False, False)
    assert cfg.tags == {} and cfg.http_headers == {} and cfg.tenant_id == ""
    assert cfg.line_no == spanprof.LineNo.LastInstruction


def test_every_pyroscope_io_keyword_is_accepted(tmp_path):
    kwargs = {k: v for k, v in PYROSCOPE_IO_1X_DEFAULTS.items() if v is not None}
    kwargs.update(
        application_name="svc.kw",
        server_address=f"file://{tmp_path}",
        line_no=spanprof.LineNo.LastInstruction,
        mem_enabled=False,
        mem_max_nframe=128,
        mem_heap_sample_size=512 * 1024,
        mem_enable_mem_domain=True,
        cpu_enabled=True,
        cpu_implementation=spanprof.ProfilerImplementation.PySpy,
    )
    assert spanprof.configure(**kwargs) is True
    assert spanprof.stats()["running"] is True


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"sample_rate": -5}, "sample_rate"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": "100"}, "sample_rate"),
        ({"server_address": "localhost:4040"}, "server_address"),
        ({"server_address": "http://"}, "server_address"),
        ({"server_address": "ftp://host"}, "server_address"),
        ({"server_address": "http://host:99999"}, "server_address"),
        ({"upload_interval": 0}, "upload_interval"),
        ({"upload_interval": -1}, "upload_interval"),
        ({"tags": {"bad key": "v"}}, "tags"),
        ({"tags": {"service_name": "x"}}, "tags"),
        ({"tags": ["a"]}, "tags"),
        ({"tags": {"k": 1}}, "tags"),
        ({"http_headers": {"Bad Header": "v"}}, "http_headers"),
        ({"gil_only": "yes"}, "gil_only"),
        ({"report_pid": 1}, "report_pid"),
        ({"line_no": 7}, "line_no"),
        ({"exporter": "kafka"}, "exporter"),
        ({"application_name": 5}, "application_name"),
        ({"auth_token": "t", "basic_auth_username": "u"}, "auth_token"),
    ],
)
def test_bad_configuration_raises_value_error_naming_it(kwargs, named):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match=named):
            spanprof.configure(**kwargs)
    assert spanprof.stats()["running"] is False


def test_oncpu_false_is_pyroscope_ios_wall_mode():
    from spanprof import _config

    cfg = _config.build({"oncpu": False})
    assert cfg.profile_types == ("wall",) and cfg.wall_as_cpu
    assert _config.build({}).profile_types == ("cpu",)
    both = _config.build({"profile_types": "wall, cpu"})
    assert both.profile_types == ("cpu", "wall") and not both.wall_as_cpu
    assert _config.build({"profile_types": ["wall"]}).profile_types == ("wall",)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"profile_types": "cpu,heap"}, "unknown type 'heap'"),
        ({"profile_types": ""}, "profile_types is empty"),
        ({"oncpu": False, "profile_types": "wall"}, "cannot be combined"),
    ],
)
def test_bad_profile_types_are_refused(kwargs, named):
    with pytest.raises(ValueError, match=named):
        spanprof.configure(**kwargs)
    assert spanprof.stats()["running"] is False


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"app_name": "old"}, "app_name is deprecated"),
        ({"native": True}, "native is deprecated"),
        ({"detect_subprocesses": True}, "detect_subprocesses is deprecated"),
        ({"auth_token": "tok"}, "auth_token is deprecated"),
    ],
)
def test_deprecated_keywords_warn(kwargs, message, tmp_path):
    with pytest.warns(DeprecationWarning, match=message):
        spanprof.configure(server_address=f"file://{tmp_path}", **kwargs)


def test_app_name_is_the_application_name():
    with pytest.warns(DeprecationWarning):
        assert _config.build({"app_name": "legacy.app"}).service_name == "legacy.app"


def test_configure_twice_reconfigures_cleanly(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    spanprof.configure(application_name="one", server_address=f"file://{first}", sample_rate=200)
    burn(0.3)
    spanprof.configure(application_name="two", server_address=f"file://{second}", sample_rate=200)
    burn(0.3)
    assert spanprof.shutdown() is True
    # the first agent flushed its window on reconfigure; the second wrote its own
    assert [p.name.split("-")[0] for p in first.glob("*.pb.gz")] == ["one"]
    assert [p.name.split("-")[0] for p in second.glob("*.pb.gz")] == ["two"]
    assert len([t for t in threading.enumerate() if t.name.startswith("spanprof-")]) <= 2


def test_thread_tags_both_call_forms():
    me = threading.get_ident()
    spanprof.add_thread_tag("k", "v")
    assert _agent.thread_tags(me) == {"k": "v"}
    spanprof.remove_thread_tag("k", "other")  # another value: left alone
    assert _agent.thread_tags(me) == {"k": "v"}
    spanprof.remove_thread_tag(me, "k", "v")  # pyroscope-io 0.x form
    assert _agent.thread_tags(me) == {}
    spanprof.add_thread_tag(me, "a", "1")
    with spanprof.tag_wrapper({"a": "2", "b": "3"}):
        assert _agent.thread_tags(me) == {"a": "2", "b": "3"}
    assert _agent.thread_tags(me) == {"a": "1"}
    spanprof.remove_thread_tag("a", "1")
    with pytest.raises(TypeError):
        spanprof.add_thread_tag("only-one")
    with pytest.raises(ValueError):
        spanprof.add_thread_tag("__name__", "x")


def test_shutdown_without_configure_is_harmless():
    assert spanprof.shutdown() is True
    assert spanprof.shutdown() is True


def test_environment_spanprof_then_pyroscope_then_otel():
    env = {
        "PYROSCOPE_SERVER_ADDRESS": "http://pyro:4040",
        "SPANPROF_SERVER_ADDRESS": "http://spanprof:4040",
        "PYROSCOPE_APPLICATION_NAME": "pyro-app",
        "OTEL_SERVICE_NAME": "otel-app",
        "PYROSCOPE_SAMPLE_RATE": "50",
        "PYROSCOPE_TAGS": "team=core",
        "OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored,deployment.environment=prod%20eu",
        "SPANPROF_REPORT_PID": "true",
        "PYROSCOPE_BASIC_AUTH_USERNAME": "u",
        "PYROSCOPE_TENANT_ID": "t1",
    }
    cfg = _config.build(_config.from_env(env))
    assert cfg.endpoint == "http://spanprof:4040"
    assert cfg.application_name == "pyro-app"
    assert cfg.sample_rate == 50 and cfg.report_pid is True
    assert cfg.tags == {"team": "core", "deployment.environment": "prod eu"}
    assert cfg.basic_auth_username == "u" and cfg.tenant_id == "t1"
    only_otel = _config.from_env({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-resource"})
    assert only_otel["application_name"] == "from-resource"


@pytest.mark.parametrize(
    "env",
    [
        {"SPANPROF_SAMPLE_RATE": "fast"},
        {"PYROSCOPE_REPORT_PID": "maybe"},
        {"SPANPROF_TAGS": "novalue"},
    ],
)
def test_bad_environment_names_the_variable(env):
    with pytest.raises(ValueError, match=next(iter(env))):
        _config.from_env(env)


PYROSCOPE_IO_14_ORDER = [
    "app_name", "application_name", "server_address", "basic_auth_username",
    "basic_auth_password", "enable_logging", "sample_rate", "oncpu", "native", "gil_only",
    "report_pid", "report_thread_id", "report_thread_name", "tags", "tenant_id", "http_headers",
    "line_no", "upload_interval", "mem_enabled", "mem_max_nframe", "mem_heap_sample_size",
    "mem_enable_mem_domain", "cpu_enabled", "cpu_implementation",
]  # fmt: skip


def test_configure_has_pyroscope_ios_signature():
    # Editors show these; positional calls in pyroscope-io's order must mean the same thing.
    params = inspect.signature(spanprof.configure).parameters
    positional = [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == PYROSCOPE_IO_14_ORDER
    for key, default in PYROSCOPE_IO_1X_DEFAULTS.items():
        assert params[key].default == default, key
    assert params["line_no"].default is spanprof.LineNo.LastInstruction


def test_unknown_keyword_is_a_type_error_as_in_pyroscope_io():
    with pytest.raises(TypeError, match="no_such_option"):
        spanprof.configure(no_such_option=1)  # type: ignore[call-arg]


def test_positional_configure_in_pyroscope_ios_order(tmp_path):
    assert spanprof.configure(None, "svc.pos", f"file://{tmp_path}", "", "", False, 50)
    try:
        assert spanprof.stats()["rate_hz"] == 50
    finally:
        spanprof.shutdown()


def test_tags_of_a_finished_thread_are_released():
    idents = []

    def worker():
        idents.append(threading.get_ident())
        spanprof.add_thread_tag("job", "42")  # never removed

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    deadline = time.monotonic() + 5
    while _agent.thread_tags(idents[0]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _agent.thread_tags(idents[0]) == {}
