"""What a million-customer world relies on: compact customer rows (``CustomerTable.add_plain``) that answer
exactly like customer objects, keep every WeCom limit, become objects only when changed; and API call
totals that count every call, not just the recent-call log."""

from __future__ import annotations

import json
import tracemalloc

from wecom.simulator import SimulatorConfig, SimulatorServer
from wecom.simulator.app import API_LOG_LIMIT, Simulator
from wecom.simulator.state import Customer, CustomerTable, FollowRecord, Member, World

from .conftest import SimClient

ROW = "wmRow00000000000000000000000001"  # seeded as a compact row
OBJ = "wmObj00000000000000000000000001"  # the same data as a Customer object
CREATED = 1767196800


def _world(sim_server: SimulatorServer) -> World:
    return sim_server.simulator.world


def _seed(sim_server: SimulatorServer) -> World:
    world = _world(sim_server)
    with sim_server.simulator.lock:
        world.members["lina"] = Member(userid="lina", name="李娜")
        world.members["wangfang"] = Member(userid="wangfang", name="王芳")
        world.customers.add_plain(ROW, "客户甲", "lina", CREATED)
        world.customers[OBJ] = Customer(
            external_userid=OBJ, name="客户甲", follows={"lina": FollowRecord(userid="lina", createtime=CREATED)}
        )
    return world


def _kept_objects(world: World) -> list[str]:
    return [c.external_userid for c in world.customers.objects()]


def _without_id(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True).replace(ROW, "ID").replace(OBJ, "ID")


def test_rows_answer_the_api_like_objects_and_reads_keep_no_object(
    sim: SimClient, sim_server: SimulatorServer
) -> None:
    world = _seed(sim_server)
    row, obj = (sim.ok("externalcontact/get", external_userid=ext) for ext in (ROW, OBJ))
    assert _without_id(row) == _without_id(obj)
    assert row["follow_user"][0]["userid"] == "lina" and row["external_contact"]["name"] == "客户甲"
    assert sim.ok("externalcontact/list", userid="lina")["external_userid"] == [OBJ, ROW]
    assert sim.get("externalcontact/list", userid="wangfang")["errcode"] == 84061
    batch = sim.ok("externalcontact/batch/get_by_user", {"userid_list": ["lina"]})["external_contact_list"]
    assert _without_id(batch[0]) == _without_id(batch[1])
    state = sim.control("GET", "/sim/state").json()["world"]["customers"]
    assert list(state) == [ROW, OBJ] and _without_id(state[ROW]) == _without_id(state[OBJ])
    console = sim.control("GET", "/sim/").text
    assert ROW in console and "2 customers" in console
    assert _kept_objects(world) == [OBJ]


def test_a_change_turns_the_row_into_an_object_in_place_and_sticks(
    sim: SimClient, sim_server: SimulatorServer
) -> None:
    world = _seed(sim_server)
    sim.ok("externalcontact/remark", {"userid": "lina", "external_userid": ROW, "remark": "老客户"})
    assert _kept_objects(world) == [ROW, OBJ]  # same place in the table
    assert sim.ok("externalcontact/get", external_userid=ROW)["follow_user"][0]["remark"] == "老客户"
    sim.action("member_deletes_customer", userid="lina", external_userid=ROW)
    assert sim.get("externalcontact/get", external_userid=ROW)["errcode"] == 84061
    assert sim.ok("externalcontact/list", userid="lina")["external_userid"] == [OBJ]


