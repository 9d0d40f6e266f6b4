"""``--format`` templates print values as Go's text/template does."""
from runner.gotemplate import render

DATA = {"Name": "web", "State": {"Running": True, "Pid": 42}, "Cmd": ["sh", "-c", "x"],
        "Labels": {"a": "b"}, "Out": "line1\nline2", "Empty": None}


def test_fields_print_as_go_prints_them():
    assert render("{{.Name}} {{.State.Running}} {{.State.Pid}}", DATA) == "web true 42"
    assert render("{{.Cmd}}", DATA) == "[sh -c x]"
    assert render("{{.Labels}}", DATA) == '{"a": "b"}'
    assert render("{{.Missing}} {{.Empty}} {{.Name.Deeper}}", DATA) == \
        "<no value> <no value> <no value>"


def test_json_and_escapes_stay_apart():
    assert render("{{json .Out}}", DATA) == '"line1\\nline2"'       # the value's \n kept
    assert render("{{.Name}}\\t{{ .State.Pid }}\\n", DATA) == "web\t42\n"
    assert render("{{json .State}}", DATA) == '{"Running": true, "Pid": 42}'
