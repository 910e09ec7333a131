"""The HTML console at ``GET /sim/``: the simulated corp at a glance, plus forms that fire client actions.

Plain server-rendered HTML: no JavaScript, no external assets. Forms post to the control API, which
redirects back here with a flash message. Every dynamic value is HTML-escaped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING

from .quota import CHINA_TZ
from .state import World

if TYPE_CHECKING:
    from .app import Simulator

CUSTOMER_ROWS = 100
RECENT_ROWS = 30

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
header{background:#1d6f42;color:#fff;padding:12px 24px}header a{color:#d9f99d}
main{padding:16px 24px}h2{margin:28px 0 8px;font-size:17px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #d9e2ec;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef2f6}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(290px,1fr));gap:12px}
form.card,div.card{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:10px 12px}
.card h3{margin:0 0 6px;font-size:14px}label{display:block;font-size:12px;color:#52606d;margin-top:4px}
input,select{width:100%;box-sizing:border-box;padding:3px 5px;font-size:13px}
input[type=checkbox]{width:auto}button{margin-top:8px;padding:4px 12px}
.ok{background:#e3f9e5;border:1px solid #8eedc7;padding:8px;margin-bottom:8px;word-break:break-all}
.error{background:#ffe3e3;border:1px solid #ff9b9b;padding:8px;margin-bottom:8px}
code{font-size:12px}.muted{color:#7b8794}
"""


def render(sim: Simulator, *, flash_ok: str = "", flash_error: str = "") -> str:
    """The whole page. Call with the simulator lock held."""
    world = sim.world
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>WeCom simulator</title>",
        f"<style>{_STYLE}</style></head><body>",
        _header(sim),
        "<main>",
    ]
    if flash_ok:
        parts.append(f"<div class='ok'>{escape(flash_ok)}</div>")
    if flash_error:
        parts.append(f"<div class='error'>{escape(flash_error)}</div>")
    parts += [
        "<h2>Customer and member actions (fire callbacks)</h2>",
        f"<div class='grid'>{_contact_forms(world)}</div>",
        "<h2>Groups, tags, mass messages</h2>",
        f"<div class='grid'>{_group_forms(world)}{_tag_and_mass_forms(world)}</div>",
        "<h2>Simulator</h2>",
        f"<div class='grid'>{_simulator_forms()}</div>",
        _members_table(world),
        _customers_table(world),
        _groups_table(world),
        _ways_tables(world),
        _tags_table(world),
        _mass_table(world),
        _messages_tables(world),
        _callbacks_table(sim),
        "</main></body></html>",
    ]
    return "".join(parts)


# --- building blocks ----------------------------------------------------------------------------------------


def _ts(value: float | int | None) -> str:
    if not value:
        return ""
    return datetime.fromtimestamp(value, tz=UTC).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]], note: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    note_html = f"<p class='muted'>{escape(note)}</p>" if note else ""
    return f"<h2>{escape(title)}</h2>{note_html}<table><tr>{head}</tr>{body}</table>"


def _input(name: str, label: str, placeholder: str = "") -> str:
    return f"<label>{escape(label)}<input name='{escape(name)}' placeholder='{escape(placeholder)}'></label>"


def _checkbox(name: str, label: str) -> str:
    return f"<label><input type='checkbox' name='{escape(name)}' value='true'> {escape(label)}</label>"


def _select(name: str, label: str, options: Iterable[tuple[str, str]], *, blank: str = "") -> str:
    items = [f"<option value=''>{escape(blank)}</option>"] if blank else []
    items += [f"<option value='{escape(value)}'>{escape(text)}</option>" for value, text in options]
    return f"<label>{escape(label)}<select name='{escape(name)}'>{''.join(items)}</select></label>"


def _form(action: str, title: str, fields: Sequence[str], submit: str = "Send") -> str:
    return (
        f"<form class='card' method='post' action='{escape(action)}'><h3>{escape(title)}</h3>"
        f"{''.join(fields)}<button type='submit'>{escape(submit)}</button></form>"
    )


