"""Tag rules: create/validate, evaluate for one contact on events, recompute set-based for everyone.

A rule adds its tag (source ``rule``, source_ref = rule id) when its condition matches and removes only the
assignments it set itself when it stops matching; manual, imported or WeCom assignments are never touched.
"""

import logging
from typing import Any

from django.db import connection, transaction

from contacts.models import Corp
from scrm.clock import now
from scrm.errors import ApplicationError
from tagging import rules, services
from tagging.bitmaps import tag_bitmaps_apply
from tagging.models import ContactTag, Dimension, Tag, TagGroup, TagRule
from tagging.selectors import contact_facts_get

logger = logging.getLogger(__name__)


def rule_parse(*, condition: Any, tag: Tag | None = None) -> Any:
    try:
        node = rules.parse_rule(condition)
    except rules.RuleError as exc:
        raise ApplicationError(exc.message, {"path": exc.path}) from exc
    ids = rules.referenced_tag_ids(node)
    unknown = sorted(ids - set(Tag.objects.filter(pk__in=ids).values_list("pk", flat=True)))
    if unknown:
        raise ApplicationError(f"Unknown tag ids: {', '.join(map(str, unknown))}", {"unknown_tag_ids": unknown})
    if tag is not None and tag.pk in ids:
        raise ApplicationError("A rule cannot depend on the tag it sets.", {"path": ""})
    return node


def tag_rule_create(*, name: str, tag: Tag, condition: Any, is_active: bool = True, preset: str = "") -> TagRule:
    rule_parse(condition=condition, tag=tag)
    rule = TagRule.objects.create(name=name[:64] or tag.name, tag=tag, condition=condition, is_active=is_active,
                                  preset=preset)
    _enqueue_recompute(rule.pk)
    return rule


def tag_rule_update(*, rule: TagRule, name: str | None = None, condition: Any = None,
                    is_active: bool | None = None) -> TagRule:
    if condition is not None:
        rule_parse(condition=condition, tag=rule.tag)
        rule.condition = condition
    if name is not None:
        rule.name = name[:64]
    if is_active is not None:
        rule.is_active = is_active
    rule.save()
    _enqueue_recompute(rule.pk)
    return rule


def tag_rule_delete(*, rule: TagRule) -> int:
    """Delete the rule and the assignments it set."""
    ids = list(ContactTag.objects.filter(tag_id=rule.tag_id, source=ContactTag.Source.RULE, source_ref=str(rule.pk))
               .values_list("contact_id", flat=True))
    removed = services.tags_remove(contact_ids=ids, tag_ids=[rule.tag_id], source=ContactTag.Source.RULE,
                                   source_ref=str(rule.pk))
    rule.delete()
    return removed


def _enqueue_recompute(rule_id: int) -> None:
    from tagging.tasks import tag_rule_recompute

    transaction.on_commit(lambda: tag_rule_recompute.delay(rule_id))


def tag_rules_evaluate_for_contact(*, contact_id: int, rule_ids: list[int] | None = None) -> int:
    """Evaluate active rules for one contact and diff against the rule's own assignments. Idempotent."""
    qs = TagRule.objects.filter(is_active=True)
    if rule_ids is not None:
        qs = qs.filter(pk__in=rule_ids)
    active = list(qs)
    if not active:
        return 0
    facts = contact_facts_get(contact_id=contact_id)
    changes = 0
    for rule in active:
        node = rules.parse_rule(rule.condition)
        ref = str(rule.pk)
        if rules.evaluate(node, facts):
            changes += services.tags_apply(contact_ids=[contact_id], tag_ids=[rule.tag_id],
                                           source=ContactTag.Source.RULE, source_ref=ref)
        else:
            changes += services.tags_remove(contact_ids=[contact_id], tag_ids=[rule.tag_id],
                                            source=ContactTag.Source.RULE, source_ref=ref)
    return changes


