"""bench/cloud.py keeps working: a short SQLite run, and its CPU accounting by process group."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bench_cloud():
    spec = importlib.util.spec_from_file_location("bench_cloud", REPO / "bench" / "cloud.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BURN = "import time\nwhile time.process_time() < 0.4: pass\nprint('done', flush=True)\ninput()\n"


def test_cpu_is_counted_for_the_group_whose_process_spent_it():
    bc = bench_cloud()
    # a process below the bench's own, like the cloud: its CPU is the cloud's, not the clients'
    burner = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        groups = {"cloud": burner.pid, "clients": os.getpid()}
        before = bc.cpu_by_group(groups)
        assert burner.stdout.readline().strip() == "done"  # it has spent its 0.4 s of CPU
        after = bc.cpu_by_group(groups)
    finally:
        burner.communicate("\n", timeout=60)
    spent = {g: after[g] - before[g] for g in groups}
    assert spent["cloud"] >= 0.2, spent  # (what it spent before the first look is not counted)
    assert spent["clients"] < spent["cloud"], spent


def test_a_short_run_on_sqlite_applies_every_entry_once_and_says_where_the_cpu_went(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "bench" / "cloud.py"), "--kiosks", "4", "--batches", "1",
                        "--batch", "20", "--procs", "2", "--only", "sqlite", "--rounds", "2"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith("sqlite, 1 process")]
    assert len(rows) == 3, r.stdout  # two rounds and their median
    for row in rows[:2]:
        kiosks, entries, dupl, skipped, errors = row[3], row[4], row[8], row[10], row[11]
        assert (kiosks, entries, dupl, skipped, errors) == ("4", "80", "0", "0", "0"), r.stdout
        assert float(row[12]) > 0, r.stdout  # the cloud's CPU per entry


def test_a_mixed_run_pushes_batches_of_many_sizes_and_every_kiosk_pulls_its_hotels_log(tmp_path):
    """``--mixed``: pushes of 1 to --batch entries; five kiosks make one hotel of four and one of
    one, so "skipped" is only 0 if each kiosk pulled exactly what its hotel's kiosks pushed."""
    bench = bench_cloud()
    sizes = [bench.batch_sizes(k, 3, 20, True) for k in range(5)]
    assert len({s for ks in sizes for s in ks}) > 3 and all(1 <= s <= 20 for ks in sizes for s in ks)
    r = subprocess.run([sys.executable, str(REPO / "bench" / "cloud.py"), "--kiosks", "5", "--batches", "3",
                        "--batch", "20", "--mixed", "--procs", "8", "--only", "sqlite"],  # (more processes than kiosks)
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    [row] = [line.split() for line in r.stdout.splitlines() if line.startswith("sqlite, 1 process")]
    kiosks, entries, dupl, skipped, errors = row[3], row[4], row[8], row[10], row[11]
    assert (kiosks, entries, dupl, skipped, errors) == ("5", str(sum(map(sum, sizes))), "0", "0", "0"), r.stdout
    assert "of 1 to 20 (seeded)" in r.stdout
