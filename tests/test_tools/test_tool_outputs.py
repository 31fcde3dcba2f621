"""No tool writes over what it reads, nor over an existing file unless told
to (``--force``); a new training run does not write over another run's
checkpoints. Every check runs before the tool's work, so these tests use
placeholder inputs where the tool never gets to read them."""
import os
import os.path as osp

import pytest
import torch

from mmseg_davpt.utils.output_guard import (OutputPathError,
                                            check_output_file,
                                            check_output_folder, same_file)

from tests._helpers import ROOT
DAVPT = osp.join(ROOT, 'configs/demo/davpt_setr_vit-tiny_shapes-64x64.py')
CLS = osp.join(ROOT, 'configs/demo/davpt_vit-tiny_cls-shapes-32x32.py')


def write(path, data=b'original'):
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def test_same_file_through_links(tmp_path):
    a = write(tmp_path / 'a.pth')
    os.symlink(a, tmp_path / 'sym.pth')
    os.link(a, tmp_path / 'hard.pth')
    assert same_file(a, str(tmp_path / 'sym.pth'))
    assert same_file(a, str(tmp_path / 'hard.pth'))
    assert same_file(a, str(tmp_path / '.' / 'a.pth'))
    assert not same_file(a, write(tmp_path / 'b.pth'))
    assert not same_file(a, str(tmp_path / 'missing.pth'))


def test_check_output_file_rules(tmp_path):
    src = write(tmp_path / 'src.pth')
    os.link(src, tmp_path / 'hard.pth')
    # an input is refused even with force, through any path
    for out in (src, str(tmp_path / 'hard.pth'),
                str(tmp_path / 'sub' / '..' / 'src.pth')):
        with pytest.raises(OutputPathError, match='is the input .*same '
                           'file'):
            check_output_file(out, [src], force=True, option='OUT')
    # an existing other file needs force
    other = write(tmp_path / 'other.pth')
    with pytest.raises(OutputPathError,
                       match="OUT '.*other.pth' already exists; pass "
                       '--force'):
        check_output_file(other, [src], option='OUT')
    check_output_file(other, [src], force=True)
    check_output_file(str(tmp_path / 'new.pth'), [src, None])
    with pytest.raises(OutputPathError, match='is a folder'):
        check_output_file(str(tmp_path), [], force=True)
    with pytest.raises(OutputPathError, match='needs one of the extensions'):
        check_output_file(str(tmp_path / 'x.txt'), [],
                          extensions=('.png', ))
    with pytest.raises(OutputPathError, match='is a file, not a folder'):
        check_output_folder(src, ['a.json'])


def test_export_peft_never_writes_over_its_inputs(demo_data, tmp_path):
    from tools.export_peft import main as export_peft
    _, vit = demo_data
    full = write(tmp_path / 'iter_20.pth', b'full checkpoint bytes')
    base = str(tmp_path / 'base.pth')
    os.link(vit, base)  # the base ViT through a hard link
    opts = ['--cfg-options', f'model.backbone.init_cfg.checkpoint={vit}']
    for out in (full, base, vit):
        with pytest.raises(OutputPathError, match='is the input'):
            export_peft([DAVPT, full, out, '--force', *opts])
    assert read(full) == b'full checkpoint bytes'
    assert torch.load(vit, weights_only=False).keys()  # still a checkpoint
    existing = write(tmp_path / 'peft.pth')
    with pytest.raises(OutputPathError, match='already exists'):
        export_peft([DAVPT, full, existing, *opts])
    assert read(existing) == b'original'


def test_convert_vit_checkpoint_outputs(demo_data, tmp_path):
    from tools.convert_vit_checkpoint import main as convert
    _, vit = demo_data
    src = str(tmp_path / 'src.pth')
    os.symlink(vit, src)
    with pytest.raises(OutputPathError, match='is the input'):
        convert([src, vit, '--force'])
    existing = write(tmp_path / 'dst.pth')
    with pytest.raises(OutputPathError, match='already exists'):
        convert([src, existing])
    assert read(existing) == b'original'
    convert([src, existing, '--force'])
    assert torch.load(existing, weights_only=False).keys() == \
        torch.load(vit, weights_only=False).keys()


def test_segment_image_checks_out_before_inference(tmp_path):
    """A folder, a name without an image extension, the input image or an
    existing file: refused before the model is built (the checkpoint given
    here is not even a file)."""
    from tools.segment_image import main as segment
    image = write(tmp_path / 'img.png')
    folder = tmp_path / 'outdir'
    folder.mkdir()
    base = [DAVPT, str(tmp_path / 'no_such.pth'), image, '--out']
    cases = [(str(folder), 'is a folder'),
             (str(tmp_path / 'pred'), 'needs one of the extensions'),
             (str(tmp_path / 'pred.pth'), 'needs one of the extensions'),
             (image, 'is the input'),
             (write(tmp_path / 'old.png'), 'already exists')]
    for out, message in cases:
        with pytest.raises(OutputPathError, match=message):
            segment(base + [out])
    assert read(image) == b'original'


