"""ClassPromptMappingHook: cached class statistics and bad settings."""
import pytest
import torch

from mmseg_davpt.engine import ClassPromptMappingHook
from mmseg_davpt.models import ClassPromptMapping


def filled_mapping(seed=0):
    m = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=8)
    g = torch.Generator().manual_seed(seed)
    m.accumulate(torch.randn(20, 8, generator=g),
                 torch.randint(0, 4, (20, ), generator=g))
    return m


def test_cache_round_trip(tmp_path):
    cache = str(tmp_path / 'stats' / 'cls.pth')
    hook = ClassPromptMappingHook(cache_file=cache)
    source = filled_mapping()
    hook._save_cache(source, ('a', 'b', 'c', 'd'))
    target = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=8)
    hook._load_cache(target, ('a', 'b', 'c', 'd'))
    assert torch.equal(target.feat_sum, source.feat_sum)
    assert torch.equal(target.feat_count, source.feat_count)
    source.refresh()
    target.refresh()
    assert torch.equal(source.class_to_prompt, target.class_to_prompt)


@pytest.mark.parametrize('classes, dims, field', [
    (('a', 'b', 'c', 'x'), 8, 'classes'),
    (('a', 'b', 'c', 'd'), 16, 'embed_dims'),
])
def test_cache_from_another_setting_is_rejected(tmp_path, classes, dims,
                                                field):
    cache = str(tmp_path / 'cls.pth')
    hook = ClassPromptMappingHook(cache_file=cache)
    hook._save_cache(filled_mapping(), ('a', 'b', 'c', 'd'))
    other = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=dims)
    with pytest.raises(ValueError, match=f'another setting: {field}='):
        hook._load_cache(other, classes)


@pytest.mark.parametrize('kwargs, match', [
    (dict(interval=0), 'interval must be > 0'),
    (dict(init_max_iters=0), 'init_max_iters must be > 0'),
])
def test_bad_hook_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassPromptMappingHook(**kwargs)
