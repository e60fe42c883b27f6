"""The cloud keeps PostgreSQL's planner statistics up with tables that are still growing
(sync/cloud/planner_stats.py): a push then reads what it needs, not every row its hotel has."""

from __future__ import annotations

import psycopg
import pytest

from sync.cloud import apply, devices, planner_stats, storage

NOW = 1_800_000_000.0
HOTELS = [f"h{i}" for i in range(8)]


def entry(hotel: str, n: int) -> dict:
    tid = f"T-{hotel}-{n}"
    return {"key": f"{hotel}-{n}", "hotelId": hotel, "kind": "ticket.created", "entityType": "ticket",
            "entityId": tid, "hlc": f"{int(NOW * 1000):015d}-{n % 100000:05d}-k{hotel}", "createdAt": NOW,
            "payload": {"ticketId": tid, "type": "housekeeping", "title": f"towels {n}", "description": "",
                        "roomNumber": str(100 + n % 300), "priority": "normal", "queue": "housekeeping",
                        "status": "received", "fingerprint": f"{hotel}n{n}".ljust(20, "x")[:20],
                        "createdAt": "2026-12-01T10:00:00.000Z", "createdBy": "s-1"}}


@pytest.fixture()
def cloud(pg, tmp_path):
    url = pg.new_database(f"stats_{tmp_path.name[-20:].replace('-', '_')}".lower())
    st = storage.open_storage(tmp_path, url)
    st.prepare()
    without_autovacuum(url)
    db = st.connect()
    for h in HOTELS:
        devices.add_device(db, f"k-{h}", [h], NOW)
    watcher = psycopg.connect(url, autocommit=True)
    yield st, db, watcher
    watcher.close()
    st.close()


def without_autovacuum(url: str) -> None:
    """Autovacuum off for the database's tables: it could analyze a table before the keeper
    does, which would hide what the keeper does, or does not do (only these tests' tables;
    the server is shared)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for (table,) in conn.execute("SELECT relname FROM pg_stat_user_tables").fetchall():
            conn.execute(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)')


def rows_read(db, watcher) -> int:
    """Rows the tickets and the change log have given to scans so far (the push's connection's
    counts flushed first)."""
    db.execute("SELECT pg_stat_force_next_flush()")
    return watcher.execute("SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)"
                           " FROM pg_stat_user_tables WHERE relname IN ('tickets', 'changes')").fetchone()[0]


def push_rounds(db, watcher, rounds: int, start: int, keep: bool) -> list[int]:
    """Each hotel pushes 100 new tickets a round; the rows read by hotel h0's push of each round."""
    read = []
    for r in range(start, start + rounds):
        for h in HOTELS:
            before = rows_read(db, watcher) if h == "h0" else None
            apply.apply_push(db, devices.Device(f"k-{h}", (h,)), [entry(h, r * 100 + i) for i in range(100)], NOW)
            if before is not None:
                read.append(rows_read(db, watcher) - before)
        if keep:
            planner_stats.refresh(db)
    return read


def test_a_push_reads_as_many_rows_with_a_large_hotel_as_with_a_small_one(cloud):
    _st, db, watcher = cloud
    early = push_rounds(db, watcher, 2, 0, keep=True)
    push_rounds(db, watcher, 6, 2, keep=True)  # each hotel grows to 800 tickets and their changes
    late = push_rounds(db, watcher, 2, 8, keep=True)
    assert max(late) <= max(early) + 100, (early, late)


def test_without_fresh_statistics_a_push_reads_its_hotels_every_row(cloud):
    """The control: the same pushes with no ANALYZE read more the more the hotel holds."""
    _st, db, watcher = cloud
    early = push_rounds(db, watcher, 2, 0, keep=False)
    push_rounds(db, watcher, 6, 2, keep=False)
    late = push_rounds(db, watcher, 2, 8, keep=False)
    assert min(late) >= max(early) + 1000, (early, late)


def test_refresh_analyzes_what_grew_and_then_nothing(cloud):
    _st, db, watcher = cloud
    push_rounds(db, watcher, 1, 0, keep=False)  # 800 tickets, 800 changes, 800 remembered answers
    db.execute("SELECT pg_stat_force_next_flush()")
    assert {"tickets", "changes", "applied_entries"} <= set(planner_stats.due(db))
    done = planner_stats.refresh(db)
    assert {"tickets", "changes", "applied_entries"} <= set(done)
    assert watcher.execute("SELECT reltuples FROM pg_class WHERE relname = 'tickets'").fetchone()[0] == 800
    db.execute("SELECT pg_stat_force_next_flush()")
    assert planner_stats.refresh(db) == []


