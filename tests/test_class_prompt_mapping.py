"""k-means class -> prompt mapping: refresh behaviour and rank agreement."""
import os
import socket

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from mmseg_davpt.models import ClassPromptMapping


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
    stats = m.refresh()
    assert partition(m) == [[0, 1, 2], [3, 4, 5]]
    assert stats == dict(changed=6, seen_classes=6, assigned_classes=6,
                         unassigned_prompts=0)
    # statistics are reset after a refresh
    assert m.feat_count.sum() == 0


def test_refresh_keeps_assignments_when_statistics_do_not_move():
    m = ClassPromptMapping(num_classes=6, num_prompts=3, embed_dims=8)
    feats = clustered_features([0, 0, 1, 1, 2, 2])
    m.accumulate(*feats)
    m.refresh()
    before = m.class_to_prompt.clone()
    for _ in range(3):
        m.accumulate(*clustered_features([0, 0, 1, 1, 2, 2], seed=1))
        assert m.refresh()['changed'] == 0
    assert torch.equal(m.class_to_prompt, before)


def test_refresh_moves_a_class_whose_features_move():
    m = ClassPromptMapping(num_classes=6, num_prompts=3, embed_dims=8)
    m.accumulate(*clustered_features([0, 0, 1, 1, 2, 2]))
    m.refresh()
    before = m.class_to_prompt.clone()
    # class 1 now looks like classes 4 and 5
    m.accumulate(*clustered_features([0, 2, 1, 1, 2, 2]))
    stats = m.refresh()
    assert stats['changed'] == 1
    assert m.class_to_prompt[1] == before[4] == m.class_to_prompt[5]
    assert torch.equal(m.class_to_prompt[[0, 2, 3, 4, 5]],
                       before[[0, 2, 3, 4, 5]])


def test_unseen_classes_keep_their_prompt():
    m = ClassPromptMapping(num_classes=6, num_prompts=2, embed_dims=8)
    m.accumulate(*clustered_features([0, 0, 0, 1, 1, 1]))
    m.refresh()
    before = m.class_to_prompt.clone()
    feats, labels = clustered_features([0, 0, 0, 1, 1, 1], seed=3)
    keep = labels < 4  # classes 4, 5 not seen in this interval
    m.accumulate(feats[keep], labels[keep])
    stats = m.refresh()
    assert stats['seen_classes'] == 4
    assert torch.equal(m.class_to_prompt, before)


def test_fewer_classes_than_prompts_one_prompt_each():
    m = ClassPromptMapping(num_classes=3, num_prompts=5, embed_dims=8)
    m.accumulate(*clustered_features([0, 1, 2]))
    stats = m.refresh()
    assert sorted(m.class_to_prompt.tolist()) == [0, 1, 2]
    assert stats['unassigned_prompts'] == 2


def test_classes_never_seen_stay_unassigned():
    m = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=8)
    feats, labels = clustered_features([0, 1, 1, 1])
    m.accumulate(feats[labels < 2], labels[labels < 2])
    m.refresh()
    assert m.class_to_prompt[2:].tolist() == [-1, -1]


def test_transform_is_applied_to_class_means():
    m = ClassPromptMapping(num_classes=4, num_prompts=2, embed_dims=8)
    # raw features all look alike; the transform separates classes {0,1}
    # from {2,3} by the sign of their first coordinate.
    feats = torch.ones(8, 8)
    feats[:4, 0] = -1.
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    m.accumulate(feats, labels)
    m.refresh(lambda x: x[:, :1])
    assert partition(m) == [[0, 1], [2, 3]]


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
        stats = m.refresh()
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


def test_two_process_gloo_mappings_identical_on_both_ranks():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    procs = [ctx.Process(target=_rank_worker, args=(r, 2, port, queue))
             for r in range(2)]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        rank, history = queue.get(timeout=120)
        results[rank] = [(mapping, torch.tensor(centroids), stats)
                         for mapping, centroids, stats in history]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for (map0, cen0, st0), (map1, cen1, st1) in zip(results[0], results[1]):
        assert map0 == map1
        assert torch.equal(cen0, cen1)
        assert st0 == st1
    # Same answer as one process holding all samples.
    single = ClassPromptMapping(num_classes=12, num_prompts=3, embed_dims=8)
    single.accumulate(*clustered_features(
        [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], noise=0.2, seed=0))
    single.refresh()
    assert single.class_to_prompt.tolist() == results[0][0][0]
    assert partition(single) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
