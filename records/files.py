"""The files of a run record under the name their writers and readers have imported them
by: the file names (``common.names``, all of them) and the atomic writes and forgiving
readers (``common.files``)."""
from common.files import RecordError, append_jsonl, read_json, read_json_or_none, read_jsonl, write_json
from common.names import *  # noqa: F403  (every run-dir file name)
from common.names import __all__ as _names

__all__ = ["RecordError", "write_json", "append_jsonl", "read_json", "read_json_or_none", "read_jsonl", *_names]