def rules_for_event(*, kind: str) -> list[int]:
    """Rules an event kind can change: those counting that event, and those reading order/activity facts."""
    ids = []
    for rule in TagRule.objects.filter(is_active=True).only("pk", "condition"):
        try:
            node = rules.parse_rule(rule.condition)
        except rules.RuleError:
            continue
        text = str(rule.condition)
        relation_change = kind in ("added", "half_added", "deleted_by_customer", "deleted_by_staff") and (
            "channel" in text or "active_relations" in text)
        if kind in rules.referenced_events(node) or kind == "ordered" or "last_active_at" in text or relation_change:
            ids.append(rule.pk)
    return ids


def tag_rule_recompute(*, rule_id: int) -> int:
    """Set-based: add the tag where the rule matches, remove the rule's own assignments where it does not.

    Two statements over all contacts of the corp, never a Python loop per contact. Returns matched count.
    """
    rule = TagRule.objects.select_related("tag__group").filter(pk=rule_id).first()
    if rule is None:
        return 0
    ref = str(rule.pk)
    at = now()
    if not rule.is_active:
        ids = list(ContactTag.objects.filter(tag_id=rule.tag_id, source=ContactTag.Source.RULE, source_ref=ref)
                   .values_list("contact_id", flat=True))
        services.tags_remove(contact_ids=ids, tag_ids=[rule.tag_id], source=ContactTag.Source.RULE, source_ref=ref)
        return 0
    node = rules.parse_rule(rule.condition)
    compiled = rules.to_sql(node, now=at)
    joins = ""
    if "ti" in compiled.aliases:
        joins += " LEFT JOIN tagging_contacttagindex ti ON ti.contact_id = c.id"
    if "f" in compiled.aliases:
        joins += " LEFT JOIN contacts_contactfacts f ON f.contact_id = c.id"
    corp_id = rule.tag.group.corp_id
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "INSERT INTO tagging_contacttag (contact_id, tag_id, source, source_ref, created_at) "  # noqa: S608 - compiled SQL holds only our fragments; values are parameters
            f"SELECT c.id, %s, %s, %s, %s FROM contacts_contact c{joins} WHERE c.corp_id = %s AND {compiled.sql} "
            "ON CONFLICT (contact_id, tag_id) DO NOTHING RETURNING contact_id",
            [rule.tag_id, ContactTag.Source.RULE, ref, at, corp_id, *compiled.params])
        added = [r[0] for r in cur.fetchall()]
        cur.execute(
            "DELETE FROM tagging_contacttag ct WHERE ct.tag_id = %s AND ct.source = %s AND ct.source_ref = %s "  # noqa: S608 - as above
            f"AND NOT EXISTS (SELECT 1 FROM contacts_contact c{joins} WHERE c.id = ct.contact_id "
            f"AND {compiled.sql}) RETURNING ct.contact_id",
            [rule.tag_id, ContactTag.Source.RULE, ref, *compiled.params])
        removed = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT count(*) FROM tagging_contacttag WHERE tag_id = %s AND source = %s AND source_ref = %s",
                    [rule.tag_id, ContactTag.Source.RULE, ref])
        matched = cur.fetchone()[0]
        # The bitmap row is locked last (after the join-table writes), like every other tag writer.
        tag_bitmaps_apply(added=[(c, rule.tag_id) for c in added], removed=[(c, rule.tag_id) for c in removed])
    services.tag_index_rebuild(contact_ids=added + removed)
    if rule.tag.sync_to_wecom and rule.tag.wecom_tag_id:
        from tagging.tasks import contact_wecom_tags_push

        for contact_id in added + removed:
            contact_wecom_tags_push.delay(contact_id)
    TagRule.objects.filter(pk=rule.pk).update(last_run_at=at, last_matched=matched)
    logger.info("tag rule recomputed rule_id=%s added=%s removed=%s", rule.pk, len(added), len(removed))
    return matched


def tag_rules_recompute_all() -> int:
    """Nightly sweep: RFM scores first, then every active rule (time windows move even without events)."""
    from contacts.business import contacts_rfm_score

    contacts_rfm_score()
    rule_ids = list(TagRule.objects.filter(is_active=True).values_list("pk", flat=True))
    for rule_id in rule_ids:
        tag_rule_recompute(rule_id=rule_id)
    return len(rule_ids)


