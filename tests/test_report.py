"""`reproduce all` and the results page it writes (experiments/report.py).

Running every experiment's quick setting end to end takes minutes (most of them are run
one by one in their own test files), so the page is tested in three ways:
- on stored quick results of every experiment (tests/data/quick_results/, written by
  `python tests/data/quick_results/update.py`): the page holds every experiment, each
  module's report, table and headline rows render from them;
- with one real experiment (`toy`, the cheapest) end to end through the command line:
  its results carry the wall time, machine, load and commit, and a second call reuses
  the run;
- a stop in the middle ends the sequence and writes no page.
"""
import json
import re
from pathlib import Path

import pytest

from tinyinduction.cli import main
from tinyinduction.experiments import EXPERIMENTS, base, provenance, report

STORED = Path(__file__).resolve().parent / "data" / "quick_results"


def stored_results(name: str, out: Path) -> dict:
    """An experiment's stored quick results, its figures (empty files) placed under out."""
    results = json.loads((STORED / f"{name}.json").read_text())
    figures = []
    for path in results["meta"]["figures"]:
        where = out / f"{name}_quick" / "figures" / Path(path).name
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_bytes(b"")
        figures.append(str(where))
    results["meta"]["figures"] = figures
    return results


@pytest.fixture
def stored_run(monkeypatch, tmp_path):
    """report.run_all with every experiment replaced by its stored results; the call log."""
    calls = []

    def fake_run_experiment(name, out=None, **options):
        calls.append((name, options))
        return stored_results(name, tmp_path)
    monkeypatch.setattr(report, "run_experiment", fake_run_experiment)
    return calls


