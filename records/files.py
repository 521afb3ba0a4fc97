"""The files of a run record: their names (``common.names``) and the atomic writes and
forgiving readers (``common.files``), under the name the writers and readers of
records have always imported them by."""
from common.files import RecordError, append_jsonl, read_json, read_json_or_none, read_jsonl, write_json
from common.names import (
    CONFIG,
    DIAGNOSTICS,
    EPOCH_LOG,
    EVAL_CONFIG,
    EVAL_METRICS,
    ITER_LOG,
    METRICS,
    MM_SCALARS,
    RUN_INFO,
    TEST_METRICS,
    VAL_METRICS,
)

__all__ = ["RecordError", "RUN_INFO", "METRICS", "EVAL_METRICS", "VAL_METRICS", "TEST_METRICS", "CONFIG",
           "EVAL_CONFIG", "EPOCH_LOG", "ITER_LOG", "DIAGNOSTICS", "MM_SCALARS", "write_json", "append_jsonl",
           "read_json", "read_json_or_none", "read_jsonl"]
