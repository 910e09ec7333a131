"""Roaring bitmaps of contact ids: one per tag (``TagBitmap``), one per staff member's active customers.

Writes (``tag_bitmaps_apply``) run inside the transaction that changed ContactTag: the bitmap rows are locked in
tag-id order, the writer applies exactly its own delta (the rows its INSERT/DELETE … RETURNING reported) and
bumps ``version``. Two writers of the same (contact, tag) are already serialised by the ContactTag row, so the
deltas land in commit order and the bitmap equals the committed join table.

Reads keep deserialized bitmaps in a per-process cache keyed by (tag id, version): a count costs one small
query for the versions plus bitmap algebra in C (pyroaring). A guide's scope (customers they actively follow)
is rebuilt from the (staff, contact) partial index only when ``StaffScopeVersion`` moved (a Postgres trigger on
contacts_followrelation bumps it, whatever code path changed the relation).

``evaluate`` turns a parsed expression (tagging/rules.py) into a bitmap when every leaf is a tag condition;
otherwise it returns None and the caller uses SQL.
"""

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from threading import Lock

from django.db import connection, transaction
from pyroaring import BitMap, FrozenBitMap

from scrm.errors import ApplicationError
from tagging import rules

CACHE_SIZE = 512  # bitmaps kept per process (a dense 1M-contact bitmap is ~130 KB)

_cache: "OrderedDict[tuple[str, int], tuple[int, FrozenBitMap]]" = OrderedDict()
_cache_lock = Lock()


def cache_clear() -> None:
    with _cache_lock:
        _cache.clear()


def _cache_get(key: tuple[str, int], version: int) -> FrozenBitMap | None:
    with _cache_lock:
        hit = _cache.get(key)
        if hit is None or hit[0] != version:
            return None
        _cache.move_to_end(key)
        return hit[1]


def _cache_put(key: tuple[str, int], version: int, bitmap: FrozenBitMap) -> None:
    with _cache_lock:
        _cache[key] = (version, bitmap)
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


# --- writes --------------------------------------------------------------------------------------------------------
def tag_bitmaps_apply(*, added: Iterable[tuple[int, int]] = (), removed: Iterable[tuple[int, int]] = ()) -> None:
    """Apply (contact_id, tag_id) additions and removals to the tag bitmaps. Must run inside the transaction
    that made the ContactTag change (after it), so both commit or neither does."""
    plus: dict[int, list[int]] = {}
    minus: dict[int, list[int]] = {}
    for contact_id, tag_id in added:
        plus.setdefault(tag_id, []).append(contact_id)
    for contact_id, tag_id in removed:
        minus.setdefault(tag_id, []).append(contact_id)
    tag_ids = sorted(set(plus) | set(minus))
    if not tag_ids:
        return
    with transaction.atomic(), connection.cursor() as cur:
        rows = _lock_rows(cur, tag_ids)
        updates = []
        for tag_id in tag_ids:
            if tag_id not in rows:  # the tag was deleted meanwhile: nothing to keep in step
                continue
            data, version = rows[tag_id]
            bitmap = BitMap.deserialize(data) if data else BitMap()
            if tag_id in plus:
                bitmap.update(plus[tag_id])
            if tag_id in minus:
                bitmap.difference_update(BitMap(minus[tag_id]))
            bitmap.run_optimize()
            updates.append((tag_id, bitmap, 0))
        updates = _write_rows(cur, updates)
    for tag_id, bitmap, version in updates:
        transaction.on_commit(lambda t=tag_id, b=bitmap, v=version: _cache_put(("tag", t), v, FrozenBitMap(b)))


def _lock_rows(cur, tag_ids: list[int]) -> dict[int, tuple[bytes, int]]:
    cur.execute("INSERT INTO tagging_tagbitmap (tag_id, bitmap, cardinality, version, updated_at) "
                "SELECT t.id, '', 0, 0, now() FROM tagging_tag t WHERE t.id = ANY(%s) ORDER BY t.id "
                "ON CONFLICT (tag_id) DO NOTHING", [tag_ids])
    cur.execute("SELECT tag_id, bitmap, version FROM tagging_tagbitmap WHERE tag_id = ANY(%s) ORDER BY tag_id "
                "FOR UPDATE", [tag_ids])
    return {tag_id: (bytes(data), version) for tag_id, data, version in cur.fetchall()}


