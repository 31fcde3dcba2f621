"""gather_across_ranks: two gloo ranks with DDP-style gradient averaging give
the single-process loss and gradients over the global batch."""
import pytest
import torch
import torch.distributed as torch_dist

from mmseg_davpt.models import SegMetricGuidance, proxy_anchor_loss
from tests._helpers import run_ranks


def problem(seed=0):
    """Shared weights, and per-sample features / labels of a global batch
    whose rank-0 part has more samples than rank 1's."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(8, 8, generator=g)
    P = torch.randn(3, 8, generator=g)
    feats = torch.randn(11, 8, generator=g)
    labels = torch.randint(0, 3, (11, ), generator=g)
    return W, P, feats, labels, [slice(0, 7), slice(7, 11)]


def single_process():
    W, P, feats, labels, _ = problem()
    W.requires_grad_(), P.requires_grad_()
    loss = proxy_anchor_loss(feats @ W, labels, P)
    loss.backward()
    return loss.item(), W.grad, P.grad


def _worker(rank, world, port, queue):
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                  rank=rank, world_size=world)
    W, P, feats, labels, parts = problem()
    W.requires_grad_(), P.requires_grad_()
    guidance = SegMetricGuidance(num_classes=3, embed_dims=8,
                                 guided_layers=(0, ), num_guided_prompts=3,
                                 gather_across_ranks=True)
    mine = parts[rank]
    samples, sample_labels = guidance._gather(feats[mine] @ W, labels[mine])
    loss = proxy_anchor_loss(samples, sample_labels, P)
    loss.backward()
    for grad in (W.grad, P.grad):  # what DDP does with parameter gradients
        torch_dist.all_reduce(grad)
        grad /= world
    # plain Python values only: a tensor on a queue is shared through a file
    # descriptor that this process serves, and it may have exited before
    # the parent unpickles it (FileNotFoundError in resource_sharer)
    queue.put((rank, loss.item(), W.grad.tolist(), P.grad.tolist(),
               samples.shape[0]))
    torch_dist.barrier()
    torch_dist.destroy_process_group()


@pytest.mark.slow
def test_gathered_loss_and_gradients_equal_single_process():
    results = {rank: (r_loss, torch.tensor(r_w), torch.tensor(r_p), count)
               for rank, (r_loss, r_w, r_p, count)
               in run_ranks(_worker).items()}
    loss, w_grad, p_grad = single_process()
    for rank in (0, 1):
        r_loss, r_w, r_p, num_samples = results[rank]
        assert num_samples == 11  # padding removed after the gather
        assert abs(r_loss - loss) < 1e-5
        assert torch.allclose(r_w, w_grad, atol=1e-5)
        assert torch.allclose(r_p, p_grad, atol=1e-5)
