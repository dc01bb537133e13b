"""Unit tests of the benchmark harness's pure parts: statistics, interleaving, target verdicts, the JSON report's
shape and the printed table. No stand-in, no network: `python3 -m pytest integration/bench/test_bench_all.py`
(scripts/test runs it through integration/bench/run-tests)."""

import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_all as ba  # noqa: E402
import benchlib as bl  # noqa: E402


# ------------------------------------------------------------------ statistics

def test_percentile_nearest_rank():
    values = sorted(range(1, 101))  # 1..100
    assert bl.percentile(values, 50) == 50
    assert bl.percentile(values, 99) == 99
    assert bl.percentile(values, 100) == 100
    assert bl.percentile([7], 99) == 7
    assert bl.percentile([1, 2, 3, 4], 50) == 2
    assert bl.percentile([1, 2, 3, 4], 51) == 3
    assert bl.percentile([], 50) is None


def test_median_ignores_none_and_takes_the_upper_middle():
    assert bl.median([3, None, 1, 2]) == 2
    assert bl.median([4, 1, 3, 2]) == 3
    assert bl.median([None]) is None
    assert bl.median([]) is None


def test_ratio():
    assert bl.ratio(3, 2) == 1.5
    assert bl.ratio(None, 2) is None
    assert bl.ratio(2, None) is None
    assert bl.ratio(2, 0) is None


def test_stall_count_counts_at_and_above_ten_ms():
    assert bl.stall_count([0.0099, 0.010, 0.2, 0.0001]) == 2
    assert bl.stall_count([]) == 0
    assert bl.stall_count([0.004, 0.006], threshold_s=0.005) == 1


def test_rotation_gives_every_path_every_position():
    paths = ["direct", "mailgate", "emailproxy"]
    firsts = {bl.rotated(paths, k)[0] for k in range(3)}
    lasts = {bl.rotated(paths, k)[-1] for k in range(3)}
    assert firsts == set(paths) and lasts == set(paths)
    assert bl.rotated(paths, 1) == ["mailgate", "emailproxy", "direct"]
    assert bl.rotated(paths, 4) == bl.rotated(paths, 1)
    assert bl.rotated([], 2) == []


# ------------------------------------------------------------------ verdicts

def test_min_ratio_verdict():
    assert ba.verdict("min_ratio", 0.95, 100.0, 95.0) == "met"
    assert ba.verdict("min_ratio", 0.95, 100.0, 94.9) == "missed"
    assert ba.verdict("min_ratio", 0.95, None, 94.9) == "n/a"
    assert ba.verdict("min_ratio", 0.95, 100.0, None) == "n/a"


def test_max_ratio_verdict_for_login_time():
    assert ba.verdict("max_ratio", 1.5, 20.0, 30.0) == "met"
    assert ba.verdict("max_ratio", 1.5, 20.0, 30.1) == "missed"


def test_noop_verdict_needs_both_the_allowance_and_no_stall():
    assert ba.verdict("max_added_no_stall", 30.0, 100.0, 130.0, mailgate_stalls=0) == "met"
    assert ba.verdict("max_added_no_stall", 30.0, 100.0, 131.0, mailgate_stalls=0) == "missed"
    assert ba.verdict("max_added_no_stall", 30.0, 100.0, 90.0, mailgate_stalls=1) == "missed"
    assert ba.verdict("max_added_no_stall", 30.0, 100.0, 90.0, mailgate_stalls=None) == "n/a"


def test_unknown_target_kind_is_an_error():
    with pytest.raises(ValueError):
        ba.verdict("at_least_fast", 1, 1, 1)


def test_cpu_verdict_is_one_fifth_of_emailproxy():
    assert ba.cpu_verdict(0.2, 1.0) == "met"
    assert ba.cpu_verdict(0.21, 1.0) == "missed"
    assert ba.cpu_verdict(None, 1.0) == "n/a"
    assert ba.cpu_verdict(0.1, 0.0) == "n/a"


# ------------------------------------------------------------------ summaries and the report

