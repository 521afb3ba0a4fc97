"""The suite file: what it may hold (the section dataclasses: the schema), checked in
full before anything runs (``read_suite_file``), and the jobs it expands to (``expand``).

Every mistake is a ``SuiteError`` naming the file and the key (``pretrain.architectures.vit_tiny``,
``det.tasks.mask-rcnn_1x``, ...). Paths of presets and configs are relative to the
repository root (they are its files); ``output_root`` and data roots are relative to
the working directory, as for the entry points themselves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from common.errors import UserError
from common.files import read_yaml_mapping
from common.names import WEIGHTS

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "pretrain_configs"

STAGES = ("pretrain", "det", "seg", "cls")
TRANSFER_STAGES = ("det", "seg", "cls")
TOP_KEYS = ("output_root", "resources", *STAGES)
RESOURCE_KEYS = ("gpus_per_job", "nodes", "cpus_per_task", "time", "partition", "mem_gb", "account", "qos",
                 "constraint", "array_parallelism")
# What the suite itself sets on every job; a suite file may not set it through flags or cfg_options.
OWNED_FLAGS = ("--output_dir", "--seed", "--resume", "--finetune")
OWNED_OPTIONS = ("randomness.seed", "model.backbone.init_cfg.checkpoint", "work_dir")
# Run and task names become path components of run dirs and keys.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# Slurm's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")

# The entry points a job runs (the runner builds their command lines, nothing else).
ENTRY = {"pretrain": "pretrain", "det": "tools/train.py", "seg": "tools/train.py", "cls": "cls_finetune"}


class SuiteError(UserError):
    """A bad suite file or command-line flag: the message names the file and key."""


class _SuiteLoader(yaml.SafeLoader):
    """YAML 1.1 reads an unquoted 24:00:00 as the base-60 integer 86400; here it stays the
    string Slurm means (the other integer forms are unchanged)."""


_INT_TAG = "tag:yaml.org,2002:int"
_SuiteLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SuiteLoader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))


def read_suite_yaml(path: Path) -> dict:
    return read_yaml_mapping(path, f"suite file {path}", ", ".join(TOP_KEYS), SuiteError, _SuiteLoader)


@dataclass(frozen=True)
class Resources:
    """What one job of a stage asks for. ``gpus_per_job`` 0: one CPU task."""
    gpus_per_job: int = 0
    nodes: int = 1
    cpus_per_task: int = 1
    time_min: int = 60
    partition: Optional[str] = None
    mem_gb: Optional[float] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    array_parallelism: Optional[int] = None

    @property
    def gpus_per_node(self) -> int:
        return self.gpus_per_job // self.nodes

    @property
    def tasks_per_node(self) -> int:
        """One task per GPU (the entry points take their rank from SLURM_PROCID); one CPU task otherwise."""
        return max(1, self.gpus_per_node)

    @property
    def tasks(self) -> int:
        return self.tasks_per_node * self.nodes

    def describe(self) -> str:
        devices = (f"{self.gpus_per_job} GPU{'s' if self.gpus_per_job > 1 else ''}"
                   + (f" on {self.nodes} nodes" if self.nodes > 1 else "") if self.gpus_per_job else "CPU")
        extra = [f"{self.cpus_per_task} cpu/task", format_minutes(self.time_min)]
        extra += [f"{k} {v}" for k, v in (("partition", self.partition), ("mem", self.mem_gb and f"{self.mem_gb}G"),
                                          ("account", self.account), ("qos", self.qos),
                                          ("constraint", self.constraint)) if v]
        return f"{devices}, " + ", ".join(extra)


@dataclass
class Job:
    """One run of the matrix: its key (also its run dir under ``output_root``), the entry
    point and flags that make it, and the pretraining job it starts from."""
    key: str                      # pretrain/<name>/seed<k>, det/<task>/<name>/seed<k>, cls/<recipe>/<dataset>/...
    stage: str                    # pretrain | det | seg | cls
    run_dir: Path
    entry: str                    # ENTRY[stage]
    argv: List[str]               # the entry point's flags (launchers add theirs)
    resources: Resources
    seed: int
    pretrain: str                 # the pretraining run's name (for a pretraining job: its own)
    arch: str                     # the architecture label of the suite file
    task: Optional[str] = None    # det/seg task, cls "<recipe>/<dataset>"
    depends_on: Optional[str] = None      # key of the pretraining job that writes ``checkpoint``
    checkpoint: Optional[Path] = None     # the weights a transfer job starts from

    @property
    def is_transfer(self) -> bool:
        return self.stage != "pretrain"


@dataclass
class Suite:
    path: Path
    output_root: Path
    jobs: List[Job] = field(default_factory=list)
    # Jobs run here, so that the relative paths inside configs (data/coco/, ...) mean what they
    # mean to the user who started the suite.
    workdir: Path = field(default_factory=Path.cwd)

    @property
    def state_dir(self) -> Path:
        """The runner's own bookkeeping (submissions, attempts, logs)."""
        return self.output_root / ".suite"

    def by_key(self) -> Dict[str, Job]:
        return {j.key: j for j in self.jobs}