def sections(text: str) -> dict:
    """{heading: body} of a page's ## sections."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_stored_results_cover_every_experiment():
    assert sorted(p.stem for p in STORED.glob("*.json")) == sorted(EXPERIMENTS)


ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_page_holds_every_experiment(stored_run, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)         # report() links are written from the repository's root
    path = report.run_all(jobs=2, quick=True, out=tmp_path, log=lambda *a: None)
    assert path == tmp_path / "REPORT.md"
    assert [name for name, _ in stored_run] == list(EXPERIMENTS)          # every one, in order
    assert all(options["quick"] and options["jobs"] == 2 for _, options in stored_run)
    text = path.read_text()
    found = sections(text)
    for name in EXPERIMENTS:
        module = base.load(name)
        body = found[module.TITLE]
        assert f"`python -m tinyinduction reproduce {name} --quick`" in body, name
        assert "| quantity | ours | paper | note |" in body, name        # its table
        assert "Wall time" in body and "commit" in body, name
        for figure in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", body):       # figures resolve
            assert (path.parent / figure).is_file(), (name, figure)
        assert len(re.findall(r"!\[", body)) == len(
            json.loads((STORED / f"{name}.json").read_text())["meta"]["figures"]), name
    assert "Quick setting" in text.split("## ")[0]
    headline = found["Headline results"]
    rows = [line for line in headline.splitlines() if line.startswith("| ") and "---" not in line][1:]
    expected = sum(len(getattr(base.load(n), "headline", lambda r: [])(
        json.loads((STORED / f"{n}.json").read_text()))) for n in EXPERIMENTS)
    assert len(rows) == expected >= 8
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):                   # links inside the page
        assert anchor in {report.slug(title) for title in found}, anchor
    for target in re.findall(r"(?<!!)\[[^\]]*\]\(([^)#:]+\.md)[#)]", text):  # links to the documents
        assert (path.parent / target).is_file(), target


def test_every_number_of_a_report_follows_its_results(tmp_path):
    """A report states the results it is given: change a number, the prose changes."""
    heads = stored_results("heads", tmp_path)
    before = base.load("heads").report(heads)
    heads["ablate_induction_heads_acc"] = 0.123456
    after = base.load("heads").report(heads)
    assert "0.123" in after and "0.123" not in before


def test_paper_setting_page_goes_to_figures_readme_and_rewrites_the_headline(stored_run, tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("README.md").write_text("front\n<!-- headline: written by reproduce all -->\nold table\n"
                                 "<!-- headline end -->\nrest\n")
    path = report.run_all(log=lambda *a: None)
    assert path == Path("figures/README.md") and path.is_file()
    readme = Path("README.md").read_text()
    assert "old table" not in readme and readme.startswith("front\n<!-- headline") and "rest" in readme
    page_rows = [l for l in sections(path.read_text())["Headline results"].splitlines() if l.startswith("| ")]
    readme_rows = [l.replace("](figures/README.md#", "](#") for l in readme.splitlines() if l.startswith("| ")]
    assert page_rows == readme_rows


def test_update_headline_needs_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="headline"):
        report.update_headline(readme, "table")
    assert readme.read_text() == "no markers\n"


def test_a_stop_ends_the_sequence_and_writes_no_page(monkeypatch, tmp_path):
    ran = []

    def stopped_at_the_second(name, **options):
        ran.append(name)
        if len(ran) == 2:
            raise KeyboardInterrupt
        return stored_results(name, tmp_path)
    monkeypatch.setattr(report, "run_experiment", stopped_at_the_second)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        report.run_all(quick=True, out=tmp_path, log=lines.append)
    assert ran == list(EXPERIMENTS)[:2]
    assert not (tmp_path / "REPORT.md").exists()
    assert "continues" in lines[-1]


def test_reproduce_all_refuses_options_it_does_not_take(capsys, monkeypatch):
    def must_not_run(**options):       # a broken refusal would start every experiment
        raise AssertionError("reproduce all ran")
    monkeypatch.setattr(report, "run_all", must_not_run)
    assert main(["reproduce", "all", "--seed", "6"]) == 2
    err = capsys.readouterr().err.strip()
    assert "reproduce all does not take --seed" in err and len(err.splitlines()) == 1


def test_reproduce_all_quick_end_to_end_with_the_toy(tmp_path, capsys):
    """The real thing on the cheapest experiment: a run, its provenance, the page, a reuse."""
    out = tmp_path / "all"
    path = report.run_all(quick=True, out=out, names=["toy"], log=lambda *a: None)
    results = json.loads((out / "toy_quick" / "results.json").read_text())
    meta = results["meta"]
    assert meta["runs"]["count"] == 1 and meta["runs"]["reused"] == 0
    assert meta["runs"]["train_seconds"] > 0 and meta["wall_seconds"] > 0
    assert meta["machine"]["cores"] >= 1 and meta["machine"]["cpu"]
    assert meta["started"].endswith("UTC")
    text = path.read_text()
    assert "## The toy model" in text and "1 trained here and 0 reused" in text
    for figure in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (path.parent / figure).stat().st_size > 10_000, figure      # real PNGs
    report.run_all(quick=True, out=out, names=["toy"], log=lambda *a: None)
    assert "0 trained here and 1 reused" in path.read_text()


def test_provenance_names_this_checkout():
    commit = provenance.commit()
    if commit is None:
        pytest.skip("not a git checkout")
    assert re.fullmatch(r"[0-9a-f]{7,}", commit["commit"]) and isinstance(commit["changed"], bool)


def test_results_name_the_commit_the_run_started_from(tmp_path, monkeypatch):
    """A long run imports its code when it starts; commits made meanwhile are not what ran."""
    from tinyinduction.experiments import base, toy
    head = {"commit": "c_start", "changed": False}
    monkeypatch.setattr(provenance, "commit", lambda: dict(head))
    run = toy.run

    def run_while_someone_commits(ctx):
        head["commit"] = "c_meanwhile"
        return run(ctx)
    monkeypatch.setattr(toy, "run", run_while_someone_commits)
    results = base.run_experiment("toy", quick=True, out=tmp_path / "toy", log=lambda *a: None)
    assert results["meta"]["commit"] == {"commit": "c_start", "changed": False}


def test_the_features_section_at_the_papers_setting(tmp_path):
    """The paper's sweep has the chosen recipe and the glyph tables, which the quick one has
    not: built from the stored quick points, the section shows the demo's comparison and
    the glyph table with their own numbers."""
    from tinyinduction.experiments import features
    results = stored_results("features", tmp_path)
    results["meta"]["quick"] = False
    points = results["points"]
    template = next(iter(points.values()))
    chosen = {**template, "recipe": dict(features.CHOSEN), "learning_time": 9_123, "relabel": 0.0217}
    glyphs = {**template, "recipe": None, "features": "glyphs", "learning_time": 19_456}
    points.update({"chosen": chosen, "glyphs": glyphs, "all_scales_x2": template})
    results["chosen_point"] = "chosen"
    text = features.report(results)
    assert "9,123" in text and "0.022" in text and "19,456" in text
    assert "| learning time (steps) | 9,123 | 19,456 |" in text
    assert "**(chosen)**" in text and "(glyph table, not in the correlations)" in text
    rows = features.headline(results)
    assert [row.ours for row in rows][1:3] == [9_123, 0.0217]


def test_the_command_line_passes_its_options_to_run_all(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(report, "run_all", lambda **options: seen.update(options))
    assert main(["reproduce", "all", "--quick", "--jobs", "2", "--out", str(tmp_path)]) == 0
    assert seen == {"jobs": 2, "quick": True, "out": str(tmp_path), "scheduler": None}
