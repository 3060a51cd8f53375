"""Checkpoint directories: atomic save, listing, resolving, loading, retention.

Layout: each of the six stage directories (saved_model/{transformer/pretrain,bert/finetuning}/{checkpoint,best,
final}) holds step directories, `step-00000500/` (`step-00000500-<run>` when another run already has that step
there). A checkpoint is written into a hidden `.tmp-...` sibling and renamed into place only when complete, with
`trainer_state.json` written last; a crash mid-save therefore leaves the previous checkpoint intact and at worst
a hidden temporary directory that is never listed and is swept on the next save.

Runs: every checkpoint's trainer_state.json names the run that wrote it (`run_id`, `run_started`). "Latest" means
most recently written, never highest step: step 451 of the run a learner just stopped is newer than step 2000 of
last week's. checkpoint/ keeps the last K checkpoints *of each run* (retention never deletes another run's);
best/ and final/ hold one checkpoint each, the newest run's, and saving one there says what it replaced.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import KINDS, STAGES
from ..errors import CheckpointError
from .validate import config_file_problems, state_problems

STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
REQUIRED = (WEIGHTS_FILE, CONFIG_FILE, STATE_FILE)
RESUME_FILES = ("resume.safetensors", "resume.json")  # train_state.py: optimizer, RNG, data position
LEGACY_RESUME_FILES = ("optimizer.pt", "scheduler.pt", "rng.pt")  # pickles of an older bert2: never loaded unasked
LEGACY_NOTE = "resume files are pickles from an older bert2: resuming needs --trust-checkpoint (weights are safe)"
TMP_PREFIX = ".tmp-"

# Test hook: called with the temporary directory after the weights are written, before the state file and the
# rename. The crash-safety test pauses here and kills the process.
_pause_hook: Callable[[Path], None] | None = None


@dataclass
class CheckpointInfo:
    path: str
    kind: str  # pretrain | finetune
    stage: str  # checkpoint | best | final
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    created: str = ""
    size_bytes: int = 0
    valid: bool = True
    task: str = ""
    run_id: str = ""
    """The run that wrote it (empty: written before runs had ids)."""
    error: str = ""
    note: str = ""  # usable, but something to know (e.g. pickled resume files)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


_STEP_DIR = re.compile(r"^step-(\d+)(?:-[A-Za-z0-9_.-]+)?$")


def new_run_id() -> str:
    """A run's identity: its start time to the millisecond and a random suffix (sortable, unique, readable)."""
    now = datetime.now()
    return now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}-{secrets.token_hex(2)}"


def run_of(path: Path) -> str | None:
    """The run a checkpoint directory belongs to (trainer_state.json's run_id); None for checkpoints written
    before runs had ids, imports, and anything unreadable."""
    try:
        state = json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    run = state.get("run_id") if isinstance(state, dict) else None
    return run if isinstance(run, str) and run else None


