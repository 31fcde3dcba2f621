"""k-means class -> prompt mapping: refresh behaviour and rank agreement."""
import pytest
import torch
import torch.distributed as torch_dist

from mmseg_davpt.models import ClassPromptMapping
from mmseg_davpt.models.guidance import NO_CLASS, NO_PROMPT
from tests._helpers import run_ranks


def refresh(mapping):
    """Re-cluster from the class means as they are (the features here are
    already in the compared space)."""
    return mapping.assign(*mapping.class_means())


def clustered_features(groups, dim=8, per_class=5, noise=0.01, seed=0):
    """Features whose class means sit near axis ``groups[c]``."""
    g = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    for c, axis in enumerate(groups):
        centre = torch.zeros(dim)
        centre[axis] = 1.
        feats.append(centre + noise * torch.randn(per_class, dim, generator=g))
        labels.append(torch.full((per_class, ), c))
    return torch.cat(feats), torch.cat(labels)


def partition(mapping):
    """Classes grouped by prompt, independent of prompt numbering."""
    groups = {}
    for c, p in enumerate(mapping.class_to_prompt.tolist()):
        groups.setdefault(p, set()).add(c)
    return sorted(map(sorted, groups.values()))


def test_kmeans_groups_similar_classes():
    m = ClassPromptMapping(num_classes=6, num_prompts=2, embed_dims=8)
    m.accumulate(*clustered_features([0, 0, 0, 1, 1, 1]))
    stats = refresh(m)
    assert partition(m) == [[0, 1, 2], [3, 4, 5]]
    assert stats == dict(changed=6, seen_classes=6, assigned_classes=6,
                         unassigned_prompts=0)
    # statistics are reset after a refresh
    assert m.feat_count.sum() == 0


def test_refresh_keeps_assignments_when_statistics_do_not_move():
    m = ClassPromptMapping(num_classes=6, num_prompts=3, embed_dims=8)
    feats = clustered_features([0, 0, 1, 1, 2, 2])
    m.accumulate(*feats)
    refresh(m)
    before = m.class_to_prompt.clone()
    for _ in range(3):
        m.accumulate(*clustered_features([0, 0, 1, 1, 2, 2], seed=1))
        assert refresh(m)['changed'] == 0
    assert torch.equal(m.class_to_prompt, before)


def test_refresh_moves_a_class_whose_features_move():
    m = ClassPromptMapping(num_classes=6, num_prompts=3, embed_dims=8)
    m.accumulate(*clustered_features([0, 0, 1, 1, 2, 2]))
    refresh(m)
    before = m.class_to_prompt.clone()
    # class 1 now looks like classes 4 and 5
    m.accumulate(*clustered_features([0, 2, 1, 1, 2, 2]))
    stats = refresh(m)
    assert stats['changed'] == 1
    assert m.class_to_prompt[1] == before[4] == m.class_to_prompt[5]
    assert torch.equal(m.class_to_prompt[[0, 2, 3, 4, 5]],
                       before[[0, 2, 3, 4, 5]])


def test_unseen_classes_keep_their_prompt():
    m = ClassPromptMapping(num_classes=6, num_prompts=2, embed_dims=8)
    m.accumulate(*clustered_features([0, 0, 0, 1, 1, 1]))
    refresh(m)
    before = m.class_to_prompt.clone()
    feats, labels = clustered_features([0, 0, 0, 1, 1, 1], seed=3)
    keep = labels < 4  # classes 4, 5 not seen in this interval
    m.accumulate(feats[keep], labels[keep])
    stats = refresh(m)
    assert stats['seen_classes'] == 4
    assert torch.equal(m.class_to_prompt, before)


def test_fewer_classes_than_prompts_one_prompt_each():
    m = ClassPromptMapping(num_classes=3, num_prompts=5, embed_dims=8)
    m.accumulate(*clustered_features([0, 1, 2]))
    stats = refresh(m)
    assert sorted(m.class_to_prompt.tolist()) == [0, 1, 2]
    assert stats['unassigned_prompts'] == 2


