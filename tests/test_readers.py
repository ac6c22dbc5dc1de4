"""Readers for every format: counts, texts, and errors that name the file and line."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rayir.data import (
    DataFormatError,
    DatasetUnavailableError,
    DuplicateIdError,
    read_docs,
    read_qrels,
    read_queries,
    read_run,
    write_run,
)
from tests.conftest import shared_path


def write(path, text):
    path.write_text(text)
    return path


def test_jsonl_tsv_parquet_and_trec_docs_agree(tmp_path):
    expected = [("a", "Title A body a"), ("b", "body b")]
    jsonl = write(
        tmp_path / "c.jsonl", '{"_id": "a", "title": "Title A", "text": "body a"}\n{"doc_id": "b", "text": "body b"}\n'
    )
    tsv = write(tmp_path / "c.tsv", "a\tTitle A\tbody a\nb\tbody b\n")
    trec = write(
        tmp_path / "c.trec",
        "<DOC>\n<DOCNO> a </DOCNO>\n<TITLE>Title A</TITLE>\nbody a\n</DOC>\n<DOC>\n<DOCNO>b</DOCNO>\nbody b\n</DOC>\n",
    )
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.table({"doc_id": ["a", "b"], "title": ["Title A", ""], "text": ["body a", "body b"]}), parquet)
    for source in (jsonl, tsv, trec, parquet):
        assert [(d.doc_id, d.text) for d in read_docs(source)] == expected, source


def test_queries_in_tsv_jsonl_and_classic_trec_topics(tmp_path):
    tsv = write(tmp_path / "q.tsv", "1\tfirst query\n2\tsecond query\n")
    jsonl = write(
        tmp_path / "q.jsonl", '{"_id": "1", "text": "first query"}\n{"query_id": 2, "text": "second query"}\n'
    )
    topics = write(
        tmp_path / "topics.txt",
        "<top>\n<num> Number: 1\n<title> first query\n<desc> Description:\nlong\n</top>\n"
        "<top>\n<num>2</num><title>\nsecond query\n</title>\n</top>\n",
    )
    for source in (tsv, jsonl, topics):
        assert [(q.query_id, q.text) for q in read_queries(source)] == [("1", "first query"), ("2", "second query")]


@pytest.mark.parametrize(
    "name, content, line, problem",
    [
        ("bad.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "b", "text": \n', 2, "invalid JSON"),
        ("bad.jsonl", '{"_id": "a", "text": "x"}\n\n{"title": "no id"}\n', 3, "needs an id"),
        ("bad.tsv", "a\tok\nb\tone\ttwo\tthree\n", 2, "found 4 fields"),
        ("bad.trec", "<DOC>\n<DOCNO>1</DOCNO>\ntext\n</DOC>\n<DOC>\ntext without id\n</DOC>\n", 5, "without a <DOCNO>"),
        ("bad.trec", "<DOC>\n<DOCNO>1</DOCNO>\ntext\n", 1, "not closed"),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path, name, content, line, problem):
    path = write(tmp_path / name, content)
    with pytest.raises(DataFormatError, match=problem) as err:
        list(read_docs(path))
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}:")


def test_trec_records_on_one_line_each_or_several_to_a_line_are_all_read(tmp_path):
    """A <DOC> that opens and closes on one line is one record: 30 one-line records give 30
    documents (they were read as 15, pairs merged under the first DOCNO)."""
    one_per_line = "".join(f"<DOC><DOCNO>d{i}</DOCNO><TEXT>text {i}</TEXT></DOC>\n" for i in range(30))
    docs = list(read_docs(write(tmp_path / "lines.trec", one_per_line)))
    assert [(d.doc_id, d.text) for d in docs] == [(f"d{i}", f"text {i}") for i in range(30)]
    mixed = "<DOC><DOCNO>a</DOCNO>alpha</DOC> <doc>\n<DOCNO>b</DOCNO>\nbeta\ngamma</doc>\n"
    assert [(d.doc_id, d.text) for d in read_docs(write(tmp_path / "mixed.trec", mixed))] == [
        ("a", "alpha"),
        ("b", "beta gamma"),
    ]
    topics = "<top><num> Number: 1 <title> first</top><top><num> 2 <title> second</top>\n"
    assert [(q.query_id, q.text) for q in read_queries(write(tmp_path / "t.trec", topics))] == [
        ("1", "first"),
        ("2", "second"),
    ]
    for content, problem in [
        ("<DOC><DOCNO>a</DOCNO>x</DOC> stray\n", "text outside a <doc> record"),
        ("<DOC><DOCNO>a</DOCNO>x</DOC></DOC>\n", "</doc> without a <doc>"),
        ("<DOC><DOCNO>a</DOCNO>x<DOC><DOCNO>b</DOCNO></DOC>\n", "opened before the record at line 1 closed"),
    ]:
        with pytest.raises(DataFormatError, match=problem):
            list(read_docs(write(tmp_path / "bad.trec", content)))


@pytest.mark.parametrize(
    "name, content, read, first_id",
    [
        ("d.jsonl", '{"_id": "d1", "text": "x"}\n', lambda p: next(read_docs(p)).doc_id, "d1"),
        ("d.tsv", "d1\tx\n", lambda p: next(read_docs(p)).doc_id, "d1"),
        ("d.trec", "<DOC><DOCNO>d1</DOCNO>x</DOC>\n", lambda p: next(read_docs(p)).doc_id, "d1"),
        ("q.tsv", "q1\tquestion\n", lambda p: next(read_queries(p)).query_id, "q1"),
        ("qrels.txt", "q1 0 d1 1\n", lambda p: next(iter(read_qrels(p))), "q1"),
        ("qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n", lambda p: next(iter(read_qrels(p))), "q1"),
        ("r.run", "q1 Q0 d1 1 0.5 t\n", lambda p: next(iter(read_run(p))), "q1"),
    ],
)
def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path, name, content, read, first_id):
    """Files saved by editors that write a UTF-8 BOM: the first id is ``q1``, not ``\\ufeffq1``."""
    assert read(write(tmp_path / name, "\ufeff" + content)) == first_id


@pytest.mark.parametrize(
    "name, content, read, problem",
    [
        ("d.jsonl", '{"_id": "doc one", "text": "x"}\n', read_docs, "'doc one' is empty or holds whitespace"),
        ("d.jsonl", '{"_id": "", "text": "x"}\n', read_docs, "'' is empty or holds whitespace"),
        ("d.jsonl", '{"_id": 1.0, "text": "x"}\n', read_docs, "1.0 is not a string"),
        ("d.jsonl", '{"_id": true, "text": "x"}\n', read_docs, "True is not a string"),
        ("q.jsonl", '{"_id": "q1", "text": null}\n', read_queries, "'text' must be a string, not None"),
        ("d.jsonl", '{"_id": "d1", "title": 3, "text": "x"}\n', read_docs, "'title' must be a string, not 3"),
        ("d.tsv", "doc one\tx\n", read_docs, "'doc one' is empty or holds whitespace"),
        ("d.trec", "<DOC><DOCNO>doc one</DOCNO>x</DOC>\n", read_docs, "DOCNO 'doc one'"),
        ("qrels.tsv", "query-id\tcorpus-id\tscore\nq1\tdoc one\t2\n", read_qrels, "'doc one' is empty or holds"),
        ("qrels.txt", "q1 0 d1 1\nq1 0 d2 1.7\n", read_qrels, "relevance '1.7' is not a whole number"),
        ("qrels.txt", "q1 0 d1 inf\n", read_qrels, "relevance 'inf' is not a whole number"),
        ("r.run", "q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 nan t\n", read_run, "score 'nan' is not finite"),
    ],
)
def test_ids_a_run_cannot_carry_and_values_that_cannot_rank_are_refused(tmp_path, name, content, read, problem):
    """Each was read silently before: ids with whitespace or of other JSON types were written raw into
    runs that ``evaluate`` then split wrongly, a null text became the query "None", relevance 1.7
    became 1 and a NaN score broke ranking. Now each names the file and line."""
    path = write(tmp_path / name, content)
    with pytest.raises(DataFormatError, match=problem) as err:
        result = read(path)
        list(result) if not isinstance(result, dict) else None
    assert str(err.value).startswith(f"{path}:{content.count(chr(10))}:")


@pytest.mark.parametrize("ids, problem", [(["a", "doc b"], "row 2: id 'doc b'"), ([1.0, 2.0], "row 1: id 1.0 is not")])
def test_parquet_ids_are_checked_like_every_other_format(tmp_path, ids, problem):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"doc_id": ids, "text": ["x", "y"]}), path)
    with pytest.raises(DataFormatError, match=problem):
        list(read_docs(path))


def test_json_integer_ids_are_read_as_their_digits(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"_id": 7, "text": "seven"}\n')
    assert [(d.doc_id, d.text) for d in read_docs(path)] == [("7", "seven")]


def test_duplicate_document_and_query_ids_are_an_error(tmp_path):
    path = write(tmp_path / "dup.tsv", "a\tone\nb\ttwo\na\tthree\n")
    with pytest.raises(DuplicateIdError, match=r"dup.tsv: document id 'a' appears more than once \(lines 1 and 3\)"):
        list(read_docs(path))
    with pytest.raises(DuplicateIdError, match=r"query id 'a' .*\(lines 1 and 3\)"):  # re-ranking kept the last 'a'
        list(read_queries(path))
    assert [q.query_id for q in read_queries(path, check_duplicates=False)] == ["a", "b", "a"]


def test_a_missing_path_or_unknown_irds_id_fails_at_once():
    with pytest.raises(DatasetUnavailableError, match="no-such/dataset: no such file or directory"):
        next(read_docs("no-such/dataset"))
    with pytest.raises(DatasetUnavailableError, match="'no-such/dataset' is not an ir_datasets id"):
        next(read_docs("irds:no-such/dataset"))


def test_irds_dataset_read_through_ir_datasets(tmp_path):
    """A dataset registered with ir_datasets from local files is read through its API."""
    import ir_datasets
    from ir_datasets.formats import TrecQrels, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    docs = write(tmp_path / "docs.tsv", "d1\tfirst doc\nd2\tsecond doc\n")
    queries = write(tmp_path / "queries.tsv", "q1\tquestion\n")
    qrels = write(tmp_path / "qrels.txt", "q1 0 d2 1\n")
    name = f"rayir-test/{tmp_path.name}"
    ir_datasets.registry.register(
        name,
        ir_datasets.Dataset(
            TsvDocs(LocalDownload(docs)),
            TsvQueries(LocalDownload(queries)),
            TrecQrels(LocalDownload(qrels), {1: "rel"}),
        ),
    )
    assert [(d.doc_id, d.text) for d in read_docs(f"irds:{name}")] == [("d1", "first doc"), ("d2", "second doc")]
    assert [(q.query_id, q.text) for q in read_queries(name)] == [("q1", "question")]
    assert read_qrels(name) == {"q1": {"d2": 1}}


def test_irds_dataset_without_local_files_fails_clearly():
    with pytest.raises(DatasetUnavailableError, match="could not be downloaded"):
        next(read_docs("irds:vaswani"))


def test_run_files_round_trip_and_reject_bad_lines(tmp_path):
    run = {"q2": {"d1": 0.5, "d2": 1.5}, "q1": {"d3": 2.0, "d0": 2.0}}
    path = write_run(run, tmp_path / "out" / "x.run", tag="t")
    lines = path.read_text().splitlines()
    assert lines == ["q1 Q0 d0 1 2 t", "q1 Q0 d3 2 2 t", "q2 Q0 d2 1 1.5 t", "q2 Q0 d1 2 0.5 t"]
    assert read_run(path) == {"q1": {"d0": 2.0, "d3": 2.0}, "q2": {"d1": 0.5, "d2": 1.5}}
    bad = write(tmp_path / "bad.run", "q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n")
    with pytest.raises(DataFormatError, match="bad.run:2: document 'd1' ranked twice"):
        read_run(bad)


def test_qrels_trec_and_beir_layouts(tmp_path):
    trec = write(tmp_path / "q.txt", "1 0 a 1\n1 0 b 0\n2 0 a 2\n")
    beir = write(tmp_path / "q.tsv", "query-id\tcorpus-id\tscore\n1\ta\t1\n1\tb\t0\n2\ta\t2\n")
    assert read_qrels(trec) == read_qrels(beir) == {"1": {"a": 1, "b": 0}, "2": {"a": 2}}
    conflict = write(tmp_path / "c.txt", "1 0 a 1\n1 0 a 2\n")
    with pytest.raises(DataFormatError, match="c.txt:2: conflicting"):
        read_qrels(conflict)


def test_scifact_counts():
    root = shared_path("data", "scifact")
    assert sum(1 for _ in read_docs(root)) == 5183
    assert sum(1 for _ in read_queries(root)) == 1109
    assert sum(1 for _ in read_queries(root, split="test")) == 300
    assert sum(len(v) for v in read_qrels(root, "test").values()) == 339
    assert sum(len(v) for v in read_qrels(root, "train").values()) == 919
    first = json.loads((root / "corpus.jsonl").open().readline())
    assert next(read_docs(root)).text == f"{first['title']} {first['text']}"


def test_vaswani_counts():
    root = shared_path("data", "vaswani")
    assert sum(1 for _ in read_docs(root / "doc-text.trec")) == 11429
    topics = list(read_queries(root / "query-text.trec"))
    assert len(topics) == 93 and topics[0].text.startswith("MEASUREMENT OF DIELECTRIC")
    assert sum(len(v) for v in read_qrels(root / "qrels").values()) == 2083


def test_readers_stream(tmp_path):
    """The first record comes before the reader has looked at the rest of the file."""
    path = write(tmp_path / "c.jsonl", '{"_id": "a", "text": "x"}\n' + "not json\n" * 3)
    reader = read_docs(path)
    assert next(reader).doc_id == "a"
    with pytest.raises(DataFormatError):
        next(reader)


def test_bytes_that_are_not_utf8_and_truncated_gzip_name_the_file_and_line(tmp_path):
    """These were tracebacks: ``'utf-8' codec can't decode byte 0xe9 in position 322`` (no file, no
    line) and gzip's ``Compressed file ended before the end-of-stream marker was reached``."""
    import gzip

    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(DataFormatError, match=r"latin.jsonl:2: not UTF-8 \(byte 0xe9 at column 26\)"):
        list(read_docs(latin))
    whole = gzip.compress(("".join(f'{{"_id": "d{i}", "text": "text {i}"}}\n' for i in range(2000))).encode())
    truncated = tmp_path / "docs.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataFormatError, match=r"docs.jsonl.gz:\d+: the compressed file is truncated or corrupt"):
        list(read_docs(truncated))
    with pytest.raises(DataFormatError, match="is a directory"):
        read_run(tmp_path)


def test_a_corrupt_parquet_file_is_named(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"doc_id": ["a"], "text": ["x"]}), path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataFormatError, match="docs.parquet: not a readable Parquet file"):
        list(read_docs(path))


def test_duplicate_ids_name_both_lines_or_rows_in_every_reader(tmp_path):
    trec = write(
        tmp_path / "d.trec",
        "<DOC><DOCNO>x</DOCNO>a</DOC>\n<DOC><DOCNO>y</DOCNO>b</DOC>\n<DOC>\n<DOCNO>x</DOCNO>\n</DOC>\n",
    )
    with pytest.raises(DuplicateIdError, match=r"d.trec: document id 'x' appears more than once \(lines 1 and 3\)"):
        list(read_docs(trec))
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.table({"doc_id": ["p", "q", "p"], "text": ["1", "2", "3"]}), parquet)
    with pytest.raises(DuplicateIdError, match=r"\(row 1 and row 3\)"):
        list(read_docs(parquet))