def _member_options(world: World) -> list[tuple[str, str]]:
    return [(m.userid, f"{m.name} ({m.userid})") for m in world.members.values()]


def _group_options(world: World) -> list[tuple[str, str]]:
    return [(g.chat_id, f"{g.name or '(unnamed)'} · {g.chat_id}") for g in world.groups.values()]


# --- sections -----------------------------------------------------------------------------------------------


def _header(sim: Simulator) -> str:
    links = " · ".join(
        f"<a href='{path}'>{path}</a>"
        for path in ("/sim/state", "/sim/callbacks", "/sim/config", "/sim/faults", "/sim/api_calls")
    )
    return (
        "<header><strong>WeCom simulator</strong> — corp <code>"
        f"{escape(sim.config.corp_id)}</code>, agent {sim.config.agent_id}, simulated time "
        f"{escape(_ts(sim.clock.now()))} (offset {sim.clock.offset:+.0f} s), callbacks to "
        f"<code>{escape(sim.settings.callback_url or '(disabled)')}</code>, "
        f"{sim.delivery.pending_count()} pending<br>{links}</header>"
    )


def _contact_forms(world: World) -> str:
    members = _member_options(world)
    ways = [
        (w.config_id, f"{w.remark or w.state or w.config_id} ({', '.join(w.users) or 'party'})")
        for w in world.contact_ways.values()
    ]
    return "".join(
        [
            _form(
                "/sim/actions/add_contact",
                "Customer adds a member",
                [
                    _select("userid", "Member", members, blank="(from the contact way)"),
                    _select("config_id", "Contact way (scan)", ways, blank="(none: direct add)"),
                    _input("external_userid", "Existing customer id", "blank = new customer"),
                    _input("name", "New customer name"),
                    _input("state", "State", "≤ 30 chars"),
                    _checkbox("half", "half add (member not yet confirmed)"),
                ],
            ),
            _form(
                "/sim/actions/edit_contact_in_client",
                "Member edits a customer in the client",
                [
                    _select("userid", "Member", members),
                    _input("external_userid", "Customer id"),
                    _input("remark", "Remark"),
                    _input("description", "Description"),
                    _input("add_tag", "Add tag ids", "comma separated"),
                    _input("remove_tag", "Remove tag ids", "comma separated"),
                ],
            ),
            _form(
                "/sim/actions/customer_deletes_member",
                "Customer deletes the member",
                [_select("userid", "Member", members), _input("external_userid", "Customer id")],
            ),
            _form(
                "/sim/actions/member_deletes_customer",
                "Member deletes the customer",
                [_select("userid", "Member", members), _input("external_userid", "Customer id")],
            ),
        ]
    )


def _group_forms(world: World) -> str:
    members, groups = _member_options(world), _group_options(world)
    join_ways = [(w.config_id, f"{w.remark or w.state or w.config_id}") for w in world.join_ways.values()]
    return "".join(
        [
            _form(
                "/sim/actions/create_group",
                "Member creates a customer group",
                [
                    _select("owner", "Owner", members),
                    _input("name", "Name"),
                    _input("members", "Customer ids", "comma separated"),
                ],
            ),
            _form(
                "/sim/actions/join_group",
                "Customers join a group",
                [
                    _select("chat_id", "Group", groups, blank="(from the join way)"),
                    _select("config_id", "Join way (scan)", join_ways, blank="(none)"),
                    _input("external_userids", "Customer ids", "comma separated"),
                    _select(
                        "join_scene", "Join scene", [("3", "3 group QR"), ("1", "1 invited"), ("2", "2 link")]
                    ),
                ],
            ),
            _form(
                "/sim/actions/leave_group",
                "Customers leave a group",
                [
                    _select("chat_id", "Group", groups),
                    _input("external_userids", "Customer ids", "comma separated"),
                    _select("quit_scene", "Quit scene", [("0", "0 left"), ("1", "1 removed by owner")]),
                ],
            ),
            _form(
                "/sim/actions/rename_group",
                "Rename a group",
                [_select("chat_id", "Group", groups), _input("name", "New name")],
            ),
            _form("/sim/actions/dismiss_group", "Dismiss a group", [_select("chat_id", "Group", groups)]),
        ]
    )


