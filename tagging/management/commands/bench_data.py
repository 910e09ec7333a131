"""Fast benchmark data: contacts, staff, follow relations, tags, tag assignments and the tag index, all in SQL.

    manage.py bench_data --contacts 1000000 --tag-links 10000000

Tag popularity is skewed (a few tags on many contacts, a long tail), like real tag use. Refuses to run on a
database that already holds contacts unless --force.
"""

import math
import random
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from contacts.models import Contact
from tagging.models import ContactTag
from tagging.services import tag_index_rebuild


class Command(BaseCommand):
    help = "Generate benchmark data set-based in SQL (contacts, relations, tags, tag assignments, tag index)."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=10_000)
        parser.add_argument("--tag-links", type=int, default=100_000)
        parser.add_argument("--tags", type=int, default=200)
        parser.add_argument("--staff", type=int, default=200)
        parser.add_argument("--corp", default="wwBENCHCORP000001")
        parser.add_argument("--force", action="store_true")

    def handle(self, *args, contacts, tag_links, tags, staff, corp, force, **options):
        if Contact.objects.exists() and not force:
            raise CommandError("the database already has contacts; use --force to add more")
        started = time.monotonic()
        with transaction.atomic(), connection.cursor() as cur:
            # Bench data only: skip the per-row foreign-key and trigger work (the ids are made consistent
            # here by construction); checking 12M deferred FK rows at COMMIT would double the time.
            cur.execute("SET LOCAL session_replication_role = replica")
            cur.execute("INSERT INTO contacts_corp (corp_id, name, created_at, updated_at) VALUES (%s, 'bench', now(), "
                        "now()) ON CONFLICT (corp_id) DO UPDATE SET name = EXCLUDED.name RETURNING id", [corp])
            corp_id = cur.fetchone()[0]
            cur.execute("INSERT INTO contacts_staff (corp_id, userid, name, status, customer_contact_enabled, "
                        "created_at, updated_at) SELECT %s, 'bstaff' || g, '员工' || g, 'active', true, now(), now() "
                        "FROM generate_series(1, %s) g ON CONFLICT DO NOTHING", [corp_id, staff])
            cur.execute("SELECT min(id), max(id) FROM contacts_staff WHERE corp_id = %s", [corp_id])
            staff_min, staff_max = cur.fetchone()
            cur.execute("SELECT coalesce(max(id), 0) FROM contacts_contact")
            base = cur.fetchone()[0]
            cur.execute(
                "INSERT INTO contacts_contact (corp_id, external_userid, name, avatar, type, gender, unionid, position, "
                "corp_name, corp_full_name, active_relations, created_at, updated_at) "
                "SELECT %s, 'wmBench' || lpad((g + %s)::text, 25, '0'), '客户' || g, '', 1, g %% 3, '', '', '', '', "
                "1, now(), now() FROM generate_series(1, %s) g", [corp_id, base, contacts])
            cur.execute(
                "INSERT INTO contacts_followrelation (contact_id, staff_id, remark, description, remark_corp_name, "
                "remark_mobiles, add_way, oper_userid, state, wecom_tags, added_at, delete_source, is_active, "
                "status_changed_at, created_at, updated_at) "
                "SELECT c.id, %s + (c.id %% (%s - %s + 1)), '', '', '', '[]', 1, '', "
                "CASE WHEN c.id %% 7 = 0 THEN 'poster' ELSE '' END, '[]', now(), '', true, now(), now(), now() "
                "FROM contacts_contact c WHERE c.id > %s", [staff_min, staff_max, staff_min, base])
            cur.execute("INSERT INTO tagging_taggroup (corp_id, dimension, name, \"order\", wecom_group_id, created_at, "
                        "updated_at) SELECT %s, d, 'bench-' || d, 0, '', now(), now() FROM unnest(ARRAY['source', "
                        "'basic', 'behaviour', 'business', 'predictive']) d ON CONFLICT DO NOTHING RETURNING id",
                        [corp_id])
            group_ids = [r[0] for r in cur.fetchall()]
            cur.execute("INSERT INTO tagging_tag (group_id, name, color, \"order\", wecom_tag_id, sync_to_wecom, "
                        "sync_status, sync_error, created_at, updated_at) SELECT (%s::bigint[])[1 + g %% %s], "
                        "'bench-tag-' || g, '#2f6fde', g, '', false, 'local', '', now(), now() "
                        "FROM generate_series(1, %s) g RETURNING id", [group_ids, len(group_ids), tags])
            tag_ids = sorted(r[0] for r in cur.fetchall())
            # Exactly --tag-links distinct assignments with skewed popularity: tag i gets n_i contacts (shares
            # from a cube-root curve, the first tags on a large part of everyone, capped at 60 %), its contacts
            # being the images of 0..n_i-1 under k ↦ (k·m_i + o_i) mod N, a permutation when gcd(m_i, N) = 1 —
            # so no pair repeats and nothing is lost to ON CONFLICT.
            cur.execute("SELECT min(id), max(id), count(*) FROM contacts_contact WHERE id > %s", [base])
            first, last, count = cur.fetchone()
            if count != contacts or last - first + 1 != count:
                raise CommandError("new contact ids are not contiguous; run on a fresh database")
            sizes = _tag_sizes(len(tag_ids), tag_links, contacts)
            rng = random.Random(20261123)
            mults = [_coprime(contacts, rng) for _ in tag_ids]
            offsets = [rng.randrange(max(contacts, 1)) for _ in tag_ids]
            rebuild = _drop_secondary_indexes(cur) if not ContactTag.objects.exists() else []
            cur.execute(
                "INSERT INTO tagging_contacttag (contact_id, tag_id, source, source_ref, created_at) "
                "SELECT %s + ((g::bigint * t.m + t.o) %% %s), t.tag, 'import', 'bench', now() "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) AS t(tag, n, m, o), "
                "generate_series(0, t.n - 1) g", [first, contacts, tag_ids, sizes, mults, offsets])
            for statement in rebuild:  # building an index once is far cheaper than 10M random insertions
                cur.execute(statement)
            # the relation trigger was off: move every staff scope version by hand
            cur.execute("INSERT INTO tagging_staffscopeversion (staff_id, version) SELECT id, "
                        "nextval('tagging_bitmap_version_seq') FROM contacts_staff WHERE corp_id = %s "
                        "ON CONFLICT (staff_id) DO UPDATE SET version = EXCLUDED.version", [corp_id])
        tag_index_rebuild()
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
            cur.execute("SELECT count(*) FROM tagging_contacttag")
            links = cur.fetchone()[0]
        self.stdout.write(f"bench data: {contacts} contacts, {links} tag links, {len(tag_ids)} tags, {staff} staff "
                          f"in {time.monotonic() - started:.1f} s")