NOOP = next(w for w in ba.WORKLOADS if w["id"] == "imap-noop")
FETCH = next(w for w in ba.WORKLOADS if w["id"] == "imap-fetch-100KiB")


def test_summarize_throughput_takes_the_median_of_good_runs():
    runs = [{"value": 10.0, "cpu_s": 0.3, "peak_rss_kib": 1000, "errors": []},
            {"value": None, "cpu_s": 0.1, "peak_rss_kib": 3000, "errors": ["boom"]},
            {"value": 30.0, "cpu_s": 0.5, "peak_rss_kib": 2000, "errors": []},
            {"value": 20.0, "cpu_s": 0.4, "peak_rss_kib": None, "errors": []}]
    s = ba.summarize_runs(FETCH, runs)
    assert s["value"] == 20.0
    assert s["round_values"] == [10.0, 30.0, 20.0]
    assert s["cpu_s"] == 0.4            # median over all runs, failed ones included (the work was done)
    assert s["peak_rss_kib"] == 3000    # peak over all runs
    assert s["failed_runs"] == 1 and s["errors"] == ["boom"]


def test_summarize_noop_pools_latencies_in_microseconds_and_counts_stalls():
    runs = [{"value": 0.0001, "latencies": [0.0001] * 98 + [0.012], "cpu_s": 0.1, "errors": []},
            {"value": 0.0002, "latencies": [0.0002, 0.0150], "cpu_s": 0.2, "errors": []}]
    s = ba.summarize_runs(NOOP, runs)
    assert s["samples"] == 101
    assert s["value"] == pytest.approx(100.0)
    assert s["stalls_10ms"] == 2
    assert s["max"] == pytest.approx(15000.0)


def fake_results(direct, mailgate, emailproxy, mg_cpu=0.1, ep_cpu=1.0, stalls=0):
    res = {"direct": {"value": direct, "cpu_s": None, "peak_rss_kib": None},
           "mailgate": {"value": mailgate, "cpu_s": mg_cpu, "peak_rss_kib": 40960, "stalls_10ms": stalls},
           "emailproxy": {"value": emailproxy, "cpu_s": ep_cpu, "peak_rss_kib": 46080, "stalls_10ms": 3}}
    return res


def test_evaluate_gives_both_ratios_and_both_verdicts():
    ev = ba.evaluate(FETCH, fake_results(200.0, 190.0, 50.0, mg_cpu=0.3, ep_cpu=1.0))
    assert ev["ratios"]["mailgate_vs_direct"] == pytest.approx(0.95)
    assert ev["ratios"]["mailgate_vs_emailproxy"] == pytest.approx(3.8)
    assert ev["ratios"]["emailproxy_vs_direct"] == pytest.approx(0.25)
    assert ev["target"]["verdict"] == "met"
    assert ev["cpu_target"]["verdict"] == "missed"
    assert ev["cpu_target"]["mailgate_vs_emailproxy"] == pytest.approx(0.3)


def test_evaluate_noop_uses_the_mailgate_stall_count():
    assert ba.evaluate(NOOP, fake_results(100.0, 120.0, 300.0))["target"]["verdict"] == "met"
    assert ba.evaluate(NOOP, fake_results(100.0, 120.0, 300.0, stalls=1))["target"]["verdict"] == "missed"


