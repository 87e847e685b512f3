"""Error lines: one line, long words and long lines cut in the middle with a count."""
from ebert_modelzoo.errors import MAX_LINE, MAX_WORD, one_line


def test_whitespace_collapses_to_one_line():
    assert one_line("a:\n  b\tc  ") == "a: b c"


def test_a_huge_value_is_elided_with_a_count():
    line = one_line("model_dir: " + "m" * 10**7 + " is bad")
    assert line.startswith("model_dir: mmm") and line.endswith("mmm is bad")
    assert "[9999920 characters left out]" in line and len(line) < MAX_WORD + 60


def test_many_words_are_capped():
    line = one_line(" ".join(["word"] * 10_000))
    assert len(line) <= MAX_LINE and "characters left out" in line
