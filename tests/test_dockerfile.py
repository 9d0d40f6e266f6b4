"""The Dockerfile front end: parsing through Moby's parser, the typed
instructions, Docker's substitution rules and the stage graph."""
from __future__ import annotations

import pytest

from runner.builder import dockerfile as d

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`


def parse(text: str) -> d.Dockerfile:
    return d.parse_text(text, "Dockerfile")


def sub(text: str, env: dict[str, str] | None = None, escape: str = "\\") -> str:
    return d.Substitution(env or {}, escape).word(text)


def test_every_instruction_becomes_its_type():
    df = parse("""# a comment
ARG TAG=1.36
FROM --platform=linux/amd64 busybox:${TAG} AS Base
RUN echo one \\
    two
RUN ["echo", "exec"]
COPY --chown=10:20 --chmod=0640 a b* /dst/
ADD --chown=app x.tar /opt/
ENV A=1 B="x y"
ENV OLD form value
ARG X Y=2
WORKDIR /w
USER app:grp
CMD ["sh"]
ENTRYPOINT exec top
EXPOSE 80/tcp 53/udp
LABEL a=b "c d"="e f"
VOLUME ["/v1", "/v2"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost || exit 1
ONBUILD RUN echo triggered
SHELL ["/bin/sh", "-ec"]
MAINTAINER someone

FROM scratch
COPY --from=base /bin/busybox /busybox
""")
    assert [a.pairs for a in df.global_args] == [[("TAG", "1.36")]]
    base, second = df.stages
    assert (base.base.image, base.base.name, base.base.platform) == \
        ("busybox:${TAG}", "base", "linux/amd64")
    kinds = [type(i).__name__ for i in base.instructions]
    assert kinds == ["Run", "Run", "Copy", "Copy", "Env", "Env", "Arg", "Workdir", "User",
                     "Command", "Command", "Expose", "Label", "Volume", "StopSignal",
                     "Healthcheck", "OnBuild", "Shell", "Maintainer"]
    run1, run2, copy, add, env, env_old, arg = base.instructions[:7]
    assert run1.command == "echo one     two" and run1.line == 4 and run1.end_line == 5
    assert run2.command == ["echo", "exec"]
    assert (copy.kind, copy.sources, copy.dest, copy.chown, copy.chmod) == \
        ("COPY", ["a", "b*"], "/dst/", "10:20", "0640")
    assert (add.kind, add.chown) == ("ADD", "app")
    assert env.pairs == [("A", "1"), ("B", '"x y"')]
    assert env_old.pairs == [("OLD", "form value")]
    assert arg.pairs == [("X", None), ("Y", "2")]
    hc = base.instructions[15]
    assert hc.test == ["CMD-SHELL", "wget -q localhost || exit 1"]
    assert hc.options == {"interval": "5s", "retries": "3"}
    assert base.instructions[16].trigger == "RUN echo triggered"
    assert base.instructions[17].argv == ["/bin/sh", "-ec"]
    assert second.base.image == "scratch" and second.instructions[0].from_ == "base"
    assert df.stage("base") is base and df.stage("1") is second


@pytest.mark.parametrize("text, message", [
    ("FROM busybox\nFORM x\n", "Dockerfile:2: unknown instruction: FORM"),
    ("RUN echo\nFROM busybox\n", "Dockerfile:1: no build stage in current context"),
    ("FROM busybox\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
    ("FROM busybox\nCOPY onlyone\n", "Dockerfile:2: COPY requires at least 2 arguments"),
    ("FROM busybox\nCOPY --frm=x a b\n", "Dockerfile:2: unknown flag: --frm"),
    ("FROM a b c d\n", "Dockerfile:1: FROM requires either one or three arguments"),
    ("FROM a AS x\nFROM b AS x\n", "Dockerfile:2: duplicate stage name"),
    ("FROM a\nSHELL /bin/bash\n", "Dockerfile:2: SHELL requires the arguments to be in JSON"),
    ("FROM a\nONBUILD FROM b\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nRUN <<EOF\necho\n", "Dockerfile: unterminated heredoc"),
    ("# only a comment\n", "Dockerfile: file with no instructions"),
    ("ARG A=1\n", "Dockerfile: the file has no FROM instruction"),
])
def test_errors_name_file_and_line(text, message):
    with pytest.raises(d.DockerfileError) as e:
        parse(text)
    assert str(e.value).startswith(message)


def test_heredocs_are_supported_by_the_parser():
    df = parse("FROM a\nRUN <<EOF\necho hi\necho there\nEOF\n"
               "RUN python3 <<PY > /out\nprint(1)\nPY\n"
               "RUN <<-EOT\n\techo tab\n\tEOT\n"
               "COPY <<EOF /etc/motd\nhello\nEOF\n")
    lone, fed, dash, copy = df.stages[0].instructions
    assert d.run_script(lone) == "echo hi\necho there\n"
    assert d.run_script(fed) == "python3 <<PY > /out\nprint(1)\nPY\n"
    assert d.run_script(dash) == "echo tab\n"
    assert copy.sources == ["<<EOF"] and copy.heredocs == (("EOF", "hello\n"),)


def test_escape_directive():
    df = parse("# escape=`\nFROM a\nRUN echo a `\n  b\nCOPY x C:\\dir\\\n")
    assert df.escape == "`"
    run, copy = df.stages[0].instructions
    assert run.command == "echo a   b"
    assert d.expand(copy, {}, df.escape)[0].dest == "C:\\dir\\"


