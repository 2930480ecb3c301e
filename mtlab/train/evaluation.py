"""The evaluator of each kind of data: tabular tasks are scored by the metrics of their kind (binary:
AUC and log loss; regression: RMSE and MAE; multi-class: accuracy, macro-F1 and log loss; data.task_kinds);
a recommender (interaction data) by full-ranking Recall@K and NDCG@K of `rec`,
and each auxiliary task by a measure of its own where one exists."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ..data.interactions import InteractionData
from ..data.tabular import MultiTaskData
from ..data.task_kinds import all_binary
from .metrics import evaluate
from .ranking import ranking_metrics

RANKING_KS = (10, 20, 40)


class TabularEvaluator:
    """{task: {metric: value}} on a split, each task's metrics of its kind. Early stopping watches the
    mean AUC by default where every task is binary, else the mean `score` over the tasks (AUC, R², accuracy:
    higher is better on one scale; data.task_kinds)."""

    def __init__(self, batch_size: int = 65536, kinds=()):
        self.batch_size = batch_size
        self.default_monitor = "auc_mean" if all_binary(kinds) else "score_mean"

    def __call__(self, model, data: MultiTaskData, split: str) -> dict[str, dict[str, float]]:
        return evaluate(model, data.split(split), model.tasks, self.batch_size)


class RankingEvaluator:
    """rec: Recall@K and NDCG@K by full ranking (training items, and for the test split validation
    items, excluded). The auxiliary tasks are scored on labels no training loss saw:
    category: `heldout_item_auc`, the micro AUC of the item-category head over the items whose
    categories are held out for this split (`InteractionData.category_split`); attribute:
    `heldout_user_accuracy`, the mean over attributes of the accuracy over the users whose attributes
    are held out for this split; rating: `rmse` and `mae` of the rating head on the split's pairs (their
    ratings never train; with a threshold, e.g. MovieLens' 4 stars, these are the liked pairs' ratings),
    beside `rmse_of_training_mean`, the RMSE of predicting the training ratings' mean. social, coview and align have no held-out labels: their training loss is in
    the history."""

    default_monitor = "ndcg@40_rec"

    def __init__(self, ks=RANKING_KS):
        self.ks = tuple(ks)

    @torch.no_grad()
    def __call__(self, model, data: InteractionData, split: str) -> dict[str, dict[str, float]]:
        was_training = model.training
        model.eval()
        exclude = [data.train] + ([data.valid] if split == "test" else [])
        pairs = data.split(split)
        out = {"rec": ranking_metrics(model.scores, data.n_users, data.n_items, pairs, exclude, self.ks)}
        code = {"valid": 1, "test": 2}.get(split, 0)
        if "category" in model.tasks and data.category_split is not None:
            items = (data.category_split == code).nonzero().flatten()
            labels = data.item_categories[items].cpu().numpy()
            probs = torch.sigmoid(model.category_head(model.item(items))).cpu().numpy()
            keep = (labels.sum(0) > 0) & (labels.sum(0) < len(labels))  # categories with both classes
            out["category"] = {
                "heldout_item_auc": float(roc_auc_score(labels[:, keep], probs[:, keep], average="micro"))
                if keep.any()
                else float("nan")
            }
        if "attribute" in model.tasks and data.attribute_split is not None:
            users = (data.attribute_split == code).nonzero().flatten()
            hits = [
                (head(model.user(users)).argmax(1) == data.user_attributes[k][users]).float().mean().item()
                for k, head in model.attribute_heads.items()
            ]
            out["attribute"] = {"heldout_user_accuracy": float(np.mean(hits)) if len(users) else float("nan")}
        ratings = {"valid": data.valid_ratings, "test": data.test_ratings}.get(split)
        if "rating" in model.tasks and ratings is not None and len(ratings):
            error = model.rating_head(model.user(pairs[:, 0]), model.item(pairs[:, 1])) - ratings
            constant = ratings - data.train_ratings.mean()  # the baseline: the training ratings' mean
            out["rating"] = {
                "rmse": float(error.pow(2).mean().sqrt()),
                "mae": float(error.abs().mean()),
                "rmse_of_training_mean": float(constant.pow(2).mean().sqrt()),
            }
        model.train(was_training)
        return out


def evaluator_for(data, batch_size: int = 65536):
    """The evaluator of the data's kind (`data.kind`: "tabular" binary tasks, "interactions" ranking)."""
    if not isinstance(data, (MultiTaskData, InteractionData)):
        raise TypeError(
            f"no evaluator for {type(data).__name__}; mtlab evaluates MultiTaskData (binary tasks) "
            "and InteractionData (ranking)"
        )
    return EVALUATORS[data.kind](data, batch_size)


# the evaluator of each kind of data, given the data and the evaluation batch size
EVALUATORS = {
    "tabular": lambda data, batch_size: TabularEvaluator(batch_size, data.kinds),
    "interactions": lambda data, batch_size: RankingEvaluator(),
}
