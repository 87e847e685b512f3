"""The vectorised reading of plain table blocks and the block copy of equal-length sequences give
what the general paths give (hypothesis: random tables with quotes, spaces, CRLF, blank lines,
labels of every spelling, ids, splits)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebert_modelzoo.errors import InputError
from ebert_modelzoo.preprocessing import sequence_files
from ebert_modelzoo.preprocessing.sequence_files import SequenceFile
from ebert_modelzoo.tokenizer import DNATokenizer

LABELS = ["1", "0", "", "NA", "-1", "1.0", "true", " 1", "x"]
FIELD = st.text(alphabet="ab1_-. \"", min_size=0, max_size=4)


@st.composite
def tables(draw):
    rows = draw(st.integers(1, 40))
    sep = draw(st.sampled_from([",", "\t"]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    odd = draw(st.booleans())  # quotes, spaces, blank lines, wrong widths: blocks the fast path must leave alone
    lines = []
    for i in range(rows):
        seq = draw(st.text(alphabet="ACGTN" + ("acgt " if odd else ""), min_size=1, max_size=12))
        fields = [draw(FIELD) if odd else f"r{i}", seq, draw(st.sampled_from(LABELS if odd else ["0", "1"])),
                  draw(st.sampled_from(LABELS[:5])), draw(st.sampled_from(["train", "test", "dev"]))]
        if odd and draw(st.integers(0, 9)) == 0:
            fields = fields[:-1] if draw(st.booleans()) else [""]
        lines.append(sep.join(fields))
    last = draw(st.booleans())
    return sep, end.join([sep.join(["id", "sequence", "a", "b", "split"])] + lines) + (end if last else "")


def read_all(path, general: bool, monkeypatch) -> list:
    if general:
        monkeypatch.setattr(sequence_files, "_plain_fields", lambda *args: None)
    try:
        blocks = list(SequenceFile(path, split_column="split").blocks(["a", "b"], 7))
    except InputError as err:
        return [str(err)]
    finally:
        monkeypatch.undo()
    return [(b.rows.tolist(), b.lines.tolist(), b.sequences, b.ids, b.labels.tolist(),
             None if b.splits is None else b.splits.tolist()) for b in blocks]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(table=tables())
def test_plain_blocks_read_as_the_general_path_reads_them(table, tmp_path_factory):
    sep, text = table
    path = tmp_path_factory.mktemp("t") / ("t.csv" if sep == "," else "t.tsv")
    path.write_bytes(text.encode())
    with pytest.MonkeyPatch.context() as mp:
        assert read_all(path, False, mp) == read_all(path, True, mp)


def test_the_fast_path_takes_plain_blocks_and_leaves_quoted_ones(tmp_path, monkeypatch):
    calls = []
    real = sequence_files._plain_fields
    monkeypatch.setattr(sequence_files, "_plain_fields", lambda *a: calls.append(real(*a)) or calls[-1])
    plain, quoted = tmp_path / "p.csv", tmp_path / "q.csv"
    plain.write_text("id,sequence,a\r\nr0,ACGT,1\r\nr1,AC,0\r\n")
    quoted.write_text('id,sequence,a\nr0,"ACGT",1\n')
    list(SequenceFile(plain).blocks(["a"], 10)) + list(SequenceFile(quoted).blocks(["a"], 10))
    assert calls[0] is not None and calls[1] is None


@settings(max_examples=100, deadline=None, derandomize=True)
@given(k=st.integers(1, 6), data=st.data())
def test_equal_length_sequences_tokenise_as_one_by_one(k, data):
    tok = DNATokenizer(k)
    length = k * data.draw(st.integers(1, 12))
    n = data.draw(st.integers(1, 6))
    size = data.draw(st.integers(1, length))
    seqs = [data.draw(st.text(alphabet="ACGTNacgtR", min_size=size, max_size=size)).encode() for _ in range(n)]
    together = tok.encode_centred(seqs, length)
    mixed = tok.encode_centred(seqs + [b"A" * (size % length + 1 if size < length else size - 1 or 1)], length)
    np.testing.assert_array_equal(together, mixed[:n])  # the general path (lengths differ) agrees
