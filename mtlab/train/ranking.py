"""Full-ranking evaluation for recommendation: Recall@K and NDCG@K over all items, the user's
training (and, for the test split, validation) items excluded, vectorized on the device in chunks
of users (never a loop over users)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def ranking_metrics(
    scores: Callable[[torch.Tensor], torch.Tensor],
    n_users: int,
    n_items: int,
    targets: torch.Tensor,
    exclude: Sequence[torch.Tensor] = (),
    ks: Sequence[int] = (10, 20, 40),
    chunk: int = 1024,
) -> dict[str, float]:
    """Mean Recall@K and NDCG@K over the users that have at least one target pair.

    scores(users [U]) -> [U, n_items]; targets and every tensor in `exclude`: [N, 2] (user, item).
    Recall@K = |top-K ∩ T_u| / |T_u|;  NDCG@K = Σ_{r ≤ K, hit} 1/log2(r+1) / Σ_{r ≤ min(K, |T_u|)} 1/log2(r+1).
    """
    device = targets.device
    users = torch.unique(targets[:, 0])
    max_k = max(ks)
    discount = 1.0 / torch.log2(torch.arange(2, max_k + 2, device=device, dtype=torch.float32))
    ideal = torch.cumsum(discount, 0)  # ideal DCG for 1 … K relevant items
    sums = {f"{name}@{k}": torch.zeros((), device=device) for k in ks for name in ("recall", "ndcg")}
    position = torch.full((n_users,), -1, dtype=torch.long, device=device)
    for start in range(0, len(users), chunk):
        block = users[start : start + chunk]
        position[block] = torch.arange(len(block), device=device)
        with torch.no_grad():
            s = scores(block).float()
        for pairs in exclude:  # seen items can never be recommended
            seen = pairs[position[pairs[:, 0]] >= 0]
            s[position[seen[:, 0]], seen[:, 1]] = float("-inf")
        relevant = torch.zeros(len(block), n_items, dtype=torch.bool, device=device)
        hits_pairs = targets[position[targets[:, 0]] >= 0]
        relevant[position[hits_pairs[:, 0]], hits_pairs[:, 1]] = True
        n_relevant = relevant.sum(1).float()
        top = torch.topk(s, max_k, dim=1).indices
        hits = relevant.gather(1, top).float()  # [U, K]
        for k in ks:
            sums[f"recall@{k}"] += (hits[:, :k].sum(1) / n_relevant).sum()
            dcg = (hits[:, :k] * discount[:k]).sum(1)
            sums[f"ndcg@{k}"] += (dcg / ideal[torch.clamp(n_relevant.long(), max=k) - 1]).sum()
        position[block] = -1
    return {name: float(total) / len(users) for name, total in sums.items()}
