"""Smoke tests of the benchmark scripts, so they cannot rot: a tiny lead_sync run through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.benchmarks import benchmark_names
from include.benchmarks.harness import format_table, run_in_child

ROOT = Path(__file__).resolve().parents[1]
RECORDS = 200
BASELINE_RECORDS = 100


@pytest.fixture(scope="module")
def lead_sync_run(pg_url) -> tuple[str, dict]:
    """``python -m include.benchmarks lead_sync`` on 200 leads (baseline on 100): its stdout and last line."""
    env = {**os.environ, "DEPLOYTEQ_DATABASE_URL": pg_url}
    completed = subprocess.run(
        [sys.executable, "-m", "include.benchmarks", "lead_sync", "--records", str(RECORDS),
         "--baseline-records", str(BASELINE_RECORDS)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    lines = completed.stdout.strip().splitlines()
    return completed.stdout, json.loads(lines[-1])


def test_last_line_carries_the_contract_figures(lead_sync_run):
    _, summary = lead_sync_run
    assert summary["records"] == RECORDS
    assert summary["seconds"] > 0
    assert summary["records_per_s"] == pytest.approx(RECORDS / summary["seconds"], rel=0.01)
    assert summary["requests_per_10k"] == pytest.approx(summary["sf_requests"] * 10_000 / RECORDS, rel=0.01)
    assert 50 < summary["peak_rss_mb"] < 1000


def test_our_requests_come_from_the_emulator_and_match_the_ledger(lead_sync_run):
    _, summary = lead_sync_run
    # describe, one query page, the first run's read of deleted records, one composite flag reset, one read-again
    # of the reset records
    assert summary["sf_requests_by_endpoint"] == {
        "GET query": 1, "GET queryAll": 1, "GET sobjects/Lead/describe": 1, "PATCH composite/sobjects": 1,
        "POST composite/sobjects/Lead": 1,
    }
    assert summary["sf_requests"] == 5 == summary["ledger_requests"]


def test_baseline_is_measured_on_m_records_and_extrapolated(lead_sync_run):
    stdout, summary = lead_sync_run
    assert summary["baseline_extrapolated_from"] == BASELINE_RECORDS
    # one query page + one update request per record, counted by the emulator
    assert summary["baseline_sf_requests_by_endpoint"] == {"GET query": 1, "PATCH sobjects/Lead/{id}": BASELINE_RECORDS}
    assert summary["baseline_measured_sf_requests"] == BASELINE_RECORDS + 1
    assert summary["baseline_sf_requests"] == 2 * (BASELINE_RECORDS + 1)
    assert summary["baseline_seconds"] == pytest.approx(2 * summary["baseline_measured_seconds"], rel=0.01)
    assert f"baseline: extrapolated from {BASELINE_RECORDS}" in stdout


def test_the_table_names_the_raised_hourly_budget(lead_sync_run):
    stdout, _ = lead_sync_run
    assert "hourly_budget = 10,000,000" in stdout
    assert "ours: SalesforceToDeployteqOperator" in stdout


def test_the_last_line_breaks_the_time_down_by_phase(lead_sync_run):
    stdout, summary = lead_sync_run
    phases = summary["phase_seconds"]
    assert {"salesforce_http", "ledger", "map", "lookup", "merge", "copy", "upsert", "bookkeeping", "flag_reset",
            "other"} <= set(phases)
    # exclusive phases of the flow's thread: together at most the flow's time (migrations before them are not a phase)
    flow_thread = sum(v for k, v in phases.items() if not k.startswith("read:") and k != "salesforce_server")
    assert 0 < flow_thread <= summary["seconds"] * 1.01
    assert summary["cpu_seconds"] > 0
    assert "seconds per phase" in stdout


def test_the_last_line_says_how_fast_the_machine_was(lead_sync_run):
    stdout, summary = lead_sync_run
    assert set(summary["machine_seconds"]) == {"before", "after"}
    assert all(0 < seconds < 30 for seconds in summary["machine_seconds"].values())
    assert "This machine's speed: a fixed Python loop took" in stdout


@pytest.fixture(scope="module")
def initial_load_run(pg_url) -> tuple[str, dict]:
    """``python -m include.benchmarks initial_load`` on 300 leads, and again on 100 (``--scale``)."""
    env = {**os.environ, "DEPLOYTEQ_DATABASE_URL": pg_url}
    completed = subprocess.run(
        [sys.executable, "-m", "include.benchmarks", "initial_load", "--records", "300", "--scale", "100"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed.stdout, json.loads(completed.stdout.strip().splitlines()[-1])


def test_initial_load_reads_every_lead_once_without_writing_to_salesforce(initial_load_run):
    _, summary = initial_load_run
    assert summary["records"] == 300
    # describe + REST pages (300 leads are below the Bulk threshold): reads only, checked in the benchmark too
    assert summary["sf_requests_by_endpoint"] == {"GET query": 1, "GET sobjects/Lead/describe": 1}
    assert summary["ledger_requests"] == summary["sf_requests"] == 2


def test_scale_runs_the_flow_again_and_shows_how_time_and_memory_grow(initial_load_run):
    stdout, summary = initial_load_run
    assert [run["records"] for run in summary["scaling"]] == [100, 300]
    assert all(run["seconds"] > 0 and run["peak_rss_mb"] > 0 for run in summary["scaling"])
    assert "How time and memory grow with N" in stdout
    assert "RSS vs smallest" in stdout


def test_dispatcher_knows_the_benchmarks():
    assert {"lead_sync", "initial_load", "store_upsert"} <= set(benchmark_names())
    assert "harness" not in benchmark_names()


def prepare_allocating_flow(megabytes: int):
    """A flow for ``run_in_child``: holds ``megabytes`` of touched memory."""

    def flow() -> int:
        block = b"x" * (megabytes * 1024 * 1024)
        return len(block)

    return flow


def test_child_peak_memory_is_the_childs_own():
    parent_block = b"p" * (300 * 1024 * 1024)  # a big parent must not inflate the child's figure
    measured = run_in_child("tests.test_benchmarks:prepare_allocating_flow", {"megabytes": 40}, {})
    assert measured["value"] == 40 * 1024 * 1024
    assert 40 * 1024 <= measured["peak_rss_kib"] < 200 * 1024
    assert measured["rss_before_kib"] < 40 * 1024
    del parent_block


def test_table_aligns_numbers_right_and_text_left():
    table = format_table(["flow", "records"], [["ours", 100_000], ["baseline", 5]])
    assert table.splitlines() == [
        "flow      records",
        "--------  -------",
        "ours      100,000",
        "baseline        5",
    ]