def format_minutes(minutes: int) -> str:
    d, rest = divmod(minutes, 24 * 60)
    return (f"{d}-" if d else "") + f"{rest // 60:02d}:{rest % 60:02d}:00"


def parse_time(value, where: str) -> int:
    """Minutes from an int (minutes) or one of Slurm's time formats."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = TIME.match(str(value).strip()) if isinstance(value, str) else None
    if not m:
        raise SuiteError(f"{where}: time {value!r} is neither minutes nor [D-]HH:MM[:SS]")
    d, a, b, c = (int(m[g]) if m[g] else None for g in "dabc")
    if d is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        minutes = d * 1440 + a * 60 + (b or 0) + ((c or 0) + 59) // 60
    elif c is not None:  # HH:MM:SS
        minutes = a * 60 + b + (c + 59) // 60
    elif b is not None:  # MM:SS
        minutes = a + (b + 59) // 60
    else:
        minutes = a
    if minutes <= 0:
        raise SuiteError(f"{where}: time {value!r} is not positive")
    return minutes


# ---- the schema: what a suite file may hold, one dataclass per section -------------------------
#
# A field is a key of its section (the known keys are the field names); ``_key(check)``
# names the ``_Checker`` method that reads and checks its value. Field order is check order.
# Dataclasses rather than pydantic or jsonschema: the schema needs no new dependency, and
# those libraries' multi-line messages would have to be rewritten into one line naming the key.

def _key(check: str, **options):
    """A section key read by ``_Checker.<check>(value, where, read=..., **options)``; ``key``:
    its name in the file where that differs from the field's."""
    return field(metadata={"check": check, **options})


def _yaml_key(f) -> str:
    return f.metadata.get("key", f.name)


@dataclass(frozen=True)
class Pretraining:
    """One entry of ``pretrain.architectures.<arch>``: a preset, its own flags, and
    whether transfer stages start from it."""
    name: str
    arch: str
    preset: Path
    flags: List[str]
    transfer: bool = True     # false: ImageNet only, no transfer stage starts from it


@dataclass(frozen=True)
class PretrainSection:
    architectures: List[Pretraining] = _key("pretrainings")
    seeds: List[int] = _key("seeds")
    data: Optional[Path] = _key("data")
    flags: List[str] = _key("flags")
    resources: Resources = _key("resources")


@dataclass(frozen=True)
class DetSegSection:
    tasks: Dict[str, Dict[str, Path]] = _key("tasks")   # task -> architecture -> config
    seeds: List[int] = _key("seeds")
    data: Optional[Path] = _key("data")
    cfg_options: List[str] = _key("cfg_options")
    pretrain_seeds: List[int] = _key("pretrain_seed", key="pretrain_seed")
    resources: Resources = _key("resources")


@dataclass(frozen=True)
class ClsSection:
    recipes: Dict[str, List[Path]] = _key("configs", holds="recipe: config")
    datasets: Dict[str, List[Path]] = _key("configs", holds="dataset: config")
    architectures: List[str] = _key("architectures")
    seeds: List[int] = _key("seeds")
    data: Dict[str, Optional[Path]] = _key("data_per_dataset")  # dataset -> its data folder
    flags: List[str] = _key("flags")
    pretrain_seeds: List[int] = _key("pretrain_seed", key="pretrain_seed")
    resources: Resources = _key("resources")


