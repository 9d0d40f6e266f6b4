"""Docker's filter rules (``runner.filters``) and labels (``runner.runtime.labels``)
as pure functions, checked against what moby's ``filters.Args`` and
``daemon/list.go`` do: no containers, no store."""
from __future__ import annotations

import pytest

from runner import filters as flt
from runner.cli.listing import PS_FIELDS, check_ps_template, displayable_ports, ps_image, ps_row
from runner.errors import DockishError, UsageError
from runner.filters import ContainerFacts, ContainerQuery, FilterError, VolumeFacts
from runner.runtime import labels


def ctr(cid: str, name: str, created: float, state: str = "running", code: int = 0,
        **kw) -> ContainerFacts:
    return ContainerFacts(id=cid * 8, name=name, created=created, state=state,
                          running=state in ("running", "paused"), exit_code=code,
                          started=state != "created", image_id=kw.pop("image_id", "sha256:aa"),
                          **kw)


BED = [ctr("a1b2c3d4", "web", 1, labels={"tier": "web", "env": "prod"},
           networks={"bridge": "slirp4netns"}, mounts=[("data", "/data")],
           ports=[(80, 8080, "tcp")]),
       ctr("a1ffffff", "worker", 2, "exited", 3, labels={"tier": "back"},
           networks={"none": "none"}),
       ctr("b0000000", "job", 3, "exited", 0, networks={"host": "host"}, health="none"),
       ctr("c0000000", "fresh", 4, "created", image_id="sha256:bb"),
       ctr("d0000000", "checked", 5, health="healthy", labels={"tier": "web"})]


def names(f: dict, all_: bool = True, limit: int = -1, ancestors=None) -> list[str]:
    return [c.name for c in flt.select_containers(
        BED, ContainerQuery(f, all_, limit, ancestors))]


# ------------------------------------------------------------------ parsing

def test_cli_filters_lowercase_keys_trim_and_keep_sets():
    assert flt.parse_cli(["Label=a=b ", " name = x", "name=x", "label=c"]) == \
        {"label": ["a=b", "c"], "name": ["x"]}


def test_cli_filter_without_equals_is_dockers_flag_error():
    with pytest.raises(UsageError) as e:
        flt.parse_cli(["dangling"])
    assert str(e.value) == ('invalid argument "dangling" for "-f, --filter" flag: bad format '
                            "of filter (expected name=value)")
    assert e.value.exit_code == 125


def test_api_filters_take_both_json_shapes():
    assert flt.from_api({"label": {"a": True, "b": False}, "name": ["x", "y"]}) == \
        {"label": ["a"], "name": ["x", "y"]}
    assert flt.from_api("") == {}


# ------------------------------------------------------------------ containers

def test_unknown_key_is_the_daemons_invalid_filter():
    with pytest.raises(FilterError) as e:
        names({"colour": ["red"]})
    assert str(e.value) == "invalid filter 'colour'" and e.value.exit_code == 1


@pytest.mark.parametrize(("f", "message"), [
    ({"status": ["up"]}, "invalid filter 'status=up': invalid value for state (up): must be "
     "one of created, running, paused, restarting, removing, exited, dead"),
    ({"health": ["ok"]}, "invalid filter 'health=ok': invalid value for health (ok): must be "
     "one of none, starting, healthy, unhealthy"),
    ({"exited": ["x"]}, "invalid filter 'exited=x': strconv.Atoi: parsing \"x\": invalid "
     "syntax"),
    ({"before": ["nope"]}, "No such container: nope"),
])
def test_bad_values_are_refused_in_dockers_words(f, message):
    with pytest.raises(FilterError) as e:
        names(f)
    assert str(e.value) == message


def test_newest_first_and_running_only_without_all():
    assert names({}) == ["checked", "fresh", "job", "worker", "web"]
    assert names({}, all_=False) == ["checked", "web"]


def test_same_key_is_or_different_keys_are_and():
    assert names({"status": ["exited", "created"]}) == ["fresh", "job", "worker"]
    assert names({"status": ["exited"], "name": ["work"]}) == ["worker"]


def test_label_values_must_all_match():
    assert names({"label": ["tier"]}) == ["checked", "worker", "web"]
    assert names({"label": ["tier=web"]}) == ["checked", "web"]
    assert names({"label": ["tier=web", "env"]}) == ["web"]
    assert names({"label": ["tier=web", "env=dev"]}) == []


