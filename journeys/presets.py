"""Ready-made journeys: the T+0/T+3/T+7 message line and one per scenario (the admin's "from template"
action and seed_demo create them as drafts; an admin reviews and puts them live)."""

from django.db import transaction

from journeys.models import Channel, Journey, JourneyStep, MessageTemplate, Priority

T = Journey.Trigger
# preset → (name, kind, trigger, trigger_config, goal, priority, [(kind, label, template text | None, config)])
PRESETS: dict[str, tuple] = {
    "message_line": ("新客消息线 T+0/T+3/T+7", Journey.Kind.TIMELINE, T.CONTACT_ADDED, {}, "ordered", Priority.MARKETING, [
        ("wait", "T+0 10:00 后", None, {"minutes": 5}),
        ("send", "T+0 欢迎与小礼物", "{{ name }}，欢迎加入！我是您的专属顾问{{ staff_name }}，送您一份新人礼，点击领取～", {}),
        ("wait", "T+3 19:30", None, {"day": 3, "at": "19:30"}),
        ("send", "T+3 品牌故事与爆品", "分享一下我们的品牌故事和本周爆品，有任何问题随时问我～", {"window": ["19:00", "21:00"]}),
        ("wait", "T+7 19:30", None, {"day": 7, "at": "19:30"}),
        ("send", "T+7 限时转化优惠", "限时福利：新人专享券 48 小时内有效，别错过～", {"window": ["19:00", "21:00"]}),
    ]),
    "first_order": ("首单关怀", Journey.Kind.SCENARIO, T.ORDER_PAID, {"first_only": True}, "", Priority.SERVICE, [
        ("send", "首单感谢", "感谢您的首单！使用中有任何问题都可以找我～", {}),
        ("wait", "7 天后", None, {"day": 7, "at": "19:30"}),
        ("send", "使用回访", "用了一周感觉怎么样？回复我可以领取复购券～", {}),
    ]),
    "coupon_expiring": ("优惠券到期提醒", Journey.Kind.SCENARIO, T.ENTITLEMENT_EXPIRING,
                        {"days": 3, "kinds": ["coupon"]}, "ordered", Priority.SERVICE, [
        ("send", "到期提醒", "您的{{ coupon_name }}将于 {{ coupon_expires }} 到期，记得使用哦～", {}),
    ]),
    "course_expiring": ("课程到期提醒", Journey.Kind.SCENARIO, T.ENTITLEMENT_EXPIRING,
                        {"days": 7, "kinds": ["course"]}, "ordered", Priority.SERVICE, [
        ("send", "课程到期", "您的课程{{ coupon_name }}将于 {{ coupon_expires }} 到期，抓紧学习～", {}),
    ]),
    "renewal_due": ("会员续费提醒", Journey.Kind.SCENARIO, T.RENEWAL_DUE, {"days": 7}, "ordered", Priority.SERVICE, [
        ("send", "续费提醒", "您的会员将于 {{ coupon_expires }} 到期，续费享专属折扣～", {}),
        ("wait", "3 天后", None, {"day": 3, "at": "19:30"}),
        ("send", "顾问跟进", "请顾问电话回访续费意向", {}),
    ]),
    "churn_winback": ("流失召回（30 天未活跃）", Journey.Kind.SCENARIO, T.INACTIVE, {"days": 30}, "ordered",
                      Priority.MARKETING, [
        ("send", "召回福利", "好久不见～给您准备了一张回归券，7 天内有效", {"window": ["19:00", "21:00"]}),
        ("wait", "5 天后", None, {"day": 5, "at": "19:30"}),
        ("send", "顾问跟进", "请顾问一对一跟进召回", {}),
    ]),
    "entitlement_expired": ("权益过期挽回", Journey.Kind.SCENARIO, T.ENTITLEMENT_EXPIRED, {}, "ordered",
                            Priority.MARKETING, [
        ("send", "过期挽回", "您的{{ coupon_name }}已过期，我们为您补发了一张，3 天内有效～", {}),
    ]),
    "tag_added": ("标签触发跟进", Journey.Kind.SCENARIO, T.TAG_ADDED, {"tag_id": 0}, "", Priority.MARKETING, [
        ("send", "顾问跟进", "客户新增了关注标签，请一对一跟进", {}),
    ]),
    "segment_entered": ("进入人群触达", Journey.Kind.SCENARIO, T.SEGMENT_ENTERED, {"segment_id": 0}, "ordered",
                        Priority.MARKETING, [
        ("send", "人群专属内容", "为您精选了本周好物～", {"window": ["19:00", "21:00"]}),
    ]),
    "custom_event": ("自定义事件触发", Journey.Kind.SCENARIO, T.CUSTOM_EVENT, {"type": "clicked_offer"}, "ordered",
                     Priority.MARKETING, [
        ("wait", "30 分钟", None, {"minutes": 30}),
        ("send", "优惠跟进", "看到您对这次活动感兴趣，有问题随时问我～", {}),
    ]),
}
# The last send of these is a staff reminder for manual follow-up.
_STAFF_REMINDER_LABELS = {"顾问跟进", "使用回访"}


def journey_from_preset(*, corp, preset: str) -> Journey:
    """Create (or return the existing) draft journey of a ready-made template. Idempotent per corp."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    existing = Journey.objects.filter(corp=corp, preset=preset, family__isnull=True).first()
    if existing:
        return existing
    name, kind, trigger, cfg, goal, priority, steps = PRESETS[preset]
    with transaction.atomic():
        journey = Journey.objects.create(corp=corp, name=name, kind=kind, trigger=trigger, trigger_config=cfg,
                                         goal_event=goal, priority=priority, preset=preset)
        for position, (step_kind, label, text, config) in enumerate(steps, start=1):
            template = None
            if text is not None:
                template, _ = MessageTemplate.objects.get_or_create(name=f"{name} · {label}"[:64],
                                                                    defaults={"text": text})
            channel = Channel.STAFF_REMINDER if label in _STAFF_REMINDER_LABELS else Channel.SINGLE
            JourneyStep.objects.create(journey=journey, position=position, kind=step_kind, label=label,
                                       template=template, channel=channel, config=config)
    return journey


def presets_install(*, corp) -> list[Journey]:
    return [journey_from_preset(corp=corp, preset=p) for p in PRESETS]


def presets_demo_install(*, corp) -> list[Journey]:
    """seed_demo: every ready-made journey as a draft, and the T+0/T+3/T+7 message line live."""
    from journeys.services import journey_go_live

    journeys = presets_install(corp=corp)
    line = next(j for j in journeys if j.preset == "message_line")
    if line.status == Journey.Status.DRAFT:
        journey_go_live(journey=line)
    return journeys
