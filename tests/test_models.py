import pytest
import torch
from torch import nn

from mtlab.data import Batch
from mtlab.models import MODELS, MultiTaskModel, build_model
from mtlab.models.funnel import FUNNEL_MODELS
from mtlab.models.layers import Experts, FeatureEmbedding, Gate, ParallelLinear, Towers, mix

TABULAR = sorted(n for n, c in MODELS.items() if issubclass(c, MultiTaskModel) and n not in FUNNEL_MODELS)


def batch_of(data, n=64):
    return data.train.rows(torch.arange(n))


@pytest.mark.parametrize("name", TABULAR)
def test_forward_shape(name, synthetic):  # gradient flow: tests/test_zoo.py
    torch.manual_seed(0)
    model = build_model(name, synthetic.features, synthetic.tasks)
    batch, _ = batch_of(synthetic)
    assert model(batch).shape == (64, len(synthetic.tasks))
    three = build_model(name, synthetic.features, ("a", "b", "c"))
    assert three(batch).shape == (64, 3)


def test_single_task_networks_are_independent(synthetic):
    torch.manual_seed(0)
    model = build_model("single_task", synthetic.features, synthetic.tasks)
    batch, _ = batch_of(synthetic)
    model(batch)[:, 0].sum().backward()  # loss of task 1 only
    emb_grad = model.embedding.table.weight.grad.view(-1, 2, model.emb_dim)
    assert emb_grad[:, 0].abs().sum() > 0 and emb_grad[:, 1].abs().sum() == 0
    for layer in (model.bottoms.net[0], model.towers.head):
        assert layer.weight.grad[0].abs().sum() > 0 and layer.weight.grad[1].abs().sum() == 0


def test_parallel_linear_equals_separate_linears():
    torch.manual_seed(0)
    layer = ParallelLinear(3, 5, 4)
    x2, x3 = torch.randn(7, 5), torch.randn(3, 7, 5)
    for i in range(3):
        ref = nn.Linear(5, 4)
        ref.weight.data, ref.bias.data = layer.weight[i].T.detach(), layer.bias[i, 0].detach()
        torch.testing.assert_close(layer(x2)[i], ref(x2))
        torch.testing.assert_close(layer(x3)[i], ref(x3[i]))


def test_experts_gate_mix_towers_shapes():
    x = torch.randn(10, 6)
    experts = Experts(4, 6, (8, 5))(x)
    gates = Gate(2, 6, 4)(x)
    assert experts.shape == (4, 10, 5) and gates.shape == (2, 10, 4)
    torch.testing.assert_close(gates.sum(-1), torch.ones(2, 10))
    mixed = mix(gates, experts)
    torch.testing.assert_close(mixed[1, 3], (gates[1, 3][:, None] * experts[:, 3]).sum(0))
    assert Towers(2, 5, (4,))(mixed).shape == (10, 2)
    assert Towers(2, 6, (4,))(x).shape == (10, 2)


def test_feature_embedding_single_lookup_with_offsets(synthetic):
    emb = FeatureEmbedding(synthetic.features, dim=3)
    batch = Batch(torch.tensor([[0, 0, 0], [7, 1, 2]]), torch.zeros(2, synthetic.features.n_num))
    out = emb(batch)
    assert out.shape == (2, 3 * 3 + synthetic.features.n_num)
    table = emb.table.weight
    torch.testing.assert_close(out[1, 3:6], table[8 + 1])  # second column starts after 8 codes
    copies = FeatureEmbedding(synthetic.features, dim=3, copies=2)(batch)
    assert copies.shape == (2, 2, 3 * 3 + synthetic.features.n_num)


def test_build_model_errors(synthetic):
    with pytest.raises(
        ValueError, match="registered models: aitm, csrec, escm2, esmm, mf, mmoe, mpt_rec, ple, shared_bottom"
    ):
        build_model("mmoe_typo", synthetic.features, synthetic.tasks)
    with pytest.raises(ValueError, match="its options: emb_dim, bottom, tower, dropout"):
        build_model("shared_bottom", synthetic.features, synthetic.tasks, hidden=3)
    model = build_model("shared_bottom", synthetic.features, synthetic.tasks, bottom=[32, 16])
    assert model.config()["bottom"] == (32, 16)
