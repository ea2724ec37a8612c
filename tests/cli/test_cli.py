"""The command line's contract without running a simulation: list, help, exit status 2 for
user errors with one message and no traceback, --check's verdict, atomic output files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reclaimlab.vfs.designs import DESIGN_NAMES

from reclaimlab.cli import main, misbehaved, parse_designs, UserError, write_atomically


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reclaimlab", *argv], capture_output=True,
                          text=True, timeout=60)


def test_list_json_names_every_builtin_and_design(capsys):
    assert main(["list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in out["scenarios"]} == {
        "overlay-unlink", "nofail-reclaim", "bs-gt-ps", "xfs-reclaim-latency", "rm-rf",
        "mini-overlay"}
    assert all(s["description"] for s in out["scenarios"])
    names = [d["name"] for d in out["designs"]]
    assert names[:4] == ["native", "sync", "inodegc", "passive-ref"]  # the contract's, first
    assert names == list(DESIGN_NAMES) and all(d["description"] for d in out["designs"])


def test_list_human(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "overlay-unlink" in out and "passive-ref" in out


def test_help_shows_examples():
    top = run_cli("--help")
    assert top.returncode == 0 and "reclaimlab compare overlay-unlink" in top.stdout
    for cmd in ("list", "run", "compare"):
        assert "example" in run_cli(cmd, "--help").stdout


@pytest.mark.parametrize("argv, needle", [
    (["run", "no-such-scenario"], "no such file"),
    (["run", "overlay-unlink", "--set", "machine.memory_mb=lots"], "machine.memory_mb"),
    (["run", "overlay-unlink", "--set", "workload.nobody.tasks=2"], "nobody"),
    (["run", "overlay-unlink", "--set", "fs.0.block_size=3000"], "power of two"),
    (["compare", "overlay-unlink", "--designs", "sync,lazy"], "lazy"),
    (["compare", "overlay-unlink", "--seeds", "0"], "--seeds"),
    (["run", "overlay-unlink", "--trace", "/no/such/dir/t.json"], "does not exist"),
])
def test_user_errors_exit_2_with_one_message(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.count("\n") == 1


def test_bad_arguments_exit_2_through_the_console_entry():
    proc = run_cli("run", "overlay-unlink", "--design", "lazy")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = run_cli("run", "overlay-unlink", "--set", "machine.cpus=0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "machine.cpus" in proc.stderr


def test_syntax_error_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[machine]\nmemory_mb = = 1\n")
    assert main(["run", str(path)]) == 2
    assert f"{path}, line 2" in capsys.readouterr().err


def test_bad_input_leaves_no_output_file(tmp_path, capsys):
    trace, plot = tmp_path / "t.json", tmp_path / "p.png"
    assert main(["run", "overlay-unlink", "--set", "run.seed=-1", "--trace", str(trace)]) == 2
    assert main(["compare", "overlay-unlink", "--set", "x.y=1", "--plot", str(plot)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_write_atomically_leaves_nothing_on_failure(tmp_path):
    def boom(tmp: str) -> None:
        open(tmp, "w").write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(str(tmp_path / "out.json"), boom)
    assert list(tmp_path.iterdir()) == []
    write_atomically(str(tmp_path / "out.json"), lambda tmp: open(tmp, "w").write("{}"))
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_designs_parsing():
    assert parse_designs(None) == list(DESIGN_NAMES)  # default: all designs
    assert parse_designs("sync, passive-ref,sync") == ["sync", "passive-ref"]
    with pytest.raises(UserError):
        parse_designs("sync,nope")


RESULT = {"outcome": "completed", "warnings": [], "deadlocks": [],
          "inodes": {"evicted": 3, "evicted_in_reclaim": 0, "deferred": 0, "leaked": 0},
          "invariants": {"ok": True, "violations": []}}


@pytest.mark.parametrize("change", [
    {"outcome": "deadlock"}, {"warnings": [{"kind": "nofail_in_reclaim"}]},
    {"deadlocks": [{"cycle": []}]},
    {"inodes": {**RESULT["inodes"], "leaked": 1}},
    {"invariants": {"ok": False, "violations": ["x"]}},
])
def test_check_fails_on_any_misbehaviour(change):
    assert not misbehaved(RESULT)
    assert misbehaved({**RESULT, **change})