def _write_rows(cur, updates: list[tuple[int, BitMap, int]]) -> list[tuple[int, BitMap, int]]:
    """Store each bitmap with a new version from a sequence: never reused, even after a rollback, so a cached
    (tag, version) always means the same bitmap."""
    written = []
    for tag_id, bitmap, _ in updates:
        cur.execute("UPDATE tagging_tagbitmap SET bitmap = %s, cardinality = %s, "
                    "version = nextval('tagging_bitmap_version_seq'), updated_at = now() WHERE tag_id = %s "
                    "RETURNING version", [bitmap.serialize(), len(bitmap), tag_id])
        written.append((tag_id, bitmap, cur.fetchone()[0]))
    return written


def tag_bitmaps_rebuild(*, tag_ids: Iterable[int] | None = None) -> int:
    """Recompute bitmaps from ContactTag (every tag when ``tag_ids`` is None). Returns how many were rebuilt.

    Each tag in its own short transaction: lock the bitmap row first, then read the join table, so writers
    that commit later apply their delta on top of the rebuilt bitmap.
    """
    with connection.cursor() as cur:
        if tag_ids is None:
            cur.execute("SELECT id FROM tagging_tag ORDER BY id")
            ids = [r[0] for r in cur.fetchall()]
        else:
            ids = sorted(set(tag_ids))
    for tag_id in ids:
        with transaction.atomic(), connection.cursor() as cur:
            rows = _lock_rows(cur, [tag_id])
            if tag_id not in rows:
                continue
            cur.execute("SELECT contact_id FROM tagging_contacttag WHERE tag_id = %s", [tag_id])
            bitmap = BitMap(r[0] for r in cur.fetchall())
            bitmap.run_optimize()
            _write_rows(cur, [(tag_id, bitmap, 0)])
    return len(ids)


# --- reads ---------------------------------------------------------------------------------------------------------
def unknown_tags_error(unknown: list[int]) -> ApplicationError:
    return ApplicationError(f"Unknown tag ids: {', '.join(map(str, unknown))}", {"unknown_tag_ids": unknown})


def _versions(tag_ids: list[int], staff_id: int | None) -> tuple[dict[int, int], set[int], int | None]:
    """One round trip: the bitmap version of each tag, which tags exist, and the staff scope version."""
    sql = ("SELECT 't', t.id, b.version FROM tagging_tag t LEFT JOIN tagging_tagbitmap b ON b.tag_id = t.id "
           "WHERE t.id = ANY(%s)")
    params: list = [tag_ids]
    if staff_id is not None:
        sql += " UNION ALL SELECT 's', 0, (SELECT version FROM tagging_staffscopeversion WHERE staff_id = %s)"
        params.append(staff_id)
    versions: dict[int, int] = {}
    known: set[int] = set()
    staff_version = None
    with connection.cursor() as cur:
        cur.execute(sql, params)
        for kind, ident, version in cur.fetchall():
            if kind == "s":
                staff_version = version or 0
            else:
                known.add(ident)
                if version is not None:
                    versions[ident] = version
    return versions, known, staff_version


def tag_bitmaps(tag_ids: Iterable[int], *, versions: dict[int, int] | None = None) -> dict[int, FrozenBitMap]:
    """The bitmap of each tag (an empty one for a tag nobody carries)."""
    ids = sorted(set(tag_ids))
    if not ids:
        return {}
    if versions is None:
        versions = _versions(ids, None)[0]
    with connection.cursor() as cur:
        result: dict[int, FrozenBitMap] = {}
        missing = []
        for tag_id in ids:
            if tag_id not in versions:
                result[tag_id] = FrozenBitMap()
                continue
            hit = _cache_get(("tag", tag_id), versions[tag_id])
            if hit is None:
                missing.append(tag_id)
            else:
                result[tag_id] = hit
        if missing:
            cur.execute("SELECT tag_id, bitmap, version FROM tagging_tagbitmap WHERE tag_id = ANY(%s)", [missing])
            for tag_id, data, version in cur.fetchall():
                bitmap = FrozenBitMap.deserialize(bytes(data)) if data else FrozenBitMap()
                _cache_put(("tag", tag_id), version, bitmap)
                result[tag_id] = bitmap
    return result


def tag_cardinalities(tag_ids: Iterable[int] | None = None) -> dict[int, int]:
    """Customers per tag, from the stored cardinality (no bitmap is loaded)."""
    sql, params = "SELECT tag_id, cardinality FROM tagging_tagbitmap WHERE cardinality > 0", []
    if tag_ids is not None:
        sql += " AND tag_id = ANY(%s)"
        params.append(sorted(set(tag_ids)))
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return dict(cur.fetchall())