SECTIONS = {"pretrain": PretrainSection, "det": DetSegSection, "seg": DetSegSection, "cls": ClsSection}
STAGE_KEYS = {stage: tuple(_yaml_key(f) for f in fields(cls)) for stage, cls in SECTIONS.items()}


@dataclass(frozen=True)
class SuiteFile:
    """A suite file, read and checked in full (``read_suite_file``); ``expand`` makes its jobs."""
    path: Path
    output_root: Path
    stages: Dict[str, object]  # stage -> its section, in STAGES order; pretrain always present


# ---- reading and checking ---------------------------------------------------------------------

class _Checker:
    """Reads the values of one suite file; every message starts with the file and the key."""

    def __init__(self, path: Path):
        self.path = path
        self.defaults: dict = {}            # the top-level resources
        self.pretrain: Optional[PretrainSection] = None

    def fail(self, where: str, message: str):
        raise SuiteError(f"suite file {self.path}: {where}: {message}" if where else
                         f"suite file {self.path}: {message}")

    def section(self, cls, value, where: str):
        """A section dataclass from its mapping: every field through its check, in order."""
        raw = self.mapping(value, where, [_yaml_key(f) for f in fields(cls)])
        read: dict = {}
        for f in fields(cls):
            check = getattr(self, f.metadata["check"])
            options = {k: v for k, v in f.metadata.items() if k not in ("check", "key")}
            read[f.name] = check(raw.get(_yaml_key(f)), f"{where}.{_yaml_key(f)}", read=read, **options)
        return cls(**read)

    def mapping(self, value, where: str, known: Optional[Sequence[str]] = None, holds: str = "") -> dict:
        if not isinstance(value, dict) or not value:
            self.fail(where, f"expected a non-empty mapping{' of ' + holds if holds else ''}, "
                             f"not {type(value).__name__ if value is not None else 'nothing'}")
        if known is not None:
            unknown = [k for k in value if k not in known]
            if unknown:
                self.fail(where, f"unknown key {unknown[0]!r} (known: {', '.join(known)})")
        return value

    def name(self, value, where: str) -> str:
        if not isinstance(value, str) or not NAME.match(value):
            self.fail(where, f"{value!r} is not a usable name (letters, digits, _ . + -; it names run dirs)")
        return value

    def seeds(self, value, where: str, **_) -> List[int]:
        if value is None:
            return [0]
        if (not isinstance(value, list) or not value
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
            self.fail(where, f"expected a non-empty list of seeds (integers >= 0), not {value!r}")
        if len(set(value)) != len(value):
            self.fail(where, f"seed listed twice in {value}")
        return list(value)

    def strings(self, value, where: str) -> List[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                                  for v in value):
            self.fail(where, f"expected a list of strings or numbers, not {value!r}")
        return [str(v) for v in value]

    def flags(self, value, where: str, **_) -> List[str]:
        flags = self.strings(value, where)
        for f in flags:
            if f.split("=")[0] in OWNED_FLAGS:
                self.fail(where, f"{f.split('=')[0]} is set by the suite for every job (run dir, seed, resume, "
                                 "starting checkpoint)")
        return flags

    def cfg_options(self, value, where: str, **_) -> List[str]:
        options = self.strings(value, where)
        for o in options:
            key = o.split("=", 1)[0]
            if "=" not in o:
                self.fail(where, f"{o!r} is not key=value")
            if key in OWNED_OPTIONS:
                self.fail(where, f"{key} is set by the suite for every job (seed, starting checkpoint, work dir)")
        return options

    def file(self, value, where: str, what: str) -> Path:
        if not isinstance(value, str) or not value:
            self.fail(where, f"expected the path of a {what}, not {value!r}")
        path = Path(value) if Path(value).is_absolute() else REPO / value
        if not path.is_file():
            self.fail(where, f"{what} {value} does not exist")
        return path

    def data(self, value, where: str, **_) -> Optional[Path]:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.fail(where, f"expected a data folder, not {value!r}")
        return Path(value).absolute()

    def data_per_dataset(self, value, where: str, read: dict, **_) -> Dict[str, Optional[Path]]:
        """One folder for every dataset, or {dataset: folder}."""
        datasets = read["datasets"]
        if not isinstance(value, dict):
            return dict.fromkeys(datasets, self.data(value, where))
        for name in value:
            if name not in datasets:
                self.fail(where, f"{name!r} is not among cls.datasets ({', '.join(datasets)})")
        return {name: self.data(value.get(name), f"{where}.{name}") for name in datasets}

    def resources(self, value, where: str, **_) -> Resources:
        merged = {**self.defaults, **(self.mapping(value, where, RESOURCE_KEYS) if value is not None else {})}
        out = {}
        for key in ("gpus_per_job", "nodes", "cpus_per_task", "array_parallelism"):
            if key in merged:
                v, least = merged[key], 0 if key == "gpus_per_job" else 1
                if not isinstance(v, int) or isinstance(v, bool) or v < least:
                    self.fail(f"{where}.{key}", f"expected an integer >= {least}, not {v!r}")
                out[key] = v
        for key in ("partition", "account", "qos", "constraint"):
            if merged.get(key) is not None:
                if not isinstance(merged[key], str) or not merged[key]:
                    self.fail(f"{where}.{key}", f"expected a name, not {merged[key]!r}")
                out[key] = merged[key]
        if merged.get("mem_gb") is not None:
            if not isinstance(merged["mem_gb"], (int, float)) or merged["mem_gb"] <= 0:
                self.fail(f"{where}.mem_gb", f"expected a positive number, not {merged['mem_gb']!r}")
            out["mem_gb"] = merged["mem_gb"]
        if "time" in merged:
            out["time_min"] = parse_time(merged["time"], f"suite file {self.path}: {where}.time")
        res = Resources(**out)
        if res.gpus_per_job % res.nodes:
            self.fail(where, f"gpus_per_job {res.gpus_per_job} does not split evenly over {res.nodes} nodes")
        if not res.gpus_per_job and res.nodes > 1:
            self.fail(where, f"a CPU job (gpus_per_job 0) runs as one task on one node, not {res.nodes}")
        return res

    def pretrainings(self, value, where: str, **_) -> List[Pretraining]:
        archs = self.mapping(value, where, holds="architecture: [preset, ...]")
        runs: List[Pretraining] = []
        for arch, entries in archs.items():
            at = f"{where}.{arch}"
            self.name(arch, at)
            if not isinstance(entries, list) or not entries:
                self.fail(at, "expected a list of presets (names in pretrain_configs/) or "
                              "{name, preset, flags, transfer}")
            for entry in entries:
                if isinstance(entry, str):
                    entry = {"preset": entry}
                entry = self.mapping(entry, at, ("name", "preset", "flags", "transfer"),
                                     "name, preset, flags, transfer")
                preset = entry.get("preset")
                if not isinstance(preset, str) or not (PRESETS / f"{preset}.yaml").is_file():
                    self.fail(at, f"no preset {preset!r} (pretrain_configs/{preset}.yaml does not exist)")
                name = self.name(entry.get("name", preset), f"{at}.name")
                if any(run.name == name for run in runs):
                    self.fail(at, f"pretraining {name!r} is listed twice (give one of them another name:)")
                transfer = entry.get("transfer", True)
                if not isinstance(transfer, bool):
                    self.fail(f"{at}.{name}.transfer", f"expected true or false, not {transfer!r}")
                runs.append(Pretraining(name, arch, PRESETS / f"{preset}.yaml",
                                        self.flags(entry.get("flags"), f"{at}.{name}.flags"), transfer))
        return runs

    def known_archs(self, listed, where: str) -> None:
        archs = {run.arch for run in self.pretrain.architectures}
        for arch in listed:
            if arch not in archs:
                self.fail(where, f"architecture {arch!r} has no pretraining in the file "
                                 f"(pretrain.architectures: {', '.join(sorted(archs))})")

    def tasks(self, value, where: str, **_) -> Dict[str, Dict[str, Path]]:
        tasks = self.mapping(value, where, holds="task: {architecture: config}")
        out = {}
        for task, per_arch in tasks.items():
            self.name(task, where)
            configs = self.mapping(per_arch, f"{where}.{task}", holds="architecture: config")
            self.known_archs(configs, f"{where}.{task}")
            out[task] = {arch: self.file(cfg, f"{where}.{task}.{arch}", "config") for arch, cfg in configs.items()}
        return out

    def configs(self, value, where: str, holds: str, **_) -> Dict[str, List[Path]]:
        """name -> config files (one path or a list, merged left to right)."""
        out = {}
        for name, paths in self.mapping(value, where, holds=holds).items():
            self.name(name, where)
            paths = paths if isinstance(paths, list) else [paths]
            out[name] = [self.file(p, f"{where}.{name}", "config") for p in paths]
        return out

    def architectures(self, value, where: str, **_) -> List[str]:
        if value is None:
            return sorted({run.arch for run in self.pretrain.architectures})
        if not isinstance(value, list) or not value:
            self.fail(where, f"expected a list of architectures of pretrain, not {value!r}")
        self.known_archs(value, where)
        return value

    def pretrain_seed(self, value, where: str, **_) -> List[int]:
        """The pretraining seeds transfer starts from: one seed (default: the first), a list, or ``all``."""
        seeds = self.pretrain.seeds
        if value == "all":
            return list(seeds)
        chosen = [seeds[0]] if value is None else value if isinstance(value, list) and value else [value]
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in chosen):
            self.fail(where, f"expected a seed of pretrain.seeds, a list of them, or all, not {value!r}")
        for seed in chosen:
            if seed not in seeds:
                self.fail(where, f"seed {seed!r} is not among pretrain.seeds {seeds} (give one of them, a list of "
                                 "them, or all)")
        if len(set(chosen)) != len(chosen):
            self.fail(where, f"seed listed twice in {value}")
        return list(chosen)