def test_report_shape_is_versioned_and_json_serialisable():
    results = {"imap-fetch-100KiB": fake_results(200.0, 100.0, 50.0),
               "imap-noop": fake_results(100.0, 120.0, 300.0)}
    report = ba.build_report(results, {"rounds": 1, "quick": True}, {"direct": {"label": "direct"}},
                             {"emailproxy": "not installed"}, {"nproc": 2, "loadavg": [1, 1, 1]}, 1000.0, 1061.0)
    doc = json.loads(json.dumps(report))
    assert doc["schema"] == "mailgate-bench/1"
    assert set(doc) == {"schema", "generated_at", "duration_s", "machine", "params", "paths", "skipped",
                        "workloads", "cpu_total", "verdicts"}
    assert doc["duration_s"] == 61.0
    # workloads keep the order of ba.WORKLOADS, whatever the order of the results
    assert [w["id"] for w in doc["workloads"]] == ["imap-fetch-100KiB", "imap-noop"]
    for w in doc["workloads"]:
        assert set(w) == {"id", "protocol", "title", "unit", "higher_is_better", "results", "ratios", "target",
                          "cpu_target"}
        assert set(w["ratios"]) == {"mailgate_vs_direct", "mailgate_vs_emailproxy", "emailproxy_vs_direct"}
        assert set(w["target"]) == {"kind", "value", "text", "verdict"}
    assert doc["workloads"][0]["target"]["verdict"] == "missed"   # 0.5 x direct
    assert doc["workloads"][1]["target"]["verdict"] == "met"
    # two workloads, each with a throughput/latency verdict and a CPU verdict (0.1 <= 0.2 x 1.0: met)
    assert doc["verdicts"] == {"met": 3, "missed": 1, "n/a": 0}
    assert doc["cpu_total"] == {"mailgate_cpu_s": pytest.approx(0.2), "emailproxy_cpu_s": pytest.approx(2.0),
                                "verdict": "met"}


def test_cpu_total_is_none_when_a_workload_lacks_a_figure():
    results = {"imap-fetch-100KiB": fake_results(200.0, 100.0, None, ep_cpu=None)}
    report = ba.build_report(results, {}, {}, {}, {}, 0.0, 1.0)
    assert report["cpu_total"]["emailproxy_cpu_s"] is None
    assert report["cpu_total"]["verdict"] == "n/a"
    assert report["workloads"][0]["ratios"]["mailgate_vs_emailproxy"] is None


def test_table_shows_values_ratios_targets_and_skips():
    results = {"imap-fetch-100KiB": fake_results(200.0, 100.0, 50.0),
               "imap-noop": {"direct": {"value": 100.0, "p99": 200.0, "max": 900.0, "samples": 10, "stalls_10ms": 0},
                             "mailgate": {"value": 150.0, "p99": 250.0, "max": 12000.0, "samples": 10,
                                          "stalls_10ms": 1, "cpu_s": 0.05}}}
    report = ba.build_report(results, {}, {}, {"pop3-retr": "INBOX not empty"}, {}, 0.0, 1.0)
    text = ba.render_table(report)
    lines = text.splitlines()
    fetch = next(line for line in lines if line.startswith("IMAP FETCH 100 KiB"))
    assert "200.0" in fetch and "100.0" in fetch and "0.50x" in fetch and "2.00x" in fetch and "missed" in fetch
    noop = next(line for line in lines if line.startswith("IMAP NOOP"))
    assert "missed" in noop  # +50 us and a stall
    assert "NOOP mailgate: p50 150 us, p99 250 us, max 12.0 ms, 1 of 10 >= 10 ms" in text
    assert "skipped pop3-retr: INBOX not empty" in text
    assert lines[-2].startswith("targets: ")


def test_every_workload_has_a_known_target_kind():
    ids = [w["id"] for w in ba.WORKLOADS]
    assert len(ids) == len(set(ids))
    for w in ba.WORKLOADS:
        kind, goal, text = w["target"]
        assert ba.verdict(kind, goal, 1.0, 1.0, mailgate_stalls=0) in ("met", "missed")
    # the targets, as numbers
    goals = {w["id"]: w["target"][1] for w in ba.WORKLOADS}
    assert goals["imap-fetch-20MiB"] == 0.95 and goals["smtp-1MB-per-message"] == 0.95
    assert goals["pop3-retr"] == 0.9 and goals["imap-login"] == 1.5 and goals["imap-noop"] == 30.0
    assert ba.CPU_TARGET == 0.2


# ------------------------------------------------------------------ the entry points still load; /proc sampling

@pytest.mark.parametrize("script", ["smtp_bench.py", "imap_bench.py", "pop3_bench.py", "bench_all.py"])
def test_every_entry_point_imports_benchlib_and_parses_its_options(script):
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, os.path.join(here, script), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")


