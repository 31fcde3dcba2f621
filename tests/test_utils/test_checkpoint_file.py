"""Reading checkpoint files with errors that say what a bad file is
(mmseg_davpt/utils/checkpoint_file.py)."""
import pytest
import torch

from mmseg_davpt.utils.checkpoint_file import (CheckpointFileError,
                                               read_checkpoint)


@pytest.mark.parametrize('mmap', [False, True])
def test_reads_zip_and_legacy_checkpoints(tmp_path, mmap):
    state = {'w': torch.arange(6.).reshape(2, 3)}
    torch.save(dict(state_dict=state), tmp_path / 'zip.pth')
    torch.save(dict(state_dict=state), tmp_path / 'legacy.pth',
               _use_new_zipfile_serialization=False)
    for name in ('zip.pth', 'legacy.pth'):  # legacy: no mmap, read instead
        ckpt = read_checkpoint(str(tmp_path / name), mmap=mmap)
        assert torch.equal(ckpt['state_dict']['w'], state['w'])


@pytest.mark.parametrize('mmap', [False, True])
def test_bad_files_are_named_and_described(tmp_path, mmap):
    cases = {
        'empty.pth': (b'', r'the file is empty \(0 bytes\)'),
        'notes.pth': (b'trained for 10 epochs\nlr 0.1\n',
                      r"it is a text file \(29 bytes, starting "
                      r"'trained for 10 epochs'\), not a PyTorch checkpoint"),
        'binary.pth': (bytes(range(256)) * 2,
                       r'it is not a PyTorch file \(512 bytes'),
    }
    torch.save({'w': torch.zeros(100)}, tmp_path / 'good.pth')
    cases['cut.pth'] = ((tmp_path / 'good.pth').read_bytes()[:200],
                        r'it looks like a PyTorch file \(200 bytes\) but '
                        r'cannot be read: truncated or corrupted')
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointFileError,
                           match=f'{path} is not a readable checkpoint: '
                           f'{expected}'):
            read_checkpoint(str(path), mmap=mmap)
    torch.save([1, 2], tmp_path / 'list.pth')
    with pytest.raises(CheckpointFileError, match='holds a list, not a '
                       'checkpoint dict'):
        read_checkpoint(str(tmp_path / 'list.pth'), mmap=mmap)
    with pytest.raises(FileNotFoundError, match='no checkpoint at'):
        read_checkpoint(str(tmp_path / 'none.pth'), mmap=mmap)
