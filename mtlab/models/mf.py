"""Matrix factorization with auxiliary tasks: the recommender of PMTRec (arXiv 2407.21364).

User and item embedding tables are the encoder; every task reads them:
- rec        BPR (Rendle et al., 2009): −log σ(e_u·e_i − e_u·e_j) over sampled negatives j
- social     BPR on user–user links: −log σ(e_u·e_v − e_u·e_w)
- category   multi-label BCE of a linear head on the item embedding
- rating     MSE of a bilinear head e_uᵀ W e_i + b on the training ratings of the batch's pairs
- attribute  cross-entropy of a linear head per user attribute (age, gender, occupation …)
- align      alignment + uniformity of normalized embeddings (Wang & Isola, ICML 2020)
Negatives are drawn for the whole batch at once (vectorized).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

AUX_TASKS = ("social", "category", "rating", "attribute", "align")
UNIFORM_ROWS = 256


class MFMultiTask(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int = 64, tasks: Sequence[str] = ("rec",),
                 n_categories: int = 0, attribute_sizes: dict[str, int] | None = None):
        super().__init__()
        unknown = [t for t in tasks if t != "rec" and t not in AUX_TASKS]
        if unknown or "rec" not in tasks:
            raise ValueError(f"tasks must include 'rec' and may add {', '.join(AUX_TASKS)}; got {list(tasks)}")
        self.tasks, self.n_items = tuple(tasks), n_items
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        if "category" in tasks:
            self.category_head = nn.Linear(dim, n_categories)
        if "rating" in tasks:
            self.rating_head = nn.Bilinear(dim, dim, 1)
        if "attribute" in tasks:
            self.attribute_heads = nn.ModuleDict({k: nn.Linear(dim, n) for k, n in (attribute_sizes or {}).items()})

    def embedding_tables(self) -> list[nn.Parameter]:
        return [self.user.weight, self.item.weight]

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """Preference of the given users for every item: [U, n_items]."""
        return self.user(users) @ self.item.weight.T

    def task_losses(self, rows: torch.Tensor, data, generator: torch.Generator | None = None) -> torch.Tensor:
        """Losses [T] in `self.tasks` order for a batch of training rows (indices into data.train)."""
        u, i = data.train[rows, 0], data.train[rows, 1]
        eu, ei = self.user(u), self.item(i)
        out = []
        for task in self.tasks:
            if task == "rec":
                j = torch.randint(self.n_items, (len(u),), device=u.device, generator=generator)
                out.append(-F.logsigmoid((eu * ei).sum(1) - (eu * self.item(j)).sum(1)).mean())
            elif task == "social":
                out.append(self._social_loss(data, len(u), generator))
            elif task == "category":
                out.append(F.binary_cross_entropy_with_logits(self.category_head(ei), data.item_categories[i]))
            elif task == "rating":
                out.append(F.mse_loss(self.rating_head(eu, ei).squeeze(1), data.train_ratings[rows]))
            elif task == "attribute":
                out.append(sum(F.cross_entropy(head(eu), data.user_attributes[k][u])
                               for k, head in self.attribute_heads.items()))
            elif task == "align":
                nu, ni = F.normalize(eu, dim=1), F.normalize(ei, dim=1)
                align = (nu - ni).norm(dim=1).pow(2).mean()
                # uniformity on the first UNIFORM_ROWS rows: all pairs of a large batch cost B² for little gain
                uniform = sum(torch.pdist(x[:UNIFORM_ROWS]).pow(2).mul(-2).exp().mean().log() for x in (nu, ni)) / 2
                out.append(align + uniform)
        return torch.stack(out)

    def _social_loss(self, data, size: int, generator) -> torch.Tensor:
        links = data.social
        pick = torch.randint(len(links), (size,), device=links.device, generator=generator)
        a, b = links[pick, 0], links[pick, 1]
        w = torch.randint(self.user.num_embeddings, (size,), device=links.device, generator=generator)
        ea = self.user(a)
        return -F.logsigmoid((ea * self.user(b)).sum(1) - (ea * self.user(w)).sum(1)).mean()