def test_sampler_measures_cpu_and_rss_of_a_busy_process():
    """The child burns 0.3 s of its own CPU (process_time, so a loaded machine only makes it slower) while the
    sampler watches it; the sampler must see that CPU and the 40 MiB it holds."""
    import subprocess
    busy = subprocess.Popen([sys.executable, "-c",
                             "import sys, time\nx = bytearray(40 * 1024 * 1024)\nsys.stdin.readline()\n"
                             "p = time.process_time()\nwhile time.process_time() - p < 0.3: pass\n"
                             "print('done', flush=True)\ntime.sleep(30)\n"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)
        with bl.Sampler(busy.pid, interval=0.01) as s:
            busy.stdin.write("go\n")
            busy.stdin.flush()
            assert busy.stdout.readline() == "done\n"
    finally:
        busy.kill()
        busy.wait()
    assert s.cpu_s is not None and 0.28 <= s.cpu_s < 0.6
    assert s.peak_rss_kib is not None and s.peak_rss_kib > 40 * 1024


def test_sampler_without_a_process_reports_nothing():
    with bl.Sampler(None) as s:
        pass
    assert s.cpu_s is None and s.peak_rss_kib is None


# ------------------------------------------------------------------ the PNG step

def test_chart_without_a_venv_says_the_png_is_skipped(tmp_path):
    line = ba.chart(str(tmp_path / "r.json"), str(tmp_path / "r.png"), str(tmp_path / "no-venv"))
    assert line.startswith("PNG skipped: no venv at ")
    assert not (tmp_path / "r.png").exists()


def test_chart_draws_a_png_of_a_report(tmp_path):
    venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv")
    python = os.path.join(venv, "bin", "python")
    import subprocess
    if not os.path.exists(python) or subprocess.run([python, "-c", "import matplotlib"]).returncode != 0:
        pytest.skip("no bench venv with matplotlib here (integration/bench/bench makes it)")
    results = {"imap-fetch-100KiB": fake_results(200.0, 100.0, 50.0),
               "imap-noop": fake_results(100.0, 120.0, 300.0)}
    report = ba.build_report(results, {"rounds": 1, "quick": True}, {}, {}, {"nproc": 2, "loadavg": [1, 1, 1]},
                             0.0, 1.0)
    src, png = tmp_path / "r.json", tmp_path / "r.png"
    src.write_text(json.dumps(report))
    assert ba.chart(str(src), str(png), venv) == f"PNG: {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a file that is not a mailgate-bench/1 report draws nothing and says why
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    line = ba.chart(str(bad), str(tmp_path / "bad.png"), venv)
    assert line.startswith("PNG skipped: ") and "not a mailgate-bench/1 report" in line


def test_lean_rows_repeat_the_smtp_rows_with_the_same_targets_after_the_main_ones():
    smtp = [w for w in ba.WORKLOADS if w["protocol"] == "SMTP"]
    assert [w["id"] for w in ba.LEAN_WORKLOADS] == [w["id"] + "-lean" for w in smtp]
    for lean, base in zip(ba.LEAN_WORKLOADS, smtp):
        assert lean["target"] == base["target"] and lean["mailgate"] == "lean" and "mailgate" not in base
    assert ba.LEAN == {"sent_copy": "never", "lock_after_send": False}
    results = {"smtp-10KB-reuse-lean": fake_results(100.0, 96.0, 50.0), "smtp-10KB-reuse": fake_results(100.0, 50.0, 50.0)}
    report = ba.build_report(results, {}, {}, {}, {}, 0.0, 1.0)
    assert [w["id"] for w in report["workloads"]] == ["smtp-10KB-reuse", "smtp-10KB-reuse-lean"]
    assert [w["target"]["verdict"] for w in report["workloads"]] == ["missed", "met"]


def test_lean_workloads_are_refused_without_lean():
    with pytest.raises(SystemExit):
        ba.main(["--workloads", "smtp-10KB-reuse-lean"])