def test_count_params_json_and_dataset_makers(tmp_path):
    from tools.count_params import main as count_params
    from tools.make_cls_demo_dataset import main as make_cls
    from tools.make_demo_vit import main as make_vit
    with pytest.raises(OutputPathError, match='is the input'):
        count_params([DAVPT, '--json', DAVPT, '--force'])
    existing = write(tmp_path / 'counts.json')
    with pytest.raises(OutputPathError, match='already exists'):
        count_params([DAVPT, '--json', existing])
    with pytest.raises(OutputPathError, match='already exists'):
        make_vit(['--out', existing])
    assert read(existing) == b'original'
    out = str(tmp_path / 'cls')
    args = ['--layout', 'vtab', '--out', out, '--num-classes', '2',
            '--per-split', 'train800=2,val200=2,test=2']
    make_cls(args)
    with open(osp.join(out, 'test.txt')) as f:
        first = f.read()
    with pytest.raises(OutputPathError, match=r"train800.txt' already "
                       'exists; pass --force'):
        make_cls(args)
    make_cls(args + ['--force'])
    with open(osp.join(out, 'test.txt')) as f:
        assert f.read() == first


def test_make_fgvc_splits_refuses_to_replace_splits(tmp_path, capsys):
    from tools.dataset_prep import make_fgvc_splits
    train = tmp_path / 'train.txt'
    test = tmp_path / 'test.txt'
    train.write_text(''.join(f'a/{i}.jpg {i % 2 + 1}\n' for i in range(10)))
    test.write_text('a/t.jpg 1\n')
    args = ['lists', '--train-list', str(train), '--test-list', str(test),
            '--out', str(tmp_path)]
    # the train list is named train.txt, the split written train.json
    assert make_fgvc_splits.main(args) == 0
    assert make_fgvc_splits.main(args) == 1
    assert "train.json' already exists" in capsys.readouterr().err
    assert make_fgvc_splits.main(args + ['--force']) == 0


def test_test_tool_out(demo_data, tmp_path):
    from tools.test import main as test_main
    ckpt = write(tmp_path / 'model.pth')
    with pytest.raises(OutputPathError, match='is the input'):
        test_main([CLS, ckpt, '--out', ckpt, '--force'])
    with pytest.raises(OutputPathError, match='is a file; segmentation'):
        test_main([DAVPT, ckpt, '--out', ckpt])
    preds = tmp_path / 'preds'
    preds.mkdir()
    write(preds / 'old.png')
    with pytest.raises(OutputPathError, match='already holds 1 entries'):
        test_main([DAVPT, ckpt, '--out', str(preds)])
    assert read(ckpt) == b'original'


def test_visualize_out_dir_that_is_a_file(tmp_path):
    from tools.visualize_prompt_attention import main as visualize
    out = write(tmp_path / 'maps')
    with pytest.raises(OutputPathError, match='is a file'):
        visualize([DAVPT, str(tmp_path / 'x.pth'), out, '--out-dir', out])


def test_new_run_in_a_work_dir_of_another_run(demo_data, tmp_path, capsys):
    """Refused before the runner is built, naming what is there and the
    three ways on; ``--overwrite-work-dir`` deletes the earlier run first;
    ``--resume`` is not a new run."""
    from mmseg_davpt.engine.work_dir_reuse import check_new_run_work_dir
    from tools.train import main as train
    work = tmp_path / 'run'
    work.mkdir()
    old = write(work / 'iter_2.pth', b'the VPT run')
    write(work / 'last_checkpoint', old.encode())
    write(work / 'notes.txt')
    with pytest.raises(SystemExit) as err:
        train([DAVPT, '--work-dir', str(work)])
    message = str(err.value)
    for part in (f'work dir {work} holds another run: 2 files',
                 'iter_2.pth', 'last_checkpoint', '--resume',
                 'another --work-dir', '--overwrite-work-dir'):
        assert part in message
    assert read(old) == b'the VPT run'
    assert check_new_run_work_dir(str(work), resume=True,
                                  overwrite=False) == []
    removed = check_new_run_work_dir(str(work), resume=False, overwrite=True)
    assert sorted(osp.basename(p) for p in removed) == ['iter_2.pth',
                                                         'last_checkpoint']
    assert sorted(os.listdir(work)) == ['.davpt_train.lock', 'notes.txt']
    assert 'removed 2 files of the earlier run' in capsys.readouterr().out
    # an empty or fresh work dir is fine
    assert check_new_run_work_dir(str(work), False, False) == []
    assert check_new_run_work_dir(str(tmp_path / 'new'), False, False) == []


def test_benchmark_outputs_are_checked_before_measuring(tmp_path):
    from mmseg_davpt.benchmarks.cli import main as benchmark
    existing = write(tmp_path / 'k.json')
    with pytest.raises(OutputPathError, match="--json '.*k.json' already "
                       'exists'):
        benchmark(['kmeans', '--json', existing])
    with pytest.raises(OutputPathError, match='--markdown .* is a folder'):
        benchmark(['kmeans', '--markdown', str(tmp_path)])
    assert read(existing) == b'original'
