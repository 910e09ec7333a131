"""Template filters that put WeCom's codes into words (see web/labels.py)."""

from django import template

from web import labels

register = template.Library()

register.filter("add_way", labels.add_way_label)
register.filter("member_join_scene", labels.member_join_scene_label)
register.filter("event_join_scene", labels.event_join_scene_label)
register.filter("quit_scene", labels.quit_scene_label)
register.filter("delete_source", labels.delete_source_label)
register.filter("group_change", labels.group_change_label)