def test_a_table_never_analyzed_is_analyzed_once_it_is_a_few_pages_long(cloud):
    """Before its first 500 changes are counted a young table is planned without statistics:
    a push's ``key IN (…)`` on it was a scan of the whole table.  Analyzed by size instead."""
    _st, db, watcher = cloud

    def add(n: int, width: int) -> None:
        watcher.execute("INSERT INTO conflicts (hotel_id, entity_type, entity_id, field, rule, outcome, incoming,"
                        " current, device_id, entry_key, detected_at) SELECT 'h0', 'ticket', 'T-' || i, NULL,"
                        " 'r', 'o', repeat('x', %s), '{}', 'k', 'key-' || i, 0 FROM generate_series(1, %s) AS i",
                        [width, n])

    add(10, 10)  # one page
    assert "conflicts" not in planner_stats.due(db)
    add(300, 400)  # 300 rows, far fewer than the 500 changes the growth rule waits for, 16 pages
    pages = watcher.execute("SELECT pg_relation_size('conflicts') / current_setting('block_size')::int").fetchone()[0]
    assert pages >= planner_stats.YOUNG_PAGES, pages
    assert "conflicts" in planner_stats.due(db)
    assert "conflicts" in planner_stats.refresh(db)
    assert watcher.execute("SELECT reltuples FROM pg_class WHERE relname = 'conflicts'").fetchone()[0] == 310
    assert "conflicts" not in planner_stats.due(db)  # analyzed: the growth rule from here on


def test_one_worker_at_a_time(cloud):
    st, db, watcher = cloud
    push_rounds(db, watcher, 1, 0, keep=False)
    db.execute("SELECT pg_stat_force_next_flush()")
    watcher.execute("SELECT pg_advisory_lock(%s)", [planner_stats.LOCK])  # another worker is at it
    assert planner_stats.refresh(db) == []
    watcher.execute("SELECT pg_advisory_unlock(%s)", [planner_stats.LOCK])
    assert "tickets" in planner_stats.refresh(db)


def test_sqlite_has_nothing_to_do(tmp_path):
    st = storage.open_storage(tmp_path)
    st.prepare()
    assert planner_stats.refresh(st.connect()) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_a_serving_cloud_analyzes_a_table_that_grew(pg, tmp_path, workers):
    """``kiosk-cloud serve`` (one process, and gunicorn's workers) runs the keeper by itself."""
    from harness import Cloud, wait_for

    url = pg.new_database(f"serve_stats_{workers}")
    cloud = Cloud(tmp_path, database=url, workers=workers).start()  # the schema made
    without_autovacuum(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO conflicts (hotel_id, entity_type, entity_id, field, rule, outcome, incoming,"
                         " current, device_id, entry_key, detected_at) SELECT 'h0', 'ticket', 'T-' || i, NULL,"
                         " 'r', 'o', '{}', '{}', 'k', 'key-' || i, 0 FROM generate_series(1, 2000) AS i")
            conn.execute("SELECT pg_stat_force_next_flush()")
            stats = ("SELECT last_analyze, last_autoanalyze, n_mod_since_analyze FROM pg_stat_user_tables"
                     " WHERE relname = 'conflicts'")
            try:
                wait_for(lambda: conn.execute(stats).fetchone()[0], what="the cloud to analyze the table that grew")
            except AssertionError as e:
                raise AssertionError(f"{e}; last_analyze, last_autoanalyze, n_mod_since_analyze:"
                                     f" {conn.execute(stats).fetchone()}") from None
            assert conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'conflicts'").fetchone()[0] == 2000
    finally:
        cloud.stop()


def key_rows_read(db, watcher) -> int:
    """Rows ``applied_entries`` (the remembered answers) has given to scans so far."""
    db.execute("SELECT pg_stat_force_next_flush()")
    return watcher.execute("SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
                           " WHERE relname = 'applied_entries'").fetchone()[0]


@pytest.mark.parametrize("default_costs", [False, True])
def test_a_push_looks_its_keys_up_in_the_index(cloud, default_costs):
    """The cloud's connections price a random read as the PostgreSQL manual suggests for data
    held in memory (storage.RANDOM_PAGE_COST), so a push's 100 keys are looked up in the
    ``key`` index.  The control: the same push on a connection at PostgreSQL's default reads
    the whole table of remembered answers."""
    _st, db, watcher = cloud
    assert db.execute("SHOW random_page_cost").fetchone()[0] == storage.RANDOM_PAGE_COST
    push_rounds(db, watcher, 12, 0, keep=True)  # 9,600 remembered answers, statistics fresh
    if default_costs:
        db.execute("SET random_page_cost = 4")
        db.execute("DISCARD PLANS")  # the plans of the connection's prepared statements made again at this cost
    before = key_rows_read(db, watcher)
    apply.apply_push(db, devices.Device("k-h0", ("h0",)), [entry("h0", 5000 + i) for i in range(100)], NOW)
    read = key_rows_read(db, watcher) - before
    if default_costs:
        assert read >= 9600, read
    else:
        assert read <= 100, read


def test_an_administrators_page_cost_is_kept(pg, tmp_path):
    url = pg.new_database("page_cost_kept")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER DATABASE page_cost_kept SET random_page_cost = 2")
    st = storage.open_storage(tmp_path, url)
    try:
        st.prepare()
        assert st.connect().execute("SHOW random_page_cost").fetchone()[0] == "2"
    finally:
        st.close()
