"""Pattern merging: templates that differ by a word-valued variable become one pattern."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import pytest

from lipservice_otel.analysis.patterns import (
    DEFAULT_EPS,
    DEFAULT_MERGE_CONFIG,
    DEFAULT_MIN_DISTINCT_VALUES,
    MergeConfig,
    _clusters,
    merge_by_service,
    merge_templates,
    merged_template,
)
from lipservice_otel.text.signature import MASK, pattern_id, template_of_text
from lipservice_otel.validation import ConfigError
from tests.support import log_families as families

USERS = ("alice", "bob", "carol", "dave", "erin")


def ids(service: str, templates: list[str]) -> dict[str, str]:
    return {pattern_id(service, template): template for template in templates}


def merge(service: str, templates: list[str], config: MergeConfig = DEFAULT_MERGE_CONFIG):
    patterns = [(pid, service, template) for pid, template in ids(service, templates).items()]
    return merge_by_service(patterns, config)


def groups(service: str, templates: list[str], config: MergeConfig = DEFAULT_MERGE_CONFIG):
    """The merged template of each canonical id -> the sorted templates merged into it."""
    aliases, canonical_templates = merge(service, templates, config)
    by_canonical: dict[str, list[str]] = {}
    for pid, template in ids(service, templates).items():
        if pid in aliases or pid in canonical_templates:
            by_canonical.setdefault(aliases.get(pid, pid), []).append(template)
    return {canonical_templates[c]: sorted(members) for c, members in by_canonical.items()}


def test_merges_user_names_in_sshd_templates():
    accepted = [f"Accepted password for {user} from <*> port <*> ssh2" for user in USERS]
    invalid = [f"Invalid user {user} from <*>" for user in USERS]

    assert groups("sshd", accepted + invalid) == {
        "Accepted password for <*> from <*> port <*> ssh2": sorted(accepted),
        "Invalid user <*> from <*>": sorted(invalid),
    }


def test_merges_kubernetes_pod_names():
    pods = ["checkout", "payments", "frontend", "cartservice", "recommendations"]
    restarted = [f"pod {pod} restarted" for pod in pods]

    assert groups("kubelet", restarted) == {"pod <*> restarted": sorted(restarted)}


def test_merges_what_the_inline_signature_leaves_of_real_bodies():
    bodies = [
        f"Accepted password for {user} from 10.0.{i}.7 port {52000 + i} ssh2"
        for i, user in enumerate(USERS)
    ]
    templates = sorted({template_of_text(body) for body in bodies})
    assert len(templates) == len(USERS)  # one pattern per user inline

    assert list(groups("sshd", templates)) == ["Accepted password for <*> from <*> port <*> ssh2"]


def test_few_alternatives_at_one_position_stay_apart():
    # "closed" and "reset" look like user names, but two (or three) words at one place are
    # more often alternatives the code picks from than names: a position counts as a variable
    # only with min_distinct_values distinct words. Keeping alternatives apart costs a pattern
    # or two; names keep coming and reach the threshold.
    templates = ["Connection closed by <*>", "Connection reset by <*>"]
    assert merge("sshd", templates) == ({}, {})

    three_users = [f"session opened for user {user}" for user in USERS[:3]]
    assert DEFAULT_MIN_DISTINCT_VALUES == 4
    assert merge("pam", three_users) == ({}, {})
    assert len(groups("pam", three_users, MergeConfig(min_distinct_values=3))) == 1


def test_capitalised_words_are_keywords_not_names():
    lifecycle = [
        f"[instance: <*>] VM {event} (Lifecycle Event)"
        for event in ("Paused", "Resumed", "Started", "Stopped")
    ]
    methods = [
        f"<*> {method} <*> status: <*> len: <*>" for method in ("GET", "POST", "PUT", "DELETE")
    ]
    assert merge("nova", lifecycle + methods) == ({}, {})


def test_dotted_names_and_paths_are_values_whatever_their_case():
    classes = [
        f"Registering class org.acme.{name}Event for class org.acme.{name}Handler"
        for name in ("Job", "Task", "Commit", "Speculator")
    ]
    assert groups("yarn", classes) == {"Registering class <*> for class <*>": sorted(classes)}


def test_a_masked_token_covers_the_words_that_fit_its_shape():
    # The signature saw a variable in chdir(<*>): one other template is enough evidence.
    templates = ["LOGIN chdir(<*>) failed: <*>", "LOGIN chdir(pwd) failed: <*>"]
    assert groups("ciod", templates) == {"LOGIN chdir(<*>) failed: <*>": sorted(templates)}

    # An empty value fits too: (<*>) covers ().
    templates = ["connection from <*> (<*>) at <*>", "connection from <*> () at <*>"]
    assert groups("ftpd", templates) == {"connection from <*> (<*>) at <*>": sorted(templates)}


def test_a_bare_mask_does_not_cover_punctuation():
    # "****" (or "->", "|") where another template has a value is a placeholder or separator
    # the code printed: a different message shape, not another value.
    templates = ["Fan speeds ( <*> <*> **** <*> )", "Fan speeds ( <*> <*> <*> <*> )"]
    assert merge("fans", templates) == ({}, {})


def test_different_token_counts_stay_apart():
    templates = [f"Invalid user {user} from <*>" for user in USERS[:3]]
    templates += ["Invalid user mallory smith from <*>", "Invalid user <*> from <*> port <*>"]

    assert merge("sshd", templates) == ({}, {})


def test_a_run_of_masked_tokens_is_one_value():
    # A value with spaces the signature masked word by word: a list of one value, kept once.
    templates = [f"Invalid user {user} from <*>" for user in USERS[:3]]
    templates += ["Invalid user <*> <*> <*> from <*>"]
    assert groups("sshd", templates) == {"Invalid user <*> from <*>": sorted(templates)}


def test_too_many_differing_positions_stay_apart():
    spread = [f"job {user} moved {user}-src to {user}-dst" for user in USERS]
    at_the_end = [f"copy job started {user} {user}-src {user}-dst" for user in USERS]
    assert merge("batch", spread + at_the_end) == ({}, {})

    config = MergeConfig(max_differing_positions=3, min_token_overlap=0.5)
    assert sorted(groups("batch", spread + at_the_end, config)) == [
        "copy job started <*> <*> <*>",
        "job <*> moved <*> to <*>",
    ]


def test_short_templates_and_single_tokens_do_not_merge():
    # One shared word of two is not enough to call two messages one event.
    states = ["FOLLOWING", "LEADING", "LOOKING", "OBSERVING"]
    pairs = [f"Server {word}" for word in ("alpha", "beta", "gamma", "delta")]
    assert merge("quorum", states + pairs + ["", " "]) == ({}, {})


@pytest.mark.parametrize("templates", [[], ["Invalid user alice from <*>"], [""]])
def test_nothing_to_merge(templates):
    assert merge("svc", templates) == ({}, {})
    assert merge_templates(ids("svc", templates)) == {}


def test_output_does_not_depend_on_input_order():
    templates = [f"Accepted password for {user} from <*> port <*> ssh2" for user in USERS]
    templates += [f"Invalid user {user} from <*>" for user in USERS]
    templates += ["Connection closed by <*>", "Connection reset by <*>", "pod web restarted"]
    patterns = [(pid, "sshd", template) for pid, template in ids("sshd", templates).items()]
    expected = merge_by_service(sorted(patterns))

    shuffler = random.Random(7)
    for _ in range(10):
        shuffler.shuffle(patterns)
        assert merge_by_service(patterns) == expected
        assert merge_templates({pid: t for pid, _, t in patterns}) == merge_templates(
            {pid: t for pid, _, t in sorted(patterns)}
        )


def test_canonical_id_is_the_pattern_id_of_the_merged_template():
    templates = [f"Invalid user {user} from <*>" for user in USERS]
    aliases, canonical_templates = merge("sshd", templates)

    canonical = pattern_id("sshd", merged_template(templates))
    assert canonical_templates == {canonical: "Invalid user <*> from <*>"}
    assert aliases == {pid: canonical for pid in ids("sshd", templates)}


def test_canonical_id_stays_when_members_come_and_go():
    # Another analyzer, or this one after a restart, sees a different set of users.
    first = merge("sshd", [f"Invalid user {user} from <*>" for user in USERS[:4]])
    later = merge("sshd", [f"Invalid user {user} from <*>" for user in USERS[1:]])
    assert first[1] == later[1]

    # The generic template, seen once inline, is the canonical pattern itself.
    with_generic = [f"Invalid user {user} from <*>" for user in USERS] + [
        "Invalid user <*> from <*>"
    ]
    aliases, canonical_templates = merge("sshd", with_generic)
    assert canonical_templates == first[1]
    assert pattern_id("sshd", "Invalid user <*> from <*>") not in aliases


def test_services_are_never_merged_across():
    services = ("auth-a", "auth-b")
    two_users = [f"Invalid user {user} from <*>" for user in USERS[:2]]
    patterns = [
        (pattern_id(service, template), service, template)
        for service in services
        for template in two_users
    ]
    # Two users per service: four templates in all, but no service has enough names.
    assert merge_by_service(patterns) == ({}, {})

    all_users = [f"Invalid user {user} from <*>" for user in USERS]
    patterns = [
        (pattern_id(service, template), service, template)
        for service in services
        for template in all_users
    ]
    aliases, canonical_templates = merge_by_service(patterns)
    canonical = {service: pattern_id(service, "Invalid user <*> from <*>") for service in services}
    assert len(set(canonical.values())) == 2
    assert set(canonical_templates) == set(canonical.values())
    assert aliases == {pid: canonical[service] for pid, service, _ in patterns}


def test_merge_templates_names_groups_by_a_member():
    templates = ids("sshd", [f"Invalid user {user} from <*>" for user in USERS])
    aliases = merge_templates(templates)
    smallest = min(templates)
    assert aliases == {pid: smallest for pid in templates if pid != smallest}

    generic = pattern_id("sshd", "Invalid user <*> from <*>")
    aliases = merge_templates({**templates, generic: "Invalid user <*> from <*>"})
    assert aliases == {pid: generic for pid in templates}


def test_work_is_bounded_by_max_templates():
    templates = [f"pod web-{name} restarted" for name in _words(300)]
    config = MergeConfig(max_templates=100)
    aliases, canonical_templates = merge("kubelet", templates, config)

    assert canonical_templates  # the sample still merges
    assert len(aliases) <= config.max_templates
    # The sample is the smallest ids, the same on every call whatever the input order.
    considered = sorted(ids("kubelet", templates))[: config.max_templates]
    assert set(aliases) <= set(considered)


def test_many_templates_of_one_family_merge_into_one():
    # Each name is in two templates, so it weighs in the TF vectors: with IDF it would be the
    # heaviest feature and keep every variant away from the others.
    names = _words(2400)
    templates = [f"user {name} logged {way} from <*>" for name in names for way in ("in", "out")]
    aliases, canonical_templates = merge("login", templates)
    assert sorted(canonical_templates.values()) == [
        "user <*> logged in from <*>",
        "user <*> logged out from <*>",
    ]
    assert len(aliases) == len(templates)


def test_merged_template_masks_differing_positions():
    assert merged_template(["a x c", "a y c"]) == f"a {MASK} c"
    assert merged_template(["a b c"]) == "a b c"
    assert merged_template(["tty=NODEVssh rhost=<*>", "tty=<*> rhost="]) == "tty=<*> rhost=<*>"
    with pytest.raises(ValueError, match="equal token count"):
        merged_template(["a b", "a b c"])
    with pytest.raises(ValueError, match="equal token count"):
        merged_template([])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("eps", 0.0),
        ("eps", 1.5),
        ("min_token_overlap", 0.0),
        ("min_token_overlap", 1.1),
        ("max_differing_positions", 0),
        ("min_distinct_values", 1),
        ("min_spread_values", 1),
        ("min_covering_share", -0.1),
        ("min_covering_share", 1.0),
        ("max_templates", 0),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"^{field}: "):
        MergeConfig(**{field: value})


def _words(count: int) -> list[str]:
    """Distinct lowercase names without digits, which the inline signature keeps as words."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        letters[i % 26] + letters[i // 26 % 26] + letters[i // 676 % 26] + "x" for i in range(count)
    ]


