"""One folder per run: its settings, and its result once it finished.

Layout under the sweep's work dir::

    runs/<phase>/<grid point>/seed_<s>/
        settings.json   what the run was asked to do (written first)
        <config>.py     the resolved config (dumped by the runner)
        result.json     its scores; written atomically, and only when the
                        run finished: a folder without it is a run that was
                        killed (or failed) and is cleared and redone
        ...             the runner's own logs and files
"""
import json
import os.path as osp
import shutil
from typing import Any, Dict, Optional

from mmseg_davpt.engine.hooks.atomic_checkpoint_hook import atomic_write_bytes

RESULT = 'result.json'
SETTINGS = 'settings.json'


class StaleRunError(RuntimeError):
    """A finished run's stored settings differ from what the sweep asks."""


def _json_safe(value):
    """``value`` as it reads back from JSON (tuples become lists; what JSON
    cannot hold becomes its ``repr``), so that stored and requested
    settings compare equal."""
    return json.loads(json.dumps(value, default=repr))


def flatten(tree, prefix: str = '') -> Dict[str, Any]:
    """Nested dicts / lists as one flat dict with dotted keys
    (``{'a': {'b': [1]}}`` -> ``{'a.b.0': 1}``)."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f'{prefix}.{key}' if prefix else str(key)))
    if not flat and prefix:
        flat[prefix] = tree  # an empty dict / list is a value of its own
    return flat


def first_difference(a: Dict[str, Any], b: Dict[str, Any]) -> Optional[str]:
    """The first key (sorted) whose value differs between two flat dicts,
    or ``None`` when they are equal."""
    for key in sorted(set(a) | set(b)):
        if a.get(key, '<unset>') != b.get(key, '<unset>'):
            return key
    return None


class RunStore:
    """The run folders of one sweep.

    Args:
        work_dir (str): the sweep's work dir.
    """

    def __init__(self, work_dir: str):
        self.work_dir = work_dir

    def run_dir(self, name: str) -> str:
        """Folder of the run called ``name`` (``phase/point/seed_s``)."""
        return osp.join(self.work_dir, 'runs', name)

    def finished(self, name: str, settings: Dict[str, Any]) -> Optional[dict]:
        """The stored result of a finished run with these ``settings``;
        ``None`` (after clearing the folder) when the run never finished.

        Raises:
            StaleRunError: the run finished with other settings (naming the
                first key that differs).
        """
        folder = self.run_dir(name)
        path = osp.join(folder, RESULT)
        if not osp.isfile(path):
            if osp.isdir(folder):  # killed or failed mid-way: start afresh
                shutil.rmtree(folder)
            return None
        with open(path) as f:
            result = json.load(f)
        stored = flatten(result.get('settings', {}))
        wanted = flatten(_json_safe(settings))
        key = first_difference(stored, wanted)
        if key is not None:
            raise StaleRunError(
                f'{folder} finished with other settings than this sweep '
                f'asks for ({key}: {stored.get(key, "<unset>")!r} there, '
                f'{wanted.get(key, "<unset>")!r} now); use another '
                f'--work-dir, or delete the folder to redo the run')
        return result

    def start(self, name: str, settings: Dict[str, Any]) -> str:
        """Create the run's folder with its ``settings.json``."""
        folder = self.run_dir(name)
        atomic_write_bytes(
            json.dumps(_json_safe(settings), indent=1).encode(),
            osp.join(folder, SETTINGS))
        return folder

    def finish(self, name: str, settings: Dict[str, Any],
               result: Dict[str, Any]) -> dict:
        """Record a finished run (atomically); returns what was written."""
        record = _json_safe(dict(result, settings=settings))
        atomic_write_bytes(
            json.dumps(record, indent=1).encode(),
            osp.join(self.run_dir(name), RESULT))
        return record
