"""--max-disk with data that keeps adding to the dictionary (every push brings new stacks): the
data dir stays within the budget, the newest acknowledged data stays queryable, and the strings
and stacks of deleted profiles are collected; when the budget cannot hold even the newest data,
writes are refused with 507 + Retry-After, in the log and in /api/v1/stats."""

from __future__ import annotations

import os
import sqlite3
import time

from conftest import CPU, flame_names, make_pprof, push_request

PROTO = {"Content-Type": "application/proto"}
PUSH = "/push.v1.PusherService/Push"


def unique_push(pb, i: int, n: int = 400) -> bytes:
    # n samples, each with a stack of two functions no other push has.
    stacks = [([f"main{i % 3}", f"p{i}_mid{k}", f"p{i}_leaf{k}"], 1, {}) for k in range(n)]
    return push_request(pb, {"service_name": "uniq"}, make_pprof(pb, stacks))


def names(server) -> set[str]:
    fg = server.connect_json(
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "labelSelector": '{service_name="uniq"}', "start": "0"},
    )
    return flame_names(fg["flamegraph"])


def disk(data: str) -> int:
    db = os.path.join(data, "spanprof.db")
    return sum(os.path.getsize(db + s) for s in ("", "-wal", "-shm") if os.path.exists(db + s))


def db_count(data: str, sql: str) -> int:
    con = sqlite3.connect(f"file:{os.path.join(data, 'spanprof.db')}?mode=ro", uri=True)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def test_max_disk_with_unique_stacks_stays_within_budget(make_server, pb, tmp_path):
    data = str(tmp_path / "data")
    budget = 1 << 20
    s = make_server(
        "--max-disk", str(budget), "--max-disk-keep", "0", "--retention", "0",
        "--retention-interval", "1h", "--admin-tenant", "anonymous", data_dir=data,
    )  # fmt: skip
    pushes = 80  # several times the budget, all of it new strings and stacks
    peak = 0
    for i in range(pushes):
        st, body, _ = s.request("POST", PUSH, unique_push(pb, i), PROTO)
        assert st == 200, (i, st, body)
        peak = max(peak, disk(data))
        assert peak <= budget, (i, peak)
    got = names(s)
    # The newest acknowledged pushes are all there; the oldest are gone, with their dictionary.
    for i in range(pushes - 3, pushes):
        assert {f"p{i}_leaf0", f"p{i}_leaf399"} <= got, i
    assert "p0_leaf0" not in got
    assert db_count(data, "SELECT count(*) FROM strings WHERE s LIKE 'p0\\_%' ESCAPE '\\'") == 0
    assert db_count(data, "SELECT count(*) FROM functions") < pushes * 800 // 2
    stacks_left = db_count(data, "SELECT count(*) FROM stacks")
    assert stacks_left < pushes * 400 // 2, stacks_left
    stats = s.get_json("/api/v1/stats")
    server = stats["server"]
    assert server["collected"]["stacks"] > 0 and server["collected"]["strings"] > 0
    assert server["max_disk_bytes"] == budget and server["over_budget"] is False
    assert stats["writes_refused"] is False
    # Restarted, the store counts references again from disk and keeps collecting.
    s.stop()
    s.start()
    for i in range(pushes, pushes + 20):
        assert s.request("POST", PUSH, unique_push(pb, i), PROTO)[0] == 200
        assert disk(data) <= budget, i
    got = names(s)
    assert f"p{pushes + 19}_leaf0" in got and f"p{pushes}_leaf0" not in got


def test_budget_too_small_for_the_newest_data_refuses_writes_with_507(make_server, pb, tmp_path):
    data = str(tmp_path / "data")
    budget = 512 << 10
    # Nothing acknowledged in the last hour may be deleted: the budget fills up and stays full.
    s = make_server("--max-disk", str(budget), "--max-disk-keep", "1h", data_dir=data)
    acked: list[int] = []
    refused = None
    for i in range(60):
        st, body, headers = s.request("POST", PUSH, unique_push(pb, i), PROTO)
        if st == 200:
            acked.append(i)
            continue
        refused = (st, body, headers)
        break
    assert refused is not None, "the budget never ran out"
    st, body, headers = refused
    assert st == 507, refused
    assert int(headers.get("Retry-After", "0")) > 0
    assert b"--max-disk" in body
    assert acked, "nothing fitted at all"
    assert disk(data) <= budget
    # Nothing acknowledged was deleted to make room.
    got = names(s)
    assert all(f"p{i}_leaf0" in got for i in acked)
    stats = s.get_json("/api/v1/stats")
    assert stats["writes_refused"] is True and "--max-disk" in stats["writes_refused_reason"]
    deadline = time.time() + 10
    while time.time() < deadline and "refusing writes" not in s.log_text():
        time.sleep(0.1)
    assert "refusing writes (507)" in s.log_text()
