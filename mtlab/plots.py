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


def target_histograms(values: pd.DataFrame, title: str = "Training labels per task"):
    """One panel per task from `your_data.target_values`: a regression target's histogram (its units),
    a binary or multi-class task's count per label or class."""
    tasks = list(dict.fromkeys(values["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), squeeze=False)
    for ax, (task, part) in zip(axes[0], values.groupby("task", sort=False)):
        kind = part["kind"].iat[0]
        if kind == "regression":
            part["value"].astype(float).plot.hist(bins=30, ax=ax)
        else:
            part["value"].astype(str).value_counts().plot.bar(ax=ax)
            _slant_labels(ax)
        ax.set_title(f"{task} ({kind})")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(histories: pd.DataFrame, tasks, metric: str = "valid_auc"):
    """One panel per task: `metric` per epoch, a line per model (mean over seeds, band = ± std)."""
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sns.lineplot(data=histories, x="epoch", y=f"{metric}_{task}", hue="model", errorbar="sd", marker="o", ax=ax)
        ax.set_title(f"{task}: {metric.replace('_', ' ')}")
        ax.set_ylabel(metric.replace("_", " "))
    fig.tight_layout()
    return fig


def metric_bars(
    results: pd.DataFrame,
    metric: str | None = "auc",
    title: str = "Test AUC (mean ± std over seeds)",
    method: str = "model",
):
    """A bar per method (column `method`) and task with ± std error bars; each task on its own axis
    (scales differ). metric None: each task's main metric (AUC, RMSE, accuracy: compare.main_metric)."""
    from .experiments.compare import main_metric

    tasks = list(dict.fromkeys(results["task"]))
    shown = main_metric(results) if metric is None else dict.fromkeys(tasks, metric)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        metric = shown[task]
        part = results[results["task"] == task]
        sns.barplot(data=part, x=method, y=metric, errorbar="sd", capsize=0.2, ax=ax)
        stats = part.groupby(method)[metric].agg(["mean", "std"]).fillna(0)
        low, high = (stats["mean"] - stats["std"]).min(), (stats["mean"] + stats["std"]).max()
        pad = max(0.25 * (high - low), 0.001)  # zoom on the differences: bars start near the lowest
        ax.set_ylim(max(0.0, low - 2 * pad), high + pad if metric != "auc" else min(1.0, high + pad))
        ax.set_title(task if metric == "auc" else f"{task} ({metric})")
        _slant_labels(ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def gain_bars(gains: pd.DataFrame, title: str = "AUC gain over Single Task by task correlation ρ"):
    """Mean AUC gain over Single Task (of the same seed) per model, ± std over seeds as error bars,
    one panel per task, a bar colour per ρ."""
    tasks = list(dict.fromkeys(gains["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = gains[(gains["task"] == task) & (gains["model"] != "single_task")]
        sns.barplot(
            data=part,
            x="model",
            y="gain_vs_single_task",
            hue=part["rho"].astype(str),
            errorbar="sd",
            capsize=0.1,
            ax=ax,
        )
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
        sns.barplot(
            data=runs[runs["new_task"] == new_task],
            x="model",
            y="delta",
            hue="task",
            errorbar="sd",
            capsize=0.15,
            ax=ax,
        )
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
        sns.scatterplot(
            data=points[points["model"] == model], x="x", y="y", hue="kind", s=6, linewidth=0, alpha=0.6, ax=ax
        )
        score = scores.set_index("model").loc[model]
        ax.set_title(
            f"{model}\nsilhouette {score['silhouette']:.2f}, probe acc. {score['probe_balanced_accuracy']:.2f}"
        )
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlabel(""), ax.set_ylabel("")
        ax.legend(markerscale=3, fontsize=8)
    fig.tight_layout()
    return fig


def _zoom_on_bars(ax, grouped) -> None:
    """y limits that show the differences between bars of mean ± std (grouped: one group per bar)."""
    stats = grouped.agg(["mean", "std"]).fillna(0)
    low, high = (stats["mean"] - stats["std"]).min(), (stats["mean"] + stats["std"]).max()
    ax.set_ylim(max(0.0, low - 0.5 * (high - low)), high + 0.1 * (high - low) + 1e-4)


def rec_metric_bars(
    runs: pd.DataFrame,
    metrics=("recall@40", "ndcg@40"),
    title: str = "Test metrics per strategy (mean ± std over seeds)",
):
    """A panel per dataset and metric, a bar per weighting strategy, PMTRec in its own colour."""
    datasets = list(dict.fromkeys(runs["dataset"]))
    fig, axes = plt.subplots(
        len(datasets), len(metrics), figsize=(5.2 * len(metrics), 3.4 * len(datasets)), squeeze=False
    )
    for row, dataset in zip(axes, datasets):
        part = runs[runs["dataset"] == dataset].assign(
            kind=lambda f: f["strategy"].map(
                lambda s: {"pmtrec": "PMTRec", "single_task": "no auxiliary task"}.get(s, "baseline")
            )
        )
        for ax, metric in zip(row, metrics):
            sns.barplot(
                data=part,
                x="strategy",
                y=metric,
                hue="kind",
                dodge=False,
                errorbar="sd",
                capsize=0.2,
                palette={"PMTRec": "tab:red", "baseline": "tab:gray", "no auxiliary task": "tab:blue"},
                legend=False,
                ax=ax,
            )
            _zoom_on_bars(ax, part.groupby("strategy")[metric])
            ax.set_title(f"{dataset}: {metric}")
            ax.set_xlabel("")
            _slant_labels(ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def alpha_tau_heatmap(grid: pd.DataFrame, metric: str = "ndcg@40"):
    """The α × τ grid (rows α, columns τ) with the best cell outlined."""
    fig, ax = plt.subplots(figsize=(1.1 * grid.shape[1] + 2.5, 0.8 * grid.shape[0] + 1.8))
    sns.heatmap(grid, annot=True, fmt=".4f", cmap="viridis", ax=ax, cbar_kws={"label": metric})
    best = divmod(int(grid.to_numpy().argmax()), grid.shape[1])
    ax.add_patch(plt.Rectangle((best[1], best[0]), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set_xlabel("τ (Gradient Magnitude Balancing temperature)")
    ax.set_ylabel("α (Task Focusing base)")
    ax.set_title(f"PMTRec {metric} over α × τ (best outlined)")
    fig.tight_layout()
    return fig


def user_weight_figure(trajectory: pd.DataFrame, n_users: int = 6, seed: int = 0):
    """The personalization made visible. Left: the distribution of each task's per-user weight at the
    first, middle and last epoch. Right: the main task's weight of a few users, epoch by epoch."""
    epochs = sorted(trajectory["epoch"].unique())
    shown = sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    sns.boxplot(
        data=trajectory[trajectory["epoch"].isin(shown)], x="task", y="weight", hue="epoch", fliersize=1, ax=left
    )
    left.set_title("per-user task weights (one point per user)")
    main = trajectory["task"].iloc[0]
    every_epoch = trajectory.groupby("user")["epoch"].nunique()
    candidates = every_epoch[every_epoch == len(epochs)].index.to_series()
    if candidates.empty:  # no user in every epoch's last batch: the most frequent ones
        candidates = every_epoch.sort_values(ascending=False).index.to_series()
    users = candidates.sample(min(n_users, len(candidates)), random_state=seed)
    part = trajectory[(trajectory["task"] == main) & trajectory["user"].isin(users)]
    sns.lineplot(data=part, x="epoch", y="weight", hue="user", marker="o", palette="tab10", ax=right, legend=False)
    median = trajectory[trajectory["task"] == main].groupby("epoch")["weight"].median()
    right.plot(median.index, median.to_numpy(), color="black", linestyle="--", label="median over users")
    right.legend()
    right.set_title(f"weight of '{main}' for {len(users)} users over epochs")
    fig.tight_layout()
    return fig


def rec_ablation_bars(ablations: pd.DataFrame, metrics=("recall@40", "ndcg@40")):
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.barplot(data=ablations, x="variant", y=metric, errorbar="sd", capsize=0.2, ax=ax)
        _zoom_on_bars(ax, ablations.groupby("variant")[metric])
        ax.set_xlabel("")
        _slant_labels(ax)
    fig.suptitle("PMTRec ablations (mean ± std over seeds)")
    fig.tight_layout()
    return fig


# --- the gradient lab (notebook 13) ----------------------------------------------------------------


def conflict_curves(histories: pd.DataFrame, strategy: str = "ew"):
    """The gradient cosine and the share of conflicting steps over training, one line per ρ (mean
    over seeds, ± std as a band), for one strategy's runs of the conflict study."""
    part = histories[histories["strategy"] == strategy].assign(rho=lambda f: f["rho"].astype(str))
    fig, (cos_ax, conflict_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    sns.lineplot(data=part, x="epoch", y="cos_mean", hue="rho", errorbar="sd", marker="o", ax=cos_ax)
    cos_ax.axhline(0, color="black", linewidth=0.8)
    cos_ax.set_title("cosine of the task gradients (shared layer)")
    sns.lineplot(data=part, x="epoch", y="conflict_mean", hue="rho", errorbar="sd", marker="o", ax=conflict_ax)
    conflict_ax.set_title("share of measured steps in conflict (cos < 0)")
    conflict_ax.set_ylim(0, 1)
    for ax in (cos_ax, conflict_ax):
        ax.legend(title="ρ")
    fig.suptitle(f"{strategy}: mean over seeds ± std")
    fig.tight_layout()
    return fig


def conflict_by_rho(runs: pd.DataFrame, title: str = "Gradient conflict by task correlation ρ"):
    """The share of measured steps whose task gradients conflict (cosine < 0) against ρ, from the
    conflict study's runs: one point per strategy (mean over seeds), the mean over strategies as a
    line with ± std over strategy × seed runs as its band. Single Task (no shared layer) is left out."""
    shared = runs[runs["strategy"] != "single_task"].drop_duplicates(["rho", "strategy", "seed"])
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    per_strategy = shared.groupby(["rho", "strategy"])["conflict_mean"].mean().reset_index()
    ax.scatter(per_strategy["rho"], per_strategy["conflict_mean"], s=12, color="grey", alpha=0.5, label="a strategy")
    sns.lineplot(data=shared, x="rho", y="conflict_mean", errorbar="sd", marker="o", ax=ax, label="mean ± std")
    ax.set_xlabel("ρ (correlation of the synthetic tasks)")
    ax.set_ylabel("share of steps in conflict (cos < 0)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def delta_m_bars(delta: pd.DataFrame, within: str = "rho", title: str = "Δm over Single Task (mean ± std over seeds)"):
    """Δm (%) per strategy with its std over seeds as error bars, one panel per `within` value,
    strategies in the order of their mean Δm in the first panel; bars whose paired test against
    the baseline gives p < 0.05 are drawn dark."""
    values = list(dict.fromkeys(delta[within]))
    fig, axes = plt.subplots(
        1,
        len(values),
        figsize=(4.2 * len(values), 0.22 * delta["strategy"].nunique() + 1.5),
        squeeze=False,
        sharey=True,
    )
    order = delta[delta[within] == values[0]].sort_values("delta_m_mean", ascending=False)["strategy"].tolist()
    for ax, value in zip(axes[0], values):
        part = delta[delta[within] == value].set_index("strategy").reindex(order)
        colors = ["#1f4e79" if p < 0.05 else "#9dc3e6" for p in part["p_paired"].fillna(1.0)]
        ax.barh(range(len(part)), part["delta_m_mean"], xerr=part["delta_m_std"], color=colors, capsize=2)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(part)), part.index)
        ax.invert_yaxis()
        ax.set_title(f"{within} = {value}")
        ax.set_xlabel("Δm (%)")
    fig.suptitle(title + "; dark: paired test p < 0.05")
    fig.tight_layout()
    return fig


def weight_trajectories(histories: pd.DataFrame, strategies, by: str = "strategy"):
    """The weights each strategy gave the tasks per epoch (mean over seeds and any other setting),
    one small panel per strategy that reports weights."""
    shown = [
        s
        for s in strategies
        if histories.loc[histories[by] == s, [c for c in histories if c.startswith("weight_")]].notna().any().any()
    ]
    columns = [c for c in histories if c.startswith("weight_")]
    ncols = min(4, max(1, len(shown)))
    nrows = -(-len(shown) // ncols) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax, strategy in zip(axes.flat, shown):
        part = histories[histories[by] == strategy].groupby("epoch")[columns].mean()
        for column in columns:
            if part[column].notna().any():
                ax.plot(part.index, part[column], marker=".", label=column[7:])
        ax.set_title(strategy, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    if shown:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle("task weights per epoch (mean over seeds)")
    fig.tight_layout()
    return fig


def gate_utilization(runs: pd.DataFrame, strategies=("ew", "pcgrad", "upgrad", "nash_mtl")):
    """MMoE's gates at the end of training: the mean weight each task's gate gives each expert
    (mean over seeds), one heat map per strategy, with the gate's mean entropy in the row label."""
    expert_cols = sorted(c for c in runs if c.startswith("gate_gates_") and "_e" in c and "entropy" not in c)
    shown = [s for s in strategies if s in set(runs["strategy"])]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 2.6), squeeze=False)
    for ax, strategy in zip(axes[0], shown):
        part = runs[runs["strategy"] == strategy].drop_duplicates("seed")[expert_cols].mean()
        tasks = sorted({c[len("gate_gates_") :].rsplit("_e", 1)[0] for c in expert_cols})
        grid = pd.DataFrame({t: [part[c] for c in expert_cols if c.startswith(f"gate_gates_{t}_e")] for t in tasks}).T
        entropy = runs[runs["strategy"] == strategy].drop_duplicates("seed")
        labels = [f"{t} (H={entropy[f'gate_entropy_gates_{t}'].mean():.2f})" for t in tasks]
        sns.heatmap(
            grid,
            annot=True,
            fmt=".2f",
            vmin=0,
            vmax=1,
            cmap="Blues",
            cbar=False,
            ax=ax,
            yticklabels=labels,
            xticklabels=[f"e{k}" for k in range(grid.shape[1])],
        )
        ax.set_title(strategy)
    fig.suptitle("MMoE gate utilization: mean weight per task and expert (H: entropy)")
    fig.tight_layout()
    return fig


def reliability_curves(curves: pd.DataFrame, title: str = "pCVR on the clicked test impressions: reliability"):
    """Observed conversion rate against mean predicted pCVR per quantile bin, a line per model (mean over
    seeds of each bin); the diagonal is perfect calibration."""
    mean = curves.groupby(["model", "bin"], sort=False)[["predicted", "observed"]].mean().reset_index()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for model, part in mean.groupby("model", sort=False):
        ax.plot(part["predicted"], part["observed"], marker="o", label=model)
    top = float(max(mean["predicted"].max(), mean["observed"].max()))
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="calibrated")
    ax.set_xlabel("mean predicted pCVR (bin)")
    ax.set_ylabel("observed conversion rate (bin)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