@pytest.mark.parametrize("word, expected", [
    ("$A", "a"), ("${A}", "a"), ("x${A}y", "xay"), ("$A$B", "ab"),
    ("${UNSET}", ""), ("$UNSET-x", "-x"),
    ("${UNSET:-def}", "def"), ("${EMPTY:-def}", "def"), ("${EMPTY-def}", ""),
    ("${UNSET-def}", "def"), ("${A:-def}", "a"),
    ("${A:+alt}", "alt"), ("${UNSET:+alt}", ""), ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"), ("${UNSET:-${A}x}", "ax"),
    ("'$A'", "$A"), ('"$A b"', "a b"), ("\\$A", "$A"), ('"\\$A"', "$A"),
    ("a\\ b", "a b"), ('"say \\"hi\\""', 'say "hi"'), ("$", "$"), ("$1x", "x"),
    ("${A:-'q'}", "a"), ("${UNSET:-'q u'}", "q u"),
])
def test_substitution_follows_docker(word, expected):
    assert sub(word, {"A": "a", "B": "b", "EMPTY": ""}) == expected


def test_substitution_errors():
    with pytest.raises(d.DockerfileError, match="must be set"):
        sub("${X:?must be set}")
    with pytest.raises(d.DockerfileError, match="missing '}'"):
        sub("${X")
    with pytest.raises(d.DockerfileError, match="unsupported modifier"):
        sub("${X/a/b}")
    assert sub("${X:?oops}", {"X": "v"}) == "v"


def test_expand_only_where_docker_does():
    df = parse("FROM a\nRUN echo $A\nCMD echo $A\nWORKDIR /w/$A\n"
               "ENV P=$A/\"q r\"\nCOPY --chown=$U ${A}* /d/$A/\nEXPOSE $PORTS\n")
    env = {"A": "x", "U": "7:8", "PORTS": "80 443/udp"}
    run, cmd, wd, e, cp, ex = (d.expand(i, env)[0] for i in df.stages[0].instructions)
    assert run.command == "echo $A" and cmd.command == "echo $A"
    assert wd.path == "/w/x"
    assert e.pairs == [("P", "x/q r")]
    assert (cp.chown, cp.sources, cp.dest) == ("7:8", ["x*"], "/d/x/")
    assert ex.ports == ["80", "443/udp"]
    _, used = d.expand(df.stages[0].instructions[3], env)
    assert used == {"A"}


def test_args_before_from_and_build_args():
    df = parse("ARG V=1\nARG IMG=busybox:$V\nFROM $IMG\nFROM ${OTHER:-alpine}\n")
    assert d.base_of(df, df.stages[0], d.global_scope(df, {})) == "busybox:1"
    assert d.base_of(df, df.stages[0], d.global_scope(df, {"V": "2"})) == "busybox:2"
    assert d.base_of(df, df.stages[1], d.global_scope(df, {})) == "alpine"


def test_only_needed_stages():
    df = parse("FROM busybox AS a\nFROM busybox AS b\nRUN x\n"
               "FROM b AS c\nCOPY --from=a /x /x\nFROM busybox AS unused\n"
               "FROM busybox\nCOPY --from=2 /y /y\n")
    names = [s.name for s in d.needed_stages(df, None)]
    assert names == ["a", "b", "c", None]
    assert [s.name for s in d.needed_stages(df, "b")] == ["b"]
    assert [s.name for s in d.needed_stages(df, "C")] == ["a", "b", "c"]
    with pytest.raises(d.DockerfileError, match="target stage 'nope' could not be found"):
        d.needed_stages(df, "nope")


def test_parse_onbuild_trigger():
    ins = d.parse_instruction("COPY a b", "onbuild trigger", 3)
    assert isinstance(ins, d.Copy) and ins.line == 3


def test_exec_or_shell():
    assert d.exec_or_shell("echo hi", ["/bin/sh", "-c"]) == ["/bin/sh", "-c", "echo hi"]
    assert d.exec_or_shell(["a", "b"], ["/bin/sh", "-c"]) == ["a", "b"]


def test_copy_heredoc_expands_unless_quoted():
    df = parse('FROM a\nCOPY <<EOF /x\nhi $W "q" \\$W\nEOF\nCOPY <<"EOF" /y\nhi $W\nEOF\n')
    plain, quoted = (d.expand(i, {"W": "w"})[0] for i in df.stages[0].instructions)
    assert plain.heredocs == (("EOF", 'hi w "q" $W\n'),)
    assert quoted.heredocs == (("EOF", "hi $W\n"),)
