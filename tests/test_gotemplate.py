"""``--format`` templates print what Go's text/template prints for Docker:
templates from Docker's documentation and from common scripts with the
output Docker gives, Go's semantics (range/with/if chains, variables, trim
markers, printf verbs, map printing), Docker's table layout, and every bad
template as one ``TemplateError`` line (exit 125), never echoed back."""
import pytest

from runner.cli.gofmt import format_float, sprintf, tabwrite, to_json
from runner.cli.gotemplate import TemplateError, parse, render, render_table
from runner.errors import DockishError

from .runbed import dockish, one_error_line

DATA = {"Name": "web", "State": {"Running": True, "Pid": 42}, "Cmd": ["sh", "-c", "x"],
        "Labels": {"a": "b"}, "Out": "line1\nline2", "Empty": None}

# What `docker inspect` hands a template (the fields the docs' examples use).
INSPECT = {
    "Id": "4fa6e0f0c678", "Name": "/web", "RepoTags": ["busybox:latest", "bb:1"],
    "State": {"Status": "running", "Running": True, "Pid": 1234, "ExitCode": 0, "Health": None},
    "Config": {"Image": "busybox", "Cmd": ["sh", "-c", "sleep 1"], "Env": ["PATH=/bin", "A=1"],
               "Labels": {"com.example.vendor": "ACME", "version": "1.0"}},
    "NetworkSettings": {
        "Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "front": {"IPAddress": "10.1.0.5"}},
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                  "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8443"}]}},
    "LogPath": "/var/lib/x.log", "SizeRw": 1000000.0, "Ratio": 0.5,
}

# `docker ps --format` rows (Docker's ps context: strings, Labels as k=v,...).
PS = {"ID": "4fa6e0f0c678", "Image": "busybox", "Names": "web", "Status": "Up 2 minutes",
      "Labels": "com.example.vendor=ACME,version=1.0", "Command": '"sh"'}


@pytest.mark.pure
def test_fields_print_as_go_prints_them():
    assert render("{{.Name}} {{.State.Running}} {{.State.Pid}}", DATA) == "web true 42"
    assert render("{{.Cmd}}", DATA) == "[sh -c x]"
    assert render("{{.Labels}}", DATA) == "map[a:b]"                  # Go's map, not JSON
    assert render("{{.Missing}} {{.Empty}} {{.Missing.Deeper}}", DATA) == \
        "<no value> <no value> <no value>"


@pytest.mark.pure
def test_json_and_escapes_stay_apart():
    assert render("{{json .Out}}", DATA) == '"line1\\nline2"'       # the value's \n kept
    assert render("{{.Name}}\\t{{ .State.Pid }}\\n", DATA) == "web\t42\n"
    assert render("{{json .State}}", DATA) == '{"Running":true,"Pid":42}'   # Go's compact form
    assert render("{{.Out}}", {"Out": "a\\tb"}) == "a\\tb"           # never unescaped in values


