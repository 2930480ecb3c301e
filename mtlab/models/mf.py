"""Matrix factorization with auxiliary tasks: the recommender of PMTRec (arXiv 2407.21364).

User and item embedding tables are the encoder; every task reads them:
- rec        BPR (Rendle et al., 2009): −log σ(e_u·e_i − e_u·e_j) over sampled negatives j
- social     BPR on user–user links: −log σ(e_u·e_v − e_u·e_w)
- coview     BPR on item–item links (e.g. Amazon's also-viewed), likewise
- category   multi-label BCE of a linear head on the item embedding (items whose categories are
             held out, `InteractionData.category_split`, left out)
- rating     MSE of a bilinear head e_uᵀ W e_i + b on the training ratings of the batch's pairs
- attribute  cross-entropy of a linear head per user attribute (age, gender, occupation …; held-out
             users left out)
- align      alignment + uniformity of normalized embeddings (Wang & Isola, ICML 2020)
Negatives are drawn for the whole batch at once (vectorized), and each table's touched rows are
gathered once (`batch_losses`), which lets per-row weighting work on those rows only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.interactions import InteractionSpec
from ..sharing import TableRows
from .base import StepOutput, TaskModel, at_least, register
from .layers import lookup

AUX_TASKS = ("social", "coview", "category", "rating", "attribute", "align")
USER_IDS = ("u", "sa", "sb", "sw")  # batch users; social links: anchor, linked, sampled other user
ITEM_IDS = ("i", "j", "ca", "cb", "cw")  # batch items, negatives; item links (also-viewed) likewise
UNIFORM_ROWS = 256


# which sampled ids each task's loss reads (a row read by two or more tasks is shared in that step)
TASK_IDS = {
    "rec": ("u", "i", "j"),
    "social": ("sa", "sb", "sw"),
    "coview": ("ca", "cb", "cw"),
    "category": ("i",),
    "rating": ("u", "i"),
    "attribute": ("u",),
    "align": ("u", "i"),
}


@register("mf")
class MFMultiTask(TaskModel):
    """Built from an `InteractionSpec` (`data.spec`): `build_model("mf", data.spec, tasks, dim=64)`."""

    vectorizable = True
    data_kind = "interactions"

    def __init__(self, spec: InteractionSpec, tasks: Sequence[str] = ("rec",), dim: int = 64):
        super().__init__()
        unknown = [t for t in tasks if t != "rec" and t not in AUX_TASKS]
        if unknown or "rec" not in tasks:
            raise ValueError(f"tasks must include 'rec' and may add {', '.join(AUX_TASKS)}; got {list(tasks)}")
        at_least(1, dim=dim)
        if "category" in tasks and not spec.n_categories:
            raise ValueError("task 'category' needs item categories, which this dataset does not have; drop the task")
        if "attribute" in tasks and not spec.attribute_sizes:
            raise ValueError("task 'attribute' needs user attributes, which this dataset does not have; drop the task")
        self.spec, self.dim = spec, dim
        self.tasks, self.n_items = tuple(tasks), spec.n_items
        self.user = nn.Embedding(spec.n_users, dim)
        self.item = nn.Embedding(spec.n_items, dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        if "category" in tasks:
            self.category_head = nn.Linear(dim, spec.n_categories)
        if "rating" in tasks:
            self.rating_head = BilinearScore(dim)
        if "attribute" in tasks:
            self.attribute_heads = nn.ModuleDict({k: nn.Linear(dim, n) for k, n in spec.attribute_sizes})

    def config(self) -> dict:
        return {"dim": self.dim}

    def embedding_tables(self) -> list[nn.Parameter]:
        return [self.user.weight, self.item.weight]

    def shared_parameters(self) -> list:
        """Whole tables, for strategies called outside a training step; a step declares exactly the
        rows two or more tasks read (`training_step`). The heads are each one task's own."""
        return self.embedding_tables() if len(self.tasks) > 1 else []

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """Preference of the given users for every item: [U, n_items]."""
        return self.user(users) @ self.item.weight.T

    def training_step(self, data, batch, step, generator=None) -> StepOutput:
        losses, touched = self.batch_losses(batch.rows, data, generator)
        return StepOutput(
            losses, [TableRows(t, index, values) for t, (index, values) in zip(self.embedding_tables(), touched)]
        )

    def draw(self, data, rows, generator=None) -> dict[str, torch.Tensor]:
        return {"rows": rows, **self._sample_ids(rows, data, generator)}

    def member_losses(self, data, drawn, step):
        """The losses of `batch_losses` from drawn ids, each embedding gathered directly (the same
        values; vectorized training needs no split of the rows by readers: it weights losses only)."""
        ids, emb = {k: v for k, v in drawn.items() if k != "rows"}, {}
        for table, keys in ((self.user.weight, USER_IDS), (self.item.weight, ITEM_IDS)):
            keys = [k for k in keys if k in ids]  # one gather per table: one scatter in its backward
            values = lookup(table, torch.cat([ids[k] for k in keys]))
            emb.update(zip(keys, values.split([len(ids[k]) for k in keys])))
        return torch.stack([self._loss(task, emb, ids, drawn["rows"], data) for task in self.tasks]), None

    def task_losses(self, rows: torch.Tensor, data, generator: torch.Generator | None = None) -> torch.Tensor:
        """Losses [T] in `self.tasks` order for a batch of training rows (indices into data.train)."""
        return torch.stack(self.batch_losses(rows, data, generator)[0])

    def batch_losses(self, rows: torch.Tensor, data, generator: torch.Generator | None = None):
        """(the T losses as a list, [(row ids, gathered rows)] per table of `embedding_tables()`).
        A list, so that one task's gradient traverses only its own graph. Every id the tasks need
        (batch pairs, sampled negatives, links) is drawn first; each table's touched rows are then
        gathered once, in two parts: the rows two or more tasks read (returned, for a weighting
        strategy to take per-task gradients on them: `mtlab.weighting.TableRows`) and the rows one
        task reads (a sampled negative, a linked user), whose gradient is that task's alone."""
        ids = self._sample_ids(rows, data, generator)
        emb, touched = {}, []
        for table, keys in ((self.user.weight, USER_IDS), (self.item.weight, ITEM_IDS)):
            keys = [k for k in keys if k in ids]
            index, position = torch.unique(torch.cat([ids[k] for k in keys]), return_inverse=True)
            readers = torch.zeros(len(index), dtype=torch.long, device=index.device)
            for task in self.tasks:
                reads = torch.zeros(len(index), dtype=torch.bool, device=index.device)
                for key, part in zip(keys, position.split([len(ids[k]) for k in keys])):
                    if key in TASK_IDS[task]:
                        reads[part] = True
                readers += reads
            shared = readers >= 2
            order = torch.cat([shared.nonzero().squeeze(1), (~shared).nonzero().squeeze(1)])
            shared_values = table[index[order[: int(shared.sum())]]]
            values = torch.cat([shared_values, table[index[order[len(shared_values) :]]]])[order.argsort()]
            for key, part in zip(keys, position.split([len(ids[k]) for k in keys])):
                emb[key] = values[part]
            touched.append((index[shared], shared_values))
        return [self._loss(task, emb, ids, rows, data) for task in self.tasks], touched

    def _sample_ids(self, rows, data, generator) -> dict[str, torch.Tensor]:
        """User ids (u, and a/b/w of social links) and item ids (i, negatives j, and a/b/w of
        item links) of one batch; negatives and links are drawn for the whole batch at once."""
        u, i = data.train[rows, 0], data.train[rows, 1]
        size, device = len(u), u.device
        ids = {"u": u, "i": i}
        draw = lambda n: torch.randint(n, (size,), device=device, generator=generator)  # noqa: E731
        if "rec" in self.tasks:
            ids["j"] = draw(self.n_items)
        for task, links, n, prefix in (
            ("social", data.social, self.user.num_embeddings, "s"),
            ("coview", data.item_links, self.n_items, "c"),
        ):
            if task in self.tasks:
                if links is None:
                    raise ValueError(
                        f"task {task!r} needs {'social' if task == 'social' else 'item'} links, "
                        f"which {getattr(data, 'name', 'this dataset')} does not have; drop the task"
                    )
                pick = draw(len(links))
                ids[prefix + "a"], ids[prefix + "b"], ids[prefix + "w"] = links[pick, 0], links[pick, 1], draw(n)
        return ids

    def _loss(self, task, emb, ids, rows, data) -> torch.Tensor:
        eu, ei = emb["u"], emb["i"]
        if task == "rec":
            return bpr(eu, ei, emb["j"])
        if task == "social":
            return bpr(emb["sa"], emb["sb"], emb["sw"])
        if task == "coview":
            return bpr(emb["ca"], emb["cb"], emb["cw"])
        if task == "category":  # a held-out item's categories train nothing (they are what is scored)
            keep = data.training_side("category", ids["i"])
            loss = F.binary_cross_entropy_with_logits(
                self.category_head(ei), data.item_categories[ids["i"]], reduction="none"
            ).mean(1)
            return (loss * keep).sum() / keep.sum().clamp_min(1)
        if task == "rating":
            return F.mse_loss(self.rating_head(eu, ei), data.train_ratings[rows])
        if task == "attribute":  # likewise a held-out user's attributes
            keep = data.training_side("attribute", ids["u"])
            loss = sum(
                F.cross_entropy(head(eu), data.user_attributes[k][ids["u"]], reduction="none")
                for k, head in self.attribute_heads.items()
            )
            return (loss * keep).sum() / keep.sum().clamp_min(1)
        # align: alignment + uniformity of the normalized embeddings
        nu, ni = F.normalize(eu, dim=1), F.normalize(ei, dim=1)
        align = (nu - ni).norm(dim=1).pow(2).mean()
        # uniformity on the first UNIFORM_ROWS rows: all pairs of a large batch cost B² for little gain
        uniform = (uniformity(nu[:UNIFORM_ROWS]) + uniformity(ni[:UNIFORM_ROWS])) / 2
        return align + uniform


class BilinearScore(nn.Module):
    """e_uᵀ W e_i + b per pair, as one matmul and a row-wise dot. nn.Bilinear computes the same
    but its backward (aten::_trilinear) was most of an ML-1M training step on the CPU."""

    def __init__(self, dim: int):
        super().__init__()
        bound = dim**-0.5  # nn.Bilinear's initialization
        self.weight = nn.Parameter(torch.empty(dim, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(1).uniform_(-bound, bound))

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return ((left @ self.weight) * right).sum(1) + self.bias


def uniformity(x: torch.Tensor) -> torch.Tensor:
    """log of the mean over pairs i < j of exp(−2‖x_i − x_j‖²), for unit rows x (‖a − b‖² = 2 − 2a·b):
    the squared distances from one matmul, which vmap batches (torch.pdist has no batching rule)."""
    i, j = torch.triu_indices(len(x), len(x), 1, device=x.device)
    squared = (2 - 2 * (x @ x.T))[i, j].clamp_min(0)
    return squared.mul(-2).exp().mean().log()


def bpr(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """BPR: −log σ(a·p − a·n), averaged."""
    return -F.logsigmoid((anchor * positive).sum(1) - (anchor * negative).sum(1)).mean()