def read_suite_file(path, output_root: Optional[str] = None) -> SuiteFile:
    """A suite file read and checked in full: the first mistake is a ``SuiteError``
    naming the file and the key. ``output_root`` overrides the file's (tests, demo)."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.y*ml"))[:4]
        raise SuiteError(f"suite file {path} is a directory, not a suite file"
                         + (f" (it holds {', '.join(inside)})" if inside else ""))
    if not path.is_file():
        raise SuiteError(f"suite file {path} does not exist")
    spec = read_suite_yaml(path)
    c = _Checker(path)
    unknown = [k for k in spec if k not in TOP_KEYS]
    if unknown:
        c.fail("", f"unknown stage or key {unknown[0]!r} (known: {', '.join(TOP_KEYS)})")
    root = output_root or spec.get("output_root")
    if not isinstance(root, str) or not root:
        c.fail("output_root", f"expected the folder the run dirs go under, not {root!r}")
    if spec.get("resources") is not None:
        c.defaults = c.mapping(spec["resources"], "resources", RESOURCE_KEYS)
    listed = [stage for stage in STAGES if stage in spec]
    if not listed:
        c.fail("", f"no stage (expected some of {', '.join(STAGES)})")
    if "pretrain" not in listed:
        c.fail(listed[0], "transfer stages start from pretraining runs, and the file has no pretrain stage")
    stages = {}
    for stage in listed:  # pretrain first: the transfer stages are checked against it
        stages[stage] = c.section(SECTIONS[stage], spec[stage], stage)
        if stage == "pretrain":
            c.pretrain = stages[stage]
    return SuiteFile(path, Path(root).absolute(), stages)


# ---- the jobs ---------------------------------------------------------------------------------

def _det_seg_data_options(stage: str, root: Path) -> List[str]:
    """cfg-options pointing a det_configs/ or seg_configs/ file at a data folder (COCO or ADE20K layout)."""
    loaders = ("train_dataloader", "val_dataloader", "test_dataloader")
    if stage == "det":  # mmdet's COCO configs join data_root + ann_file, so the root ends with /
        ann = root / "annotations" / "instances_val2017.json"
        return ([f"{k}.dataset.data_root={root}/" for k in loaders]
                + [f"val_evaluator.ann_file={ann}", f"test_evaluator.ann_file={ann}"])
    return [f"{k}.dataset.data_root={root}" for k in loaders]


def _pretrain_key(run: Pretraining, seed: int) -> str:
    return f"pretrain/{run.name}/seed{seed}"


def _starting_points(pre: PretrainSection, archs, seeds: List[int]):
    """(pretraining run, its job's key, the transfer run's name) a transfer stage starts from: one
    pretraining seed keeps the run's name; several put theirs in it (``<run>/pretrain_seed<k>``)."""
    for run in pre.architectures:
        if run.arch in archs and run.transfer:
            for seed in seeds:
                yield run, _pretrain_key(run, seed), run.name if len(seeds) == 1 else f"{run.name}/pretrain_seed{seed}"


