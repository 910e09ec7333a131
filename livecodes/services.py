"""Writes for live codes: codes and pools, publishing to WeCom, attribution, scan flushing and alerts.

WeCom is called only when a code is published or its pool changes (never at scan time), always outside any
transaction. When WeCom refuses, the code keeps serving its last good configuration and an alert is raised.
"""

import logging
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact, ContactEvent, Corp, GroupChat, Staff
from livecodes import hotpath, routing
from livecodes.models import (
    IMAGE_QR_DEFAULT_CAP,
    IMAGE_QR_DEFAULT_DAYS,
    POOL_MAX,
    STATE_MAX,
    Alert,
    Conversion,
    JoinWay,
    LiveCode,
    LiveCodeOption,
    LiveCodeTarget,
    WelcomeDefault,
    WelcomeImage,
    WelcomeMiniProgram,
)
from scrm.clock import now
from scrm.errors import ApplicationError
from scrm.media import (
    INVALID_MEDIA_ID,
    CheckedImage,
    MissingImage,
    cached_media_id,
    image_check,
    media_forget,
)
from wecom import gateway
from wecom.contracts import MessageContent
from wecom.errors import WeComError

logger = logging.getLogger(__name__)

_SLUG_ALPHABET = string.ascii_lowercase + string.digits
JOIN_WAY_SIZE = gateway.JOIN_WAY_MAX_CHATS


def _forget(code: LiveCode) -> None:
    transaction.on_commit(lambda: hotpath.snapshot_forget(code.slug))


# --- codes --------------------------------------------------------------------------------------------------------
def _new_slug() -> str:
    while True:
        slug = "".join(secrets.choice(_SLUG_ALPHABET) for _ in range(8))
        if not LiveCode.objects.filter(slug=slug).exists():
            return slug


def _check_state(state: str) -> None:
    # Each staff member and join way gets "<state>-<suffix>"; keep room for the longest suffix.
    if not state or len(state) > STATE_MAX - 8:
        raise ApplicationError(_("The channel state is 1 to %(n)s characters (WeCom allows 30 in total, and each "
                                 "pool member adds a suffix).") % {"n": STATE_MAX - 8})
    if not all(c.isascii() and (c.isalnum() or c in "_.") for c in state):
        raise ApplicationError(_("The channel state may contain only letters, digits, '_' and '.'."))
    if LiveCode.objects.filter(state=state).exists():
        raise ApplicationError(_("Another live code already uses this channel state."))


_EDITABLE = {"name", "mode", "title", "description", "skip_verify", "auto_remark", "welcome_text",
             "welcome_attachments", "welcome_group_code", "fallback", "low_capacity", "campaign", "owner",
             "qr_fg", "qr_bg", "status"}


WELCOME_ATTACHMENTS_MAX = 9  # WeCom's limit per welcome message (API.md §6.3)


def _utf8_len(value) -> int:
    return len(str(value).encode())


def _check_link(body: dict) -> list[str]:
    errors = []
    title, url = body.get("title"), body.get("url")
    if not isinstance(title, str) or not title.strip():
        errors.append(_("a link needs a title"))
    elif _utf8_len(title) > 128:
        errors.append(_("the link title is longer than 128 bytes"))
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        errors.append(_("a link needs a url starting with https:// or http://"))
    elif _utf8_len(url) > 2048:
        errors.append(_("the link url is longer than 2048 bytes"))
    if "desc" in body and (not isinstance(body["desc"], str) or _utf8_len(body["desc"]) > 512):
        errors.append(_("the link description is text of at most 512 bytes"))
    if "picurl" in body and (not isinstance(body["picurl"], str)
                             or not body["picurl"].startswith(("https://", "http://"))):
        errors.append(_("the link picture (picurl) is a URL starting with https:// or http://"))
    return errors


MINIPROGRAM_TITLE_MAX_BYTES = 64  # API.md §6.1


def miniprogram_errors(*, title: str, appid: str, page: str) -> dict[str, str]:
    """What is wrong with a welcome mini-program's ``title``, ``appid`` and ``page``: {field: message}."""
    errors = {}
    title, appid, page = (title or "").strip(), (appid or "").strip(), (page or "").strip()
    if not title:
        errors["title"] = _("A mini-program needs a title.")
    elif _utf8_len(title) > MINIPROGRAM_TITLE_MAX_BYTES:
        errors["title"] = _("The mini-program title is longer than %(n)s bytes.") % {
            "n": MINIPROGRAM_TITLE_MAX_BYTES}
    if not appid:
        errors["appid"] = _("A mini-program needs its appid.")
    elif len(appid) > 32 or not appid.startswith("wx") or not (appid.isascii() and appid.isalnum()):
        errors["appid"] = _("The mini-program appid starts with “wx” and has only letters and digits (e.g. "
                            "wx1234567890abcdef).")
    if not page:
        errors["page"] = _("A mini-program needs the page to open.")
    elif len(page) > 255 or any(c.isspace() or not c.isprintable() for c in page):
        errors["page"] = _("The mini-program page is a path of at most 255 characters without spaces.")
    return errors


def welcome_attachments_errors(attachments) -> list[str]:
    """What is wrong with the typed-in welcome attachments (links only), one message each.

    Images and mini-programs are uploaded instead (``welcome_image_add``, ``welcome_miniprogram_add``): a media
    id typed in (an image, a mini-program's ``pic_media_id``) would expire after 3 days.
    """
    if not isinstance(attachments, list):
        return [_('Welcome attachments are a JSON list: [{"msgtype": "link", "link": {"title": …, "url": …}}].')]
    if len(attachments) > WELCOME_ATTACHMENTS_MAX:
        return [_("A welcome message carries at most %(n)s attachments.") % {"n": WELCOME_ATTACHMENTS_MAX}]
    errors = []
    for number, item in enumerate(attachments, start=1):
        kind = item.get("msgtype") if isinstance(item, dict) else None
        body = item.get(kind) if kind else None
        if kind in ("image", "video", "file"):
            problems = [_("%(kind)s attachments are not typed in (media ids expire after 3 days): upload images "
                          "on this page") % {"kind": kind}]
        elif kind == "miniprogram":
            problems = [_("mini-programs are not typed in (their cover's media id expires after 3 days): add them "
                          "with their cover image on this page")]
        elif kind != "link":
            problems = [_('each attachment is {"msgtype": "link", "link": {…}}')]
        elif not isinstance(body, dict):
            problems = [_('"%(kind)s" must be an object') % {"kind": kind}]
        else:
            problems = _check_link(body)
        errors.extend(_("Attachment %(n)s: %(problem)s.") % {"n": number, "problem": p} for p in problems)
    return errors


