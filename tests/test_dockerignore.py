""".dockerignore rules, checked against the examples Docker documents."""
from __future__ import annotations

import pytest

from runner.builder.dockerignore import Matcher, clean

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`


def excluded(patterns: str, path: str) -> bool:
    return Matcher.from_text(patterns).excluded(path)


@pytest.mark.parametrize("patterns, path, expected", [
    # Docker's documented examples
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/temp", True),
    ("*/temp*", "temporary.txt", False),
    ("*/temp*", "a/b/temp", False),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("*/*/temp*", "somedir/temporary.txt", False),
    ("temp?", "tempa", True),
    ("temp?", "tempab", False),
    ("temp?", "sub/tempa", False),
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/c/x.go", True),
    ("**/*.go", "a/b/c/x.gone", False),
    ("*.md\n!README*.md\nREADME-secret.md", "README.md", False),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "other.md", True),
    ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
    # anchoring, cleaning, comments, directories
    ("foo", "foo", True),
    ("foo", "sub/foo", False),
    ("/foo", "foo", True),
    ("foo/", "foo/bar", True),
    ("./foo//bar/../baz", "foo/baz/x", True),
    ("# foo\n\n   \n", "foo", False),
    ("  foo  ", "foo", True),
    ("build", "build/deep/file.o", True),
    ("build\n!build/keep", "build/keep", False),
    ("build\n!build/keep", "build/keep/inner", False),
    ("build\n!build/keep", "build/other", True),
    ("a/**", "a/b/c", True),
    ("a/**", "b", False),
    ("a/**/z", "a/z", True),
    ("a/**/z", "a/b/c/z", True),
    ("**", "anything/at/all", True),
    ("[a-c]x", "bx", True),
    ("[!a-c]x", "bx", False),
    ("[!a-c]x", "dx", True),
    ("\\*", "*", True),
    ("\\*", "x", False),
    ("*", ".hidden", True),
    ("*.txt", "dir/a.txt", False),
])
def test_docker_rules(patterns, path, expected):
    assert excluded(patterns, path) is expected


def test_clean():
    assert clean("/a/b/") == "a/b"
    assert clean("a/./b/../c") == "a/c"
    assert clean("/") == "/"
    assert clean("") == "."


def test_skip_dir_shortcut():
    assert Matcher.from_text("node_modules").may_skip_dir("node_modules")
    m = Matcher.from_text("build\n!build/keep")
    assert not m.may_skip_dir("build")
    assert m.may_skip_dir("other")


def test_bad_pattern():
    with pytest.raises(ValueError):
        Matcher.from_text("[abc")
    with pytest.raises(ValueError):
        Matcher.from_text("!")
