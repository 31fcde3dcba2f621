"""Reporting images that a split lists more than once, or that two splits
share, with counts."""
import warnings
from collections import Counter
from typing import Iterable, Optional


def warn_repeated_entries(source: str, entries: Iterable[str],
                          what: str = 'lines') -> int:
    """Warn (``UserWarning``) when ``entries`` (image names in file order)
    repeat a name; returns the number of repeated entries (0: none).

    Args:
        source: the split file, named in the warning.
        entries: one image name per sample read from ``source``.
        what: what an entry is in ``source`` (``'lines'``, ``'keys'``).
    """
    entries = list(entries)
    counts = Counter(entries)
    repeated = {name: n for name, n in counts.items() if n > 1}
    if not repeated:
        return 0
    extra = sum(n - 1 for n in repeated.values())
    name = next(e for e in entries if e in repeated)
    positions = [i + 1 for i, e in enumerate(entries) if e == name]
    warnings.warn(
        f'{source}: {extra} of its {len(entries)} {what} repeat an image '
        f'listed before ({len(repeated)} images appear more than once, e.g. '
        f'{name!r} as {what} {positions[:4]}); each repeat is used as '
        'another sample', UserWarning, stacklevel=2)
    return extra


def shared_images(a: Optional[frozenset], b: Optional[frozenset],
                  name_a: str, name_b: str) -> Optional[str]:
    """A sentence counting the images of split ``name_a`` that are also in
    ``name_b`` (``None`` when none are, or a split's images are unknown)."""
    if a is None or b is None:
        return None
    both = a & b
    if not both:
        return None
    example = sorted(both)[0]
    return (f'{len(both)} of the {len(a)} {name_a} images are also '
            f'{name_b} images (e.g. {example!r})')
