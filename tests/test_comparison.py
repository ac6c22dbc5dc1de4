"""Comparing runs: the CLI table, paired tests against pt.Experiment, several datasets, MTEB files, the plot."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import ir_measures
import pytest

from rayir.cli import gather_list_values, main
from rayir.cli.stages import search
from rayir.comparison import adjust
from rayir.data.trec import read_qrels
from rayir.evaluate import evaluate


def write_runs(directory: Path, qrels: dict[str, dict[str, int]], seed: int) -> dict[str, Path]:
    """Three systems of different quality over the judged queries: scores = noise + bias × relevant."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = sorted({d for judged in qrels.values() for d in judged} | {f"x{i}" for i in range(30)})
    generator = random.Random(seed)
    paths = {}
    for name, bias in [("bm25", 0.5), ("dense", 1.5), ("noise", 0.0)]:
        lines = []
        for query_id, judged in qrels.items():
            scores = {d: generator.random() + bias * (judged.get(d, 0) > 0) for d in docs}
            top = sorted(scores.items(), key=lambda item: -item[1])[:20]
            lines += [f"{query_id} Q0 {d} {rank} {s:.6f} {name}" for rank, (d, s) in enumerate(top, 1)]
        paths[name] = directory / f"{name}.run"
        paths[name].write_text("\n".join(lines) + "\n")
    return paths


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as ended:
        code = ended.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_holm_and_bonferroni_by_hand():
    # sorted: 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> kept monotone at 0.06
    assert adjust([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust([0.01, 0.04, 0.5], "bonferroni") == pytest.approx([0.03, 0.12, 1.0])
    assert adjust([0.2, 0.01], "none") == [0.2, 0.01]


def test_runs_compared_in_one_table_with_the_tests_pt_experiment_reports(sample_collection, tmp_path, capsys):
    pt = pytest.importorskip("pyterrier")
    pd = pytest.importorskip("pandas")
    qrels = read_qrels(sample_collection, "test")
    runs = write_runs(tmp_path / "runs", qrels, seed=0)
    output = tmp_path / "comparison.json"
    code, out, _ = cli(
        ["evaluate", "--run", *map(str, runs.values()), "--qrels", str(sample_collection), "--split", "test"]
        + ["--measures", "nDCG@10", "RR@10", "--output", str(output)],
        capsys,
    )
    assert code == 0
    table = out.splitlines()
    assert table[0].split()[:3] == ["system", "missing", "nDCG@10"]
    assert table[2].startswith("bm25 (baseline)") and table[3].startswith("dense") and table[4].startswith("noise")
    saved = json.loads(output.read_text())
    assert saved["baseline"] == "bm25" and saved["queries"] == 8

    frames = [
        pd.DataFrame(
            [line.split()[:3:2] + [float(line.split()[4])] for line in path.read_text().splitlines()],
            columns=["qid", "docno", "score"],
        )
        for path in runs.values()
    ]
    topics = pd.DataFrame({"qid": list(qrels), "query": ["unused"] * len(qrels)})
    judged = pd.DataFrame(
        [(q, d, r) for q, docs in qrels.items() for d, r in docs.items()], columns=["qid", "docno", "label"]
    )
    measures = [ir_measures.parse_measure(m) for m in ("nDCG@10", "RR@10")]
    reference = pt.Experiment(
        frames, topics, judged, measures, names=list(runs), baseline=0, correction="holm"
    ).set_index("name")
    for system in ("dense", "noise"):
        for measure in ("nDCG@10", "RR@10"):
            test = saved["systems"][system]["tests"][measure]
            expected = reference.loc[system]
            assert saved["systems"][system]["mean"][measure] == pytest.approx(expected[measure])
            assert (test["better"], test["worse"]) == (expected[f"{measure} +"], expected[f"{measure} -"])
            assert test["p_value"] == pytest.approx(expected[f"{measure} p-value"])
            assert test["p_corrected"] == pytest.approx(expected[f"{measure} p-value corrected"])
            assert test["significant"] == bool(expected[f"{measure} reject"])
    # the table marks what the tests found: dense's and noise's nDCG@10 differ significantly here
    assert saved["systems"]["dense"]["tests"]["nDCG@10"]["significant"]
    assert "*" in table[3].split()[2] and "*" not in table[2]


def test_several_datasets_give_a_beir_table_csv_mteb_files_and_a_plot(sample_collection, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    first = read_qrels(sample_collection, "test")
    second = {q: docs for q, docs in list(first.items())[:5]}
    second_qrels = tmp_path / "small.qrels"
    second_qrels.write_text("".join(f"{q} 0 {d} {r}\n" for q, docs in second.items() for d, r in docs.items()))
    write_runs(tmp_path / "sample", first, seed=1)
    write_runs(tmp_path / "small", second, seed=2)
    template = str(tmp_path / "{dataset}")
    code, out, err = cli(
        ["evaluate", "--run", f"{template}/bm25.run", f"best={template}/dense.run", "--measures", "nDCG@10"]
        + ["--qrels", f"sample={sample_collection}", f"small={second_qrels}", "--split", "test"]
        + ["--output", str(tmp_path / "table.csv"), "--mteb_output", str(tmp_path / "mteb")]
        + ["--plot", str(tmp_path / "plots" / "beir.png")],
        capsys,
    )
    assert code == 0, err
    expected = {
        (dataset, system): evaluate(tmp_path / dataset / f"{run}.run", qrels, ["nDCG@10"]).mean["nDCG@10"]
        for dataset, qrels in [("sample", first), ("small", second)]
        for system, run in [("bm25", "bm25"), ("best", "dense")]
    }
    lines = out.splitlines()
    assert lines[1].split() == ["dataset", "bm25", "best"]
    average = [line for line in lines if line.startswith("average")][0].split()
    for column, system in enumerate(["bm25", "best"], start=1):
        mean = (expected["sample", system] + expected["small", system]) / 2
        assert float(average[column]) == pytest.approx(mean, abs=5e-5)
    rows = list(csv.DictReader((tmp_path / "table.csv").open()))
    assert [(r["dataset"], r["system"]) for r in rows] == [
        ("sample", "bm25"),
        ("sample", "best"),
        ("small", "bm25"),
        ("small", "best"),
    ]
    for row in rows:
        assert float(row["nDCG@10"]) == pytest.approx(expected[row["dataset"], row["system"]])
        assert (row["nDCG@10 p holm"] == "") == (row["system"] == "bm25")
    mteb = json.loads((tmp_path / "mteb" / "best" / "small.json").read_text())
    assert mteb["task_name"] == "small"
    assert mteb["scores"]["test"][0]["ndcg_at_10"] == pytest.approx(expected["small", "best"])
    assert mteb["scores"]["test"][0]["main_score"] == mteb["scores"]["test"][0]["ndcg_at_10"]
    summary = json.loads(lines[-1])
    assert summary["datasets"]["small"]["queries"] == 5
    png = (tmp_path / "plots" / "beir.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_a_single_run_keeps_its_summary_and_output_and_plots(sample_collection, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    runs = write_runs(tmp_path, read_qrels(sample_collection, "test"), seed=3)
    code, out, _ = cli(
        ["evaluate", "--run", str(runs["dense"]), "--qrels", str(sample_collection), "--split", "test"]
        + ["--output", str(tmp_path / "one.json"), "--plot", str(tmp_path / "one.png")],
        capsys,
    )
    assert code == 0
    summary = json.loads(out.splitlines()[-1])
    assert summary["run"] == str(runs["dense"]) and summary["queries"] == 8 and set(summary) >= {"nDCG@10", "R@100"}
    assert set(json.loads((tmp_path / "one.json").read_text())) == {"mean", "per_query", "missing_queries"}
    assert (tmp_path / "one.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--run", "{a}/x.run", "{a}/y.run", "--baseline", "nope"], "baseline 'nope' is not one of the runs"),
        (["--run", "{a}/x.run", "x={a}/y.run"], "two runs are named 'x'"),
        (["--run", "{a}/missing.run"], "run file not found"),
        (["--run", "{a}/x.run", "--baseline", "x"], "baseline needs two or more runs"),
        (["--run", "{a}/x.run", "--qrels", "one={q}", "two={q}"], "each run path must hold {dataset}"),
    ],
)
def test_comparison_mistakes_end_in_one_line(sample_collection, tmp_path, capsys, arguments, message):
    for name in ("x", "y"):
        (tmp_path / f"{name}.run").write_text("q01 Q0 d01 1 1.0 t\n")
    qrels = tmp_path / "q.qrels"
    qrels.write_text("q01 0 d01 1\n")
    filled = [a.replace("{a}", str(tmp_path)).replace("{q}", str(qrels)) for a in arguments]
    if "--qrels" not in filled:
        filled += ["--qrels", str(qrels)]
    code, _, err = cli(["evaluate", *filled], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_list_options_take_values_one_after_another():
    from rayir.cli.evaluation import evaluate as evaluate_stage

    args = ["--run", "a b.run", "c.run", "--measures=nDCG@10", "P@5", "--split", "test"]
    gathered = gather_list_values(evaluate_stage, args)
    assert gathered == ['--run=["a b.run", "c.run"]', '--measures=["nDCG@10", "P@5"]', "--split", "test"]
    assert gather_list_values(evaluate_stage, ["--measures", "[nDCG@10, R@100]"]) == ["--measures=[nDCG@10, R@100]"]
    # search's --run is one file: a second value stays a second value (and jsonargparse refuses it)
    assert gather_list_values(search, ["--run", "a.run", "b.run"]) == ["--run", "a.run", "b.run"]


def test_stage_summaries_print_a_table_before_the_json_line(capsys):
    from rayir.cli.stages import _report

    summary = {"stage": "search", "run": "a.run", "queries": 12345, "seconds": 5.5213, "nDCG@10": 0.6451234}
    _report(summary)
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[-1]) == summary  # scripts read the last line
    rows = {line.split()[0]: line.split()[-1] for line in lines[2:-1]}
    assert rows == {"run": "a.run", "queries": "12,345", "seconds": "5.521", "nDCG@10": "0.6451"}