def _check_attachments(attachments: list) -> None:
    errors = welcome_attachments_errors(attachments)
    if errors:
        raise ApplicationError(" ".join(errors))


def _check_attachment_count(*, images: int, attachments: list, group_code: bool, miniprograms: int = 0) -> None:
    if images + miniprograms + len(attachments or []) + int(group_code) > WELCOME_ATTACHMENTS_MAX:
        raise ApplicationError(_("A welcome message carries at most %(n)s attachments (images, links, "
                                 "mini-programs and the group invite together).") % {"n": WELCOME_ATTACHMENTS_MAX})


def _uploaded_counts(code: LiveCode) -> dict[str, int]:
    return {"images": code.welcome_images.count(), "miniprograms": code.welcome_miniprograms.count()}


def livecode_create(*, corp: Corp, kind: str, name: str, owner=None, state: str = "", **fields) -> LiveCode:
    if kind not in LiveCode.Kind.values:
        raise ApplicationError(_("Unknown kind of live code."))
    slug = _new_slug()
    state = state or f"lc{slug}"
    _check_state(state)
    tags = fields.pop("tags", None)
    unknown = set(fields) - _EDITABLE
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    _check_attachments(fields.get("welcome_attachments") or [])
    _check_attachment_count(images=0, attachments=fields.get("welcome_attachments") or [],
                            group_code=bool(fields.get("welcome_group_code")))
    _check_fallback(fields.get("fallback"))
    code = LiveCode.objects.create(corp=corp, kind=kind, name=name, owner=owner, slug=slug, state=state, **fields)
    if tags:
        code.tags.set(tags)
    return code


def _check_fallback(fallback: LiveCode | None, code: LiveCode | None = None) -> None:
    if fallback is None:
        return
    if fallback.kind != LiveCode.Kind.STAFF or (code is not None and fallback.pk == code.pk):
        raise ApplicationError(_("The fallback must be another staff code."))


def livecode_update(*, code: LiveCode, **fields) -> LiveCode:
    tags = fields.pop("tags", None)
    unknown = set(fields) - _EDITABLE
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if "welcome_attachments" in fields:
        _check_attachments(fields["welcome_attachments"] or [])
    if "welcome_attachments" in fields or "welcome_group_code" in fields:
        _check_attachment_count(
            **_uploaded_counts(code),
            attachments=fields.get("welcome_attachments", code.welcome_attachments),
            group_code=bool(fields.get("welcome_group_code", code.welcome_group_code)))
    if "fallback" in fields:
        _check_fallback(fields["fallback"], code)
    republish = any(k in fields and fields[k] != getattr(code, k) for k in ("skip_verify", "auto_remark"))
    for key, value in fields.items():
        setattr(code, key, value)
    code.save()
    if tags is not None:
        code.tags.set(tags)
    _forget(code)
    if republish:
        transaction.on_commit(lambda: _enqueue_publish(code.pk))
    return code


def livecode_set_banner(*, code: LiveCode, content: bytes) -> None:
    kind = image_check(content, need_qr=False).content_type
    code.banner, code.banner_type = content, kind
    code.save(update_fields=["banner", "banner_type", "updated_at"])
    _forget(code)


def livecode_set_logo(*, code: LiveCode, content: bytes) -> None:
    image_check(content, need_qr=False)
    code.qr_logo = content
    code.save(update_fields=["qr_logo", "updated_at"])


def option_add(*, code: LiveCode, label: str, tag=None) -> LiveCodeOption:
    if code.kind != LiveCode.Kind.GROUPED:
        raise ApplicationError(_("Only grouped codes offer choices."))
    position = code.options.count()
    option = LiveCodeOption.objects.create(code=code, label=label, tag=tag, position=position)
    _forget(code)
    return option


# --- pool members ----------------------------------------------------------------------------------------------------
def _check_pool(code: LiveCode, adding: int = 1) -> None:
    if code.targets.count() + adding > POOL_MAX:
        raise ApplicationError(_("A live code holds at most %(n)s pool members.") % {"n": POOL_MAX})


def _next_position(code: LiveCode) -> int:
    last = code.targets.order_by("-position").values_list("position", flat=True).first()
    return (last or 0) + 1


def _check_option(code: LiveCode, option: LiveCodeOption | None) -> None:
    if code.kind == LiveCode.Kind.GROUPED and option is None:
        raise ApplicationError(_("Pick the choice this group belongs to."))
    if option is not None and option.code_id != code.pk:
        raise ApplicationError(_("That choice belongs to another code."))


def _check_duty(code: LiveCode, schedules: list[routing.Schedule]) -> None:
    if routing.nobody_on_duty(schedules):
        raise ApplicationError(_("With this schedule nobody is ever on duty: give someone working hours."))


def _schedule(raw) -> routing.Schedule:
    try:
        return routing.schedule_parse(raw)
    except routing.ScheduleError as exc:
        raise ApplicationError(_("Invalid schedule: %(error)s") % {"error": exc}) from exc


def target_add_staff(*, code: LiveCode, staff: Staff, daily_cap: int | None = None, schedule: dict | None = None,
                     is_backup: bool = False, weight: int = 1, region: str = "", publish: bool = True
                     ) -> LiveCodeTarget:
    if code.kind != LiveCode.Kind.STAFF:
        raise ApplicationError(_("Staff members belong in staff codes; group codes route to groups."))
    _check_pool(code)
    if code.targets.filter(staff=staff).exists():
        raise ApplicationError(_("This staff member is already in the code."))
    new = _schedule(schedule)
    others = [routing.schedule_parse(t.schedule) for t in code.targets.filter(kind=LiveCodeTarget.Kind.STAFF,
                                                                                enabled=True)]
    _check_duty(code, [*others, new])
    target = LiveCodeTarget.objects.create(
        code=code, kind=LiveCodeTarget.Kind.STAFF, staff=staff, daily_cap=daily_cap, schedule=schedule or {},
        is_backup=is_backup, weight=weight, region=region, position=_next_position(code),
    )
    if publish:
        contact_way_publish(target=target)
    _forget(code)
    return target