# Docker's "Format command and log output" page and `docker inspect` examples.
DOCS = [
    ("{{join .Config.Cmd \" , \"}}", INSPECT, "sh , -c , sleep 1"),
    ("{{json .Config.Labels}}", INSPECT, '{"com.example.vendor":"ACME","version":"1.0"}'),
    ("{{lower .State.Status}} {{upper .State.Status}}", INSPECT, "running RUNNING"),
    ("{{split .LogPath \"/\"}}", INSPECT, "[ var lib x.log]"),
    ("{{title .Config.Image}}", INSPECT, "Busybox"),
    ("{{title \"it's a_b x-y éa\"}}", {}, "It'S A_b X-Y Éa"),
    ("{{range .Config.Env}}{{println .}}{{end}}", INSPECT, "PATH=/bin\nA=1\n"),
    ("{{pad .Config.Image 1 2}}|", INSPECT, " busybox  |"),
    ("{{truncate .Id 4}}", INSPECT, "4fa6"),
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", INSPECT, "172.17.0.210.1.0.5"),
    ("{{index .Config.Labels \"com.example.vendor\"}}", INSPECT, "ACME"),
    ("{{index .Config.Labels \"absent\"}}", INSPECT, ""),        # map[string]string zero
    ("{{json .Config}}", INSPECT,
     '{"Image":"busybox","Cmd":["sh","-c","sleep 1"],"Env":["PATH=/bin","A=1"],'
     '"Labels":{"com.example.vendor":"ACME","version":"1.0"}}'),
    ("{{.State.Running}}", INSPECT, "true"),
    ("{{range $p, $conf := .NetworkSettings.Ports}} {{$p}} -> {{(index $conf 0).HostPort}} "
     "{{end}}", INSPECT, " 443/tcp -> 8443  80/tcp -> 8080 "),
    ("{{index .RepoTags 0}}", INSPECT, "busybox:latest"),
    ("{{.Config.Labels}}", INSPECT, "map[com.example.vendor:ACME version:1.0]"),
    ("{{.SizeRw}} {{.Ratio}}", INSPECT, "1e+06 0.5"),
    ("{{if .State.Running}}up{{else}}down{{end}}", INSPECT, "up"),
    ("{{len .RepoTags}}", INSPECT, "2"),
    ("{{.Names}}: {{.Status}}", PS, "web: Up 2 minutes"),
    ("{{.Label \"com.example.vendor\"}}|{{.Label \"nope\"}}|", PS, "ACME||"),
    ("{{.ID}}\\t{{.Image}}", PS, "4fa6e0f0c678\tbusybox"),
]


@pytest.mark.pure
@pytest.mark.parametrize("template,obj,want", DOCS)
def test_docker_documentation_templates(template, obj, want):
    assert render(template, obj) == want