@pytest.mark.parametrize("differing", [1, 2, 3, 4, 5])
def test_templates_differing_at_a_share_d_of_positions_are_d_apart(differing):
    # Each row twice, so every token is a feature (in two templates at its position).
    first = [f"t{p}" for p in range(10)]
    second = first[: 10 - differing] + [f"x{p}" for p in range(10 - differing, 10)]
    rows = [first, first, second, second]
    share = differing / 10
    assert _clusters(rows, share) == [[0, 1, 2, 3]]
    assert _clusters(rows, share - 0.01) == [[0, 1], [2, 3]]


def test_a_family_larger_than_the_neighbour_lists_is_one_cluster():
    # 60 x 60 names at two positions: 3600 distinct vectors, each with far more equally near
    # templates than the 32 nearest kept per point; ties go to the lower index, the same on
    # every run, and the family stays connected.
    names = _words(60)
    rows = [["job", first, "ran", "on", second] for first in names for second in names]
    assert _clusters(rows, DEFAULT_EPS) == [list(range(len(rows)))]
    assert _clusters(rows[::-1], DEFAULT_EPS) == [list(range(len(rows)))]


def test_merging_does_not_import_scikit_learn():
    # Its import alone took ~60 MiB of the process's 250 MiB budget (bench/memory.py).
    script = (
        "import sys\n"
        "from lipservice_otel.analysis.patterns import merge_by_service\n"
        "names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']\n"
        "found = merge_by_service((n, 's', f'user {n} logged in from <*>') for n in names)\n"
        "assert found[1], found\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# ---- variables learned from the population: many spread values, lists, asides ----


def _node_names(count: int) -> list[str]:
    """Bracketed node names with capitals and one digit, which the signature keeps whole."""
    return [f"[Node_{'ABCDEFGH'[i % 8]}{i // 8}]" for i in range(count)]


def test_a_position_with_many_spread_values_is_a_variable_whatever_its_characters():
    # Capitalised, bracketed, with underscores: not name-like, but two dozen of them at one
    # place of an otherwise constant template, each as frequent as the others.
    nodes = [f"{node} ipc handshake completed" for node in _node_names(24)]
    daemons = ["print-spool", "rsh", "tftp", "rlogin", "cups-lpd", "finger", "talk", "ntalk"]
    started = [f"xinetd service {name} started" for name in daemons]

    assert groups("cluster", nodes + started) == {
        "<*> ipc handshake completed": sorted(nodes),
        "xinetd service <*> started": sorted(started),
    }


def test_capitalised_values_below_the_spread_threshold_stay_apart():
    # Seven states at one place are the code's fixed set, not a variable.
    states = ["NEW", "QUEUED", "ASSIGNED", "RUNNING", "SUCCEEDED", "FAILED", "KILLED"]
    templates = [f"task <*> entered state {state} after <*> ms" for state in states]
    assert DEFAULT_MERGE_CONFIG.min_spread_values > len(states)
    assert merge("scheduler", templates) == ({}, {})


def test_frequent_few_values_are_a_fixed_set_even_among_many():
    # Ten commands, but two carry nearly all the records: weighted by occurrences their
    # effective number is about two. The same templates, each as frequent, merge: that is the
    # guard's failure case (a fixed set of eight or more values used about equally).
    commands = ["Boot", "Wait", "Halt", "Reset", "Probe", "Mount", "Sync", "Flush", "Dump", "Trace"]
    templates = [f"{command} (command <*>) issued to <*>" for command in commands]
    patterns = [(pid, "ctl", t) for pid, t in ids("ctl", templates).items()]
    skewed = {pid: (5000 if n < 2 else 3) for n, (pid, _, _) in enumerate(sorted(patterns))}

    assert merge_by_service(patterns, counts=skewed) == ({}, {})
    even = {pid: 100 for pid, _, _ in patterns}
    assert len(merge_by_service(patterns, counts=even)[1]) == 1
    assert len(merge_by_service(patterns)[1]) == 1  # no counts: every template weighs one


def test_counts_of_zero_weigh_as_if_there_were_no_counts():
    nodes = [f"{node} ipc handshake completed" for node in _node_names(12)]
    patterns = [(pid, "cluster", t) for pid, t in ids("cluster", nodes).items()]
    assert merge_by_service(patterns, counts=dict.fromkeys(ids("cluster", nodes), 0)) == (
        merge_by_service(patterns)
    )


def test_short_templates_merge_on_many_spread_values_only():
    # "disabling telnet" shares one word of two with "disabling ftp": only a dozen of them
    # at that place make the second a variable; four do not.
    services = ["telnet", "ftp", "rsh", "print-spool", "tftp", "finger"]
    services += ["rlogin", "talk", "ntalk", "echo-dgram", "time-stream", "daytime"]
    disabling = [f"disabling {name}" for name in services]
    assert groups("inetd", disabling) == {"disabling <*>": sorted(disabling)}
    assert merge("inetd", disabling[:4]) == ({}, {})
    # A masked value in one of them is not enough evidence for two tokens.
    assert merge("inetd", ["Received <*>", "Received SIGTERM", "Received SIGHUP"]) == ({}, {})


def test_lists_of_values_of_any_length_are_one_template():
    lists = ["BLOCK* ask <*> to delete " + " ".join(["blk_<*>"] * n) for n in (1, 2, 9, 40)]
    nodes = [
        "inconsistent nodesets " + " ".join(["node-<*> <*> <ok>"] * n) + " from <*>"
        for n in (1, 4, 13)
    ]
    assert groups("namenode", lists + nodes) == {
        "BLOCK* ask <*> to delete blk_<*>": sorted(lists),
        "inconsistent nodesets node-<*> <*> <ok> from <*>": sorted(nodes),
    }
    # Repeated words are text, not a list of values.
    assert merge("namenode", ["retry very soon", "retry very very soon"]) == ({}, {})


def test_a_bracketed_aside_holding_a_value_is_optional():
    sent = ["sent <*> bytes to <*>", "sent <*> bytes to <*> (<*> KB)"]
    ssh = ["Accepted publickey for <*> from <*>", "Accepted publickey for <*> from <*> [pid <*>]"]
    assert groups("transfer", sent + ssh) == {
        "sent <*> bytes to <*>": sorted(sent),
        "Accepted publickey for <*> from <*>": sorted(ssh),
    }
    # Words without a value may change the meaning, and unbracketed extra words do.
    templates = ["Job <*> completed", "Job <*> completed (deprecated)"]
    templates += ["Job <*> completed with errors", "Stopping <*>", "Stopping <*> failed: <*>"]
    assert merge("batch", templates) == ({}, {})


def test_a_generated_service_merges_into_its_events():
    # Realistic families as the inline signature leaves them: user and host names, paths,
    # bracketed node names, optional asides; plus events that share a skeleton and must not
    # merge (verbs, states).
    rng = random.Random(5)
    users = _words(30)
    hosts = [f"web-{name}" for name in _words(20)]
    events: dict[str, set[str]] = {}
    for _ in range(600):
        user, host, node = rng.choice(users), rng.choice(hosts), rng.choice(_node_names(16))
        size = rng.randrange(1, 10_000)
        bodies = {
            "login": f"session opened for user {user} on {host} by (uid={rng.randrange(999)})",
            "copy": f"copied /srv/{user}/report.csv to {host} as backup"
            + (f" ({size} KB)" if rng.random() < 0.5 else ""),
            "node": f"{node} heartbeat lost after {size} ms",
            "closed": f"Connection closed by {host} port {size}",
            "reset": f"Connection reset by {host} port {size}",
        }
        for event, body in bodies.items():
            events.setdefault(event, set()).add(template_of_text(body))
    templates = sorted(set().union(*events.values()))
    aliases, _ = merge("gateway", templates)
    by_template = {t: aliases.get(pid, pid) for pid, t in ids("gateway", templates).items()}
    for event, members in events.items():
        assert len({by_template[t] for t in members}) == 1, event
    assert len({by_template[next(iter(members))] for members in events.values()}) == len(events)


# ---- shapes the population shows: names that recur, rare variants, kinds of ids, short ----


def _templates_of(bodies: list[str]) -> list[str]:
    return sorted({template_of_text(body) for body in bodies})


def _weighted(service: str, bodies: list[str]):
    """Patterns and their record counts, as the analysis sees a service's traffic."""
    counts = Counter(pattern_id(service, template_of_text(body)) for body in bodies)
    patterns = [(pid, service, t) for pid, t in ids(service, _templates_of(bodies)).items()]
    return patterns, counts


def _grouped(service: str, bodies: list[str], config: MergeConfig = DEFAULT_MERGE_CONFIG):
    """Merged template -> sorted member templates, with templates weighted by their records."""
    patterns, counts = _weighted(service, bodies)
    aliases, canonical_templates = merge_by_service(patterns, config, counts)
    by_canonical: dict[str, list[str]] = {}
    for pid, _, template in patterns:
        by_canonical.setdefault(aliases.get(pid, pid), []).append(template)
    return {
        canonical_templates.get(c, members[0]): sorted(members)
        for c, members in by_canonical.items()
    }


def test_names_one_event_shows_are_values_in_the_others():
    # Four users close sessions; three of them open one. Three words alone are too few to
    # call a position a variable, but they are the names the other event was shown to take.
    rng = random.Random(11)
    users = families.names(4, rng)
    bodies = families.records(lambda r: f"session closed for user {r.choice(users)}", 200, rng)
    bodies += families.records(
        lambda r: f"session opened for user {r.choice(users[:3])} by (uid={r.randrange(999)})",
        200,
        rng,
    )
    assert sorted(_grouped("pam", bodies)) == [
        "session closed for user <*>",
        "session opened for user <*> by (uid=<*>)",
    ]
    # Without the event that shows them to be names, the three stay three patterns.
    opened = [body for body in bodies if "opened" in body]
    assert len(_grouped("pam", opened)) == 3


def test_known_names_do_not_make_verbs_values():
    # The guard: the words a name took are values, the verbs beside them are not. Every user
    # opens and closes: two events, each with the users merged.
    users = families.names(5, random.Random(3))
    templates = [f"session {verb} for user {u}" for verb in ("opened", "closed") for u in users]
    assert sorted(groups("pam", templates)) == [
        "session closed for user <*>",
        "session opened for user <*>",
    ]
    # Where it fails: a word another event took as a value is a value wherever it stands.
    # Eight or more spread words ("door <*> alarm") that happen to include two verbs make
    # those verbs values too, and two events become one pattern.
    doors = ["opened", "closed", *families.names(8, random.Random(4))]
    alarms = [f"door {door} alarm" for door in doors]
    assert sorted(groups("pam", alarms + templates)) == [
        "door <*> alarm",
        "session <*> for user <*>",
    ]


def test_a_rare_variant_with_a_value_where_a_loud_template_has_a_constant_stays_apart():
    # The loud template carries one word in every record (a remote login's tty); the rare one
    # has a value there and none where the loud one has (a local login): another variant,
    # not one more value, though each mask covers the other's token.
    loud = "login refused; uid=<*> euid=<*> terminal=remote peer= origin=<*>"
    rare = "login refused; uid=<*> euid=<*> terminal=<*> peer= origin="
    patterns = [(pid, "auth", t) for pid, t in ids("auth", [loud, rare]).items()]
    skewed = {pattern_id("auth", loud): 500, pattern_id("auth", rare): 2}
    assert DEFAULT_MERGE_CONFIG.min_covering_share > 2 / 502
    assert merge_by_service(patterns, counts=skewed) == ({}, {})
    # Where both shapes carry a fair share of the records, the masks are one variable's.
    even = {pattern_id("auth", loud): 500, pattern_id("auth", rare): 300}
    assert len(merge_by_service(patterns, counts=even)[1]) == 1
    assert len(merge_by_service(patterns, MergeConfig(min_covering_share=0), skewed)[1]) == 1


def test_ids_of_several_kinds_at_one_position_are_one_variable():
    # A store names blocks of several kinds: one statement, one event.
    rng = random.Random(8)
    kinds = ("chunk", "snapshot")

    def stored(r: random.Random) -> str:
        size, free = r.randrange(1, 900), r.randrange(1, 900)
        block = families.ids(r.choice(kinds), r)
        return f"Block {block} stored as bytes in memory (estimated size {size} KB, free {free} MB)"

    bodies = families.records(stored, 300, rng)
    assert len(_templates_of(bodies)) == 2
    assert list(_grouped("store", bodies)) == [
        "Block <*> stored as bytes in memory (estimated size <*> <*>, free <*> <*>)"
    ]


def test_a_key_before_a_separator_names_the_field_and_stays_apart():
    # The guard: a key that changes before "=" or a dotted leader names another field, and
    # a message about another field is another event.
    templates = ["quota exceeded size=<*>", "quota exceeded count=<*>"]
    templates += ["interrupt caused by load.........<*>", "interrupt caused by store.........<*>"]
    assert merge("kernel", templates) == ({}, {})


def test_short_templates_with_two_names_merge_on_the_strongest_evidence():
    # Four tokens, two of them names: min_token_overlap leaves one position free, so the
    # second needs the strongest evidence: many spread values (or known names).
    rng = random.Random(21)
    users, nodes = families.names(30, rng), families.hosts(20, rng)
    bodies = families.records(lambda r: f"ssh {r.choice(users)} from {r.choice(nodes)}", 600, rng)
    bodies += families.records(lambda r: f"scp {r.choice(users)} from {r.choice(nodes)}", 600, rng)
    assert sorted(_grouped("sshd", bodies)) == ["scp <*> from <*>", "ssh <*> from <*>"]
    # The guard: a handful of each is too little for two free positions in four tokens.
    few = [f"ssh {u} from {h}" for u in users[:3] for h in nodes[:2]]
    assert merge("sshd", few) == ({}, {})


def test_the_word_of_the_event_splits_a_family_before_its_names():
    # "<name> startup succeeded" for nine daemons, one of which also shuts down: a group
    # that takes in the shutdown too is split by the position with the fewest values
    # (startup / shutdown), and the daemons' names stay one variable.
    rng = random.Random(2)
    daemons = families.names(9, rng)
    bodies = [f"{name} startup succeeded" for name in daemons[1:]]
    bodies += [
        f"{daemons[0]} {verb} succeeded" for verb in ("startup", "shutdown") for _ in range(6)
    ]
    assert _grouped("init", bodies) == {
        "<*> startup succeeded": sorted(f"{name} startup succeeded" for name in daemons),
        f"{daemons[0]} shutdown succeeded": [f"{daemons[0]} shutdown succeeded"],
    }
    # Three daemons are alternatives as far as the population shows: three patterns.
    assert len(_grouped("init", bodies[:3])) == 3