def target_update(*, target: LiveCodeTarget, **fields) -> LiveCodeTarget:
    allowed = {"enabled", "position", "weight", "daily_cap", "schedule", "is_backup", "region", "latitude",
               "longitude", "cap", "expires_at", "label"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if "schedule" in fields:
        new = _schedule(fields["schedule"])
        others = [routing.schedule_parse(t.schedule) for t in target.code.targets.filter(
            kind=LiveCodeTarget.Kind.STAFF, enabled=True).exclude(pk=target.pk)]
        _check_duty(target.code, [*others, new])
    for key, value in fields.items():
        setattr(target, key, value)
    target.save()
    _forget(target.code)
    if target.kind == LiveCodeTarget.Kind.WECOM_GROUP and {"enabled", "position", "cap"} & set(fields):
        code_id = target.code_id
        transaction.on_commit(lambda: _enqueue_join_refresh(code_id))
    return target


def targets_reorder(*, code: LiveCode, ordered_ids: list[int]) -> None:
    with transaction.atomic():
        for position, target_id in enumerate(ordered_ids, start=1):
            LiveCodeTarget.objects.filter(code=code, pk=target_id).update(position=position)
    _forget(code)
    transaction.on_commit(lambda: _enqueue_join_refresh(code.pk))


def target_add_group(*, code: LiveCode, chat: GroupChat, option: LiveCodeOption | None = None,
                     cap: int | None = None, region: str = "", refresh: bool = True) -> LiveCodeTarget:
    if code.kind == LiveCode.Kind.STAFF:
        raise ApplicationError(_("Groups belong in group codes."))
    _check_pool(code)
    _check_option(code, option)
    if code.targets.filter(chat=chat).exists():
        raise ApplicationError(_("This group is already in the pool."))
    target = LiveCodeTarget.objects.create(code=code, option=option, kind=LiveCodeTarget.Kind.WECOM_GROUP,
                                           chat=chat, cap=cap, region=region, position=_next_position(code))
    if refresh:
        join_window_refresh(code=code)
    _forget(code)
    return target


# --- uploaded group QR images ---------------------------------------------------------------------------------------
def _check_same_qr(code: LiveCode, checked: CheckedImage, exclude: int | None = None) -> None:
    qs = code.targets.filter(kind=LiveCodeTarget.Kind.IMAGE, qr_text=checked.qr_text)
    if exclude:
        qs = qs.exclude(pk=exclude)
    if qs.exists():
        raise ApplicationError(_("This group QR is already in the pool (%(label)s).") % {"label": qs.first()})


def target_add_image(*, code: LiveCode, content: bytes, label: str = "", option: LiveCodeOption | None = None,
                     expires_at: datetime | None = None, cap: int | None = None, region: str = "",
                     at: datetime | None = None) -> LiveCodeTarget:
    if code.kind == LiveCode.Kind.STAFF:
        raise ApplicationError(_("Groups belong in group codes."))
    _check_pool(code)
    _check_option(code, option)
    checked = image_check(content)
    _check_same_qr(code, checked)
    at = at or now()
    target = LiveCodeTarget.objects.create(
        code=code, option=option, kind=LiveCodeTarget.Kind.IMAGE, label=label, image=content,
        image_type=checked.content_type, image_sha=checked.sha, qr_text=checked.qr_text, region=region,
        expires_at=expires_at or at + timedelta(days=IMAGE_QR_DEFAULT_DAYS), cap=cap or IMAGE_QR_DEFAULT_CAP,
        position=_next_position(code),
    )
    _forget(code)
    return target


def target_replace_image(*, target: LiveCodeTarget, content: bytes, expires_at: datetime | None = None,
                         at: datetime | None = None) -> LiveCodeTarget:
    """A fresh QR for the same group (the old one expired): same member, same permanent code, counters reset."""
    if target.kind != LiveCodeTarget.Kind.IMAGE:
        raise ApplicationError(_("Only uploaded group QR images can be replaced."))
    checked = image_check(content)
    _check_same_qr(target.code, checked, exclude=target.pk)
    at = at or now()
    target.image, target.image_type, target.image_sha = content, checked.content_type, checked.sha
    target.qr_text = checked.qr_text
    target.expires_at = expires_at or at + timedelta(days=IMAGE_QR_DEFAULT_DAYS)
    target.scans = 0
    target.enabled = True
    target.save()
    hotpath.get_redis().hdel(hotpath.key_routed(target.code_id), target.pk)
    Alert.objects.filter(target=target, resolved_at__isnull=True,
                         kind__in=[Alert.Kind.EXPIRED, Alert.Kind.EXPIRING]).update(resolved_at=at)
    _forget(target.code)
    return target


# --- publishing to WeCom ---------------------------------------------------------------------------------------------
def target_state(target: LiveCodeTarget) -> str:
    return f"{target.code.state}-{target.pk}"


def contact_way_publish(*, target: LiveCodeTarget) -> bool:
    """Create or update the staff member's contact way. On refusal the last good config keeps serving."""
    code = target.code
    state = target_state(target)
    try:
        if target.contact_way_id:
            gateway.contact_way_update(config_id=target.contact_way_id, userids=[target.staff.userid], state=state,
                                       remark=code.name, skip_verify=code.skip_verify)
        else:
            way = gateway.contact_way_create(userids=[target.staff.userid], state=state, remark=code.name,
                                             skip_verify=code.skip_verify)
            target.contact_way_id, target.wecom_qr_url = way.config_id, way.qr_code
            target.save(update_fields=["contact_way_id", "wecom_qr_url", "updated_at"])
    except (WeComError, ValueError) as exc:
        _publish_failed(code, target, exc)
        return False
    _publish_ok(code)
    return True


def _publish_failed(code: LiveCode, target: LiveCodeTarget | None, exc: Exception) -> None:
    detail = getattr(exc, "message", "") or str(exc)
    code_no = getattr(exc, "code", None)
    message = _("WeCom refused the configuration (errcode %(code)s: %(detail)s); the code keeps serving its last "
                "good configuration.") % {"code": code_no, "detail": detail[:120]}
    logger.warning("live code %s publish failed: errcode=%s", code.pk, code_no)
    LiveCode.objects.filter(pk=code.pk).update(publish_error=message[:2000])
    code.publish_error = message
    alert_raise(code=code, target=None, kind=Alert.Kind.PUBLISH_FAILED, message=message)


def _publish_ok(code: LiveCode) -> None:
    LiveCode.objects.filter(pk=code.pk).update(publish_error="", published_at=now())
    alert_resolve(code=code, target=None, kind=Alert.Kind.PUBLISH_FAILED)
    _forget(code)


def livecode_publish(*, code_id: int) -> int:
    """(Re)publish every staff member's contact way and every join way window. Returns failures."""
    code = LiveCode.objects.get(pk=code_id)
    failures = 0
    for target in code.targets.filter(kind=LiveCodeTarget.Kind.STAFF).select_related("staff", "code"):
        failures += not contact_way_publish(target=target)
    if code.kind != LiveCode.Kind.STAFF:
        failures += not join_window_refresh(code=code)
    return failures


def _enqueue_publish(code_id: int) -> None:
    from livecodes.tasks import livecode_publish as task

    task.delay(code_id)


def _enqueue_join_refresh(code_id: int) -> None:
    from livecodes.tasks import join_window_refresh as task

    task.delay(code_id)


def _window(code: LiveCode, option_id: int | None) -> list[str]:
    """The next ≤5 groups that still take people, in pool order."""
    chats = []
    for t in (code.targets.filter(kind=LiveCodeTarget.Kind.WECOM_GROUP, option_id=option_id, enabled=True,
                                  chat__status=GroupChat.Status.ACTIVE)
              .select_related("chat").order_by("position", "id")):
        if t.joins < (t.cap or IMAGE_QR_DEFAULT_CAP):
            chats.append(t.chat.chat_id)
        if len(chats) == JOIN_WAY_SIZE:
            break
    return chats


def join_window_refresh(*, code: LiveCode) -> bool:
    """Slide each join way over the next groups that still take people (one way per choice)."""
    ok = True
    option_ids = [None] if code.kind == LiveCode.Kind.GROUP else list(code.options.values_list("pk", flat=True))
    for option_id in option_ids:
        chats = _window(code, option_id)
        way = JoinWay.objects.filter(code=code, option_id=option_id).first()
        if way is not None and way.chat_ids == chats:
            continue
        state = f"{code.state}-j{option_id or 0}"
        try:
            if not chats:
                if way is not None:  # keep the config: WeCom may still hold people in it; nothing to route to
                    way.chat_ids = []
                    way.save(update_fields=["chat_ids", "updated_at"])
                continue
            if way is None:
                created = gateway.join_way_create(chat_ids=chats, state=state, remark=code.name)
                qr = created.qr_code
                if not qr:
                    qr = gateway.join_way_get(config_id=created.config_id).get("qr_code", "")
                JoinWay.objects.create(code=code, option_id=option_id, config_id=created.config_id, qr_url=qr,
                                       chat_ids=chats, state=state)
            else:
                gateway.join_way_update(config_id=way.config_id, chat_ids=chats, state=state, remark=code.name)
                way.chat_ids = chats
                way.save(update_fields=["chat_ids", "updated_at"])
        except (WeComError, ValueError) as exc:
            _publish_failed(code, None, exc)
            ok = False
            continue
    if ok:
        _publish_ok(code)
    else:
        _forget(code)
    return ok


# --- attribution (from contacts.fanout via livecodes.events) ---------------------------------------------------------
def code_for_state(state: str) -> tuple[LiveCode | None, LiveCodeTarget | None]:
    if not state or "-" not in state:
        return None, None
    base, suffix = state.rsplit("-", 1)
    code = LiveCode.objects.filter(state=base).first()
    if code is None or not suffix.isdigit():
        return code, None
    return code, code.targets.filter(pk=int(suffix)).select_related("staff").first()


def add_attribute(*, event: ContactEvent, state: str, welcome_code: str) -> Conversion | None:
    """A customer added a staff member through one of our contact ways: count, tag, welcome."""
    code, target = code_for_state(state)
    if code is None or event.contact_id is None:
        return None
    conversion = Conversion.objects.create(code=code, target=target, contact_id=event.contact_id,
                                           kind=Conversion.Kind.ADD, occurred_at=event.occurred_at, event=event)
    if welcome_code:
        transaction.on_commit(lambda: welcome_send(conversion_id=conversion.pk, welcome_code=welcome_code))
    if code.auto_remark and target is not None and target.staff_id:
        transaction.on_commit(lambda: remark_apply(conversion_id=conversion.pk))
    if target is not None:
        day = hotpath.day_of(event.occurred_at.timestamp())
        redis = hotpath.get_redis()
        key = hotpath.key_adds(code.pk, day)
        pipe = redis.pipeline()
        pipe.hincrby(key, target.pk, 1)
        pipe.expire(key, hotpath.DAY_KEY_TTL)
        adds_today, _unused = pipe.execute()
        if target.daily_cap and adds_today >= target.daily_cap:
            alert_raise(code=code, target=target, kind=Alert.Kind.STAFF_CAP, message=_(
                "%(staff)s reached the daily cap of %(cap)s adds.") % {"staff": target, "cap": target.daily_cap})
    tag_ids = list(code.tags.values_list("pk", flat=True))
    if tag_ids:
        from tagging.services import tags_apply

        tags_apply(contact_ids=[event.contact_id], tag_ids=tag_ids, source="livecode", source_ref=str(code.pk))
    return conversion


def join_attribute(*, event: ContactEvent) -> list[Conversion]:
    """A customer joined a group that is in one or more pools: count the join, tag by choice, slide windows."""
    if event.chat_id is None or event.contact_id is None:
        return []
    out = []
    targets = (LiveCodeTarget.objects.filter(chat_id=event.chat_id, kind=LiveCodeTarget.Kind.WECOM_GROUP,
                                             code__status=LiveCode.Status.ACTIVE)
               .select_related("code", "option"))
    for target in targets:
        out.append(Conversion.objects.create(code=target.code, target=target, contact_id=event.contact_id,
                                             kind=Conversion.Kind.JOIN, occurred_at=event.occurred_at, event=event))
        LiveCodeTarget.objects.filter(pk=target.pk).update(joins=F("joins") + 1)
        joins = hotpath.get_redis().hincrby(hotpath.key_joins(target.code_id), target.pk, 1)
        if target.option is not None and target.option.tag_id:
            from tagging.services import tags_apply

            tags_apply(contact_ids=[event.contact_id], tag_ids=[target.option.tag_id], source="livecode",
                       source_ref=str(target.code_id))
        if joins >= (target.cap or IMAGE_QR_DEFAULT_CAP):
            code_id = target.code_id
            transaction.on_commit(lambda code_id=code_id: _enqueue_join_refresh(code_id))
    return out


def loss_record(*, event: ContactEvent) -> int:
    """A customer left a staff member or a group: the conversions it ends are marked lost."""
    if event.contact_id is None:
        return 0
    qs = Conversion.objects.filter(contact_id=event.contact_id, lost_at__isnull=True,
                                   occurred_at__lte=event.occurred_at)
    if event.kind == ContactEvent.Kind.LEFT_GROUP:
        qs = qs.filter(kind=Conversion.Kind.JOIN, target__chat_id=event.chat_id)
    else:
        qs = qs.filter(kind=Conversion.Kind.ADD, target__staff_id=event.staff_id)
    return qs.update(lost_at=event.occurred_at)


def welcome_content(*, code: LiveCode, contact: Contact, media_ids: Sequence[str] = (),
                    miniprograms: Sequence[dict] = (), has_media: bool = False) -> MessageContent | None:
    """The code's welcome message: its text, then its images (``media_ids``, already uploaded), its mini-programs
    (``miniprograms``: ``miniprogram`` bodies whose cover is already uploaded), typed-in links and the group
    invite. A code with no text, link, image or mini-program of its own uses the corp default text."""
    links = [a for a in code.welcome_attachments or [] if isinstance(a, dict) and a.get("msgtype") == "link"]
    text = code.welcome_text
    if not text and not links and not has_media:
        default = WelcomeDefault.objects.filter(corp_id=code.corp_id).first()
        text = default.text if default else ""
    attachments = [{"msgtype": "image", "image": {"media_id": media_id}} for media_id in media_ids]
    attachments += [{"msgtype": "miniprogram", "miniprogram": body} for body in miniprograms]
    attachments += links
    if code.welcome_group_code_id and code.welcome_group_code.is_active:
        group = code.welcome_group_code
        attachments.append({"msgtype": "link", "link": {
            "title": group.title or group.name, "desc": group.description[:100],
            "url": f"{settings.LIVECODE_PUBLIC_BASE_URL.rstrip('/')}/l/{group.slug}"}})
    if not text and not attachments:
        return None
    text = " ".join(text.replace("\u00a0", " ").split(" ")).strip().replace("%NICKNAME%", contact.name or "")
    return MessageContent(text=text[:1300], attachments=tuple(attachments[:WELCOME_ATTACHMENTS_MAX]))


def welcome_send(*, conversion_id: int, welcome_code: str) -> str:
    """Send the code's welcome message with the one-use WelcomeCode (valid 20 s): one attempt, no retry —
    a second try could only fail with 41051 or reach the customer twice.

    Welcome images and mini-program covers go as WeCom temporary media, uploaded now unless a cached media id has
    an hour left. An image (or a mini-program whose cover) that cannot be uploaded is left out: the text and the
    other attachments still go, the conversion records the failure and the code gets an alert (resolved by the
    next welcome whose uploads all succeed)."""
    conversion = Conversion.objects.select_related("code__welcome_group_code", "contact").get(pk=conversion_id)
    code = conversion.code
    images = list(code.welcome_images.all())
    programs = list(code.welcome_miniprograms.all())
    media_ids, cards, failures = [], [], []
    for image in images:
        try:
            media_ids.append(welcome_media_id(image=image))
        except (WeComError, ValueError) as exc:
            failures.append((image, exc))
    for program in programs:
        try:
            cards.append({"title": program.title, "pic_media_id": welcome_media_id(image=program),
                          "appid": program.appid, "page": program.page})
        except (WeComError, ValueError) as exc:
            failures.append((program, exc))
    content = welcome_content(code=code, contact=conversion.contact, media_ids=media_ids, miniprograms=cards,
                              has_media=bool(images or programs))
    if content is None or not (content.text or content.attachments):
        if not failures:
            return "none"
        Conversion.objects.filter(pk=conversion_id).update(welcome=Conversion.Welcome.FAILED,
                                                           welcome_error=_media_error(failures))
        _welcome_media_failed(code, failures)
        return "failed"
    try:
        gateway.welcome_message_send(welcome_code=welcome_code, content=content)
    except WeComError as exc:
        logger.warning("welcome message for conversion %s failed: errcode=%s", conversion_id, exc.code)
        Conversion.objects.filter(pk=conversion_id).update(welcome=Conversion.Welcome.FAILED,
                                                           welcome_error=f"{exc.code}: {exc.message}"[:255])
        if exc.code == INVALID_MEDIA_ID and (media_ids or cards):  # WeCom forgot our media early: upload afresh
            media_forget(WelcomeImage.objects.filter(code=code))
            media_forget(WelcomeMiniProgram.objects.filter(code=code))
        if failures:
            _welcome_media_failed(code, failures)
        return "failed"
    if failures:
        Conversion.objects.filter(pk=conversion_id).update(welcome=Conversion.Welcome.SENT,
                                                           welcome_error=_media_error(failures))
        _welcome_media_failed(code, failures)
        return "sent_without_media"
    Conversion.objects.filter(pk=conversion_id).update(welcome=Conversion.Welcome.SENT)
    if images or programs:
        alert_resolve(code=code, target=None, kind=Alert.Kind.WELCOME_MEDIA)
    return "sent"


# --- welcome images and mini-programs ------------------------------------------------------------------------------
# The temporary-media cache (upload, reuse until an hour is left, forget on 40007) is shared with journeys:
# scrm/media.py. A mini-program without a cover image (typed in before covers were uploaded): it cannot be sent.
MissingCover = MissingImage


def welcome_image_add(*, code: LiveCode, content: bytes, name: str = "") -> WelcomeImage:
    """Attach an image to the code's welcome message: PNG or JPEG, size and pixels checked before decoding."""
    checked = image_check(content, need_qr=False)
    if code.welcome_images.filter(image_sha=checked.sha).exists():
        raise ApplicationError(_("This image is already in the welcome message."))
    counts = _uploaded_counts(code)
    counts["images"] += 1
    _check_attachment_count(**counts, attachments=code.welcome_attachments,
                            group_code=bool(code.welcome_group_code_id))
    last = code.welcome_images.order_by("-position").values_list("position", flat=True).first()
    return WelcomeImage.objects.create(code=code, image=content, image_type=checked.content_type,
                                       image_sha=checked.sha, name=name[:100], position=(last or 0) + 1)


def welcome_image_remove(*, code: LiveCode, image_ids: Sequence[int]) -> int:
    deleted, _per_model = WelcomeImage.objects.filter(code=code, pk__in=list(image_ids)).delete()
    return deleted


def _check_cover(cover: bytes | None) -> CheckedImage:
    if not cover:
        raise ApplicationError(_("Upload the mini-program's cover image (PNG or JPEG)."))
    return image_check(cover, need_qr=False)


def welcome_miniprogram_add(*, code: LiveCode, title: str, appid: str, page: str, cover: bytes | None,
                            name: str = "") -> WelcomeMiniProgram:
    """Add a mini-program card to the code's welcome message, with the cover image the operator uploaded (PNG or
    JPEG, size and pixels checked before decoding). The cover goes to WeCom when a welcome is sent."""
    title, appid, page = (title or "").strip(), (appid or "").strip(), (page or "").strip()
    errors = miniprogram_errors(title=title, appid=appid, page=page)
    if errors:
        raise ApplicationError(" ".join(errors.values()))
    checked = _check_cover(cover)
    if code.welcome_miniprograms.filter(appid=appid, page=page).exists():
        raise ApplicationError(_("This mini-program page is already in the welcome message."))
    counts = _uploaded_counts(code)
    counts["miniprograms"] += 1
    _check_attachment_count(**counts, attachments=code.welcome_attachments,
                            group_code=bool(code.welcome_group_code_id))
    last = code.welcome_miniprograms.order_by("-position").values_list("position", flat=True).first()
    return WelcomeMiniProgram.objects.create(
        code=code, title=title, appid=appid, page=page, image=cover, image_type=checked.content_type,
        image_sha=checked.sha, name=name[:100], position=(last or 0) + 1)


def welcome_miniprogram_set_cover(*, code: LiveCode, miniprogram_id: int, cover: bytes | None,
                                  name: str = "") -> WelcomeMiniProgram:
    """A new cover for one of the code's mini-programs (the media id of the old one is forgotten)."""
    program = code.welcome_miniprograms.filter(pk=miniprogram_id).first()
    if program is None:
        raise ApplicationError(_("That mini-program belongs to another code."))
    checked = _check_cover(cover)
    program.image, program.image_type, program.image_sha = cover, checked.content_type, checked.sha
    program.name, program.media_id, program.media_expires_at = name[:100], "", None
    program.save()
    return program


def welcome_miniprogram_remove(*, code: LiveCode, miniprogram_ids: Sequence[int]) -> int:
    deleted, _per_model = WelcomeMiniProgram.objects.filter(code=code, pk__in=list(miniprogram_ids)).delete()
    return deleted


def welcome_media_id(*, image: WelcomeImage | WelcomeMiniProgram) -> str:
    """The WeCom media id of a welcome image or of a mini-program's cover: the cached one while more than an hour
    of it is left, else a fresh upload (valid 3 days from now). Raises ``WeComError`` when WeCom refuses the
    upload, ``MissingCover`` for a mini-program that has no cover."""
    prefix = "cover" if isinstance(image, WelcomeMiniProgram) else "welcome"
    return cached_media_id(image, name=f"{prefix}-{image.pk}")


def _media_problem(item: WelcomeImage | WelcomeMiniProgram, exc: Exception) -> str:
    """What went wrong with one upload, for the conversion and the owner's alert."""
    if isinstance(exc, MissingCover):
        return _("the mini-program “%(title)s” has no cover image: upload one on the code's edit page") % {
            "title": item}
    error = f"{getattr(exc, 'code', None)}: {(getattr(exc, 'message', '') or str(exc))[:100]}"
    if isinstance(item, WelcomeMiniProgram):
        return _("the cover of the mini-program “%(title)s” was not uploaded (errcode %(error)s)") % {
            "title": item, "error": error}
    return _("welcome image not uploaded (errcode %(error)s)") % {"error": error}


def _media_error(failures: list[tuple]) -> str:
    return "; ".join(_media_problem(item, exc) for item, exc in failures)[:255]


def _welcome_media_failed(code: LiveCode, failures: list[tuple]) -> None:
    for item, exc in failures:
        logger.warning("live code %s: welcome %s %s not uploaded: errcode=%s", code.pk, type(item).__name__,
                       item.pk, getattr(exc, "code", None))
    alert_raise(code=code, target=None, kind=Alert.Kind.WELCOME_MEDIA, message=_(
        "Welcome messages go out without %(n)s attachment(s): %(problems)s.") % {
        "n": len(failures), "problems": _media_error(failures)})


def remark_apply(*, conversion_id: int) -> bool:
    """The code's auto remark on the new customer (after the welcome message, which cannot wait)."""
    conversion = Conversion.objects.select_related("code", "target__staff", "contact").get(pk=conversion_id)
    try:
        gateway.external_contact_remark(userid=conversion.target.staff.userid,
                                        external_userid=conversion.contact.external_userid,
                                        remark=conversion.code.auto_remark[:20])
    except WeComError as exc:
        logger.warning("auto remark for conversion %s failed: errcode=%s", conversion_id, exc.code)
        return False
    return True


# --- scan log ---------------------------------------------------------------------------------------------------------
_UPSERT = """
INSERT INTO livecodes_dailystat (code_id, target_id, day, scans, visitors)
VALUES {values}
ON CONFLICT (code_id, target_id, day) DO UPDATE
SET scans = livecodes_dailystat.scans + EXCLUDED.scans,
    visitors = GREATEST(livecodes_dailystat.visitors, EXCLUDED.visitors)
"""


def scans_flush(*, batch: int = 5000, max_batches: int = 20) -> int:
    """Move logged scans from Redis into ScanEvent rows and daily figures, a batch at a time.

    One flusher at a time (a Redis lock); a batch is trimmed from the log only after its rows committed.
    """
    from livecodes.models import ScanEvent

    hotpath.flush_buffers()  # this process's own buffered scans (web processes flush theirs every interval)
    redis = hotpath.get_redis()
    lock = redis.lock(f"{hotpath.prefix()}:flush_lock", timeout=120, blocking=False)
    if not lock.acquire():
        return 0
    done = 0
    try:
        known = set(LiveCode.objects.values_list("pk", flat=True))
        for _unused in range(max_batches):
            raw = redis.lrange(hotpath.key_log(), 0, batch - 1)
            if not raw:
                break
            events, per = [], {}
            for item in raw:
                try:
                    code_id, visitor, ts, outcome, target_id = item.decode().split("|")
                    code_id, target_id, ts = int(code_id), int(target_id) or None, int(ts)
                except ValueError:
                    continue
                if code_id not in known:
                    continue
                at = datetime.fromtimestamp(ts, tz=timezone.get_current_timezone())
                events.append(ScanEvent(code_id=code_id, target_id=target_id, visitor=visitor[:32],
                                        scanned_at=at, outcome=outcome[:16]))
                day = at.date()
                for key in ((code_id, None, day), (code_id, target_id, day)) if target_id else ((code_id, None, day),):
                    per[key] = per.get(key, 0) + 1
            with transaction.atomic():
                ScanEvent.objects.bulk_create(events, batch_size=2000)
                _stats_upsert(redis, per)
                routed = {}
                for (_c, target_id, _d), n in per.items():
                    if target_id:
                        routed[target_id] = routed.get(target_id, 0) + n
                for target_id, n in routed.items():
                    LiveCodeTarget.objects.filter(pk=target_id).update(scans=F("scans") + n)
            redis.ltrim(hotpath.key_log(), len(raw), -1)
            done += len(raw)
            if len(raw) < batch:
                break
    finally:
        lock.release()
    return done


def _stats_upsert(redis, per: dict) -> None:
    if not per:
        return
    pipe = redis.pipeline(transaction=False)
    keys = list(per)
    for code_id, target_id, day in keys:
        stamp = day.strftime("%Y%m%d")
        key = hotpath.key_uv_target(code_id, stamp) + str(target_id) if target_id else hotpath.key_uv(code_id, stamp)
        pipe.pfcount(key)
        pipe.expire(key, hotpath.DAY_KEY_TTL)  # the scan itself never sets expiries
    visitors = pipe.execute()[::2]
    values, params = [], []
    for (code_id, target_id, day), uv in zip(keys, visitors, strict=True):
        values.append("(%s, %s, %s, %s, %s)")
        params += [code_id, target_id, day, per[(code_id, target_id, day)], uv]
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT.format(values=", ".join(values)), params)


