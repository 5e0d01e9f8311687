"""Admission and fairness (#18): while a heavy tenant pushes the largest profiles the limits
allow from as many connections as there are workers, another tenant's pushes all succeed and
are stored. (Their latency is measured by bench/server_soak.py --heavy, not asserted here.)"""

from __future__ import annotations

import gzip
import threading

from conftest import CPU, flame_names, make_pprof, push_request
from test_hostile import _amplifying_pprof
from wire import new_names_pprof

PROTO = {"Content-Type": "application/proto"}
PUSH = "/push.v1.PusherService/Push"


def test_victim_pushes_all_succeed_under_a_heavy_tenant(make_server, pb):
    s = make_server("--threads", "8")
    # 1M samples x 2 types = 2M decoded rows: the --max-sample-rows limit, accepted.
    heavy_body = push_request(
        pb, {"service_name": "heavy"}, gzip.compress(_amplifying_pprof(1_000_000, 2)), False
    )
    assert s.request("POST", PUSH, heavy_body, {**PROTO, "X-Scope-OrgID": "heavy"})[0] == 200
    stop = threading.Event()
    heavy_codes: list[int] = []

    def heavy() -> None:
        while not stop.is_set():
            code = s.request("POST", PUSH, heavy_body, {**PROTO, "X-Scope-OrgID": "heavy"})[0]
            heavy_codes.append(code)

    threads = [threading.Thread(target=heavy) for _ in range(8)]
    for t in threads:
        t.start()
    victim: list[tuple[int, bytes]] = []
    try:
        while len(heavy_codes) < 4:  # the heavy load is under way
            threading.Event().wait(0.05)
        for i in range(30):
            body = push_request(
                pb, {"service_name": "victim"}, make_pprof(pb, [(["main", f"victim_fn{i}"], 1, {})])
            )
            code, resp, _ = s.request("POST", PUSH, body, {**PROTO, "X-Scope-OrgID": "victim"})
            victim.append((code, resp[:200]))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert all(code == 200 for code, _ in victim), victim
    # The heavy tenant's pushes are stored or held back (429), never failed.
    assert set(heavy_codes) <= {200, 429}, set(heavy_codes)
    assert 200 in heavy_codes
    fg = s.connect_json(
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "labelSelector": '{service_name="victim"}', "start": "0"},
        headers={"X-Scope-OrgID": "victim"},
    )
    assert {f"victim_fn{i}" for i in range(30)} <= flame_names(fg["flamegraph"])
    assert s.alive()


def test_pushes_of_many_new_names_and_the_victims_beside_them_are_all_stored(make_server, pb):
    # Within every default limit, but 60k new function names and 3k new stacks per push: the
    # writer interns them in turns of their own between the victim's commits (the ordering is
    # checked by store_test's ManyNewStacksTakeTurnsWithOtherWrites; the latency by
    # bench/server_soak.py --heavy-dict).
    s = make_server()
    template = new_names_pprof(60_000, 20, b"nXXXX")
    heavy_codes: list[int] = []

    def heavy() -> None:
        for n in range(3):
            raw = template.replace(b"nXXXX", b"n%04d" % n)
            body = push_request(pb, {"service_name": "names"}, raw, gzipped=False)
            heavy_codes.append(
                s.request("POST", PUSH, body, {**PROTO, "X-Scope-OrgID": "names"})[0]
            )

    t = threading.Thread(target=heavy)
    t.start()
    victim = []
    while t.is_alive() or len(victim) < 5:
        body = push_request(
            pb,
            {"service_name": "victim"},
            make_pprof(pb, [(["main", f"victim_fn{len(victim)}"], 1, {})]),
        )
        victim.append(s.request("POST", PUSH, body, {**PROTO, "X-Scope-OrgID": "victim"})[0])
    t.join()
    assert heavy_codes == [200, 200, 200] and set(victim) == {200}, (heavy_codes, victim)
    fg = s.connect_json(
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "labelSelector": '{service_name="victim"}', "start": "0"},
        headers={"X-Scope-OrgID": "victim"},
    )
    assert {f"victim_fn{i}" for i in range(len(victim))} <= flame_names(fg["flamegraph"])
    fg = s.connect_json(
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "labelSelector": '{service_name="names"}', "start": "0"},
        headers={"X-Scope-OrgID": "names"},
    )
    names = flame_names(fg["flamegraph"])
    assert {f"n{n:04d}_{i:07d}" for n in range(3) for i in range(60_000)} <= names