def expand(file: SuiteFile) -> Suite:
    """Every job of a checked suite file, pretraining first (raises nothing)."""
    suite = Suite(path=file.path, output_root=file.output_root)
    pre: PretrainSection = file.stages["pretrain"]
    for run in pre.architectures:
        for seed in pre.seeds:
            key = _pretrain_key(run, seed)
            out = suite.output_root / key
            argv = ["--config", str(run.preset), *(["--data_path", str(pre.data)] if pre.data else []),
                    *pre.flags, *run.flags, "--seed", str(seed), "--output_dir", str(out), "--resume", "auto"]
            suite.jobs.append(Job(key, "pretrain", out, ENTRY["pretrain"], argv, pre.resources, seed,
                                  run.name, run.arch))
    weights = {j.key: j.run_dir / WEIGHTS for j in suite.jobs}
    for stage in ("det", "seg"):
        sec: Optional[DetSegSection] = file.stages.get(stage)
        if sec is None:
            continue
        data_options = _det_seg_data_options(stage, sec.data) if sec.data else []
        for task, config in sec.tasks.items():
            for run, dep, name in _starting_points(pre, config, sec.pretrain_seeds):
                for seed in sec.seeds:
                    key = f"{stage}/{task}/{name}/seed{seed}"
                    out = suite.output_root / key
                    argv = [str(config[run.arch]), "--work-dir", str(out), "--resume", "--cfg-options",
                            f"model.backbone.init_cfg.checkpoint={weights[dep]}", f"randomness.seed={seed}",
                            *data_options, *sec.cfg_options]
                    suite.jobs.append(Job(key, stage, out, ENTRY[stage], argv, sec.resources, seed, run.name,
                                          run.arch, task, dep, weights[dep]))
    cls: Optional[ClsSection] = file.stages.get("cls")
    if cls is not None:
        for recipe, recipe_cfgs in cls.recipes.items():
            for dataset, dataset_cfgs in cls.datasets.items():
                for run, dep, name in _starting_points(pre, cls.architectures, cls.pretrain_seeds):
                    for seed in cls.seeds:
                        key = f"cls/{recipe}/{dataset}/{name}/seed{seed}"
                        out = suite.output_root / key
                        data = cls.data[dataset]
                        argv = ["--config", *map(str, recipe_cfgs + dataset_cfgs), "--finetune", str(weights[dep]),
                                *(["--data_path", str(data)] if data else []), *cls.flags, "--seed", str(seed),
                                "--output_dir", str(out), "--resume", "auto"]
                        suite.jobs.append(Job(key, "cls", out, ENTRY["cls"], argv, cls.resources, seed,
                                              run.name, run.arch, f"{recipe}/{dataset}", dep, weights[dep]))
    return suite


def load_suite(path, output_root: Optional[str] = None) -> Suite:
    """Read and check a suite file, then its jobs (``read_suite_file``, ``expand``)."""
    return expand(read_suite_file(path, output_root))


def select(suite: Suite, only: Sequence[str] = ()) -> List[Job]:
    """The jobs whose key starts with one of ``only`` (all without), plus the pretraining
    jobs they start from, in the suite's order."""
    chosen = {j.key for j in suite.jobs if not only or any(j.key.startswith(p) for p in only)}
    if only and not chosen:
        raise SuiteError(f"--only {' '.join(only)}: no job of {suite.path} has a key starting so "
                         f"(keys look like {suite.jobs[0].key})")
    chosen |= {j.depends_on for j in suite.jobs if j.key in chosen and j.depends_on}
    return [j for j in suite.jobs if j.key in chosen]