# --- alerts -------------------------------------------------------------------------------------------------------------
def alert_raise(*, code: LiveCode, target: LiveCodeTarget | None, kind: str, message: str) -> Alert | None:
    """Open an alert unless the same one is already open; a new one is sent to the owner on commit."""
    with transaction.atomic():
        alert, created = Alert.objects.get_or_create(
            code=code, target=target, kind=kind, resolved_at=None, defaults={"message": message[:255]})
    if not created:
        if alert.message != message[:255]:
            Alert.objects.filter(pk=alert.pk).update(message=message[:255])
        return None
    transaction.on_commit(lambda: _enqueue_notify(alert.pk))
    return alert


def alert_resolve(*, code: LiveCode, target: LiveCodeTarget | None, kind: str) -> int:
    return Alert.objects.filter(code=code, target=target, kind=kind, resolved_at__isnull=True).update(
        resolved_at=now())


def _enqueue_notify(alert_id: int) -> None:
    from livecodes.tasks import alert_notify

    alert_notify.delay(alert_id)


def alert_notify(*, alert_id: int) -> str:
    """Send an alert to the code's owner as a WeCom app message (owners without a staff link get none)."""
    alert = Alert.objects.select_related("code__owner__staff").filter(pk=alert_id).first()
    if alert is None or alert.notified_at or alert.resolved_at:
        return "skipped"
    owner = alert.code.owner
    staff = getattr(owner, "staff", None) if owner else None
    if staff is None:
        return "no-owner"
    url = f"{settings.LIVECODE_PUBLIC_BASE_URL.rstrip('/')}/livecodes/{alert.code_id}/"
    gateway.app_message_send(userids=[staff.userid],
                             content=MessageContent(text=f"【活码】{alert.code.name}：{alert.message}\n{url}"))
    Alert.objects.filter(pk=alert_id).update(notified_at=now())
    return "sent"