def test_mass_messages_to_rows_keep_the_recipient_and_receive_limits(
    sim: SimClient, sim_server: SimulatorServer
) -> None:
    world = _seed(sim_server)
    api = "externalcontact/add_msg_template"
    with sim_server.simulator.lock:
        for i in range(10_000):
            world.customers.add_plain(f"wmBulk{i:025d}", f"客户{i}", "lina", CREATED + i)
    bulk = [f"wmBulk{i:025d}" for i in range(10_000)]
    assert sim.post(api, {"sender": "lina", "external_userid": [*bulk, ROW], "text": {"content": "x"}})[
        "errcode"
    ] == 40058  # at most 10,000 customers per call, rows or not
    full = sim.ok(api, {"sender": "lina", "external_userid": bulk, "text": {"content": "x"}})
    assert full["fail_list"] == []
    sim.configure(mass_msg_quota_limit=1)
    first = sim.ok(api, {"sender": "lina", "external_userid": [ROW], "text": {"content": "one"}})
    assert sim.action("confirm_mass_msg", msgid=first["msgid"], userid="lina")["sent"] == 1
    second = sim.ok(
        api, {"sender": "lina", "external_userid": [ROW, OBJ, "wmUnknown"], "text": {"content": "two"}}
    )
    assert second["fail_list"] == ["wmUnknown"]
    assert sim.post(api, {"sender": "wangfang", "external_userid": [ROW], "text": {"content": "x"}})[
        "errcode"
    ] == 41048  # not wangfang's customer
    confirmed = sim.action("confirm_mass_msg", msgid=second["msgid"], userid="lina")
    assert (confirmed["sent"], confirmed["over_quota"]) == (1, 1)
    results = sim.ok("externalcontact/get_groupmsg_send_result", {"msgid": second["msgid"], "userid": "lina"})
    assert {r["external_userid"]: r["status"] for r in results["send_list"]} == {ROW: 3, OBJ: 1}
    assert _kept_objects(world) == [OBJ]


def test_rows_survive_the_state_file_round_trip() -> None:
    world = World()
    world.members["lina"] = Member(userid="lina", name="李娜")
    world.customers.add_plain(ROW, "客户甲", "lina", CREATED)
    restored = World.from_dict(json.loads(json.dumps(world.to_dict())))
    assert restored.to_dict() == world.to_dict()
    assert restored.customers[ROW] == Customer(
        external_userid=ROW, name="客户甲", follows={"lina": FollowRecord(userid="lina", createtime=CREATED)}
    )


def test_table_mapping_semantics() -> None:
    table = CustomerTable()
    table.add_plain(ROW, "甲", "lina", 1)
    table[OBJ] = Customer(external_userid=OBJ, name="乙")
    assert len(table) == 2 and ROW in table and "wmNobody" not in table and table.peek("wmNobody") is None
    assert table.follower_counts() == {"lina": 1}
    assert table.peek(ROW) is not table.peek(ROW)  # a read builds a throwaway object
    customer = table[ROW]
    assert table[ROW] is customer and table.peek(ROW) is customer  # a mapping access keeps it
    del table[ROW]
    assert list(table) == [OBJ]


def test_rows_are_a_fraction_of_the_objects_memory() -> None:
    n = 20_000
    ids = [f"wmMem{i:027d}" for i in range(n)]
    tracemalloc.start()
    try:
        rows = CustomerTable()
        for ext in ids:
            rows.add_plain(ext, ext, "lina", CREATED)
        rows_bytes = tracemalloc.get_traced_memory()[0]
        del rows
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        objects = CustomerTable()
        for ext in ids:
            follow = FollowRecord(userid="lina", createtime=CREATED)
            objects[ext] = Customer(external_userid=ext, name=ext, follows={"lina": follow})
        objects_bytes = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert rows_bytes / n < 200, rows_bytes / n  # the ids themselves are allocated outside the measurement
    assert rows_bytes * 3 < objects_bytes, (rows_bytes, objects_bytes)


def test_api_call_totals_count_every_call_and_rate_limit_errors(sim: SimClient) -> None:
    api = "externalcontact/get_follow_user_list"
    sim.configure(api_rate_limits={api: 1})
    assert [sim.get(api)["errcode"] for _ in range(3)] == [0, 45009, 45009]
    totals = sim.control("GET", "/sim/api_calls").json()["totals"]
    assert totals == {"calls": 4, "errcodes": {"0": 2, "45009": 2}}  # gettoken + the first call succeed
    sim.control("POST", "/sim/reset", {})
    assert sim.control("GET", "/sim/api_calls").json()["totals"] == {"calls": 0, "errcodes": {}}


def test_api_call_totals_outlive_the_call_log() -> None:
    simulator = Simulator(SimulatorConfig(port=0, callback_url=""))
    for i in range(API_LOG_LIMIT + 100):
        simulator.record_api_call("externalcontact/add_msg_template", 45009 if i < 100 else 0)
    assert all(call["errcode"] == 0 for call in simulator.api_calls())  # the errors left the log...
    assert simulator.api_call_totals() == {
        "calls": API_LOG_LIMIT + 100,
        "errcodes": {"0": API_LOG_LIMIT, "45009": 100},
    }  # ...but not the totals
