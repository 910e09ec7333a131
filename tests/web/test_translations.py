"""The Chinese catalog translates every UI string, and the committed .mo is compiled from the committed .po."""

import ast
import gettext
import re

import pytest
from django.conf import settings

ZH = settings.BASE_DIR / "locale" / "zh_Hans" / "LC_MESSAGES"


def po_entries(path) -> list[dict]:
    """(msgctxt, msgid, msgid_plural, msgstr…) of each entry; enough of the PO format for our own files."""
    entries, entry, key = [], {}, None
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            if entry:
                entries.append(entry)
            entry, key = {}, None
        elif line.startswith("#"):
            continue
        elif match := re.match(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?) (".*")$', line):
            key = match.group(1)
            entry[key] = ast.literal_eval(match.group(2))
        elif line.startswith('"') and key:
            entry[key] += ast.literal_eval(line)
    return [e for e in entries if e.get("msgid")]  # the header has an empty msgid


def test_every_string_has_a_chinese_translation():
    entries = po_entries(ZH / "django.po")
    assert len(entries) > 200
    untranslated = [e["msgid"] for e in entries if not any(v for k, v in e.items() if k.startswith("msgstr"))]
    assert untranslated == []


def test_the_compiled_catalog_matches_the_po_file():
    with (ZH / "django.mo").open("rb") as mo:
        catalog = gettext.GNUTranslations(mo)
    stale = []
    for entry in po_entries(ZH / "django.po"):
        context = entry.get("msgctxt")
        if "msgid_plural" in entry:
            got = (catalog.npgettext(context, entry["msgid"], entry["msgid_plural"], 1) if context
                   else catalog.ngettext(entry["msgid"], entry["msgid_plural"], 1))
            want = entry["msgstr[0]"]
        else:
            got = catalog.pgettext(context, entry["msgid"]) if context else catalog.gettext(entry["msgid"])
            want = entry["msgstr"]
        if got != want:
            stale.append(entry["msgid"])
    assert stale == [], "run: manage.py compilemessages --ignore=.venv"


@pytest.mark.django_db
def test_chinese_is_the_default_even_for_an_english_browser(client):
    response = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert 'lang="zh-hans"' in response.content.decode()


@pytest.mark.django_db
def test_an_explicit_choice_of_english_wins(client):
    client.cookies["django_language"] = "en"
    response = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert 'lang="en"' in response.content.decode()