def alerts_check(*, at: datetime | None = None) -> int:
    """The sweeper: expiring/expired QR images, low capacity, fill forecast, exhausted pools."""
    at = at or now()
    raised = 0
    exhausted = {int(x) for x in hotpath.get_redis().spop(hotpath.key_exhausted(), 1000) or []}
    for code in LiveCode.objects.filter(status=LiveCode.Status.ACTIVE):
        raised += _check_code(code, at, exhausted)
    return raised


def _check_code(code: LiveCode, at: datetime, exhausted: set[int]) -> int:
    from livecodes.selectors import members_of

    raised = 0
    local = timezone.localtime(at)
    for target in code.targets.filter(kind=LiveCodeTarget.Kind.IMAGE, enabled=True, expires_at__isnull=False):
        if target.expires_at <= at:
            raised += bool(alert_raise(code=code, target=target, kind=Alert.Kind.EXPIRED,
                                       message=_("The group QR “%(t)s” has expired: upload a new one.") % {"t": target}))
            alert_resolve(code=code, target=target, kind=Alert.Kind.EXPIRING)
        elif target.expires_at <= at + timedelta(hours=24):
            raised += bool(alert_raise(code=code, target=target, kind=Alert.Kind.EXPIRING, message=_(
                "The group QR “%(t)s” expires at %(when)s.") % {
                    "t": target, "when": timezone.localtime(target.expires_at).strftime("%m-%d %H:%M")}))
    if code.kind == LiveCode.Kind.STAFF:
        if code.pk in exhausted:
            raised += bool(alert_raise(code=code, target=None, kind=Alert.Kind.EXHAUSTED, message=_(
                "Nobody was available: every staff member was capped or off duty.")))
        return raised
    members = members_of(code=code)
    counts = hotpath.counts_get(code_id=code.pk, day=local.strftime("%Y%m%d"))
    left = routing.capacity_left(members, counts, at=local)
    if code.pk in exhausted or left == 0:
        raised += bool(alert_raise(code=code, target=None, kind=Alert.Kind.EXHAUSTED, message=_(
            "Every group is full, expired or disabled: scanners see the fallback.")))
    else:
        alert_resolve(code=code, target=None, kind=Alert.Kind.EXHAUSTED)
    if left is not None and 0 < left < code.low_capacity:
        raised += bool(alert_raise(code=code, target=None, kind=Alert.Kind.LOW_CAPACITY, message=_(
            "Only %(n)s places left in the pool.") % {"n": left}))
    elif left is None or left >= code.low_capacity:
        alert_resolve(code=code, target=None, kind=Alert.Kind.LOW_CAPACITY)
    if left:
        recent = _rate_per_hour(code, at)
        full_at = routing.forecast_full_at(capacity=left, rate_per_hour=recent, now_ts=at.timestamp())
        if full_at is not None and full_at - at.timestamp() < 24 * 3600:
            when = timezone.localtime(datetime.fromtimestamp(full_at, tz=at.tzinfo)).strftime("%m-%d %H:%M")
            raised += bool(alert_raise(code=code, target=None, kind=Alert.Kind.FORECAST, message=_(
                "At the current rate this pool is full at %(when)s.") % {"when": when}))
        else:
            alert_resolve(code=code, target=None, kind=Alert.Kind.FORECAST)
    return raised