def written_at(path: Path) -> float:
    """When a checkpoint was written: the modification time of its trainer_state.json (written last), else of
    the directory; 0.0 when neither can be read."""
    for p in (Path(path) / STATE_FILE, Path(path)):
        try:
            return p.stat().st_mtime
        except OSError:
            continue
    return 0.0


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    """Write JSON durably: to a temporary file, fsync, then rename over the target."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


STATE_DEFAULTS: dict[str, Any] = {
    "epoch": 0,
    "consumed": 0,
    "elapsed_s": 0.0,
    "tokens_seen": 0,
    "metrics": {},
    "best_metric": "loss",
    "best_value": None,
    "log_history": [],
}


def write_state(directory: Path, **state: Any) -> None:
    """trainer_state.json: the trainer's counters and metrics (defaults for a checkpoint no trainer wrote, such as
    an import), when it was made and by which bert2. Written last into a checkpoint: its presence marks the
    directory complete."""
    write_json(
        Path(directory) / STATE_FILE, {**STATE_DEFAULTS, **state, "created": now_iso(), "bert2_version": __version__}
    )


def sweep_temporaries(stage_dir: Path) -> None:
    """Remove half-written checkpoints left by a crash (hidden .tmp- directories)."""
    if stage_dir.is_dir():
        for p in stage_dir.iterdir():
            if p.name.startswith(TMP_PREFIX) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


def publish_dir(tmp: Path, target: Path) -> None:
    """Make the fully written directory `tmp` appear as `target` in one rename, replacing an existing `target`.

    Every file is flushed first, so the rename never exposes unwritten data; an existing target is moved aside
    (a hidden .tmp- name, swept later) rather than deleted before the new one is in place. Raises OSError.
    """
    for f in tmp.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if target.exists():
        old = target.parent / f"{TMP_PREFIX}old-{target.name}-{os.getpid()}"
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    _fsync_dir(target.parent)


def check_output_dir(out_dir: str | os.PathLike, force: bool, protect: tuple[Path, ...] = ()) -> Path:
    """The directory a command may write a model into (export-hf, import-hf, prune --out), checked before any
    work: never one that holds a source in `protect`, never a file, and an existing non-empty directory only with
    `force` and only when it looks like a model directory (it has a config.json): `--force` with a mistyped path
    must not delete someone's home directory."""
    out = Path(out_dir).expanduser()
    resolved = out.resolve()
    for p in protect:
        p = p.resolve()
        if resolved == p or resolved in p.parents:
            raise CheckpointError(f"{out} holds the source ({p}); choose another output directory")
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} is a file; choose a directory to write")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise CheckpointError(f"{out} is not empty; pass --force to replace it, or choose another directory")
        if not (out / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"{out} is not empty and does not look like a model directory (no config.json); "
                "refusing to replace it even with --force"
            )
    return out


def write_directory(
    out_dir: str | os.PathLike, payload: Callable[[Path], None], force: bool, protect: tuple[Path, ...] = ()
) -> Path:
    """Create `out_dir` from `payload(tmpdir)` the way save_checkpoint does: write a hidden `.tmp-` sibling, fsync
    every file, then rename it into place, so an interrupted import, export or prune never leaves a half-written
    directory that later loads as if it were whole. `check_output_dir` decides whether `out_dir` may be written."""
    out = check_output_dir(out_dir, force, protect)
    parent = out.parent
    tmp = parent / f"{TMP_PREFIX}{out.name}-{os.getpid()}-{int(time.time() * 1000)}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        payload(tmp)
        publish_dir(tmp, out)  # an empty or --force-replaced `out` is moved aside, then deleted
    except OSError as exc:
        raise CheckpointError(f"could not write {out}: {exc.strerror or exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def save_checkpoint(
    stage_dir: Path,
    step: int,
    write_payload: Callable[[Path], None],
    state: dict[str, Any],
    keep_last: int | None = None,
    protect: set[Path] | None = None,
    replaced: list[tuple[Path, str | None]] | None = None,
) -> Path:
    """Atomically create `stage_dir/step-N` from `write_payload(tmpdir)` plus `state` as trainer_state.json.

    keep_last=None keeps only the new checkpoint (best/, final/: one per kind, the newest run's); an int keeps
    that many newest checkpoints of the run `state["run_id"]` names (checkpoint/), and never touches another
    run's. The directories removed are appended to `replaced` when given, with the run each belonged to. Raises CheckpointError (disk full,
    unwritable) after removing its temporary directory; existing checkpoints are untouched in that case.
    """
    stage_dir = Path(stage_dir)
    run = state.get("run_id")
    target = stage_dir / step_dir_name(step)
    if target.exists() and run_of(target) != run and keep_last is not None:
        target = stage_dir / f"{step_dir_name(step)}-{run or 'run'}"  # another run's step N stays where it is
    tmp = stage_dir / f"{TMP_PREFIX}{target.name}-{os.getpid()}-{int(time.time() * 1000)}"
    try:
        stage_dir.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(stage_dir)
        tmp.mkdir()
        write_payload(tmp)
        if _pause_hook is not None:
            _pause_hook(tmp)
        write_state(tmp, **{**state, "step": step})  # written last: its presence marks a complete payload
        before = {p: run_of(p) for p in step_dirs(stage_dir)}
        overwritten = target in before and before[target] != run  # best/ or final/ holding another run's step N
        publish_dir(tmp, target)  # same step of the same run saved again (a stop right after a save): replaced
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"could not write checkpoint to {target}: {exc.strerror or exc}") from exc
    if keep_last is None:
        removed = rotate(stage_dir, 1, protect={target, *(protect or set())})
    else:
        removed = rotate(stage_dir, keep_last, protect={target, *(protect or set())}, run_id=run or "")
    if replaced is not None:
        replaced.extend((p, before.get(p)) for p in ([target] if overwritten else []) + removed)
    return target