def test_name_is_a_regex_with_or_without_the_slash():
    assert names({"name": ["^/w"]}) == ["worker", "web"]
    assert names({"name": ["^web$"]}) == ["web"]
    assert names({"name": ["o"]}) == ["job", "worker"]


def test_id_is_a_unique_prefix():
    assert names({"id": ["a1b2"]}) == ["web"]
    assert names({"id": ["a1"]}) == []          # ambiguous: names nothing, as Docker's
    assert names({"id": ["a1b2", "b0"]}) == ["job", "web"]


def test_status_filter_implies_all_and_exited_needs_a_run():
    assert names({"status": ["running"]}, all_=False) == ["checked", "web"]
    assert names({"status": ["exited"]}, all_=False) == ["job", "worker"]
    assert names({"exited": ["0"]}) == ["job"]
    assert names({"exited": ["0", "3"]}) == ["job", "worker"]
    assert names({"exited": ["0"]}, all_=False) == []     # Docker: -a needed


def test_before_and_since_by_name_or_id():
    assert names({"before": ["job"]}) == ["worker", "web"]
    assert names({"since": ["job"]}) == ["checked", "fresh"]
    assert names({"since": ["a1b2c3"], "before": ["fresh"]}) == ["job", "worker"]


def test_volume_network_health_publish_expose():
    assert names({"volume": ["data"]}) == ["web"]
    assert names({"volume": ["/data"]}) == ["web"]
    assert names({"network": ["bridge"]}) == ["web"]
    assert names({"network": ["host", "none"]}) == ["job", "worker"]
    assert names({"health": ["healthy"]}) == ["checked"]
    assert names({"health": ["none"]}) == ["fresh", "job", "worker", "web"]
    assert names({"publish": ["8080"]}) == ["web"]
    assert names({"expose": ["80/tcp"]}) == ["web"]
    assert names({"expose": ["8080"]}) == []


def test_ancestor_is_the_resolved_image_set():
    assert names({"ancestor": ["x"]}, ancestors={"sha256:bb"}) == ["fresh"]
    assert names({"ancestor": ["x"]}, ancestors=set()) == []


def test_built_on_is_the_base_then_more_steps():
    base = (["l1"], [{"created_by": "a"}])
    assert flt.built_on((["l1"], [{"created_by": "a"}, {"created_by": "LABEL x=1"}]), base)
    assert flt.built_on((["l1", "l2"], [{"created_by": "a"}, {"created_by": "RUN"}]), base)
    assert not flt.built_on(base, base)
    assert not flt.built_on((["l1"], [{"created_by": "b"}, {"created_by": "c"}]), base)
    assert not flt.built_on((["l9"], [{"created_by": "a"}, {"created_by": "c"}]), base)


def test_limit_counts_every_state():
    assert names({}, all_=False, limit=2) == ["checked", "fresh"]
    assert names({"status": ["exited"]}, limit=1) == ["job"]


# ------------------------------------------------------------------ volumes and prune

def test_volume_filters():
    vols = [VolumeFacts("data", labels={"keep": "1"}, in_use=True),
            VolumeFacts("cache", labels={}), VolumeFacts("db-data", labels={"keep": "0"})]

    def pick(f):
        return [v.name for v in flt.select_volumes(vols, f)]
    assert pick({"dangling": ["true"]}) == ["cache", "db-data"]
    assert pick({"dangling": ["0"]}) == ["data"]
    assert pick({"name": ["data$"]}) == ["data", "db-data"]
    assert pick({"label": ["keep=1"]}) == ["data"]
    assert pick({"driver": ["local"], "label": ["keep"]}) == ["data", "db-data"]
    assert pick({"driver": ["nfs"]}) == []
    with pytest.raises(FilterError, match=r"^invalid filter 'dangling=\[maybe\]'$"):
        pick({"dangling": ["maybe"]})
    with pytest.raises(FilterError, match="^invalid filter 'until'$"):
        pick({"until": ["1h"]})


def test_prune_labels_and_until():
    f = {"label": ["a"], "label!": ["keep"]}
    assert flt.prune_picks(f, 10, {"a": "1"}, None)
    assert not flt.prune_picks(f, 10, {"a": "1", "keep": ""}, None)
    assert not flt.prune_picks(f, 10, {}, None)
    assert flt.prune_picks({}, 10, None, 20) and not flt.prune_picks({}, 30, None, 20)
    with pytest.raises(FilterError, match="^more than one until filter specified$"):
        flt.until({"until": ["1h", "2h"]})