def _rate_per_hour(code: LiveCode, at: datetime) -> float:
    """Joins (WeCom groups) plus routed scans (images) over the last hour."""
    from livecodes.models import ScanEvent

    since = at - timedelta(hours=1)
    joins = Conversion.objects.filter(code=code, kind=Conversion.Kind.JOIN, occurred_at__gte=since).count()
    scans = ScanEvent.objects.filter(code=code, scanned_at__gte=since,
                                     target__kind=LiveCodeTarget.Kind.IMAGE).exclude(outcome="sticky").count()
    return float(joins + scans)


@dataclass(frozen=True)
class LandingIdentity:
    """Who an official account says opened the landing page: ``person`` (a pseudonym of the openid; "" when the
    code was refused) and the pool entities they already belong to (known only when WeChat gave a unionid that
    matches a contact)."""

    person: str = ""
    known: frozenset[str] = frozenset()
    contact: str = ""  # hotpath.contact_key of the customer, when one was recognised


def _identified(external_userid: str) -> LandingIdentity:
    """A recognised customer: what they belong to now, remembered under their pseudonym so that a later group or
    staff change of theirs corrects what their cookie says (``known_refresh``)."""
    from livecodes.selectors import known_entities

    known = known_entities(external_userid=external_userid)
    contact = hotpath.contact_key(external_userid)
    hotpath.known_remember(contact=contact, known=known, at_ms=int(now().timestamp() * 1000))
    return LandingIdentity(known=known, contact=contact)