def step_dirs(stage_dir: Path) -> list[Path]:
    """Step directories of one stage directory, oldest first (by when they were written)."""
    if not Path(stage_dir).is_dir():
        return []
    dirs = [p for p in Path(stage_dir).iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
    return sorted(dirs, key=lambda p: (written_at(p), _step_of(p), p.name))


def _step_of(p: Path) -> int:
    m = _STEP_DIR.match(p.name)
    return int(m.group(1)) if m else -1


def rotate(stage_dir: Path, keep_last: int, protect: set[Path] | None = None, run_id: str | None = None) -> list[Path]:
    """Delete all but the newest `keep_last` step directories, never a protected one. With `run_id`, only that
    run's checkpoints count and can go ("" : those of no run); another run's are never touched."""
    protect = {p.resolve() for p in (protect or set())}
    dirs = step_dirs(stage_dir)
    if run_id is not None:
        dirs = [p for p in dirs if (run_of(p) or "") == run_id]
    removed = []
    for p in dirs[: max(0, len(dirs) - keep_last)]:
        if p.resolve() not in protect:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in REQUIRED)


def read_state(path: Path) -> dict[str, Any]:
    """trainer_state.json of a checkpoint; CheckpointError if missing or unreadable."""
    if not (Path(path) / STATE_FILE).is_file():
        raise CheckpointError(f"{path} is not a bert2 checkpoint: {STATE_FILE} is missing")
    return read_json(Path(path) / STATE_FILE)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a checkpoint file; CheckpointError (naming the file) when missing or broken."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data


def checkpoint_info(path: Path, kind: str, stage: str) -> CheckpointInfo:
    """Metadata of one step directory, from trainer_state.json and file sizes only (never the weights)."""
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file()) if path.is_dir() else 0
    info = CheckpointInfo(path=str(path), kind=kind, stage=stage, step=_step_of(path), size_bytes=size)
    missing = [f for f in REQUIRED if not (path / f).is_file()]
    if missing:
        info.valid, info.error = False, f"missing {', '.join(missing)}"
        return info
    try:
        state = read_state(path)
    except CheckpointError as exc:
        info.valid, info.error = False, str(exc)
        return info
    problems = state_problems(state)
    if problems:  # one damaged directory is shown as invalid; the listing goes on with the rest
        info.valid, info.error = False, f"{STATE_FILE}: {'; '.join(problems)}"
        return info
    try:
        config = read_json(path / CONFIG_FILE)
    except CheckpointError as exc:
        info.valid, info.error = False, str(exc)
        return info
    problems = config_file_problems(config)
    if problems:
        info.valid, info.error = False, f"{CONFIG_FILE}: {'; '.join(problems)}"
        return info
    info.step = int(state.get("step", info.step))
    info.metrics = {k: v for k, v in (state.get("metrics") or {}).items() if isinstance(v, (int, float))}
    info.created = str(state.get("created", ""))
    info.task = str(state.get("task", ""))
    info.run_id = str(state.get("run_id") or "")
    teacher = (state.get("run_config") or {}).get("distilled_from")  # a bert2 distill student names its teacher
    if teacher:
        info.note = f"distilled from {teacher}"
    if not all((path / f).is_file() for f in RESUME_FILES) and any((path / f).is_file() for f in LEGACY_RESUME_FILES):
        info.note = LEGACY_NOTE
    return info