def tag_rule_would_match(*, user, condition: Any, tag: Tag | None = None) -> int:
    """"Would match N customers now" for the rule editor (scoped like a segment count)."""
    from tagging.segments import segment_count

    rule_parse(condition=condition, tag=tag)
    return segment_count(user=user, expression=condition)


# --- ready-made rules ----------------------------------------------------------------------------------------------
HIGH = 3  # RFM score 3–5 counts as high on a 1–5 scale
RFM_SEGMENTS = [  # (name, recency high, frequency high, monetary high)
    ("重要价值客户", True, True, True),
    ("重要发展客户", True, False, True),
    ("重要保持客户", False, True, True),
    ("重要挽留客户", False, False, True),
    ("一般价值客户", True, True, False),
    ("一般发展客户", True, False, False),
    ("一般保持客户", False, True, False),
    ("一般挽留客户", False, False, False),
]
PRESETS = ("rfm", "repeat_buyer", "high_order_value", "dormant_30d", "channel_sources", "predictive")


def _score(attr: str, high: bool) -> dict:
    return {"attr": attr, "op": "gte" if high else "lt", "value": HIGH}


def _preset_tag(corp: Corp, dimension: str, group_name: str, tag_name: str) -> Tag:
    group, _ = TagGroup.objects.get_or_create(corp=corp, dimension=dimension, name=group_name)
    tag, _ = Tag.objects.get_or_create(group=group, name=tag_name[:30])
    return tag


def tag_rule_presets_install(*, corp: Corp, preset: str, threshold: int = 500) -> list[TagRule]:
    """Create the tags and rules of a ready-made rule set (idempotent: an installed preset is reused)."""
    if preset not in PRESETS:
        raise ApplicationError(f"Unknown ready-made rule {preset!r}; choose one of {', '.join(PRESETS)}.")
    specs: list[tuple[Tag, str, dict]] = []
    if preset == "rfm":
        for name, r, f, m in RFM_SEGMENTS:
            tag = _preset_tag(corp, Dimension.BUSINESS, "RFM 分层", name)
            specs.append((tag, name, {"and": [{"attr": "order_count", "op": "gt", "value": 0},
                                              _score("rfm_r", r), _score("rfm_f", f), _score("rfm_m", m)]}))
    elif preset == "repeat_buyer":
        specs.append((_preset_tag(corp, Dimension.BUSINESS, "购买行为", "复购客户"), "复购客户",
                      {"attr": "order_count", "op": "gte", "value": 2}))
    elif preset == "high_order_value":
        specs.append((_preset_tag(corp, Dimension.BUSINESS, "购买行为", "高客单价"), "高客单价",
                      {"attr": "avg_order_value", "op": "gte", "value": threshold}))
    elif preset == "dormant_30d":
        specs.append((_preset_tag(corp, Dimension.PREDICTIVE, "流失风险", "沉睡30天"), "沉睡30天",
                      {"and": [{"attr": "active_relations", "op": "gt", "value": 0},
                               {"not": {"attr": "last_active_at", "op": "within_days", "value": 30}}]}))
    elif preset == "predictive":  # scores written nightly by the predictive app (predictive/services.py)
        specs.append((_preset_tag(corp, Dimension.PREDICTIVE, "预测", "高流失风险"), "高流失风险",
                      {"attr": "churn_risk", "op": "gte", "value": 0.6}))
        specs.append((_preset_tag(corp, Dimension.PREDICTIVE, "预测", "高购买意向"), "高购买意向",
                      {"attr": "purchase_propensity", "op": "gte", "value": 0.5}))
    else:  # one source tag per channel state seen on follow relations
        from contacts.models import FollowRelation

        states = (FollowRelation.objects.filter(contact__corp=corp).exclude(state="")
                  .values_list("state", flat=True).distinct().order_by("state")[:500])
        specs.extend(
            (_preset_tag(corp, Dimension.SOURCE, "渠道", state), f"渠道 {state}",
             {"attr": "channel", "op": "contains", "value": state})
            for state in states
        )
    created = []
    for tag, name, condition in specs:
        rule = TagRule.objects.filter(tag=tag, preset=preset).first()
        created.append(rule or tag_rule_create(name=name, tag=tag, condition=condition, preset=preset))
    return created
