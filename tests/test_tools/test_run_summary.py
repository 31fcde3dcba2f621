"""tools/run_summary.py: a test run's metrics file, else the last
validation of the newest training run; a clear error when none logged."""
import json

import pytest

from tools.run_summary import format_metrics, main, read_metrics


def write_lines(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))


def test_last_validation_of_the_newest_run(tmp_path):
    old = tmp_path / '20260101_000000' / 'vis_data' / 'scalars.json'
    write_lines(old, [{'mIoU': 99.0, 'step': 10}])
    new = tmp_path / '20260102_000000' / 'vis_data' / 'scalars.json'
    write_lines(new, [{'loss': 1.0, 'step': 1}, {'mIoU': 20.0, 'step': 5},
                      {'loss': 0.5, 'step': 6},
                      {'mIoU': 30.5, 'aAcc': 91.25, 'step': 10},
                      {'loss': 0.4, 'step': 11}])
    assert read_metrics(str(tmp_path), ['mIoU', 'aAcc']) == {
        'mIoU': 30.5, 'aAcc': 91.25}


def test_test_run_file_and_formatting(tmp_path, capsys):
    run = tmp_path / '20260103_101010'
    write_lines(run / '20260103_101010.json', [{'accuracy/top1': 71.234}])
    (run / 'vis_data').mkdir()
    assert main([str(tmp_path), '--keys', 'accuracy/top1']) == {
        'accuracy/top1': 71.234}
    assert capsys.readouterr().out.strip() == 'accuracy/top1 71.23'
    assert format_metrics({'mIoU': 1, 'aAcc': 2.5}) == \
        'mIoU 1.00, aAcc 2.50'


def test_no_metric_is_a_clear_error(tmp_path):
    write_lines(tmp_path / '20260101_000000' / 'vis_data' / 'scalars.json',
                [{'loss': 1.0, 'step': 1}])
    with pytest.raises(SystemExit, match='logged any of'):
        main([str(tmp_path)])
