"""``reclaimlab sweep``: exit statuses, messages, resumption, the report."""

from __future__ import annotations

import argparse

import pytest

from fakerunner import fake_run
from reclaimlab.sweep import cli
from reclaimlab.sweep.store import read_rows

SWEEP = """
base = "overlay-unlink"
designs = ["sync", "inodegc"]
seeds = 2
[axes]
"machine.memory_mb" = [256, 1024]
"""


def test_sweep_writes_one_row_per_run_and_resumes(write_sweep, tmp_path, capsys):
    path, out = write_sweep(SWEEP), tmp_path / "r.duckdb"
    assert cli.main([str(path), "--out", str(out), "--workers", "2"], runner=fake_run) == 0
    assert "8 runs done, 0 failed, 0 already stored" in capsys.readouterr().err
    assert cli.main([str(path), "--out", str(out), "--workers", "1"], runner=fake_run) == 0
    assert "0 runs done, 0 failed, 8 already stored" in capsys.readouterr().err
    assert len(read_rows(out)) == 8


def test_report_prints_the_comparison_and_writes_plots(write_sweep, tmp_path, capsys):
    path, out = write_sweep(SWEEP), tmp_path / "r.parquet"
    assert cli.main([str(path), "--out", str(out), "--report", "--workers", "2"],
                    runner=fake_run) == 0
    text = capsys.readouterr().out
    assert "alloc_latency_ns.p99" in text and "inodegc" in text
    assert (tmp_path / "r-p99-machine.memory_mb.png").exists()


@pytest.mark.parametrize("argv, words", [
    (["missing.toml"], "cannot read the sweep file"),
    (["{sweep}", "--out", "r.csv"], "must be .duckdb or .parquet"),
    (["{sweep}", "--scheduler", "tcp://x:1"], "--scheduler needs --engine dask"),
    (["{bad}"], "key 'seeds'"),
])
def test_user_errors_exit_2_with_one_message_and_no_traceback(write_sweep, capsys, argv, words):
    files = {"{sweep}": str(write_sweep(SWEEP)),
             "{bad}": str(write_sweep('base = "x"\nseeds = -1\n', "bad.toml"))}
    assert cli.main([files.get(a, a) for a in argv], runner=fake_run) == 2
    err = capsys.readouterr().err
    assert err.startswith("reclaimlab sweep: error: ") and words in err
    assert "Traceback" not in err


def test_bad_option_values_exit_2(capsys):
    assert cli.main(["s.toml", "--workers", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert cli.main(["s.toml", "--engine", "spark"]) == 2


def test_register_adds_the_subcommand_with_its_handler():
    parser = argparse.ArgumentParser(prog="reclaimlab")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sweep", "s.toml", "--engine", "dask", "--workers", "3"])
    assert (args.func, args.sweep_file, args.engine, args.workers) == \
        (cli.run_command, "s.toml", "dask", 3)


def test_with_the_simulator_a_misspelt_axis_key_is_refused_before_any_run(write_sweep, tmp_path,
                                                                           capsys):
    pytest.importorskip("reclaimlab.scenario.loader")
    path = write_sweep('base = "overlay-unlink"\ndesigns = ["sync"]\n'
                       '[axes]\n"machine.memory_mbb" = [256, 512]\n')
    out = tmp_path / "r.duckdb"
    assert cli.main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "machine.memory_mbb" in err and "unknown key" in err
    assert not out.exists()