def damaged_summary(infos: list[CheckpointInfo]) -> str:
    """What to say where a checkpoint was wanted but every one listed is invalid ("" when none is): the first
    one's reason, so a learner sees why instead of "no checkpoint yet"."""
    bad = [i for i in infos if not i.valid]
    if not bad or any(i.valid for i in infos):
        return ""
    first = Path(bad[0].path)
    more = f" (and {len(bad) - 1} more damaged)" if len(bad) > 1 else ""
    return f"no valid checkpoint: {first.parent.name}/{first.name}: {bad[0].error}{more}"


def list_checkpoints(root: str | os.PathLike) -> list[CheckpointInfo]:
    """Every step directory in the six stage directories under `root` (pretrain first, stage order, step order)."""
    out: list[CheckpointInfo] = []
    for kind, parts in KINDS.items():
        for stage in STAGES:
            stage_dir = Path(root).joinpath(*parts, stage)
            for p in step_dirs(stage_dir):
                out.append(checkpoint_info(p, kind, stage))
    return out


def kind_dir(root: str | os.PathLike, kind: str) -> Path:
    return Path(root).joinpath(*KINDS[kind])


def latest_in(stage_dir: Path) -> Path | None:
    """Newest complete checkpoint of a stage directory, or None."""
    for p in reversed(step_dirs(stage_dir)):
        if is_complete(p):
            return p
    return None


def latest_resumable(root: str | os.PathLike, kind: str, accept: Callable[[Path], bool] | None = None) -> Path | None:
    """The most recently written complete checkpoint of `kind` in checkpoint/ or final/ (what `--resume` and the
    TUI's `r` continue): the run a learner stopped last, never an older run's higher step. `accept` narrows the
    choice (distillation resumes only distilled checkpoints)."""
    found = [
        p
        for stage in ("checkpoint", "final")
        for p in step_dirs(kind_dir(root, kind) / stage)
        if is_complete(p) and (accept is None or accept(p))
    ]
    return max(found, key=written_at, default=None)


def kind_checkpoints(root: str | os.PathLike, kind: str) -> list[Path]:
    """Every step directory of `kind`'s three stage directories, oldest first."""
    return sorted((p for stage in STAGES for p in step_dirs(kind_dir(root, kind) / stage)), key=written_at)


def runs_in(root: str | os.PathLike, kind: str) -> dict[str, list[Path]]:
    """run id -> its checkpoints in `kind`'s directories ("" for checkpoints written before runs had ids)."""
    out: dict[str, list[Path]] = {}
    for p in kind_checkpoints(root, kind):
        out.setdefault(run_of(p) or "", []).append(p)
    return out


def clear_kind(root: str | os.PathLike, kind: str) -> list[Path]:
    """Delete every checkpoint of `kind` (all runs, all three stages): what `--overwrite` and the TUI's "clear and
    start over" do, and only they. Returns what was removed."""
    removed = []
    for p in kind_checkpoints(root, kind):
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def resolve(path: str | os.PathLike) -> Path:
    """Accept a step directory, a stage directory (its newest), or a kind directory (best, else final)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if (p / STATE_FILE).is_file() or (p / WEIGHTS_FILE).is_file():
        if not is_complete(p):
            missing = [f for f in REQUIRED if not (p / f).is_file()]
            raise CheckpointError(f"{p} is an incomplete checkpoint (missing {', '.join(missing)})")
        return p
    candidates = [p] if p.name in STAGES else [p / "best", p / "final", p / "checkpoint"]
    for c in candidates:
        found = latest_in(c)
        if found is not None:
            return found
    raise CheckpointError(f"no complete checkpoint in {p}")


def default_checkpoint(root: str | os.PathLike, kind: str = "pretrain") -> Path:
    """best, else final, else the newest periodic checkpoint of `kind`."""
    base = kind_dir(root, kind)
    for stage in ("best", "final", "checkpoint"):
        found = latest_in(base / stage)
        if found is not None:
            return found
    what = "bert2 quick or bert2 pretrain" if kind == "pretrain" else "bert2 finetune"
    raise CheckpointError(f"no {kind} checkpoint under {base}; run `{what}` first or pass --checkpoint DIR")
