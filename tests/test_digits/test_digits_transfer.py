"""tools/digits_transfer.py --quick end to end (pretraining, probe, data,
every method config swept, report files), in-process."""
import json

import pytest


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path):
    from tools.digits_transfer import QUICK_SEEDS, main
    out = tmp_path / 'out'
    results = main(['--out', str(out), '--quick', '--data-dir',
                    str(tmp_path / 'data')])
    assert set(results['tasks']) == {'cls', 'seg'}
    for task, methods in results['tasks'].items():
        assert {'vpt', 'davpt', 'davpt_plus'} <= set(methods), task
        for summary in methods.values():
            assert summary['n'] == len(QUICK_SEEDS)
            assert summary['selected_on'] == 'val'
            assert sorted(map(int, summary['test'])) == QUICK_SEEDS
        # the paired difference is the per-seed difference of the two
        # methods' test scores
        davpt, vpt = methods['davpt']['test'], methods['vpt']['test']
        row = next(r for r in results['paired'][task]
                   if (r['a'], r['b']) == ('davpt', 'vpt'))
        expected = [davpt[str(s)] - vpt[str(s)] for s in QUICK_SEEDS]
        assert list(row['differences'].values()) == pytest.approx(expected)
        assert row['mean'] == pytest.approx(sum(expected) / len(expected))
    # one final run per method and seed, each with settings and scores
    finals = [r for r in results['runs'] if r['phase'] == 'final']
    assert len(finals) == len(QUICK_SEEDS) * sum(
        len(m) for m in results['tasks'].values())
    assert all(r['split'] == 'test' and r['metrics'] and r['settings']
               for r in finals)
    stored = json.loads((out / 'results.json').read_text())
    assert stored['tasks'].keys() == results['tasks'].keys()
    table = (out / 'results.md').read_text()
    assert '| davpt - vpt |' in table and '| davpt_plus - vpt |' in table
    assert 'QUICK mode' in table
    assert (out / 'results.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
