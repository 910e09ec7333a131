"""WeCom's numeric codes, in words. Codes and meanings are from shared/wecom/API.md."""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# externalcontact/get follow_user.add_way
ADD_WAYS = {
    0: _("Unknown source"),
    1: _("Scanned a QR code"),
    2: _("Searched a phone number"),
    3: _("Shared business card"),
    4: _("From a group chat"),
    5: _("Phone contacts"),
    6: _("WeChat contacts"),
    7: _("WeChat friend request"),
    8: _("Third-party service staff"),
    9: _("Searched an email address"),
    10: _("WeChat Channels"),
    11: _("Schedule"),
    12: _("Meeting"),
    13: _("WeChat friend's WeCom"),
    14: _("Smart hardware"),
    15: _("On-site service"),
    16: _("Customer acquisition link"),
    17: _("Custom development"),
    18: _("Requirement reply"),
    201: _("Shared by a colleague"),
    202: _("Assigned by an admin"),
}

# groupchat/get member_list.join_scene (what GroupMember.join_scene stores)
MEMBER_JOIN_SCENES = {
    1: _("Invited directly by a member"),
    2: _("Joined through an invite link"),
    3: _("Scanned the group QR code"),
}

# change_external_chat JoinScene (what a joined_group event's data holds): different codes from the above
EVENT_JOIN_SCENES = {
    0: _("Invited by a member"),
    3: _("Scanned the group QR code"),
}

# change_external_chat QuitScene (GroupMember.quit_scene and a left_group event's data)
QUIT_SCENES = {
    0: _("Left on their own"),
    1: _("Removed by the owner or an admin"),
}

# del_external_contact Source
DELETE_SOURCES = {
    "DELETE_BY_TRANSFER": _("Removed by a customer transfer"),
    "missing_on_sync": _("No longer listed by WeCom (found by a full sync)"),
}

# change_external_chat UpdateDetail (a group_changed event's data)
GROUP_CHANGES = {
    "change_owner": _("Owner changed"),
    "change_name": _("Name changed"),
    "change_notice": _("Notice changed"),
}


def _lookup(table: dict, code, unknown) -> str:
    if code is None or code == "":
        return ""
    return str(table.get(code, unknown))


def add_way_label(code: int | None) -> str:
    return _lookup(ADD_WAYS, code, pgettext_lazy("add way", "Other"))


def member_join_scene_label(code: int | None) -> str:
    return _lookup(MEMBER_JOIN_SCENES, code, pgettext_lazy("join scene", "Other"))


def event_join_scene_label(code: int | None) -> str:
    return _lookup(EVENT_JOIN_SCENES, code, pgettext_lazy("join scene", "Other"))


def quit_scene_label(code: int | None) -> str:
    return _lookup(QUIT_SCENES, code, pgettext_lazy("quit scene", "Other"))


def delete_source_label(source: str | None) -> str:
    return _lookup(DELETE_SOURCES, source, source or "")


def group_change_label(detail: str | None) -> str:
    return _lookup(GROUP_CHANGES, detail, detail or "")