def staff_scope(staff_id: int, *, version: int | None = None) -> FrozenBitMap:
    """Contact ids the staff member actively follows (a guide's universe), cached per trigger-kept version."""
    with connection.cursor() as cur:
        if version is None:
            cur.execute("SELECT version FROM tagging_staffscopeversion WHERE staff_id = %s", [staff_id])
            row = cur.fetchone()
            version = row[0] if row else 0
        hit = _cache_get(("staff", staff_id), version)
        if hit is not None:
            return hit
        cur.execute("SELECT contact_id FROM contacts_followrelation WHERE staff_id = %s AND is_active", [staff_id])
        bitmap = FrozenBitMap(r[0] for r in cur.fetchall())
    _cache_put(("staff", staff_id), version, bitmap)
    return bitmap


# --- algebra -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    """A set of contact ids, or its complement (``negated``) within whatever universe the caller applies."""

    bitmap: FrozenBitMap
    negated: bool = False


def is_tag_only(node) -> bool:
    if isinstance(node, rules.And | rules.Or):
        return all(is_tag_only(c) for c in node.children)
    if isinstance(node, rules.Not):
        return is_tag_only(node.child)
    return isinstance(node, rules.TagCond)


def evaluate(node, bitmaps: dict[int, FrozenBitMap]) -> Result:
    """Bitmap algebra for a tag-only expression, never materialising a complement."""
    if isinstance(node, rules.Not):
        inner = evaluate(node.child, bitmaps)
        return Result(inner.bitmap, not inner.negated)
    if isinstance(node, rules.TagCond):
        if node.mode == "exists":
            return Result(FrozenBitMap.union(*bitmaps.values()) if bitmaps else FrozenBitMap())
        parts = [bitmaps.get(t, FrozenBitMap()) for t in node.tag_ids]
        if len(parts) == 1:
            return Result(parts[0])
        return Result(FrozenBitMap.intersection(*parts) if node.mode == "all" else FrozenBitMap.union(*parts))
    items = [evaluate(c, bitmaps) for c in node.children]
    pos = [r.bitmap for r in items if not r.negated]
    neg = [r.bitmap for r in items if r.negated]
    if isinstance(node, rules.And):
        # P1 ∧ … ∧ ¬N1 ∧ … = (P1 ∩ …) − (N1 ∪ …);  only negatives: ¬(N1 ∪ …)
        negs = FrozenBitMap.union(*neg) if len(neg) > 1 else (neg[0] if neg else None)
        if pos:
            base = FrozenBitMap.intersection(*pos) if len(pos) > 1 else pos[0]
            return Result(base - negs if negs is not None else base)
        return Result(negs, True)
    # Or: P1 ∨ … ∨ ¬N1 ∨ … = ¬((N1 ∩ …) − (P1 ∪ …));  only positives: P1 ∪ …
    poss = FrozenBitMap.union(*pos) if len(pos) > 1 else (pos[0] if pos else None)
    if neg:
        base = FrozenBitMap.intersection(*neg) if len(neg) > 1 else neg[0]
        return Result(base - poss if poss is not None else base, True)
    return Result(poss)


def expression_bitmap(node, *, staff_id: int | None = None) -> FrozenBitMap | None:
    """The members of a tag-only expression (within one staff member's active customers when given), or None
    when bitmaps cannot answer alone (non-tag leaves, or a complement over all contacts)."""
    if not is_tag_only(node):
        return None
    referenced = rules.referenced_tag_ids(node)
    wanted = set(referenced)
    if _has_exists(node):
        with connection.cursor() as cur:
            cur.execute("SELECT tag_id FROM tagging_tagbitmap WHERE cardinality > 0")
            wanted |= {r[0] for r in cur.fetchall()}
    versions, known, staff_version = _versions(sorted(wanted), staff_id)
    unknown = sorted(referenced - known)
    if unknown:
        raise unknown_tags_error(unknown)
    maps = tag_bitmaps(wanted & known, versions=versions)
    result = evaluate(node, maps)
    if staff_id is None:
        return None if result.negated else result.bitmap
    scope = staff_scope(staff_id, version=staff_version)
    return scope - result.bitmap if result.negated else scope & result.bitmap


def _has_exists(node) -> bool:
    if isinstance(node, rules.And | rules.Or):
        return any(_has_exists(c) for c in node.children)
    if isinstance(node, rules.Not):
        return _has_exists(node.child)
    return isinstance(node, rules.TagCond) and node.mode == "exists"