GO = [
    # control structures
    ("{{range .L}}[{{.}}]{{else}}none{{end}}", {"L": []}, "none"),
    ("{{range .L}}[{{.}}]{{else}}none{{end}}", {}, "none"),
    ("{{range $i, $v := .L}}{{$i}}:{{$v}} {{end}}", {"L": ["a", "b"]}, "0:a 1:b "),
    ("{{range $k, $v := .M}}{{$k}}={{$v}},{{end}}", {"M": {"b": 2, "a": 1, "c": 3}}, "a=1,b=2,c=3,"),  # noqa: E501
    ("{{range .M}}{{.}}{{end}}", {"M": {"b": 2, "a": 1}}, "12"),          # values in key order
    ("{{range .L}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}",
     {"L": [1, 2, 3, 4, 5]}, "13"),
    ("{{with .A}}{{.B}}{{else}}no{{end}}", {"A": {"B": "x"}}, "x"),
    ("{{with .A}}{{.B}}{{else}}no{{end}}", {"A": {}}, "no"),
    ("{{with .A}}a{{else with .B}}{{.}}{{end}}", {"B": "b"}, "b"),
    ("{{if eq .N 1}}one{{else if eq .N 2}}two{{else if eq .N 3}}three{{else}}many{{end}}",
     {"N": 3}, "three"),
    ("{{if and .A (not .B)}}y{{end}}", {"A": 1, "B": ""}, "y"),
    ("{{if or .Missing .Empty}}y{{else}}n{{end}}", {"Empty": []}, "n"),
    # variables: declaration, assignment to the outer one, the root
    ("{{$x := \"a\"}}{{range .L}}{{$x = .}}{{end}}{{$x}}", {"L": ["b", "c"]}, "c"),
    ("{{range .L}}{{$.Root}}{{.}}{{end}}", {"L": [1, 2], "Root": "r"}, "r1r2"),
    ("{{$n := len .L}}{{if gt $n 1}}{{$n}} items{{end}}", {"L": [1, 2]}, "2 items"),
    ("{{with $c := .C}}{{$c.D}}{{end}}", {"C": {"D": 4}}, "4"),
    # trim markers and comments
    ("a  {{- .X -}}  b", {"X": 1}, "a1b"),
    ("a {{- /* gone */ -}} b{{/* also */}}", {}, "ab"),
    ("{{- .X}}\\n  {{- .Y -}}\\n", {"X": 1, "Y": 2}, "12"),
    ("{{.X -}}\n\n  x", {"X": 1}, "1x"),
    # pipelines, parentheses, constants
    ("{{.X | printf \"<%s>\"}}", {"X": "v"}, "<v>"),
    ("{{\"abc\" | len | printf \"%03d\"}}", {}, "003"),
    ("{{(index .L 1).N}}", {"L": [{"N": 1}, {"N": 2}]}, "2"),
    ("{{printf \"%v %v %v %v %v\" 1 1.5 1e3 true nil}}", {}, "1 1.5 1000 true <nil>"),
    ("{{`a\\tb`}} {{'x'}} {{0x1F}} {{-2}} {{1_000}}", {}, "a\\tb 120 31 -2 1000"),
    # functions
    ("{{slice .S 1 3}} {{slice .L 1}} {{index .S 0}}", {"S": "hello", "L": [1, 2, 3]},
     "el [2 3] 104"),
    ("{{print 1 2 \"a\" \"b\" 3}}|{{println 1 \"a\"}}|", {}, "1 2ab3|1 a\n|"),
    ("{{html .H}} {{js .J}} {{urlquery .U}}", {"H": "<a href='x'>&", "J": "it's \"<x>\"",
                                              "U": "a b&c=d/é"},
     "&lt;a href=&#39;x&#39;&gt;&amp; it\\'s \\\"\\u003Cx\\u003E\\\" a+b%26c%3Dd%2F%C3%A9"),
    ("{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1 2}} {{ne \"a\" \"b\"}} {{eq 1 2 3 1}}", {},
     "true true true false true true"),
    ("{{eq .Missing nil}} {{eq .S nil}}", {"S": "x"}, "true false"),
    ("{{index .M \"a\" \"b\"}}", {"M": {"a": {"b": "deep"}}}, "deep"),
    ("{{index .M \"zz\"}}", {"M": {"a": 1}}, "<no value>"),
    # Go's printing of values
    ("{{.M}}", {"M": {"b": [1, 2], "a": {"y": None, "x": True}}}, "map[a:map[x:true y:<nil>] b:[1 2]]"),  # noqa: E501
    ("{{.L}} {{.E}} {{.F}}", {"L": [], "E": {}, "F": [[1], ["a b"]]}, "[] map[] [[1] [a b]]"),
    ("{{.A}} {{.B}} {{.C}} {{.D}} {{.E}}", {"A": 1000000.0, "B": 123456.0, "C": 1e-5, "D": 2.0,
                                            "E": 1234567.5}, "1e+06 123456 1e-05 2 1.2345675e+06"),
    # define/template/block
    ("{{define \"row\"}}<{{.}}>{{end}}{{range .L}}{{template \"row\" .}}{{end}}",
     {"L": ["a", "b"]}, "<a><b>"),
    ("{{block \"b\" .X}}[{{.}}]{{end}}", {"X": 7}, "[7]"),
    ("{{define \"v\"}}{{$}}{{end}}{{template \"v\"}}", {"X": 1}, "<no value>"),
    # Docker's method-like .Label on objects with Labels
    ("{{.Label \"k\"}}", {"Labels": {"k": "v"}}, "v"),
]


@pytest.mark.pure
@pytest.mark.parametrize("template,obj,want", GO)
def test_go_template_semantics(template, obj, want):
    assert render(template, obj) == want


