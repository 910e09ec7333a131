"""The tag rule and segment expression language (pure: no ORM, no clock, no I/O).

One JSON language serves tag rules and segments::

    {"and": [node, ...]}   {"or": [node, ...]}   {"not": node}
    {"tag": 12}                                               has tag 12
    {"attr": "tags", "op": "contains", "value": [1, 2]}       has every tag (op "in": any of them)
    {"attr": "total_spent", "op": "gte", "value": 500}        a profile fact (list in ATTRS)
    {"attr": "last_purchase_at", "op": "within_days", "value": 30}
    {"event": "joined_group", "within_days": 7, "op": "gte", "value": 1}   count of an event in a window

Every condition may carry ``"negate": true``. ``parse_rule`` validates operators and value types and raises
``RuleError`` with a message an operator understands and the path of the bad node (``and[1].or[0].value``).
``evaluate`` decides one contact from its ``ContactFacts``; ``to_sql`` compiles the same rule into one SQL
predicate for set-based counts and recomputes. A parametrised test checks that both agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_DEPTH = 8
MAX_NODES = 200
MAX_WINDOW_DAYS = 3650

NUMBER, TEXT, TIME, LIST = "number", "text", "time", "list"
# attr → (type, SQL expression over the aliases c = contact, f = facts, ti = tag index; "" for special ones)
ATTRS: dict[str, tuple[str, str]] = {
    "order_count": (NUMBER, "COALESCE(f.order_count, 0)"),
    "total_spent": (NUMBER, "COALESCE(f.total_spent, 0)"),
    "avg_order_value": (NUMBER, "COALESCE(f.avg_order_value, 0)"),
    "rfm_r": (NUMBER, "COALESCE(f.rfm_r, 0)"),
    "rfm_f": (NUMBER, "COALESCE(f.rfm_f, 0)"),
    "rfm_m": (NUMBER, "COALESCE(f.rfm_m, 0)"),
    "gender": (NUMBER, "c.gender"),
    "active_relations": (NUMBER, "c.active_relations"),
    # Predictive scores 0–1 (predictive app); NULL until scored: no comparison matches an unscored contact.
    "churn_risk": (NUMBER, "f.churn_risk"),
    "purchase_propensity": (NUMBER, "f.purchase_propensity"),
    "first_purchase_at": (TIME, "f.first_purchase_at"),
    "last_purchase_at": (TIME, "f.last_purchase_at"),
    "last_active_at": (TIME, "f.last_active_at"),
    "first_added_at": (TIME, "c.first_added_at"),
    "city": (TEXT, "COALESCE(f.city, '')"),
    "age_band": (TEXT, "COALESCE(f.age_band, '')"),
    "occupation": (TEXT, "COALESCE(f.occupation, '')"),
    "name": (TEXT, "c.name"),
    "channel": (LIST, ""),  # the channel states (FollowRelation.state) the contact was added through
    "tags": (LIST, ""),
}
OPS: dict[str, set[str]] = {
    NUMBER: {"eq", "ne", "gt", "gte", "lt", "lte", "in", "exists"},
    TEXT: {"eq", "ne", "in", "contains", "exists"},
    TIME: {"within_days", "exists"},
    LIST: {"contains", "in", "exists"},
}
EVENT_KINDS = {
    "added", "half_added", "deleted_by_customer", "deleted_by_staff", "edited", "transfer_failed",
    "joined_group", "left_group", "ordered", "scanned", "clicked", "visited", "add_to_cart",
}
COUNT_OPS = {"eq", "ne", "gt", "gte", "lt", "lte"}
_SQL_CMP = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class RuleError(ValueError):
    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


# --- the parsed tree ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class And:
    children: tuple


@dataclass(frozen=True)
class Or:
    children: tuple


@dataclass(frozen=True)
class Not:
    child: Any


@dataclass(frozen=True)
class Cond:
    attr: str
    op: str
    value: Any


@dataclass(frozen=True)
class TagCond:
    tag_ids: tuple[int, ...]
    mode: str  # "all" | "any" | "exists"


@dataclass(frozen=True)
class EventCond:
    kind: str
    days: int
    op: str
    value: int


@dataclass(frozen=True)
class ContactFacts:
    """Everything ``evaluate`` may look at for one contact, built by tagging.selectors.contact_facts_get."""

    now: datetime
    values: dict = field(default_factory=dict)  # attr → value (missing: the SQL defaults above)
    tag_ids: frozenset[int] = frozenset()
    channels: frozenset[str] = frozenset()
    events: tuple[tuple[str, datetime], ...] = ()  # (kind, occurred_at), recent enough for every window


# --- parsing --------------------------------------------------------------------------------------------------------
def parse_rule(data: Any) -> Any:
    counter = [0]
    return _parse(data, "", 0, counter)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path and not part.startswith("[") else f"{path}{part}"


def _parse(data: Any, path: str, depth: int, counter: list[int]) -> Any:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise RuleError(f"the expression has more than {MAX_NODES} conditions", path)
    if depth > MAX_DEPTH:
        raise RuleError(f"groups are nested more than {MAX_DEPTH} deep", path)
    if not isinstance(data, dict) or not data:
        raise RuleError("expected a condition object such as {\"tag\": 12} or {\"and\": [...]}", path)
    for key in ("and", "or"):
        if key in data:
            if set(data) != {key}:
                raise RuleError(f"an \"{key}\" group holds only its list of conditions", path)
            items = data[key]
            here = _join(path, key)
            if not isinstance(items, list) or not items:
                raise RuleError(f"\"{key}\" needs a non-empty list of conditions", here)
            children = tuple(_parse(item, f"{here}[{i}]", depth + 1, counter) for i, item in enumerate(items))
            return And(children) if key == "and" else Or(children)
    if "not" in data:
        if set(data) != {"not"}:
            raise RuleError("a \"not\" holds exactly one condition", path)
        return Not(_parse(data["not"], _join(path, "not"), depth + 1, counter))
    negate = data.get("negate", False)
    if not isinstance(negate, bool):
        raise RuleError("\"negate\" is true or false", _join(path, "negate"))
    node = _parse_leaf(data, path)
    return Not(node) if negate else node


def _parse_leaf(data: dict, path: str) -> Any:
    if "tag" in data:
        _only(data, {"tag", "negate"}, path)
        return TagCond((_tag_id(data["tag"], _join(path, "tag")),), "all")
    if "event" in data:
        return _parse_event(data, path)
    if "attr" not in data:
        raise RuleError("a condition needs \"attr\", \"tag\" or \"event\"", path)
    _only(data, {"attr", "op", "value", "negate"}, path)
    attr, op = data["attr"], data.get("op")
    if attr not in ATTRS:
        raise RuleError(f"unknown field \"{attr}\"; known fields: {', '.join(sorted(ATTRS))}", _join(path, "attr"))
    kind = ATTRS[attr][0]
    if op not in OPS[kind]:
        raise RuleError(f"\"{attr}\" cannot be compared with \"{op}\"; use one of: {', '.join(sorted(OPS[kind]))}",
                        _join(path, "op"))
    vpath = _join(path, "value")
    value = data.get("value")
    if op == "exists":
        if attr == "tags":
            return TagCond((), "exists")
        return Cond(attr, op, None)
    if attr == "tags":
        if not isinstance(value, list) or not value:
            raise RuleError("give a non-empty list of tag ids", vpath)
        ids = tuple(sorted({_tag_id(v, f"{vpath}[{i}]") for i, v in enumerate(value)}))
        return TagCond(ids, "all" if op == "contains" else "any")
    if op == "within_days":
        return Cond(attr, op, _int(value, vpath, 1, MAX_WINDOW_DAYS, "a number of days"))
    if op == "in":
        if not isinstance(value, list) or not value:
            raise RuleError("\"in\" needs a non-empty list of values", vpath)
        return Cond(attr, op, tuple(_scalar(kind, v, f"{vpath}[{i}]") for i, v in enumerate(value)))
    if kind == LIST:  # channel contains "poster"
        return Cond(attr, op, _scalar(TEXT, value, vpath))
    return Cond(attr, op, _scalar(kind, value, vpath))


def _parse_event(data: dict, path: str) -> EventCond:
    _only(data, {"event", "within_days", "op", "value", "negate"}, path)
    kind = data["event"]
    if kind not in EVENT_KINDS:
        raise RuleError(f"unknown event \"{kind}\"; known events: {', '.join(sorted(EVENT_KINDS))}",
                        _join(path, "event"))
    days = _int(data.get("within_days"), _join(path, "within_days"), 1, MAX_WINDOW_DAYS, "a number of days")
    op = data.get("op", "gte")
    if op not in COUNT_OPS:
        raise RuleError(f"an event count is compared with one of: {', '.join(sorted(COUNT_OPS))}", _join(path, "op"))
    value = _int(data.get("value", 1), _join(path, "value"), 0, 1_000_000, "a count")
    return EventCond(kind, days, op, value)


def _only(data: dict, allowed: set[str], path: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise RuleError(f"unexpected key \"{extra[0]}\"", _join(path, extra[0]))


def _tag_id(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RuleError("a tag is given by its numeric id", path)
    return value


def _int(value: Any, path: str, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RuleError(f"expected {what} from {low} to {high}", path)
    return value


def _scalar(kind: str, value: Any, path: str) -> Any:
    if kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RuleError("expected a number", path)
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise RuleError("expected a number", path) from exc
        if not number.is_finite():
            raise RuleError("expected a number", path)
        return number
    if not isinstance(value, str) or not value or len(value) > 128:
        raise RuleError("expected a text of 1 to 128 characters", path)
    return value


def referenced_tag_ids(node: Any) -> set[int]:
    if isinstance(node, And | Or):
        return set().union(*(referenced_tag_ids(c) for c in node.children))
    if isinstance(node, Not):
        return referenced_tag_ids(node.child)
    if isinstance(node, TagCond):
        return set(node.tag_ids)
    return set()


def referenced_events(node: Any) -> set[str]:
    if isinstance(node, And | Or):
        return set().union(*(referenced_events(c) for c in node.children))
    if isinstance(node, Not):
        return referenced_events(node.child)
    return {node.kind} if isinstance(node, EventCond) else set()


# --- evaluation (one contact) ----------------------------------------------------------------------------------------
_DEFAULTS = {NUMBER: Decimal(0), TEXT: "", TIME: None}


def evaluate(node: Any, facts: ContactFacts) -> bool:
    if isinstance(node, And):
        return all(evaluate(c, facts) for c in node.children)
    if isinstance(node, Or):
        return any(evaluate(c, facts) for c in node.children)
    if isinstance(node, Not):
        return not evaluate(node.child, facts)
    if isinstance(node, TagCond):
        if node.mode == "exists":
            return bool(facts.tag_ids)
        have = facts.tag_ids.issuperset if node.mode == "all" else lambda ids: bool(facts.tag_ids & set(ids))
        return have(node.tag_ids)
    if isinstance(node, EventCond):
        since = facts.now - timedelta(days=node.days)
        count = sum(1 for kind, at in facts.events if kind == node.kind and at >= since)
        return _compare(Decimal(count), node.op, Decimal(node.value))
    kind = ATTRS[node.attr][0]
    if node.attr == "channel":
        if node.op == "exists":
            return bool(facts.channels)
        if node.op == "contains":
            return node.value in facts.channels
        return bool(facts.channels & set(node.value))
    nullable = kind == NUMBER and not ATTRS[node.attr][1].startswith(("COALESCE", "c."))  # like SQL: NULL stays NULL
    value = facts.values.get(node.attr, None if nullable else _DEFAULTS[kind])
    if kind == NUMBER and value is not None:
        value = Decimal(str(value))
    if node.op == "exists":
        return value is not None and value != ""
    if value is None and kind == NUMBER:
        return False  # SQL: a comparison with NULL is never true
    if node.op == "within_days":
        return value is not None and value >= facts.now - timedelta(days=node.value)
    if node.op == "in":
        return value in node.value
    if node.op == "contains":
        return node.value.lower() in (value or "").lower()
    return _compare(value, node.op, node.value)


def _compare(left: Any, op: str, right: Any) -> bool:
    return {
        "eq": left == right, "ne": left != right, "gt": left > right, "gte": left >= right,
        "lt": left < right, "lte": left <= right,
    }[op]


# --- compilation to SQL ----------------------------------------------------------------------------------------------
@dataclass
class Compiled:
    sql: str
    params: list
    aliases: set[str]  # which of c / f / ti the predicate reads


def to_sql(node: Any, *, now: datetime, id_col: str = "c.id") -> Compiled:
    """One SQL predicate. ``id_col`` is the contact id column of the outer query (for subqueries)."""
    params: list = []
    aliases: set[str] = set()
    sql = _sql(node, now, id_col, params, aliases)
    return Compiled(sql, params, aliases)


def _sql(node: Any, now: datetime, id_col: str, params: list, aliases: set[str]) -> str:
    if isinstance(node, And | Or):
        glue = " AND " if isinstance(node, And) else " OR "
        return "(" + glue.join(_sql(c, now, id_col, params, aliases) for c in node.children) + ")"
    if isinstance(node, Not):
        # IS NOT TRUE: a contact without a facts or tag-index row (NULL) is "not" anything.
        return f"(({_sql(node.child, now, id_col, params, aliases)}) IS NOT TRUE)"
    if isinstance(node, TagCond):
        aliases.add("ti")
        if node.mode == "exists":
            return "(cardinality(ti.tag_ids) > 0)"
        params.append(list(node.tag_ids))
        return f"(ti.tag_ids {'@>' if node.mode == 'all' else '&&'} %s::int[])"
    if isinstance(node, EventCond):
        since = now - timedelta(days=node.days)
        if node.op == "gte" and node.value == 1:
            params.extend([node.kind, since])
            return (f"EXISTS (SELECT 1 FROM contacts_contactevent e WHERE e.contact_id = {id_col} "  # noqa: S608 - id_col is ours; values are parameters
                    "AND e.kind = %s AND e.occurred_at >= %s)")
        params.extend([node.kind, since, node.value])
        return (f"((SELECT count(*) FROM contacts_contactevent e WHERE e.contact_id = {id_col} "  # noqa: S608 - id_col is ours; values are parameters
                f"AND e.kind = %s AND e.occurred_at >= %s) {_SQL_CMP[node.op]} %s)")
    if node.attr == "channel":
        if node.op == "exists":
            return (f"EXISTS (SELECT 1 FROM contacts_followrelation r WHERE r.contact_id = {id_col} "  # noqa: S608 - id_col is ours; values are parameters
                    "AND r.state <> '')")
        params.append([node.value] if node.op == "contains" else list(node.value))
        return f"EXISTS (SELECT 1 FROM contacts_followrelation r WHERE r.contact_id = {id_col} AND r.state = ANY(%s))"  # noqa: S608 - id_col is ours; values are parameters
    kind, expr = ATTRS[node.attr]
    aliases.add(expr.split(".")[0].removeprefix("COALESCE(") if "." in expr else "c")
    if node.op == "exists":
        return f"({expr} IS NOT NULL)" if kind in (TIME, NUMBER) else f"({expr} <> '')"
    if node.op == "within_days":
        params.append(now - timedelta(days=node.value))
        return f"({expr} >= %s)"
    if node.op == "in":
        params.append(list(node.value))
        return f"({expr} = ANY(%s))"
    if node.op == "contains":
        params.append("%" + node.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        return f"({expr} ILIKE %s)"
    params.append(node.value)
    return f"({expr} {_SQL_CMP[node.op]} %s)"


def matches_nothing_without_tags(node: Any, now: datetime) -> bool:
    """True when a contact with no tags (and no facts, no events) can never match: then a count may scan
    the tag index alone instead of every contact."""
    return not evaluate(node, ContactFacts(now=now))