def _tag_and_mass_forms(world: World) -> str:
    tag_form = _form(
        "/sim/actions/client_tag",
        "Admin edits corp tags in the console",
        [
            _select("change_type", "Change", [(c, c) for c in ("create", "update", "delete", "shuffle")]),
            _input("group_name", "Group name (create)"),
            _input("name", "Tag name (create / update)"),
            _input("id", "Tag or group id (update / delete / shuffle)"),
        ],
    )
    return tag_form + _pending_mass_card(world)


def _pending_mass_card(world: World) -> str:
    """One button per unsent task: the member taps send in 群发助手."""
    pending = [
        (m, t.userid)
        for m in world.mass_messages.values()
        if not m.cancelled
        for t in m.tasks
        if t.status == 0
    ][-RECENT_ROWS:]
    buttons = "".join(
        "<form method='post' action='/sim/actions/confirm_mass_msg'>"
        f"<input type='hidden' name='msgid' value='{escape(m.msgid)}'>"
        f"<input type='hidden' name='userid' value='{escape(userid)}'>"
        f"<button type='submit'>{escape(userid)} sends “{escape(str(m.text.get('content', ''))[:20])}”"
        f" ({escape(m.msgid[:10])}…)</button></form>"
        for m, userid in pending
    )
    return (
        "<div class='card'><h3>Members confirm mass messages</h3>"
        f"{buttons or '<p class=muted>No task waiting for confirmation.</p>'}</div>"
    )


def _simulator_forms() -> str:
    return "".join(
        [
            _form("/sim/members", "Add a staff member", [_input("userid", "userid"), _input("name", "Name")]),
            _form("/sim/clock", "Advance the clock", [_input("advance_seconds", "Seconds", "e.g. 21")]),
            _form(
                "/sim/faults",
                "Callback and latency faults",
                [
                    _select("callback_duplicate", "Duplicate callbacks", [("false", "no"), ("true", "yes")]),
                    _input("callback_reorder", "Hold N callbacks, deliver reversed", "0 = off"),
                    _input("callback_delay_ms", "Callback delay (ms)"),
                    _input("api_delay_ms", "API response delay (ms)"),
                ],
                "Apply",
            ),
            _form("/sim/callbacks/verify_url", "Verify the callback URL (echostr)", [], "Verify"),
            _form("/sim/reset", "Reset the world", [_checkbox("seed_demo", "load the demo world")], "Reset"),
        ]
    )


def _members_table(world: World) -> str:
    counts = world.customers.follower_counts()
    rows = [
        (
            m.userid,
            m.name,
            m.mobile,
            m.status,
            "yes" if m.customer_contact else "no",
            counts[m.userid],
        )
        for m in world.members.values()
    ]
    return _table("Members", ["userid", "name", "mobile", "status", "customer contact", "customers"], rows)


def _customers_table(world: World) -> str:
    customers = world.customers
    rows = []
    for c in filter(None, map(customers.peek, itertools.islice(customers, CUSTOMER_ROWS))):  # rows stay rows
        follows = "; ".join(
            f"{f.userid} ({_ts(f.createtime)}{', state ' + f.state if f.state else ''}"
            f"{', tags ' + ','.join(f.tag_ids) if f.tag_ids else ''})"
            for f in c.follows.values()
        )
        rows.append((c.external_userid, c.name, c.gender, follows or "(no follower)"))
    note = f"{len(customers)} customers" + (
        f", first {CUSTOMER_ROWS} shown" if len(customers) > CUSTOMER_ROWS else ""
    )
    return _table("Customers", ["external_userid", "name", "gender", "followed by"], rows, note)


