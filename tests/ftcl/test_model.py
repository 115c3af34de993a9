"""ftcl.model: ACM-Net's outputs, padding, candidates, release parameter names, gradients."""
import pytest
import torch

from ftcl.config import preset
from ftcl.model import ACMNet, ModelOutput
from tests.helpers import small_model


@pytest.mark.parametrize("time", [7, 13, 30])
def test_model_output_shapes_on_odd_lengths(time):
    model = small_model().eval()
    out = model(torch.rand(3, time, 12))
    assert out.scores_inst.shape == out.scores_cont.shape == out.scores_back.shape == (3, 6)
    assert out.feat_inst.shape == (3, 12) and out.attention.shape == (3, time, 3)
    assert out.inst_cas.shape == (3, time, 6)
    assert out.lcs_candidates.shape == (3, min(4, time), 12)
    assert out.fsd_action.shape == out.fsd_background.shape == (3, 3, 6)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(3, time))
    torch.testing.assert_close(out.scores_inst.sum(-1), torch.ones(3))


def test_padded_batch_equals_videos_run_alone():
    model = small_model().eval()
    videos = [torch.rand(1, 9, 12), torch.rand(1, 13, 12)]
    padded = torch.zeros(2, 13, 12)
    padded[0, :9], padded[1] = videos[0][0], videos[1][0]
    together = model(padded, torch.tensor([9, 13]))
    for k, video in enumerate(videos):
        alone = model(video)
        n = video.shape[1]
        for name in ("scores_inst", "scores_cont", "scores_back", "feat_inst", "feat_cont", "feat_back"):
            torch.testing.assert_close(getattr(together, name)[k], getattr(alone, name)[0])
        torch.testing.assert_close(together.inst_cas[k, :n], alone.inst_cas[0])
        torch.testing.assert_close(together.attention[k, :n], alone.attention[0])


def test_candidates_follow_instance_attention_ranks_in_time_order():
    dim, time = 6, 12
    model = small_model(feature_dim=dim, lcs_len=4, fsd_len=2).eval()
    with torch.no_grad():
        conv = model.feature_embedding[0]
        conv.weight.zero_()
        conv.weight[:, :, 1] = torch.eye(dim)  # embedding = relu(input)
        conv.bias.zero_()
        model.att_branch.weight.zero_()
        model.att_branch.bias.zero_()
        model.att_branch.weight[0, 0, 0] = 10.0  # instance attention grows with feature 0
    order = torch.tensor([3, 11, 0, 7, 5, 9, 1, 4, 8, 2, 10, 6])  # snippet ranked first, second, ...
    x = torch.rand(1, time, dim) + 0.1
    x[0, order, 0] = torch.linspace(1.0, 0.0, time)
    out = model(x)
    embedded = x[0]
    torch.testing.assert_close(out.lcs_candidates[0], embedded[order[:4].sort().values])
    torch.testing.assert_close(out.fsd_action[0], model.feature_trans(embedded[order[:2].sort().values]))
    torch.testing.assert_close(out.fsd_background[0], model.feature_trans(embedded[order[2:4].sort().values]))
    # Instance feature: mean embedding of the top max(12 // 8, 1) = 1 snippet by instance attention.
    torch.testing.assert_close(out.feat_inst[0], embedded[order[0]])


def test_parameter_names_load_release_checkpoints():
    names = set(small_model().state_dict())
    assert {"feature_embedding.0.weight", "att_branch.weight", "snippet_cls.weight", "feature_trans.weight"} <= names
    anet = ACMNet.from_config(preset("activitynet13", feature_dim=8, num_classes=3))
    assert "feature_embedding.1.weight" in anet.state_dict()
    assert anet.topk_divisors == (2, 10, 10)


def test_localization_only_forward_equals_the_full_forward():
    model = small_model().eval()
    x, lengths = torch.rand(3, 17, 12), torch.tensor([17, 9, 12])
    full, light = model(x, lengths), model(x, lengths, localization_only=True)
    torch.testing.assert_close(light.scores_inst, full.scores_inst, rtol=0, atol=0)
    for k, n in enumerate(lengths.tolist()):
        for name in ("attention", "inst_cas"):
            torch.testing.assert_close(getattr(light, name)[k, :n], getattr(full, name)[k, :n], rtol=0, atol=0)
    assert light.fsd_action is None and light.lcs_candidates is None


def test_evaluation_forward_skips_only_identity_dropout():
    """In eval mode the snippet-dropout mask and dropout are skipped; with p = 0 the training path
    applies them as identities, so both modes must agree bit for bit on every field."""
    model = small_model(dropout=0.0)
    x, lengths = torch.rand(3, 17, 12), torch.tensor([17, 9, 12])
    trained, evaluated = model.train()(x, lengths), model.eval()(x, lengths)
    for name, value in vars(trained).items():
        torch.testing.assert_close(getattr(evaluated, name), value, rtol=0, atol=0)


def test_full_forward_gradients_match_finite_differences():
    """Every output's gradient with respect to the features and the weights (the top-k, LCS and FSD
    snippets come from one gather whose backward sums all their uses), in float64 against central
    differences; odd length, padding, dropout off."""
    model = small_model(feature_dim=6, num_classes=3, lcs_len=4, fsd_len=2, fc_dim=5, dropout=0.0).double().train()
    x = torch.rand(2, 13, 6, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([13, 9])

    def outputs(features, *weights):
        out = torch.func.functional_call(model, dict(zip(names, weights)), (features, lengths))
        return tuple(value for value in vars(out).values())

    names = [name for name, _ in model.named_parameters()]
    weights = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    assert torch.autograd.gradcheck(outputs, (x, *weights), eps=1e-6, atol=1e-6)


def test_full_forward_needs_the_fsd_snippets():
    with pytest.raises(ValueError, match="at least 6 snippets, got 5"):
        small_model(fsd_len=3)(torch.rand(2, 5, 12))


def test_selecting_repeated_videos_sums_their_gradients_in_index_order():
    """The in-batch objective picks each video for several pairs (ModelOutput.select with an index
    tensor). Its gradient must be the sum in index order, bit for bit: advanced indexing's CPU
    gradient adds repeated rows with parallel atomics above torch's grain size (this tensor is
    above it), whose order, and so whose float32 result, changed from run to run."""
    gen = torch.Generator().manual_seed(0)
    candidates = torch.randn(16, 30, 96, generator=gen, requires_grad=True)  # 46,080 elements
    fields = {name: None for name in ModelOutput.__dataclass_fields__}
    out = ModelOutput(**{**fields, "lcs_candidates": candidates})
    index = torch.randint(0, 16, (120,), generator=gen)
    upstream = torch.randn(120, 30, 96, generator=gen)
    (grad,) = torch.autograd.grad((out.select(index).lcs_candidates * upstream).sum(), candidates)
    want = torch.zeros_like(candidates)
    for pair, video in enumerate(index.tolist()):
        want[video] += upstream[pair]
    assert torch.equal(grad, want)
    assert torch.equal(out.select(slice(3, 9)).lcs_candidates, candidates[3:9])