def known_refresh(*, external_userids: Sequence[str]) -> int:
    """These customers joined or left a group, or a staff relation ended: the entities kept for the ones who were
    identified on a landing page are replaced by what they belong to now, so nobody who left a group is shown
    "you are already in …" from an old cookie. Returns how many identified customers were updated."""
    from livecodes.selectors import known_entities

    ids = [e for e in dict.fromkeys(external_userids) if e]
    if not ids:
        return 0
    redis = hotpath.get_redis()
    pipe = redis.pipeline(transaction=False)
    for external_userid in ids:
        pipe.exists(hotpath.key_known(hotpath.contact_key(external_userid)))
    identified = [e for e, found in zip(ids, pipe.execute(), strict=True) if found]
    updates = {hotpath.contact_key(e): known_entities(external_userid=e) for e in identified}
    return hotpath.known_update(updates=updates, at_ms=int(now().timestamp() * 1000))


def known_refresh_on_commit(*, contact_ids: Sequence[int | None] = ()) -> None:
    """A group or staff change of these contacts is being recorded: once it commits, ``known_refresh`` them."""
    ids = [c for c in contact_ids if c]
    if ids:
        # robust: the change itself is committed; a Redis error here is logged and leaves the copy stale (cookies
        # keep what they had) instead of failing the callback or stopping a full sync halfway
        transaction.on_commit(lambda: known_refresh(external_userids=list(
            Contact.objects.filter(pk__in=ids).values_list("external_userid", flat=True))), robust=True)