def _groups_table(world: World) -> str:
    rows = [
        (g.chat_id, g.name, g.owner, len(g.members), g.qr_join_count(), g.member_version, _ts(g.create_time))
        for g in world.groups.values()
    ]
    return _table(
        "Customer groups",
        ["chat_id", "name", "owner", "members", "QR joins", "member_version", "created"],
        rows,
    )


def _ways_tables(world: World) -> str:
    contact = [
        (w.config_id, w.type, w.scene, w.state, w.remark, ", ".join(w.users), "temp" if w.is_temp else "")
        for w in world.contact_ways.values()
    ]
    join = [
        (
            w.config_id,
            w.scene,
            w.state,
            w.remark,
            ", ".join(w.chat_id_list),
            "yes" if w.auto_create_room else "no",
        )
        for w in world.join_ways.values()
    ]
    return _table(
        "Contact ways", ["config_id", "type", "scene", "state", "remark", "users", ""], contact
    ) + _table("Join ways", ["config_id", "scene", "state", "remark", "chats", "auto-create"], join)


def _tags_table(world: World) -> str:
    rows = [
        (g.group_name, g.group_id, t.name, t.id, t.creator) for g in world.tag_groups.values() for t in g.tags
    ]
    return _table("Corp tags", ["group", "group_id", "tag", "tag_id", "created by"], rows)


def _mass_table(world: World) -> str:
    rows = []
    for m in list(world.mass_messages.values())[-RECENT_ROWS:]:
        tasks = ", ".join(f"{t.userid}:{t.status}" for t in m.tasks)
        results = {s: sum(1 for r in m.recipients if r.status == s) for s in range(4)}
        summary = " ".join(f"{s}={n}" for s, n in results.items() if n)
        content = str(m.text.get("content", ""))[:40]
        rows.append(
            (
                m.msgid,
                m.chat_type,
                _ts(m.create_time),
                "cancelled" if m.cancelled else "",
                tasks,
                summary,
                content,
            )
        )
    return _table(
        "Mass messages",
        ["msgid", "type", "created", "", "tasks (userid:status)", "results", "text"],
        rows,
        "result status: 0 pending, 1 sent, 2 not a friend, 3 over quota",
    )


def _messages_tables(world: World) -> str:
    welcome = [
        (_ts(m.sent_at), m.userid, m.external_userid, str(m.text.get("content", ""))[:60], len(m.attachments))
        for m in world.welcome_messages[-RECENT_ROWS:]
    ]
    app = [
        (_ts(m.sent_at), m.msgtype, ", ".join(m.delivered), ", ".join(m.dropped), ", ".join(m.invaliduser))
        for m in world.app_messages[-RECENT_ROWS:]
    ]
    return _table(
        "Welcome messages", ["sent", "member", "customer", "text", "attachments"], welcome
    ) + _table(
        "Application messages", ["sent", "msgtype", "delivered", "dropped (frequency)", "invalid users"], app
    )


def _callbacks_table(sim: Simulator) -> str:
    rows = []
    for record in sim.delivery.records(RECENT_ROWS):
        last = record["attempts"][-1] if record["attempts"] else None
        outcome = f"{last['status_code'] or ''} {last['error']}".strip() if last else ""
        keys = ", ".join(f"{k}={v}" for k, v in record["keys"].items())
        rows.append(
            (
                record["id"],
                _ts(record["created_at"]),
                record["event"],
                record["change_type"],
                keys,
                record["status"],
                len(record["attempts"]),
                outcome,
            )
        )
    return _table(
        "Recent callbacks",
        ["#", "queued", "event", "change", "keys", "status", "attempts", "last result"],
        rows,
    )