@pytest.mark.pure
def test_printf_verbs_as_go():
    assert sprintf("%-10s|%10s|", ["ab", "cd"]) == "ab        |        cd|"
    assert sprintf("%d %5d %-5d| %05d %+d %x %X %o %b %c %U", [7, 7, 7, -7, 7, 255, 255, 8, 5,
                                                             65, 65]) == \
        "7     7 7    | -0007 +7 ff FF 10 101 A U+0041"
    assert sprintf("%q %v %s %t %x", ["a\"b\n", [1, "x"], ["a", "b"], True, "hi"]) == \
        '"a\\"b\\n" [1 x] [a b] true 6869'
    assert sprintf("%f %.2f %8.3f %e %g %g %v", [3.14159, 3.14159, 2.5, 1234.5, 1e6, 0.5, 1e21]) \
        == "3.141590 3.14    2.500 1.234500e+03 1e+06 0.5 1e+21"
    assert sprintf("%.3s|%5.1s|%%", ["abcdef", "xyz"]) == "abc|    x|%"
    # Go's mismatch notation
    assert sprintf("%d %s", ["x"]) == "%!d(string=x) %!s(MISSING)"
    assert sprintf("%s", ["a", 1]) == "a%!(EXTRA int=1)"
    assert sprintf("%s %d", [None, True]) == "%!s(<nil>) %!d(bool=true)"
    assert sprintf("%*d|%-*d|", [4, 1, 3, 2]) == "   1|2  |"


@pytest.mark.pure
def test_floats_and_json_as_go_writes_them():
    for f, v, j in [(1e6, "1e+06", "1000000"), (123456.0, "123456", "123456"),
                    (0.0001, "0.0001", "0.0001"), (1e-7, "1e-07", "1e-7"),
                    (1e21, "1e+21", "1e+21"), (-2.5, "-2.5", "-2.5"), (0.0, "0", "0")]:
        assert (format_float(f), to_json(f)) == (v, j)
    assert format_float(float("inf")) == "+Inf"
    assert to_json({"s": "<a&b>\u2028", "n": None, "l": [1, True]}) == \
        '{"s":"<a&b>\\u2028","n":null,"l":[1,true]}'