def _tag_sizes(tags: int, links: int, contacts: int, cap: float = 0.6) -> list[int]:
    """How many contacts carry each tag: cube-root-curve shares of ``links``, none above ``cap`` of everyone;
    what a capped tag cannot take goes to the others (water-filling). Sums to ``links`` when it fits."""
    limit = max(1, int(contacts * cap))
    links = min(links, tags * limit)
    weights = [((i + 1) / tags) ** (1 / 3) - (i / tags) ** (1 / 3) for i in range(tags)]
    sizes = [0] * tags
    open_ = list(range(tags))
    left = links
    while left > 0 and open_:
        total = sum(weights[i] for i in open_)
        share = {i: weights[i] / total * left for i in open_}
        nxt = []
        for i in open_:
            take = min(limit - sizes[i], int(share[i]))
            sizes[i] += take
            left -= take
            if sizes[i] < limit:
                nxt.append(i)
        if nxt == open_ and all(int(share[i]) == 0 for i in open_):
            for i in open_[:left]:  # the rounding remainder, one each
                sizes[i] += 1
            left = 0
        open_ = nxt
    return sizes


def _coprime(n: int, rng: random.Random) -> int:
    while True:
        m = rng.randrange(1, max(n, 2))
        if math.gcd(m, max(n, 1)) == 1:
            return m


def _drop_secondary_indexes(cur) -> list[str]:
    """Drop the join table's unique constraint and secondary indexes (it is empty); return the statements
    that put them back."""
    cur.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'tagging_contacttag'::regclass AND contype = 'u'")
    constraints = cur.fetchall()
    cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tagging_contacttag' "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint "
                "WHERE conrelid = 'tagging_contacttag'::regclass)")
    indexes = cur.fetchall()
    restore = []
    for name, definition in constraints:
        cur.execute(f'ALTER TABLE tagging_contacttag DROP CONSTRAINT "{name}"')
        restore.append(f'ALTER TABLE tagging_contacttag ADD CONSTRAINT "{name}" {definition}')
    for name, definition in indexes:
        cur.execute(f'DROP INDEX "{name}"')
        restore.append(definition)
    return restore
