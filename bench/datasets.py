"""Synthetic corps for benchmarks: staff, live codes, contacts, relations (with losses), group members, a
ContactEvent log of every kind, orders, ContactFacts (with RFM scores) and live-code DailyStat rows.

Generated server-side with set-based ``INSERT … SELECT generate_series`` (faster than COPY from Python: no row
ever crosses the wire) and ``setseed`` for repeatable data; the analytics rollups are rebuilt at the end.
"""

import time

from django.db import connection

from contacts.models import Corp


def _run(cur, sql: str, params=None) -> None:
    cur.execute(sql, params or [])


def customers_dataset(corp: Corp, *, contacts: int, events: int, seed: int = 7, days: int = 400) -> dict:
    """Fill ``corp`` with ``contacts`` customers and about ``events`` ContactEvents over the last ``days`` days.

    Returns timings (seconds) of the generation and of the analytics rebuild.
    """
    from analytics.rollups import rollups_rebuild
    from contacts.business import contacts_rfm_score

    started = time.monotonic()
    n_staff = max(5, contacts // 20_000)
    n_codes = max(5, min(40, contacts // 25_000))
    n_chats = max(5, contacts // 5_000)
    with connection.cursor() as cur:
        _run(cur, "SELECT setseed(%s)", [((seed % 1000) / 1000.0)])
        _run(cur, "INSERT INTO contacts_staff (corp_id, userid, name, status, customer_contact_enabled, created_at, "
                  "updated_at) SELECT %s, 'bench_staff_' || i, '员工' || i, 'active', true, now(), now() "
                  "FROM generate_series(1, %s) i ON CONFLICT DO NOTHING", [corp.pk, n_staff])
        _run(cur, "INSERT INTO livecodes_livecode (corp_id, kind, name, slug, state, status, mode, title, description, "
                  "banner_type, skip_verify, auto_remark, welcome_text, welcome_attachments, low_capacity, qr_fg, qr_bg, "
                  "publish_error, created_at, updated_at) SELECT %s, 'staff', '渠道' || i, 'bench-' || %s || '-' || i, "
                  "'bench_' || %s || '_' || i, 'active', 'fill', '', '', '', true, '', '', '[]', 50, '#000000', "
                  "'#ffffff', '', now(), now() FROM generate_series(1, %s) i ON CONFLICT DO NOTHING",
             [corp.pk, corp.pk, corp.pk, n_codes])
        _run(cur, "INSERT INTO contacts_groupchat (corp_id, chat_id, name, owner_userid, notice, status, member_version, "
                  "member_count, created_at, updated_at) SELECT %s, 'wrbench' || %s || '_' || i, '群' || i, '', '', "
                  "'active', '', 0, now(), now() FROM generate_series(1, %s) i ON CONFLICT DO NOTHING",
             [corp.pk, corp.pk, n_chats])
        # contacts with their first add time (skewed toward recent days: growth)
        _run(cur, "CREATE TEMP TABLE bench_c AS SELECT i, "
                  "now() - make_interval(secs => (%s * 86400.0) * power(random(), 1.3)) AS added_at, random() AS r1, "
                  "random() AS r2, random() AS r3, random() AS r4 FROM generate_series(1, %s) i", [days, contacts])
        _run(cur, "INSERT INTO contacts_contact (corp_id, external_userid, name, avatar, type, gender, unionid, position, "
                  "corp_name, corp_full_name, active_relations, first_added_at, created_at, updated_at) "
                  "SELECT %s, 'wmbench' || %s || '_' || i, '客户' || i, '', 1, 0, '', '', '', '', 0, added_at, now(), now() "
                  "FROM bench_c ORDER BY i", [corp.pk, corp.pk])
        _run(cur, "CREATE TEMP TABLE bench_map AS SELECT b.*, c.id AS contact_id FROM bench_c b "
                  "JOIN contacts_contact c ON c.corp_id = %s AND c.external_userid = 'wmbench' || %s || '_' || b.i",
             [corp.pk, corp.pk])
        _run(cur, "CREATE TEMP TABLE bench_staff AS SELECT row_number() OVER (ORDER BY id) AS n, id "
                  "FROM contacts_staff WHERE corp_id = %s AND userid LIKE 'bench_staff_%%'", [corp.pk])
        _run(cur, "CREATE TEMP TABLE bench_codes AS SELECT row_number() OVER (ORDER BY id) AS n, state "
                  "FROM livecodes_livecode WHERE corp_id = %s AND state LIKE 'bench_%%'", [corp.pk])
        # relations: 70 % through a live code, 4 % referred by an earlier customer, the rest direct;
        # 12 % later deleted by the customer, 4 % by the staff member; 10 % also add a second staff member
        _run(cur, f"""
            INSERT INTO contacts_followrelation (contact_id, staff_id, remark, description, remark_corp_name,
                remark_mobiles, add_way, oper_userid, state, wecom_tags, added_at, deleted_by_customer_at,
                deleted_by_staff_at, delete_source, is_active, status_changed_at, created_at, updated_at)
            SELECT m.contact_id, s.id, '', '', '', '[]', 1, '',
                CASE WHEN m.r1 < 0.70 THEN (SELECT state FROM bench_codes WHERE n = 1 + (m.i %% {n_codes}))
                     WHEN m.r1 < 0.74 AND m.i > 10 THEN 'ref_' || (m.contact_id - 1 - (m.i %% 7))
                     ELSE '' END,
                '[]', m.added_at,
                CASE WHEN m.r2 < 0.12 THEN LEAST(now(), m.added_at + make_interval(days => (m.r3 * 60)::int)) END,
                CASE WHEN m.r2 >= 0.12 AND m.r2 < 0.16 THEN LEAST(now(), m.added_at + make_interval(days => (m.r3 * 60)::int)) END,
                '', m.r2 >= 0.16, m.added_at, now(), now()
            FROM bench_map m JOIN bench_staff s ON s.n = 1 + (m.i * 7 %% {n_staff})""")
        _run(cur, f"""
            INSERT INTO contacts_followrelation (contact_id, staff_id, remark, description, remark_corp_name,
                remark_mobiles, add_way, oper_userid, state, wecom_tags, added_at, delete_source, is_active,
                status_changed_at, created_at, updated_at)
            SELECT m.contact_id, s.id, '', '', '', '[]', 1, '', '', '[]',
                LEAST(now(), m.added_at + make_interval(days => (m.r4 * 30)::int)), '', true, m.added_at, now(), now()
            FROM bench_map m JOIN bench_staff s ON s.n = 1 + ((m.i * 7 + 1) %% {n_staff}) WHERE m.r4 < 0.10""")
        _run(cur, "UPDATE contacts_contact c SET active_relations = x.n FROM (SELECT contact_id, count(*) "
                  "FILTER (WHERE is_active) AS n FROM contacts_followrelation r JOIN bench_map m USING (contact_id) "
                  "GROUP BY contact_id) x WHERE x.contact_id = c.id AND x.n > 0")
        # group members: 30 % of customers join a group a few days after adding; a fifth of them leave
        _run(cur, f"""
            INSERT INTO contacts_groupmember (chat_id, member_id, member_type, contact_id, name, group_nickname,
                unionid, joined_at, invitor_userid, state, left_at, created_at, updated_at)
            SELECT g.id, 'wmbench' || {corp.pk} || '_' || m.i, 2, m.contact_id, '', '', '',
                LEAST(now(), m.added_at + make_interval(hours => (m.r3 * 240)::int)), '', '',
                CASE WHEN m.r4 < 0.06 THEN LEAST(now(), m.added_at + make_interval(days => 11 + (m.r2 * 40)::int)) END,
                now(), now()
            FROM bench_map m JOIN (SELECT row_number() OVER (ORDER BY id) AS n, id FROM contacts_groupchat
                                   WHERE corp_id = {corp.pk} AND chat_id LIKE 'wrbench%%') g
              ON g.n = 1 + (m.i %% {n_chats})
            WHERE m.r1 >= 0.35 AND m.r1 < 0.65 OR m.r4 < 0.06""")
        # orders: 25 % of customers buy 1–4 times after adding
        _run(cur, f"""
            INSERT INTO contacts_order (corp_id, contact_id, external_id, amount, items, paid_at, created_at, updated_at)
            SELECT {corp.pk}, m.contact_id, 'bench-' || m.i || '-' || k, round((20 + m.r2 * 480)::numeric, 2), '[]',
                LEAST(now(), m.added_at + make_interval(days => (k * k * 9 * m.r4 + k)::int)), now(), now()
            FROM bench_map m CROSS JOIN LATERAL generate_series(1, 1 + (m.r3 * 3.99)::int) k
            WHERE m.r2 < 0.25 ON CONFLICT DO NOTHING""")
        # the event log: adds, deletions, joins, leaves, orders … padded with "edited" events to ``events``
        _run(cur, "INSERT INTO contacts_contactevent (corp_id, contact_id, staff_id, kind, occurred_at, data, created_at) "
                  "SELECT %s, r.contact_id, r.staff_id, 'added', r.added_at, json_build_object('state', r.state), now() "
                  "FROM contacts_followrelation r JOIN bench_map m USING (contact_id)", [corp.pk])
        _run(cur, "INSERT INTO contacts_contactevent (corp_id, contact_id, staff_id, kind, occurred_at, data, created_at) "
                  "SELECT %s, r.contact_id, r.staff_id, CASE WHEN r.deleted_by_customer_at IS NOT NULL THEN "
                  "'deleted_by_customer' ELSE 'deleted_by_staff' END, COALESCE(r.deleted_by_customer_at, "
                  "r.deleted_by_staff_at), '{}'::jsonb, now() FROM contacts_followrelation r JOIN bench_map m USING (contact_id) "
                  "WHERE NOT r.is_active", [corp.pk])
        _run(cur, "INSERT INTO contacts_contactevent (corp_id, contact_id, chat_id, kind, occurred_at, data, created_at) "
                  "SELECT %s, gm.contact_id, gm.chat_id, 'joined_group', gm.joined_at, '{}'::jsonb, now() FROM "
                  "contacts_groupmember gm JOIN bench_map m USING (contact_id) UNION ALL "
                  "SELECT %s, gm.contact_id, gm.chat_id, 'left_group', gm.left_at, '{}'::jsonb, now() FROM "
                  "contacts_groupmember gm JOIN bench_map m USING (contact_id) WHERE gm.left_at IS NOT NULL",
             [corp.pk, corp.pk])
        _run(cur, "INSERT INTO contacts_contactevent (corp_id, contact_id, kind, occurred_at, data, dedup_key, created_at) "
                  "SELECT %s, o.contact_id, 'ordered', o.paid_at, json_build_object('amount', o.amount::text), "
                  "'order:' || o.corp_id || ':' || o.external_id, now() FROM contacts_order o JOIN bench_map m "
                  "USING (contact_id)", [corp.pk])
        cur.execute("SELECT count(*) FROM contacts_contactevent WHERE corp_id = %s", [corp.pk])
        pad = max(0, events - cur.fetchone()[0])
        _run(cur, "INSERT INTO contacts_contactevent (corp_id, contact_id, kind, occurred_at, data, created_at) "
                  "SELECT %s, m.contact_id, 'edited', m.added_at + (now() - m.added_at) * random(), '{}'::jsonb, now() "
                  "FROM generate_series(1, %s) g JOIN bench_map m ON m.i = 1 + (g::bigint * 7919 %% %s)",
             [corp.pk, pad, contacts])
        _run(cur, "INSERT INTO livecodes_dailystat (code_id, target_id, day, scans, visitors) "
                  "SELECT lc.id, NULL, d::date, (random() * 200)::int + 20, (random() * 100)::int + 10 "
                  "FROM livecodes_livecode lc CROSS JOIN generate_series(current_date - %s, current_date, '1 day') d "
                  "WHERE lc.corp_id = %s AND lc.state LIKE 'bench_%%' ON CONFLICT DO NOTHING", [days, corp.pk])
        _run(cur, "DROP TABLE bench_map, bench_staff, bench_codes, bench_c")
    from contacts.business import contact_facts_refresh_sql

    contact_facts_refresh_sql("SELECT id FROM contacts_contact WHERE corp_id = %s", [corp.pk])
    contacts_rfm_score()
    with connection.cursor() as cur:
        cur.execute("TRUNCATE analytics_dirtycontact")
        cur.execute("ANALYZE")
    generated = time.monotonic() - started
    started = time.monotonic()
    rollups_rebuild()
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return {"generate_s": round(generated, 1), "rebuild_s": round(time.monotonic() - started, 1)}