@pytest.mark.parametrize(("text", "when"), [
    ("90m", 1000.0 - 5400), ("1h30m", 1000.0 - 5400), ("1500000000", 1500000000.0),
    ("1500000000.5", 1500000000.5), ("2017-07-14T02:40:00Z", 1500000000.0),
    ("2017-07-14T04:40:00+02:00", 1500000000.0)])
def test_timestamps_as_dockers(text, when):
    assert flt.timestamp(text, now=1000.0) == when


def test_build_cache_takes_only_until():
    assert flt.older_than({"label": ["a"]}) is None
    assert flt.older_than({"until": ["2h"]}, now=1000.0) == 7200.0
    assert flt.older_than({"unused-for": ["10m"]}, now=1000.0) == 600.0
    with pytest.raises(FilterError):
        flt.older_than({"until": ["1h"], "unused-for": ["1h"]})


def test_a_bad_time_is_one_line():
    with pytest.raises(FilterError, match='^failed to parse value as time or duration: "soon"$'):
        flt.timestamp("soon")


# ------------------------------------------------------------------ labels

def test_labels_flags_over_file_and_bare_keys():
    lines = labels.parse_file("\ufeff# comment\n\n  a=file\nbare\nb=x=y\n", "f")
    assert lines == ["a=file", "b=x=y"]          # a line without = is no label
    assert labels.parse(["a=flag", "c"], lines) == {"a": "flag", "b": "x=y", "c": ""}
    assert labels.merged({"a": "image", "i": "1"}, {"a": "mine"}) == {"a": "mine", "i": "1"}


@pytest.mark.parametrize(("flag", "message"), [
    ("=v", "invalid label '=v': empty name"),
    ("a b=c", "label 'a b' contains whitespaces")])
def test_bad_labels(flag, message):
    with pytest.raises(UsageError) as e:
        labels.parse([flag])
    assert str(e.value).endswith(message)


# ------------------------------------------------------------------ ps rows

def test_ports_as_docker_displays_them():
    assert displayable_ports([
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 53, "Type": "udp"},
        {"IP": "0.0.0.0", "PrivatePort": 54, "PublicPort": 54, "Type": "udp"},
        {"PrivatePort": 9000, "PublicPort": 0, "Type": "tcp"}]) == \
        "0.0.0.0:53-54->53-54/udp, 9000/tcp, 0.0.0.0:8080->80/tcp"


def test_ps_row_fields_as_dockers_container_context():
    row = ps_row({"Id": "f" * 64, "Names": ["/web"], "Image": "docker.io/library/busybox",
                  "ImageID": "sha256:" + "e" * 64, "Command": "sh -c 'sleep 1000000'",
                  "Created": 0, "Ports": [], "Labels": {"b": "2", "a": "1"},
                  "State": "running", "Status": "Up 2 seconds",
                  "Mounts": [{"Name": "a-long-volume-name", "Driver": "local"},
                             {"Name": "", "Source": "/host"}],
                  "NetworkSettings": {"Networks": {"bridge": {}}}}, trunc=True)
    assert row["ID"] == "f" * 12 and row["Image"] == "busybox"
    assert row["Command"] == '"sh -c \'sleep 100000…"'
    assert row["Labels"] == "a=1,b=2" and row["LocalVolumes"] == "1"
    assert row["Mounts"] == "a-long-volume-…,/host" and row["Networks"] == "bridge"
    assert row["Size"] == "0B" and row["CreatedAt"] == "1970-01-01 00:00:00 +0000 UTC"
    assert sorted(row) == sorted(PS_FIELDS)     # what `ps --format` is checked against


@pytest.mark.parametrize(("fmt", "said"), [
    ("{{.Names}} {{.Label \"a\"}} {{json .}}", None),
    ("table {{.ID}}\t{{.Status}}", None),
    ("{{.Nmae}}", "failed to execute template: template: :1:2: executing \"\" at <.Nmae>: "
                  "can't evaluate field Nmae in type *formatter.ContainerContext"),
    ("{{.Names", "failed to parse template: template: :1: unclosed action")])
def test_ps_templates_are_checked_as_the_docker_cli_checks_them(fmt, said):
    if said is None:
        check_ps_template(fmt)
        return
    with pytest.raises(DockishError) as e:
        check_ps_template(fmt)
    assert str(e.value) == said


def test_ps_image_is_the_id_when_created_by_id():
    assert ps_image({"Image": "sha256:" + "e" * 64, "ImageID": "sha256:" + "e" * 64},
                    True) == "e" * 12