def test_classes_never_seen_stay_unassigned():
    m = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=8)
    feats, labels = clustered_features([0, 1, 1, 1])
    m.accumulate(feats[labels < 2], labels[labels < 2])
    refresh(m)
    assert m.class_to_prompt[2:].tolist() == [-1, -1]


def test_assign_clusters_the_embedded_means_it_is_given():
    m = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=8)
    # raw features all look alike; the embedding separates classes {0,1}
    # from {2,3} by the sign of their first coordinate.
    feats = torch.ones(8, 8)
    feats[:4, 0] = -1.
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    m.accumulate(feats, labels)
    seen, means = m.class_means()
    assert seen.tolist() == [0, 1, 2, 3]
    assert torch.equal(means, feats[::2])
    m.assign(seen, means[:, :1])
    assert partition(m) == [[0, 1], [2, 3]]


def test_partial_refresh_never_hands_out_a_held_prompt():
    # fewer classes than prompts; the second refresh sees only classes 0, 2:
    # class 1 keeps prompt 1, so no seen class may be given prompt 1
    m = ClassPromptMapping(num_classes=3, num_prompts=5, embed_dims=4)
    m.accumulate(torch.eye(4)[:3], torch.tensor([0, 1, 2]))
    refresh(m)
    assert m.class_to_prompt.tolist() == [0, 1, 2]
    m.accumulate(torch.eye(4)[[0, 2]], torch.tensor([0, 2]))
    stats = refresh(m)
    assert m.class_to_prompt.tolist() == [0, 1, 2]
    assert stats['changed'] == 0 and stats['unassigned_prompts'] == 2


def test_partial_refresh_of_a_class_that_lost_its_prompt_takes_a_free_one():
    m = ClassPromptMapping(num_classes=3, num_prompts=4, embed_dims=4)
    m.class_to_prompt.copy_(torch.tensor([1, 1, NO_PROMPT]))
    m.num_refreshes.fill_(1)
    # classes 0 and 2 seen; class 1 (unseen) holds prompt 1
    m.accumulate(torch.eye(4)[[0, 2]], torch.tensor([0, 2]))
    refresh(m)
    mapping = m.class_to_prompt.tolist()
    assert mapping[1] == 1
    assert len(set(mapping)) == 3  # three classes, three prompts


def _shares_while_free(mapping, num_prompts):
    held = [p for p in mapping if p != NO_PROMPT]
    return len(set(held)) < num_prompts and len(set(held)) < len(held)


@pytest.mark.parametrize('seed', range(12))
def test_refresh_sequences_keep_the_mapping_invariants(seed):
    """Property check over random refresh sequences: seen classes get a
    prompt, unseen ones keep theirs, never-seen ones have none, and two
    classes never share a prompt while a prompt is free."""
    g = torch.Generator().manual_seed(seed)
    C = int(torch.randint(2, 9, (1, ), generator=g))
    N = int(torch.randint(1, 7, (1, ), generator=g))
    m = ClassPromptMapping(num_classes=C, num_prompts=N, embed_dims=6,
                           seed=seed)
    ever_seen = set()
    for _ in range(6):
        seen = torch.nonzero(torch.rand(C, generator=g) < 0.6).flatten()
        if not len(seen):
            seen = torch.tensor([int(torch.randint(C, (1, ), generator=g))])
        before = m.class_to_prompt.clone()
        m.accumulate(torch.randn(len(seen), 6, generator=g), seen)
        refresh(m)
        after = m.class_to_prompt
        ever_seen |= set(seen.tolist())
        unseen = [c for c in range(C) if c not in set(seen.tolist())]
        assert torch.equal(after[unseen], before[unseen])
        assert (after[seen] >= 0).all() and (after < N).all()
        assert all(after[c] == NO_PROMPT for c in range(C)
                   if c not in ever_seen)
        assert not _shares_while_free(after.tolist(), N), after.tolist()


