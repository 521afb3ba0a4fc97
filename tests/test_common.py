"""common/: the atomic writes leave no temporary file, a cut last line ends a JSON-lines
log (for readers and for the resume trim alike), the YAML-mapping reader's errors are one
line naming the file, file_sha256 is hashlib's."""
import hashlib

import pytest

from common.errors import UserError
from common.files import (
    RecordError,
    append_jsonl,
    read_json,
    read_json_or_none,
    read_jsonl,
    read_yaml_mapping,
    trim_jsonl,
    write_json,
    write_yaml,
)
from common.files import file_sha256 as sha


def test_atomic_writes_replace_the_file_and_leave_nothing_else(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    write_json(path, {"top1": 71.5, "when": tmp_path})  # a Path is written as its string
    assert read_json(path) == {"top1": 71.5, "when": str(tmp_path)}
    write_yaml(tmp_path / "config.yaml", {"lr": 0.004, "epochs": 300})
    assert read_yaml_mapping(tmp_path / "config.yaml") == {"epochs": 300, "lr": 0.004}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "metrics.json"]


def test_a_cut_line_ends_the_log_for_readers_and_for_the_resume_trim(tmp_path):
    log = tmp_path / "log_iter.jsonl"
    for step in range(4):
        append_jsonl(log, {"step": step})
    with open(log, "a") as f:
        f.write('{"step": 4, "lo')  # the kill
    with open(log, "a") as f:
        f.write('\n{"step": 5}\n')  # what a careless writer might add after it: not trusted
    assert [r["step"] for r in read_jsonl(log)] == [0, 1, 2, 3]
    trim_jsonl(log, lambda r: r["step"] < 2)
    assert log.read_text() == '{"step": 0}\n{"step": 1}\n'
    assert read_jsonl(tmp_path / "missing.jsonl") == [] and [p.name for p in tmp_path.iterdir()] == [log.name]


def test_json_readers_name_the_file_or_say_nothing(tmp_path):
    bad = tmp_path / "run.json"
    bad.write_text('{"kind": "pre')
    with pytest.raises(RecordError, match=f"^{bad}: not valid JSON"):
        read_json(bad)
    assert read_json_or_none(bad) is None and read_json_or_none(tmp_path / "none.json") is None
    bad.write_text("[1, 2]")
    assert read_json_or_none(bad) is None


@pytest.mark.parametrize("text, fragment", [
    ("a: [1,\n", "suite file s.yaml: not valid YAML: "),
    ("- a\n- b\n", "suite file s.yaml: expected a mapping of keys, not a list"),
])
def test_yaml_mapping_errors_are_one_line_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "s.yaml"
    path.write_text(text)

    class SuiteError(UserError):
        pass

    with pytest.raises(SuiteError) as err:
        read_yaml_mapping(path, "suite file s.yaml", "keys", SuiteError)
    assert str(err.value).startswith(fragment) and "\n" not in str(err.value)
    path.write_text("")
    assert read_yaml_mapping(path) == {}


def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "w.pth"
    data = bytes(range(256)) * 5000  # more than one 1 MiB block
    path.write_bytes(data)
    assert sha(path) == hashlib.sha256(data).hexdigest()