@pytest.mark.pure
def test_table_aligns_as_docker_tabwriter():
    rows = [{"ID": "4fa6e0f0c678", "Names": "web", "Status": "Up 2 minutes"},
            {"ID": "0bb", "Names": "a-much-longer-name", "Status": "Exited (0) 1 second ago"}]
    out = render_table("table {{.ID}}\\t{{.Names}}\\t{{.Status}}", rows,
                       {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS"})
    assert out.split("\n") == [
        "CONTAINER ID   NAMES                STATUS",
        "4fa6e0f0c678   web                  Up 2 minutes",
        "0bb            a-much-longer-name   Exited (0) 1 second ago"]
    # minwidth 10: short columns are padded to 10; headers default to the
    # field's words upper-cased; Docker's header functions keep the name
    out = render_table("table {{.A}}\\t{{upper .CreatedAt}}\\t{{json .Tag}}",
                       [{"A": "x", "CreatedAt": "now", "Tag": "t"}])
    assert out.split("\n") == ['A         CREATED AT   TAG', 'x         NOW          "t"']
    assert render_table("table {{.A}}", []) == "A"                  # header even with no rows


@pytest.mark.pure
def test_tabwriter_columns_are_blocks_of_lines():
    # a line without the cell ends the column block (Go's tabwriter)
    assert tabwrite("a\tb\nlonger-than-ten\tc\nno tabs\nx\ty", 10, 3).split("\n") == \
        ["a" + " " * 17 + "b", "longer-than-ten   c", "no tabs", "x" + " " * 9 + "y"]


BAD = [
    ("{{.Name", "template parsing error: template: :1: unclosed action"),
    ("{{foo .Name}}", 'template parsing error: template: :1: function "foo" not defined'),
    ("{{len}}", "template parsing error: template: :1:2: executing \"\" at <len>: "
                "wrong number of args for len: want 1 got 0"),
    ("{{join .Cmd}}", "wrong number of args for join: want 2 got 1"),
    ("{{index .Cmd 5}}", "error calling index: index out of range: 5"),
    ("{{.Name.Deeper}}", "can't evaluate field Deeper in type string"),
    ("{{.Empty.X}}", "nil pointer evaluating interface {}.X"),
    ("{{if .Name}}x", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{$x}}", 'undefined variable "$x"'),
    ("{{if true}}{{$y := 1}}{{end}}{{$y}}", 'undefined variable "$y"'),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{template \"nope\"}}", 'template "nope" not defined'),
    ("{{.Name 1}}", "Name is not a method but has arguments"),
    ("{{upper .State}}", "wrong type for value; expected string"),
    ("{{range .Name}}{{end}}", "range can't iterate over web"),
    ("{{eq 1 \"a\"}}", "incompatible types for comparison"),
    ("{{.Name | .Name}}", "Name is not a method but has arguments"),
    ("{{\"x\" 1}}", "can't give argument to non-function"),
    ("{{(}}", "unclosed left paren"),
    ("{{.Name}}{{\"\\q\"}}", "invalid syntax"),
    ("{{/* open", "unclosed comment"),
    ("{{ # }}", "bad character U+0023 '#'"),
    ("{{" + "(" * 3000 + "1" + ")" * 3000 + "}}", "template: :1:"),
]


@pytest.mark.pure
@pytest.mark.parametrize("template,msg", BAD)
def test_bad_templates_are_one_line_errors(template, msg):
    with pytest.raises(TemplateError) as e:
        render(template, DATA)
    assert msg in str(e.value)
    assert str(e.value).startswith("template parsing error: template: ")
    assert "\n" not in str(e.value)
    assert isinstance(e.value, DockishError) and e.value.exit_code == 125


@pytest.mark.pure
def test_parse_once_execute_many_and_missingkey_error():
    t = parse("{{.A}}-{{.B}}")
    assert [t.execute({"A": i, "B": "x"}) for i in range(3)] == ["0-x", "1-x", "2-x"]
    assert t.execute({"A": 1}) == "1-<no value>"
    with pytest.raises(TemplateError, match='map has no entry for key "B"'):
        t.execute({"A": 1}, missing_key_error=True)
    with pytest.raises(TemplateError, match="function \"nope\" not defined"):
        parse("{{nope}}")


@pytest.mark.pure
def test_values_are_never_template_text():
    # a value that looks like a template or an escape is printed as is
    hostile = {"Name": "{{.Secret}}\\n%s", "Secret": "s3cr3t"}
    assert render("{{.Name}}", hostile) == "{{.Secret}}\\n%s"
    assert render("{{printf .Name}}", hostile) == "{{.Secret}}\\n%!s(MISSING)"
    assert render("{{json .Name}}", hostile) == '"{{.Secret}}\\\\n%s"'


def test_dockish_reports_a_bad_template_as_one_line_exit_125():
    # through the installed CLI: never the template echoed back, never exit 0
    for args, words in [(("version", "--format", "{{foo .Client}}"), ['function "foo" not defined']),  # noqa: E501
                        (("version", "--format", "{{.Client"), ["unclosed action"]),
                        (("info", "--format", "{{index .Images 0}}"), ["error calling index"]),
                        (("version", "--format", "{{.Client.Rootless.X}}"),
                         ["can't evaluate field X in type bool"])]:
        res = dockish(*args)
        one_error_line(res, 125, "template parsing error: template: ", *words)
        assert res.stdout == ""
    res = dockish("version", "--format", "{{with .Client}}{{if .Rootless}}rootless{{end}}{{end}}")
    assert (res.returncode, res.stdout) == (0, "rootless\n")


@pytest.mark.pure
def test_deep_recursion_is_one_error():
    with pytest.raises(TemplateError, match="nested too deeply"):
        render('{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}', {})
