"""The torch-free bottom layer: what every other package may import, and nothing more.

* ``common.errors``: the one user-error type (``UserError``) and ``run_cli``, the
  one way an entry point reports it (one line, exit code 2);
* ``common.files``: atomic JSON / JSON-lines / YAML writes, the forgiving readers
  (one "a cut last line ends the log" rule, one lenient JSON reader, one YAML-mapping
  reader), ``file_sha256``;
* ``common.names``: every file name of a run dir, spelled once.

Imports only the standard library and PyYAML, so ``records``, the suite runner's
status side and ``analysis`` run on a login node without torch.
"""