def test_statistics_round_trip_through_a_cache_file(tmp_path):
    path = str(tmp_path / 'stats' / 'cls.pth')
    source = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=8)
    source.accumulate(*clustered_features([0, 0, 1, 1]))
    source.save_statistics(path, ('a', 'b', 'c', 'd'))
    target = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=8)
    target.load_statistics(path, ('a', 'b', 'c', 'd'))
    assert torch.equal(target.feat_sum, source.feat_sum)
    assert torch.equal(target.feat_count, source.feat_count)
    refresh(source)
    refresh(target)
    assert torch.equal(source.class_to_prompt, target.class_to_prompt)


@pytest.mark.parametrize('classes, dims, field', [
    (('a', 'b', 'c', 'x'), 8, 'classes'),
    (('a', 'b', 'c', 'd'), 16, 'embed_dims'),
])
def test_cache_from_another_setting_is_rejected(tmp_path, classes, dims,
                                                field):
    path = str(tmp_path / 'cls.pth')
    source = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=8)
    source.accumulate(*clustered_features([0, 0, 1, 1]))
    source.save_statistics(path, ('a', 'b', 'c', 'd'))
    other = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=dims)
    with pytest.raises(ValueError, match=f'another setting: {field}='):
        other.load_statistics(path, classes)


def test_prompt_groups_name_the_classes_of_each_prompt():
    m = ClassPromptMapping(num_classes=4, num_prompts=3, embed_dims=4)
    m.class_to_prompt.copy_(torch.tensor([2, NO_PROMPT, 2, 0]))
    assert m.prompt_groups(('a', 'b', 'c')) == [['class 3'], [], ['a', 'c']]
    assert m.prompt_groups() == [['class 3'], [], ['class 0', 'class 2']]
    assert m.lookup(torch.tensor([[3, NO_CLASS], [1, 0]])).tolist() == \
        [[0, NO_PROMPT], [NO_PROMPT, 2]]


def test_impossible_settings():
    with pytest.raises(ValueError, match='at least one guided prompt'):
        ClassPromptMapping(num_classes=3, num_prompts=0, embed_dims=8)
    with pytest.raises(ValueError, match='num_classes must be > 0'):
        ClassPromptMapping(num_classes=0, num_prompts=2, embed_dims=8)


def _rank_worker(rank, world, port, queue):
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                  rank=rank, world_size=world)
    torch.manual_seed(rank)
    m = ClassPromptMapping(num_classes=12, num_prompts=3, embed_dims=8)
    feats, labels = clustered_features([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],
                                       noise=0.2, seed=0)
    # each rank sees a different half of the samples
    half = torch.arange(len(labels)) % world == rank
    m.accumulate(feats[half], labels[half])
    history = []
    for step in range(2):
        stats = refresh(m)
        # plain Python values only: a tensor on a queue is shared through a
        # file descriptor that this process serves, and it may have exited
        # before the parent unpickles it (FileNotFoundError)
        history.append((m.class_to_prompt.tolist(), m.centroids.tolist(),
                        stats))
        feats2, labels2 = clustered_features(
            [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], noise=0.2, seed=step + 1)
        m.accumulate(feats2[half], labels2[half])
    queue.put((rank, history))
    torch_dist.barrier()
    torch_dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_mappings_identical_on_both_ranks():
    results = {rank: [(mapping, torch.tensor(centroids), stats)
                      for mapping, centroids, stats in history]
               for rank, (history, ) in run_ranks(_rank_worker).items()}
    for (map0, cen0, st0), (map1, cen1, st1) in zip(results[0], results[1]):
        assert map0 == map1
        assert torch.equal(cen0, cen1)
        assert st0 == st1
    # Same answer as one process holding all samples.
    single = ClassPromptMapping(num_classes=12, num_prompts=3, embed_dims=8)
    single.accumulate(*clustered_features(
        [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], noise=0.2, seed=0))
    refresh(single)
    assert single.class_to_prompt.tolist() == results[0][0][0]
    assert partition(single) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
