"""Figures for the notebooks (matplotlib / seaborn). Each returns its Figure and draws nothing else."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def _slant_labels(ax) -> None:
    """Long model names on the x axis: rotated and right-aligned to their tick."""
    ax.tick_params(axis="x", rotation=35)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")


def correlation_heatmap(corr: pd.DataFrame, title: str = "Pearson correlation between task labels"):
    fig, ax = plt.subplots(figsize=(1.2 * len(corr) + 2.5, 1.0 * len(corr) + 1.5))
    sns.heatmap(corr, annot=True, fmt=".3f", cmap="vlag", vmin=-1, vmax=1, square=True, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def learning_curves(histories: pd.DataFrame, tasks, metric: str = "valid_auc"):
    """One panel per task: `metric` per epoch, a line per model (mean over seeds, band = ± std)."""
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sns.lineplot(data=histories, x="epoch", y=f"{metric}_{task}", hue="model", errorbar="sd",
                     marker="o", ax=ax)
        ax.set_title(f"{task}: {metric.replace('_', ' ')}")
        ax.set_ylabel(metric.replace("_", " "))
    fig.tight_layout()
    return fig


def metric_bars(results: pd.DataFrame, metric: str = "auc", title: str = "Test AUC (mean ± std over seeds)"):
    """A bar per model and task with ± std error bars; each task on its own axis (scales differ)."""
    tasks = list(dict.fromkeys(results["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = results[results["task"] == task]
        sns.barplot(data=part, x="model", y=metric, errorbar="sd", capsize=0.2, ax=ax)
        stats = part.groupby("model")[metric].agg(["mean", "std"]).fillna(0)
        low, high = (stats["mean"] - stats["std"]).min(), (stats["mean"] + stats["std"]).max()
        pad = max(0.25 * (high - low), 0.001)  # zoom on the differences: bars start near the lowest
        ax.set_ylim(max(0.0, low - 2 * pad), high + pad if metric != "auc" else min(1.0, high + pad))
        ax.set_title(task)
        _slant_labels(ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def gain_bars(gains: pd.DataFrame, title: str = "AUC gain over Single Task by task correlation ρ"):
    """Mean AUC gain over Single Task per model, one panel per task, a bar colour per ρ."""
    tasks = list(dict.fromkeys(gains["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = gains[(gains["task"] == task) & (gains["model"] != "single_task")]
        sns.barplot(data=part, x="model", y="gain_vs_single_task", hue=part["rho"].astype(str), ax=ax)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(task)
        ax.set_ylabel("AUC − Single Task AUC")
        _slant_labels(ax)
        ax.legend(title="ρ")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def negative_transfer_bars(runs: pd.DataFrame, title: str = "Change of existing-task AUC when T3 joins full training"):
    """Fig. 1 / Table 4: mean ± std of the AUC change per model, a panel per new task, a bar per task."""
    new_tasks = list(dict.fromkeys(runs["new_task"]))
    fig, axes = plt.subplots(1, len(new_tasks), figsize=(5.5 * len(new_tasks), 3.6), squeeze=False)
    for ax, new_task in zip(axes[0], new_tasks):
        sns.barplot(data=runs[runs["new_task"] == new_task], x="model", y="delta", hue="task", errorbar="sd",
                    capsize=0.15, ax=ax)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"T3 = {new_task}")
        ax.set_ylabel("AUC with T3 − AUC without")
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def ablation_bars(ablations: pd.DataFrame):
    """Figs. 4 and 5: T3 AUC per variant (mean ± std over seeds), a panel per figure."""
    figures = list(dict.fromkeys(ablations["figure"]))
    fig, axes = plt.subplots(1, len(figures), figsize=(5 * len(figures), 3.6), squeeze=False)
    for ax, name in zip(axes[0], figures):
        part = ablations[ablations["figure"] == name]
        sns.barplot(data=part, x="variant", y="t3_auc", errorbar="sd", capsize=0.2, ax=ax)
        ax.set_ylim(max(0.0, part["t3_auc"].min() - 0.02), min(1.0, part["t3_auc"].max() + 0.01))
        ax.set_title(name)
        ax.set_ylabel("T3 test AUC")
    fig.tight_layout()
    return fig


def tsne_panels(points: pd.DataFrame, scores: pd.DataFrame):
    """Fig. 6: a t-SNE scatter per model, coloured by representation kind, the separation in the title."""
    models = list(dict.fromkeys(points["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        sns.scatterplot(data=points[points["model"] == model], x="x", y="y", hue="kind", s=6, linewidth=0,
                        alpha=0.6, ax=ax)
        score = scores.set_index("model").loc[model]
        ax.set_title(f"{model}\nsilhouette {score['silhouette']:.2f}, "
                     f"probe acc. {score['probe_balanced_accuracy']:.2f}")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlabel(""), ax.set_ylabel("")
        ax.legend(markerscale=3, fontsize=8)
    fig.tight_layout()
    return fig