def landing_identify_oa(*, code: str) -> LandingIdentity:
    """Resolve an official-account OAuth ``code`` (API.md §8). Once per visitor and cookie, never per scan."""
    try:
        identity = gateway.oa_identity_get(code=code)
    except (WeComError, ValueError) as exc:
        logger.info("livecodes: official-account OAuth code not resolved: %s", exc)
        return LandingIdentity()
    person = hotpath.person_key(identity.openid)
    if identity.unionid:
        external_userid = Contact.objects.filter(unionid=identity.unionid).values_list("external_userid",
                                                                                      flat=True).first()
        if external_userid:
            found = _identified(external_userid)
            return LandingIdentity(person=person, known=found.known, contact=found.contact)
    return LandingIdentity(person=person)


def landing_identify(*, code: str) -> LandingIdentity:
    """The pool entities of the person behind a WeCom OAuth ``code`` (API.md §8): empty for a member, a
    non-customer or when WeCom refuses the code. Once per visitor (their cookie remembers), never per scan."""
    try:
        identity = gateway.oauth_user_get(code=code)
    except (WeComError, ValueError) as exc:
        logger.info("livecodes: WeCom OAuth code not resolved: %s", exc)
        return LandingIdentity()
    if not identity.external_userid:
        return LandingIdentity()
    return _identified(identity.external_userid)
